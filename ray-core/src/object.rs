//! Objects: typed futures of one result (SEMANTICS §9).
//!
//! An object lives in a shared slot; every [`ObjectRef`] to it holds the slot,
//! so its memory is freed when the last ref (including those held by pending
//! calls as arguments) is dropped. In-process there is no global object table.
//!
//! The slot of an actor method's single result lives inside the call itself
//! (one allocation per call, freed by whoever lets go last): a ref holds
//! whatever holds its slot ([`SlotHolder`]), a standalone slot or a call.

#[cfg(ray_loom)]
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use std::cell::UnsafeCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::mem::ManuallyDrop;
use std::pin::Pin;
#[cfg(not(ray_loom))]
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ids::ObjectId;

/// A result as objects keep it: the error is boxed so a slot stays small
/// (an `Error` is ~80 bytes, and a pipelined caller holds a slot per call in
/// flight).
#[doc(hidden)]
pub type Stored<T> = std::result::Result<T, Box<Error>>;

/// The waiters of a completed object, taken out of its slot to be woken:
/// usually one task; several are rare (the slot keeps them boxed).
#[derive(Default)]
enum Waiters {
    #[default]
    None,
    One(Waker),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Waker>>),
}

impl Waiters {
    #[inline(never)]
    fn wake_all(self) {
        match self {
            Waiters::None => {}
            Waiters::One(f) => f.wake(),
            Waiters::Many(all) => all.into_iter().for_each(Waker::wake),
        }
    }
}

/// What a slot holds: its waiters while pending, its value once ready. Told
/// apart by [`READY`] and [`MANY`] in the slot's word, so no tag is kept
/// here: two words for a `u64`.
union State<T> {
    /// Pending with at most one waiter (neither bit set).
    one: ManuallyDrop<Option<Waker>>,
    /// Pending with several waiters ([`MANY`] set): rare, boxed.
    #[allow(clippy::box_collection)]
    many: ManuallyDrop<Box<Vec<Waker>>>,
    /// Ready ([`READY`] set).
    ready: ManuallyDrop<Stored<T>>,
}

/// Where one object's value goes: pending (with its waiters) or ready.
///
/// One word and a union, 24 bytes for a `u64` (a `Mutex<enum>` was 40): the
/// word holds the boxed ID, [`READY`] and [`MANY`] (which part of `state` is
/// live) and [`LOCKED`] (a lock bit: who holds it may touch `state`). Every critical
/// section is a few moves (a waker registered or taken, a value stored or
/// copied), so a contended lock spins briefly, then yields.
#[doc(hidden)]
pub struct Slot<T> {
    /// The ID, drawn on first use (most objects are never asked for their
    /// ID) and boxed: one word in every slot instead of three (0 until
    /// drawn); in bit 0, [`READY`], readable without the lock; in bit 1,
    /// [`LOCKED`]; in bit 2, [`MANY`].
    word: AtomicUsize,
    state: UnsafeCell<State<T>>,
}

// SAFETY: `state` is touched only under the lock bit (or through `&mut`),
// as a `Mutex` would guard it: the value moves between threads and is read
// by one at a time, so `T: Send` is enough, as for `Mutex<T>`.
unsafe impl<T: Send> Send for Slot<T> {}
unsafe impl<T: Send> Sync for Slot<T> {}

/// Bit 0 of [`Slot`]'s word: the state is ready (set under the lock, with
/// the state; never cleared while the slot is shared).
const READY: usize = 1;
/// Bit 1 of [`Slot`]'s word: someone holds the slot's lock.
const LOCKED: usize = 2;
/// Bit 2 of [`Slot`]'s word: the pending state has several waiters (set and
/// cleared under the lock).
const MANY: usize = 4;
/// The word's flag bits.
const FLAGS: usize = READY | LOCKED | MANY;

/// A boxed ID, aligned so that the low bits of its address are free for
/// the flags.
#[repr(align(8))]
struct BoxedId(ObjectId);

/// The boxed ID's address in the word (null until drawn).
fn id_ptr(word: usize) -> *mut BoxedId {
    (word & !FLAGS) as *mut BoxedId
}

/// The word, through `&mut` (no other thread can touch it).
#[inline]
fn with_word_mut<R>(word: &mut AtomicUsize, f: impl FnOnce(&mut usize) -> R) -> R {
    #[cfg(not(ray_loom))]
    return f(word.get_mut());
    #[cfg(ray_loom)]
    return word.with_mut(f);
}

#[cfg(ray_loom)]
use loom::thread::yield_now;
#[cfg(not(ray_loom))]
use std::thread::yield_now;

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot({})", self.state_name())
    }
}

/// The slot's lock, held: unlocks when dropped.
struct Locked<'a, T> {
    slot: &'a Slot<T>,
    /// The flags when locked, kept up to date by the guard (only the
    /// holder changes [`READY`] and [`MANY`]).
    flags: usize,
}

impl<T> Drop for Locked<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.slot.word.fetch_and(!LOCKED, Ordering::Release);
    }
}

impl<T> Locked<'_, T> {
    #[inline]
    fn is_ready(&self) -> bool {
        self.flags & READY != 0
    }

    /// The ready value.
    #[inline]
    fn value(&self) -> Option<&Stored<T>> {
        // SAFETY: the lock is held; the flags say which part is live.
        self.is_ready()
            .then(|| unsafe { &*(*self.slot.state.get()).ready })
    }

    /// Adds `w` to a pending slot's waiters (once per task).
    fn register(&mut self, w: &Waker) {
        debug_assert!(!self.is_ready());
        // SAFETY: locked (exclusive access) and pending; the flags say
        // which part is live, and are updated with it.
        unsafe {
            let state = &mut *self.slot.state.get();
            if self.flags & MANY != 0 {
                let all = &mut state.many;
                if !all.iter().any(|r| r.will_wake(w)) {
                    all.push(w.clone());
                }
                return;
            }
            match &mut *state.one {
                None => *state.one = Some(w.clone()),
                Some(first) if first.will_wake(w) => {}
                Some(_) => {
                    let first = state.one.take().expect("matched above");
                    state.many = ManuallyDrop::new(Box::new(vec![first, w.clone()]));
                    // Published by the unlock's release.
                    self.slot.word.fetch_or(MANY, Ordering::Relaxed);
                    self.flags |= MANY;
                }
            }
        }
    }

    /// Makes a pending slot ready with `value`, unlocks, and returns its
    /// waiters.
    #[inline]
    fn complete(self, value: Stored<T>) -> Waiters {
        debug_assert!(!self.is_ready());
        let (slot, flags) = (self.slot, self.flags);
        std::mem::forget(self);
        // SAFETY: locked and pending: the waiters are live; they move out
        // and the value takes their place before anyone can look again.
        let waiters = unsafe {
            let state = &mut *slot.state.get();
            let w = if flags & MANY != 0 {
                Waiters::Many(ManuallyDrop::take(&mut state.many))
            } else {
                match ManuallyDrop::take(&mut state.one) {
                    Some(one) => Waiters::One(one),
                    None => Waiters::None,
                }
            };
            state.ready = ManuallyDrop::new(value);
            w
        };
        // Ready, unlocked and single in one step (LOCKED was set, READY was
        // not, MANY as the flags say), after the value: whoever sees the
        // bit finds it.
        slot.word
            .fetch_xor(READY | LOCKED | (flags & MANY), Ordering::Release);
        waiters
    }
}

impl<T> Slot<T> {
    /// A pending slot.
    pub(crate) fn new() -> Self {
        Slot {
            word: AtomicUsize::new(0),
            state: UnsafeCell::new(State {
                one: ManuallyDrop::new(None),
            }),
        }
    }

    /// A slot ready with `value`.
    pub(crate) fn ready(value: Stored<T>) -> Self {
        Slot {
            word: AtomicUsize::new(READY),
            state: UnsafeCell::new(State {
                ready: ManuallyDrop::new(value),
            }),
        }
    }

    pub(crate) fn id(&self) -> ObjectId {
        let mut cur = self.word.load(Ordering::Acquire);
        let p = id_ptr(cur);
        if !p.is_null() {
            // SAFETY: set once below, freed only on drop.
            return unsafe { (*p).0 };
        }
        let mine = Box::into_raw(Box::new(BoxedId(ObjectId::random())));
        loop {
            // The flags stay as they are.
            let new = mine as usize | (cur & FLAGS);
            match self
                .word
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: `mine` is now the slot's, as above.
                Ok(_) => return unsafe { (*mine).0 },
                Err(now) => {
                    let theirs = id_ptr(now);
                    if !theirs.is_null() {
                        // Another reader drew first: its ID stands.
                        // SAFETY: `mine` was never shared; `theirs` as above.
                        unsafe {
                            drop(Box::from_raw(mine));
                            return (*theirs).0;
                        }
                    }
                    // Only the flag bits moved (or a spurious failure).
                    cur = now;
                }
            }
        }
    }

    /// Whether the state is ready, without the lock.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.word.load(Ordering::Acquire) & READY != 0
    }

    /// Takes the lock: spins while another holds it (a few moves at most),
    /// yielding the thread after a while in case the holder was preempted.
    #[inline]
    fn lock(&self) -> Locked<'_, T> {
        match self.try_lock() {
            Some(locked) => locked,
            None => self.lock_contended(),
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    fn try_lock(&self) -> Option<Locked<'_, T>> {
        let was = self.word.fetch_or(LOCKED, Ordering::Acquire);
        // Built only when taken: a guard unlocks when dropped.
        (was & LOCKED == 0).then(|| Locked {
            slot: self,
            flags: was & FLAGS,
        })
    }

    #[cold]
    fn lock_contended(&self) -> Locked<'_, T> {
        loop {
            self.wait_unlocked();
            if let Some(locked) = self.try_lock() {
                return locked;
            }
        }
    }

    /// Reads until the lock looks free.
    #[cfg(not(ray_loom))]
    fn wait_unlocked(&self) {
        let mut spins = 0u32;
        while self.word.load(Ordering::Relaxed) & LOCKED != 0 {
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                yield_now();
            }
        }
    }

    /// Under loom, only yields: loom would let such a read see the old word
    /// forever (a path without end), while the next try reads the latest.
    #[cfg(ray_loom)]
    fn wait_unlocked(&self) {
        yield_now();
    }

    /// `pending`, `ready` or `failed` (for `Debug`).
    fn state_name(&self) -> &'static str {
        match self.lock().value() {
            None => "pending",
            Some(Ok(_)) => "ready",
            Some(Err(_)) => "failed",
        }
    }

    /// Completes the slot (the first value stays); its waiters wake when the
    /// returned [`Wake`] is dropped, so whoever completes can first let go
    /// of what holds the slot.
    #[inline]
    pub(crate) fn complete_later(&self, value: Stored<T>) -> Wake {
        let locked = self.lock();
        if locked.is_ready() {
            return Wake::default();
        }
        Wake(ManuallyDrop::new(locked.complete(value)))
    }

    /// Completes the slot (the first value stays) and wakes its waiters.
    pub(crate) fn complete(&self, value: Result<T>) {
        drop(self.complete_later(value.map_err(Box::new)));
    }

    /// Whether the slot is ready; if not, registers `cx`'s waker.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> bool {
        let mut locked = self.lock();
        if locked.is_ready() {
            return true;
        }
        locked.register(cx.waker());
        false
    }

    /// A copy of the value if ready; else registers `cx`'s waker (when given).
    #[inline]
    fn poll_read(&self, cx: Option<&mut Context<'_>>) -> Poll<Result<T>>
    where
        T: Clone,
    {
        let mut locked = self.lock();
        if let Some(r) = locked.value() {
            return Poll::Ready(read(r));
        }
        if let Some(cx) = cx {
            locked.register(cx.waker());
        }
        Poll::Pending
    }

    /// A copy of the value if ready, read without the lock.
    ///
    /// # Safety
    /// Nobody else can reach the slot, and every write to it is visible:
    /// the caller holds its holder's last ref, and has synchronized with the
    /// other refs' drops (see [`GetOwned`]'s `poll`).
    #[inline]
    unsafe fn read_alone(&self) -> Option<Result<T>>
    where
        T: Clone,
    {
        if self.word.load(Ordering::Relaxed) & READY == 0 {
            return None;
        }
        // SAFETY: ready (the flag says so), and no one else can write or
        // read the slot meanwhile (the caller's promise).
        Some(read(unsafe { &*(*self.state.get()).ready }))
    }

    /// Moves the result out of a ready slot (leaving it pending): for the
    /// last holder, which nobody else can read after.
    #[inline]
    fn take_ready(&mut self) -> Option<Stored<T>> {
        let was = with_word_mut(&mut self.word, |word| {
            let was = *word;
            *word &= !READY;
            was
        });
        if was & READY == 0 {
            return None;
        }
        let state = self.state.get_mut();
        // SAFETY: was ready (exclusive access through `&mut`); no waiters
        // take the value's place, matching the cleared bit.
        unsafe {
            let r = ManuallyDrop::take(&mut state.ready);
            state.one = ManuallyDrop::new(None);
            Some(r)
        }
    }

    /// Fails the slot with [`Error::ObjectLost`] if it is still pending.
    pub(crate) fn lose(&self) {
        let id = self.id();
        self.complete(Err(Error::ObjectLost(id)));
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        let word = with_word_mut(&mut self.word, |w| *w);
        let state = self.state.get_mut();
        // SAFETY: `&mut`: the bits say which part is live; it is dropped
        // once, here.
        unsafe {
            if word & READY != 0 {
                ManuallyDrop::drop(&mut state.ready);
            } else if word & MANY != 0 {
                ManuallyDrop::drop(&mut state.many);
            } else {
                ManuallyDrop::drop(&mut state.one);
            }
        }
        let p = id_ptr(word);
        if !p.is_null() {
            // SAFETY: boxed by `id` and owned by the slot.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Waiters of a completed object, woken when this is dropped.
#[doc(hidden)]
#[must_use = "dropping it wakes the waiters at once"]
#[derive(Default)]
pub struct Wake(ManuallyDrop<Waiters>);

impl fmt::Debug for Wake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Wake")
    }
}

impl Drop for Wake {
    /// Inlined: mostly there is nobody to wake (the caller has not looked
    /// yet), and then this is one compare.
    #[inline]
    fn drop(&mut self) {
        if !matches!(*self.0, Waiters::None) {
            // SAFETY: taken once, here; `None` holds nothing to drop.
            unsafe { ManuallyDrop::take(&mut self.0) }.wake_all();
        }
    }
}

/// What holds an object's slot: the slot itself, or the call whose result
/// it is (so that the call and its result slot are one allocation).
#[doc(hidden)]
pub trait SlotHolder<T>: Send + Sync {
    /// The slot.
    fn slot(&self) -> &Slot<T>;
    /// The slot, to a holder nobody else holds.
    fn slot_mut(&mut self) -> &mut Slot<T>;
}

impl<T: Send> SlotHolder<T> for Slot<T> {
    #[inline]
    fn slot(&self) -> &Slot<T> {
        self
    }

    #[inline]
    fn slot_mut(&mut self) -> &mut Slot<T> {
        self
    }
}

/// A typed reference to a value that is, or will be, produced by a call or by [`put`].
///
/// Await it (`r.await` or `r.get().await`) as many times as you like: values are
/// immutable and each read returns a copy, except that `r.await` on the last ref
/// to a value moves the value out (nobody can read it after). Pass it as an
/// argument to another call and it is resolved before that call runs.
pub struct ObjectRef<T> {
    /// No `Weak` to a holder is ever made: a ref that sees the strong count
    /// at 1 is the only way left to its slot (see [`GetOwned`]'s `poll`).
    holder: Arc<dyn SlotHolder<T>>,
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef {
            holder: self.holder.clone(),
        }
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot();
        write!(f, "ObjectRef({}, {})", slot.id(), slot.state_name())
    }
}

/// A copy of a stored result.
#[inline]
fn read<T: Clone>(r: &Stored<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err((**e).clone()),
    }
}

/// The producing side of an object. Completing twice keeps the first value;
/// dropping it unsent fails the object with [`Error::ObjectLost`], so no reader
/// ever waits forever.
pub struct ObjectSender<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> fmt::Debug for ObjectSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.slot {
            Some(s) => write!(f, "ObjectSender({})", s.id()),
            None => f.write_str("ObjectSender(sent)"),
        }
    }
}

pub(crate) fn channel<T: Send + 'static>() -> (ObjectRef<T>, ObjectSender<T>) {
    let slot = Arc::new(Slot::new());
    (
        ObjectRef {
            holder: slot.clone(),
        },
        ObjectSender { slot: Some(slot) },
    )
}

/// Completes `slot` and wakes its waiters. The sender's reference to the
/// slot is dropped before waking them, so a reader that drops the last ref as
/// soon as it wakes frees the value at once.
fn complete<T>(slot: Arc<Slot<T>>, value: Result<T>) {
    let wake = slot.complete_later(value.map_err(Box::new));
    drop(slot);
    drop(wake);
}

impl<T> ObjectSender<T> {
    /// Stores the result and wakes every waiter.
    pub(crate) fn send(mut self, value: Result<T>) {
        if let Some(slot) = self.slot.take() {
            complete(slot, value);
        }
    }
}

impl<T> Drop for ObjectSender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let id = slot.id();
            complete(slot, Err(Error::ObjectLost(id)));
        }
    }
}

impl<T> ObjectRef<T> {
    /// A ref whose value is already there.
    pub(crate) fn ready(value: Result<T>) -> Self
    where
        T: Send + 'static,
    {
        ObjectRef {
            holder: Arc::new(Slot::ready(value.map_err(Box::new))),
        }
    }

    /// A ref to the slot `holder` holds.
    pub(crate) fn held_by(holder: Arc<dyn SlotHolder<T>>) -> Self {
        ObjectRef { holder }
    }

    #[inline]
    fn slot(&self) -> &Slot<T> {
        self.holder.slot()
    }

    /// The object's ID.
    pub fn id(&self) -> ObjectId {
        self.slot().id()
    }

    /// Whether the value (or its error) is available, without blocking.
    pub fn is_ready(&self) -> bool {
        self.slot().is_ready()
    }

    /// Registers `cx`'s waker unless ready; returns readiness.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> bool {
        let ready = self.slot().poll_ready(cx);
        if !ready {
            crate::resources::note_awaiting_object();
        }
        ready
    }

    /// Waits until the value is available, without reading it.
    pub(crate) fn wait_ready(&self) -> impl Future<Output = ()> + Send + '_
    where
        T: Send,
    {
        std::future::poll_fn(move |cx| {
            if self.poll_ready(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

impl<T: Clone> ObjectRef<T> {
    /// The value (a copy), or the error that produced it, if available now.
    pub fn try_get(&self) -> Option<Result<T>> {
        match self.slot().poll_read(None) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    /// Waits for the value and returns a copy of it (or the call's error).
    pub fn get(&self) -> Get<'_, T> {
        Get { r: self }
    }

    /// The address of what holds the slot (for a call's result, the call).
    #[inline]
    fn holder_addr(&self) -> usize {
        Arc::as_ptr(&self.holder) as *const () as usize
    }

    /// If this ref is the result of the call this thread made last and it is
    /// not ready, runs that call here when its actor is idle, instead of
    /// parking until the actor task runs it (see `exec::Driver`).
    #[inline]
    fn help(&self, cx: &mut Context<'_>) {
        crate::exec::help_with(self.holder_addr(), cx, &mut || self.is_ready());
    }

    fn poll_get(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.help(cx);
        self.poll_read(cx)
    }

    /// A copy of the value if ready; else registers `cx`'s waker.
    fn poll_read(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let read = self.slot().poll_read(Some(cx));
        if read.is_pending() {
            crate::resources::note_awaiting_object();
        }
        read
    }

    /// Blocks the current thread until the value is available. For synchronous
    /// code outside any async runtime; inside one, `.await` instead.
    pub fn get_blocking(&self) -> Result<T> {
        crate::block::block_on(self.get())
    }
}

/// Future returned by [`ObjectRef::get`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T> {
    r: &'a ObjectRef<T>,
}

impl<T: Clone> Future for Get<'_, T> {
    type Output = Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.r.poll_get(cx)
    }
}

/// Future of an owned [`ObjectRef`] (`r.await`). No bigger than the ref.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct GetOwned<T> {
    /// `None` once the value was moved out to this future's caller (see
    /// `poll`): the ref's niche holds that state, so no flag widens the
    /// future (a caller keeping many pending replies keeps many of these).
    r: Option<ObjectRef<T>>,
}

impl<T: Clone> Future for GetOwned<T> {
    type Output = Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        // The slot is empty once its value moved out: waiting on it would
        // never end, so a poll after completion fails loudly instead.
        let Some(r) = this.r.as_mut() else {
            panic!("an ObjectRef's future was polled again after it returned its value")
        };
        r.help(cx);
        // The last ref to a ready object (the usual `handle.method(x).await`:
        // the actor let go of the call before waking its caller) needs no
        // lock: nobody else can reach the slot.
        if Arc::strong_count(&r.holder) == 1 {
            // Pairs with the other refs' drops (a release decrement each):
            // the producer's writes are visible from here.
            fence(Ordering::Acquire);
            if std::mem::needs_drop::<T>() {
                // Types with drop glue (`Vec`, `String`, ...: a copy
                // allocates; `needs_drop` is a constant per type) have the
                // value moved out instead of copied, through the `&mut` that
                // `get_mut` gives (its check agrees with the count above).
                if let Some(holder) = Arc::get_mut(&mut r.holder) {
                    if let Some(v) = holder.slot_mut().take_ready() {
                        this.r = None;
                        return Poll::Ready(v.map_err(|e| *e));
                    }
                }
            } else {
                // Plain data is copied (a later poll reads it again).
                // SAFETY: this future owns the last ref (no `Weak` is ever
                // made, and it is not shared: `&mut`), synchronized above.
                if let Some(v) = unsafe { r.slot().read_alone() } {
                    return Poll::Ready(v);
                }
            }
        }
        r.poll_read(cx)
    }
}

impl<T: Clone> IntoFuture for ObjectRef<T> {
    type Output = Result<T>;
    type IntoFuture = GetOwned<T>;
    fn into_future(self) -> GetOwned<T> {
        GetOwned { r: Some(self) }
    }
}

impl<'a, T: Clone> IntoFuture for &'a ObjectRef<T> {
    type Output = Result<T>;
    type IntoFuture = Get<'a, T>;
    fn into_future(self) -> Get<'a, T> {
        self.get()
    }
}

/// Stores `value` as an object and returns a ref to it. Needs no runtime.
pub fn put<T: Send + 'static>(value: T) -> ObjectRef<T> {
    ObjectRef::ready(Ok(value))
}

/// Waits for the value of `r` (same as `r.get().await`).
pub async fn get<T: Clone>(r: &ObjectRef<T>) -> Result<T> {
    r.get().await
}

/// Waits until `num_returns` of `refs` are ready or `timeout` passes
/// (`None`: no limit), then returns `(ready, not_ready)`. Each list keeps the
/// input order; `ready` holds at most `num_returns` refs (the first ready ones in
/// input order), the rest go to `not_ready`. A ref whose call failed counts as ready.
///
/// # Panics
///
/// When `num_returns > refs.len()`: that wait could never finish (Ray raises
/// `ValueError` there).
pub async fn wait<T>(
    refs: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Option<Duration>,
) -> (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>) {
    assert!(
        num_returns <= refs.len(),
        "ray::wait: num_returns ({num_returns}) cannot be greater than the number of refs ({})",
        refs.len()
    );
    let enough = std::future::poll_fn(|cx| {
        let mut ready = 0;
        for r in refs {
            if r.poll_ready(cx) {
                ready += 1;
                if ready >= num_returns {
                    return Poll::Ready(());
                }
            }
        }
        if ready >= num_returns {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    match timeout {
        None => enough.await,
        Some(t) => {
            let _ = crate::block::timeout(t, enough).await;
        }
    }
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for r in refs {
        if ready.len() < num_returns && r.is_ready() {
            ready.push(r.clone());
        } else {
            not_ready.push(r.clone());
        }
    }
    (ready, not_ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_once_and_reads_many_times() {
        let (r, tx) = channel::<i32>();
        assert!(!r.is_ready());
        assert!(r.try_get().is_none());
        tx.send(Ok(3));
        assert_eq!(r.try_get(), Some(Ok(3)));
        assert_eq!(r.get_blocking(), Ok(3));
        assert_eq!(r.clone().get_blocking(), Ok(3));
    }

    /// The ready bit shares a word with the lazily drawn ID: drawing the
    /// ID keeps the bit, completing keeps the ID, in either order.
    #[test]
    fn the_ready_bit_and_the_id_share_a_word() {
        let slot = Slot::<u8>::new();
        let id = slot.id();
        assert!(!slot.is_ready());
        drop(slot.complete_later(Ok(1)));
        assert!(slot.is_ready());
        assert_eq!(slot.id(), id, "completing kept the ID");

        let slot = Slot::<u8>::new();
        drop(slot.complete_later(Ok(1)));
        assert!(slot.is_ready());
        let id = slot.id();
        assert!(slot.is_ready(), "drawing the ID kept the bit");
        assert_eq!(slot.id(), id);
    }

    /// Threads drawing the ID while another completes the slot: one ID
    /// for all, and the slot reads ready once completed, whatever the
    /// interleaving.
    #[test]
    fn drawing_the_id_races_completion_safely() {
        for round in 0..500 {
            let slot = Arc::new(Slot::<u64>::new());
            let drawers: Vec<_> = (0..2)
                .map(|_| {
                    let slot = slot.clone();
                    std::thread::spawn(move || slot.id())
                })
                .collect();
            if round % 2 == 0 {
                std::thread::yield_now();
            }
            drop(slot.complete_later(Ok(round)));
            assert!(slot.is_ready());
            let ids: Vec<_> = drawers.into_iter().map(|t| t.join().unwrap()).collect();
            assert_eq!(ids[0], ids[1], "two IDs drawn for one object");
            assert_eq!(slot.id(), ids[0]);
            assert!(
                slot.is_ready(),
                "an ID drawn after completion cleared the bit"
            );
            assert!(matches!(slot.lock().value(), Some(Ok(v)) if *v == round));
        }
    }

    /// A waker that counts its wake-ups (by value or by reference) and
    /// reports its clones through the `Arc`'s count.
    pub(super) struct Count(pub(super) std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(super) fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    /// One waiter stays inline; a second distinct one moves them all to the
    /// boxed list; the same task waiting twice is kept once. Completing
    /// wakes each exactly once and keeps no clone of any waker.
    #[test]
    fn every_distinct_waiter_is_woken_once() {
        let slot = Slot::<String>::new();
        let (counts, wakers): (Vec<_>, Vec<_>) = (0..3).map(|_| counter()).unzip();
        for w in wakers.iter().chain(&wakers) {
            assert!(!slot.poll_ready(&mut Context::from_waker(w)));
        }
        assert_eq!(slot.word.load(Ordering::SeqCst) & MANY, MANY);
        for c in &counts {
            assert_eq!(Arc::strong_count(c), 3, "the waiter is kept once");
        }
        let wake = slot.complete_later(Ok("v".into()));
        assert!(slot.is_ready());
        assert_eq!(slot.word.load(Ordering::SeqCst) & (MANY | LOCKED), 0);
        assert!(
            counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 0),
            "woken late"
        );
        drop(wake);
        for c in &counts {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
            assert_eq!(Arc::strong_count(c), 2, "the slot let go of its clone");
        }
        assert!(slot.poll_ready(&mut Context::from_waker(&wakers[0])));
        assert!(matches!(slot.poll_read(None), Poll::Ready(Ok(v)) if v == "v"));
        // A second completion keeps the first value and wakes nobody.
        drop(slot.complete_later(Ok("w".into())));
        assert!(matches!(slot.poll_read(None), Poll::Ready(Ok(v)) if v == "v"));
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 1);
    }

    /// Dropped while pending, a slot lets go of its waiters (one or many)
    /// without waking them; dropped ready, of its value.
    #[test]
    fn a_slot_dropped_in_any_state_frees_what_it_holds() {
        for n in 0..3 {
            let slot = Slot::<Vec<u8>>::new();
            let (counts, wakers): (Vec<_>, Vec<_>) = (0..n).map(|_| counter()).unzip();
            for w in &wakers {
                assert!(!slot.poll_ready(&mut Context::from_waker(w)));
            }
            drop(slot);
            for c in &counts {
                assert_eq!(Arc::strong_count(c), 2, "{n} waiters");
                assert_eq!(c.0.load(Ordering::SeqCst), 0);
            }
        }
        let value = Arc::new(());
        let slot = Slot::ready(Ok(value.clone()));
        assert_eq!(Arc::strong_count(&value), 2);
        drop(slot);
        assert_eq!(Arc::strong_count(&value), 1);
        // Moved out by the last holder, then dropped: freed once.
        let mut slot = Slot::ready(Ok(value.clone()));
        assert!(slot.take_ready().is_some());
        assert!(!slot.is_ready());
        assert!(slot.take_ready().is_none());
        drop(slot);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    /// Readers on several threads (each polling with its own waker, some
    /// drawing the ID, with random pauses) race one completer: whoever
    /// got `Pending` is woken, and every reader then reads the value.
    #[test]
    fn waiters_racing_completion_are_never_lost() {
        use rand::{Rng, SeedableRng};
        for round in 0..300u64 {
            let slot = Arc::new(Slot::<u64>::new());
            let readers: Vec<_> = (0..3u64)
                .map(|t| {
                    let slot = slot.clone();
                    std::thread::spawn(move || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(round * 10 + t);
                        let (count, waker) = counter();
                        let mut cx = Context::from_waker(&waker);
                        for _ in 0..rng.random_range(0..3) {
                            std::thread::yield_now();
                        }
                        if rng.random_bool(0.3) {
                            slot.id();
                        }
                        loop {
                            match slot.poll_read(Some(&mut cx)) {
                                Poll::Ready(v) => return v,
                                Poll::Pending => {
                                    // Woken once the value is in.
                                    while count.0.load(Ordering::SeqCst) == 0 {
                                        std::thread::yield_now();
                                    }
                                    assert!(slot.is_ready(), "woken before ready");
                                }
                            }
                        }
                    })
                })
                .collect();
            if round % 3 == 0 {
                std::thread::yield_now();
            }
            drop(slot.complete_later(Ok(round)));
            for r in readers {
                assert_eq!(r.join().unwrap(), Ok(round));
            }
            assert_eq!(slot.word.load(Ordering::SeqCst) & (LOCKED | MANY), 0);
        }
    }

    #[test]
    #[should_panic(expected = "polled again after it returned its value")]
    fn an_owned_get_polled_after_moving_its_value_out_panics() {
        let mut f = std::pin::pin!(put(vec![1u8]).into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(v)) if v == [1]));
        let _ = f.as_mut().poll(&mut cx);
    }

    #[test]
    fn an_owned_get_is_no_bigger_than_the_ref_and_repeats_plain_values() {
        // A caller keeping a million pending replies keeps a million of these.
        assert_eq!(
            std::mem::size_of::<GetOwned<u64>>(),
            std::mem::size_of::<ObjectRef<u64>>()
        );
        // Plain data is copied, not moved out: a second poll reads it again.
        let mut f = std::pin::pin!(put(7u64).into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
        assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
    }

    /// The last ref reads without the lock (a plain value copied, an owned
    /// one moved out): racing the producer on another thread, which
    /// completes the slot then lets go of its ref after a varying delay,
    /// every read sees the value.
    #[test]
    fn the_last_ref_reads_what_the_producer_wrote_before_letting_go() {
        fn race<T: Clone + Send + PartialEq + std::fmt::Debug + 'static>(make: fn(u64) -> T) {
            for round in 0..300u64 {
                let (r, tx) = channel::<T>();
                let t = std::thread::spawn(move || {
                    for _ in 0..(round % 40) * 5 {
                        std::hint::spin_loop();
                    }
                    tx.send(Ok(make(round)));
                });
                let mut f = std::pin::pin!(r.into_future());
                let mut cx = Context::from_waker(Waker::noop());
                let v = loop {
                    if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                        break v;
                    }
                    std::thread::yield_now();
                };
                assert_eq!(v.unwrap(), make(round), "round {round}");
                t.join().unwrap();
            }
        }
        race(|i| i);
        race(|i| i.to_string());
    }

    #[test]
    fn blocking_get_wakes_from_another_thread() {
        let (r, tx) = channel::<String>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(Ok("hi".into()));
        });
        assert_eq!(r.get_blocking().unwrap(), "hi");
        t.join().unwrap();
    }
}

/// Loom models of the slot's word (the lock bit, the ready and many bits,
/// the lazily drawn ID): `RUSTFLAGS="--cfg ray_loom" cargo test -p ray-core
/// --lib --release object::model`.
#[cfg(all(test, ray_loom))]
mod model {
    use super::*;
    use loom::sync::Arc;

    // A waker that counts its wake-ups: the unit tests' own.
    use super::tests::counter as woken;

    /// Completes `slot` with 7 on a thread of its own.
    fn spawn_completer(slot: &Arc<Slot<u64>>) -> loom::thread::JoinHandle<()> {
        let slot = slot.clone();
        loom::thread::spawn(move || drop(slot.complete_later(Ok(7))))
    }

    /// Reads once with its waker: the value, or `None` after registering.
    fn read_once(slot: &Slot<u64>, waker: &Waker) -> Option<u64> {
        match slot.poll_read(Some(&mut Context::from_waker(waker))) {
            Poll::Ready(v) => Some(v.expect("completed with a value")),
            Poll::Pending => None,
        }
    }

    /// A reader racing the completer: it reads the value, or it was
    /// registered and is woken exactly once, and then reads it.
    #[test]
    fn a_reader_racing_completion_reads_or_is_woken() {
        loom::model(|| {
            let slot = Arc::new(Slot::<u64>::new());
            let completer = spawn_completer(&slot);
            let (count, waker) = woken();
            let got = read_once(&slot, &waker);
            completer.join().unwrap();
            let n = count.0.load(std::sync::atomic::Ordering::SeqCst);
            match got {
                Some(v) => assert_eq!((v, n), (7, 0)),
                None => {
                    assert_eq!(n, 1, "a registered reader was not woken once");
                    assert_eq!(read_once(&slot, &waker), Some(7));
                }
            }
            assert_eq!(slot.word.load(Ordering::SeqCst) & (LOCKED | MANY), 0);
        });
    }

    /// A second waiter (turning the waiters into a list) racing the
    /// completer: both are woken exactly once, or the second reads.
    /// (Two threads at most contend for the lock in each model: with two
    /// spinning, loom can pass the turn between them forever without
    /// running the holder; the test `waiters_racing_completion_are_never_lost`
    /// runs three readers and a completer on real threads.)
    #[test]
    fn a_second_waiter_racing_completion_is_woken_once() {
        loom::model(|| {
            let slot = Arc::new(Slot::<u64>::new());
            let (first, first_waker) = woken();
            assert_eq!(read_once(&slot, &first_waker), None);
            let completer = spawn_completer(&slot);
            let (second, second_waker) = woken();
            let got = read_once(&slot, &second_waker);
            completer.join().unwrap();
            assert_eq!(first.0.load(std::sync::atomic::Ordering::SeqCst), 1);
            let n = second.0.load(std::sync::atomic::Ordering::SeqCst);
            match got {
                Some(v) => assert_eq!((v, n), (7, 0)),
                None => assert_eq!(n, 1, "the second waiter was not woken once"),
            }
            assert_eq!(slot.word.load(Ordering::SeqCst) & (LOCKED | MANY), 0);
        });
    }

    /// The ID drawn while a reader holds the lock and the completer flips
    /// the flags: one ID, and no flag lost to the ID's update or back.
    #[test]
    fn the_id_and_the_flags_survive_each_other() {
        loom::model(|| {
            let slot = Arc::new(Slot::<u64>::new());
            let drawer = {
                let slot = slot.clone();
                loom::thread::spawn(move || slot.id())
            };
            let completer = spawn_completer(&slot);
            let (_count, waker) = woken();
            let _ = read_once(&slot, &waker);
            completer.join().unwrap();
            let id = drawer.join().unwrap();
            assert!(slot.is_ready());
            assert_eq!(slot.id(), id, "the ID was lost to a flag update");
            assert_eq!(slot.word.load(Ordering::SeqCst) & (LOCKED | MANY), 0);
        });
    }
}
