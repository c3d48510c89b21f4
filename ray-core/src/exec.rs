//! The actor task and what flows through it: type-erased calls (run, then
//! deliver), mailbox envelopes, the constructor call. The actor core that
//! runs calls in order, checkpoints and rebuilds lives in `core.rs`.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::actor::{ActorClass, ActorInfo};
use crate::block::{catch_unwind, panic_message};
use crate::call::{ArgTuple, BoxFuture, Many, MethodDescriptor, One, Returns, Zero};
pub(crate) use crate::core::ActorCore;
use crate::core::Step;
use crate::error::Error;
use crate::flag::HoldFlag;
use crate::ids::ActorHandleId;
use crate::mailbox::{Mailbox, Queue, Recv};
use crate::object::{ObjectRef, Slot, SlotHolder, Stored, Wake};
use crate::observe::EventName;
use crate::runtime::ErrorKind;

/// What running a call's method did.
pub(crate) struct Outcome {
    /// Whether the method ran (a failed dependency skips it).
    pub(crate) ran: bool,
    /// The panic message, when the method panicked (boxed: a word, so that
    /// an outcome is two and comes back in registers).
    #[allow(clippy::box_collection)]
    pub(crate) panic: Option<Box<String>>,
}

pub(crate) enum Running<'a> {
    Done(Outcome),
    Pending(BoxFuture<'a, Outcome>),
}

/// A type-erased call on an actor of type `A`. `run` keeps the result;
/// `finish` delivers it, so results reach callers after the checkpoint hooks.
///
/// A call's state is shared with its refs (they hold the call's allocation
/// for its inline result slot) but only ever touched through its
/// [`Envelope`], which is unique: hence the methods are `unsafe`, and the
/// envelope's `&mut self` methods are the safe way in.
///
/// Implemented by the whole [`CallBox`] of each kind of body (a method
/// call, a replay log entry), so that the envelope's trait object is the box
/// itself: a dynamic call passes the envelope's pointer on as it is (through
/// a `CallBox<dyn CallBody>`, each call first worked out where the body
/// starts from the vtable's alignment). Only `CallBox`es implement it: the
/// envelope reads the call's header at the start of the object.
pub(crate) trait CallBody<A>: Send + Sync {
    /// # Safety
    /// No other access to the call's state at the same time (see the trait).
    unsafe fn is_ready(&self) -> bool;
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn wait_ready(&self) -> BoxFuture<'static, ()>;
    /// Runs the method. With `keep_args` the arguments are copied, not
    /// consumed, so the call can run again (retry after a kill, replay).
    ///
    /// # Safety
    /// No other access to the call's state while the returned future lives;
    /// `desc` is the one kept in the call's [`CallBox`] (it leads to the
    /// method to run, [`Method::of`]).
    unsafe fn run<'a>(
        &'a self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a>;
    /// Delivers the result (once; later its results go nowhere). Returns an
    /// error no caller can see (fire and forget), and the waiters to wake
    /// (once the envelope is gone, so a reader dropping the last ref frees
    /// the result at once).
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn finish(&self) -> (Option<Box<Error>>, Wake);
    /// Whether the arguments were kept, i.e. whether the call can run again.
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn has_args(&self) -> bool;
    /// Whether the call, once finished with its arguments kept, can be the
    /// replay log's entry itself instead of a copy: what the log would keep
    /// beyond a copy is a few bytes and a result without drop glue.
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn serves_as_entry(&self) -> bool;
    /// Moves the kept arguments into a new call, numbered like this one,
    /// whose results go nowhere: the replay log's entry.
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready), and `desc` as for
    /// [`run`](Self::run).
    unsafe fn replay_entry(
        &self,
        handle: ActorHandleId,
        counter: u64,
        desc: &'static MethodDescriptor,
    ) -> Option<Envelope<A>>;
    /// Fails the call unrun; returns the error if no caller can see it.
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn fail(&self, err: Error) -> Option<Error>;
    /// The envelope is gone: results not delivered yet fail with
    /// `Error::ObjectLost`, the arguments are dropped.
    ///
    /// # Safety
    /// As for [`is_ready`](Self::is_ready).
    unsafe fn abandon(&self);
}

/// How a generated stub runs its method.
pub enum Invoke<A, V, P> {
    /// A synchronous method.
    Sync(fn(&mut A, V) -> std::result::Result<P, String>),
    /// An `async fn` method.
    Async(for<'a> fn(&'a mut A, V) -> BoxFuture<'a, std::result::Result<P, String>>),
}

// Function pointers only: copied whatever `A`, `V` and `P` are.
impl<A, V, P> Clone for Invoke<A, V, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, V, P> Copy for Invoke<A, V, P> {}

impl<A, V, P> std::fmt::Debug for Invoke<A, V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invoke::Sync(_) => "Invoke::Sync",
            Invoke::Async(_) => "Invoke::Async",
        })
    }
}

/// A method as a generated stub hands it to the runtime: its descriptor and
/// how to run it, in one static. A call keeps one pointer, to `desc`, and
/// finds `invoke` beside it (see [`Method::of`]).
#[doc(hidden)]
#[repr(C)]
pub struct Method<A, V, P> {
    /// The method's metadata (first: a call's pointer to it is also a
    /// pointer to the whole).
    pub desc: MethodDescriptor,
    /// How to run it.
    pub invoke: Invoke<A, V, P>,
}

impl<A, V, P> std::fmt::Debug for Method<A, V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("desc", &self.desc)
            .field("invoke", &self.invoke)
            .finish()
    }
}

impl<A, V, P> Method<A, V, P> {
    /// The method whose descriptor `desc` is.
    ///
    /// # Safety
    /// `desc` must be the `desc` field of a `Method<A, V, P>`: calls and
    /// replay log entries are only made (by [`CallBox::method`]) with such a
    /// pointer, for bodies of these very `A`, `V` and `P`.
    #[inline]
    unsafe fn of(desc: &'static MethodDescriptor) -> &'static Self {
        // SAFETY: `repr(C)` puts `desc` at offset 0, so the pointers are the
        // same; the caller's promise makes the cast's target real.
        unsafe { &*(desc as *const MethodDescriptor as *const Self) }
    }
}

/// One actor method call: the inline part of its results (the result slot
/// of a single-result method, which its refs read) and the state only its
/// envelope touches, padded to [`MIN_CALL_BODY`] bytes.
#[doc(hidden)]
pub struct MethodCall<A: 'static, Args: ArgTuple, R: Returns>(AtLeast<CallFields<A, Args, R>>);

/// What a [`MethodCall`] holds.
#[doc(hidden)]
pub struct CallFields<A: 'static, Args: ArgTuple, R: Returns> {
    inline: R::Inline,
    state: UnsafeCell<CallState<A, Args, R>>,
}

impl<A: 'static, Args: ArgTuple, R: Returns> std::fmt::Debug for CallFields<A, Args, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state belongs to the envelope: not read here.
        f.write_str("CallFields")
    }
}

impl<A: 'static, Args: ArgTuple, R: Returns> std::ops::Deref for MethodCall<A, Args, R> {
    type Target = CallFields<A, Args, R>;

    #[inline(always)]
    fn deref(&self) -> &CallFields<A, Args, R> {
        &self.0
    }
}

impl<A: 'static, Args: ArgTuple, R: Returns> std::ops::DerefMut for MethodCall<A, Args, R> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut CallFields<A, Args, R> {
        &mut self.0
    }
}

/// glibc's largest fast-bin chunk holds 120 bytes (`M_MXFAST`'s default,
/// 128-byte chunks with their 8-byte header).
#[cfg(target_env = "gnu")]
const GLIBC_FAST_BIN_MAX: usize = 120;

/// The least room a method call's body takes: one byte more than would let
/// the whole call (the `Arc`'s two counts, the header, the body) fit in
/// glibc's largest fast-bin chunk. A single-`u64` call (120 bytes) lands in
/// a 144-byte chunk instead of a 128-byte one.
///
/// Why: a pipelined caller frees its calls in the order it sent them, a
/// million at a time (W2). Fast-bin chunks are not merged as they are
/// freed but pushed on a list, which a later large request sweeps; one
/// size class up, each free merges with the chunk freed just before it.
/// Measured on this machine: dropping a million ready refs took 44 ms with
/// 128-byte chunks and 33 ms with 144-byte ones (steady state, not the
/// first burst, which takes fresh memory either way); W2 in full tables
/// (four runs each, interleaved) read 10.7-11.8M/s and then 10.1-15.0M/s,
/// three of the four at 12.9M/s or more, the floor unchanged. The cost is
/// 16 bytes per call in flight; a sequential caller (W1, W3) reuses its
/// call's chunk from glibc's thread cache whatever its size.
///
/// Only where glibc is the C library (`target_env = "gnu"`): elsewhere
/// (musl, other systems' allocators) nothing is padded. A program on glibc
/// with another global allocator (jemalloc, mimalloc) pays the 16 bytes
/// for nothing.
#[cfg(target_env = "gnu")]
pub(crate) const MIN_CALL_BODY: usize =
    GLIBC_FAST_BIN_MAX + 1 - 2 * std::mem::size_of::<usize>() - std::mem::size_of::<CallHeader>();

/// No padding without glibc (see the `gnu` version's docs).
#[cfg(not(target_env = "gnu"))]
pub(crate) const MIN_CALL_BODY: usize = 0;

/// `T` in at least [`MIN_CALL_BODY`] bytes (a union is as large as its
/// largest field).
#[repr(C)]
union AtLeast<T> {
    value: ManuallyDrop<T>,
    _room: [u8; MIN_CALL_BODY],
}

impl<T> AtLeast<T> {
    #[inline(always)]
    fn new(value: T) -> Self {
        AtLeast {
            value: ManuallyDrop::new(value),
        }
    }
}

impl<T> std::ops::Deref for AtLeast<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: `value` is the field every `AtLeast` is made with (`new`).
        unsafe { &self.value }
    }
}

impl<T> std::ops::DerefMut for AtLeast<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`.
        unsafe { &mut self.value }
    }
}

impl<T> Drop for AtLeast<T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: as for `deref`; dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.value) }
    }
}

impl<A: 'static, Args: ArgTuple, R: Returns> std::fmt::Debug for MethodCall<A, Args, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state belongs to the envelope: not read here.
        f.write_str("MethodCall")
    }
}

/// A call's state: its job, and where its results go.
type CallState<A, Args, R> =
    Job<A, Args, <R as Returns>::Payload, Delivery<<R as Returns>::CallSink>>;

/// Where a call's results go, kept in its job's padding.
struct Delivery<S> {
    /// Results kept outside the call (`Many`); `None` once delivered.
    sink: Option<S>,
    /// The results went out (delivered or failed): later finishes (replay)
    /// deliver nothing.
    done: bool,
}

/// What running a call takes: its arguments and, between `run` and
/// `finish`, its result; and `extra`, what its owner keeps beside it (a
/// call: its [`Delivery`]). A call's and its replay log entry's. The method
/// is not kept here: `run` is given its descriptor, which leads to it
/// ([`Method::of`]).
struct Job<A: 'static, Args: ArgTuple, P: 'static, X = ()> {
    /// The arguments, while `has_args`: a flag beside `extra` instead of an
    /// `Option`'s tag, a word fewer per call.
    args: MaybeUninit<Args>,
    /// The error boxed to keep calls small.
    result: Option<Stored<P>>,
    has_args: bool,
    extra: X,
    /// Runs methods of `A` taking `Args::Values` and producing `P`.
    method: PhantomData<fn(&mut A, Args::Values) -> P>,
}

impl<A: 'static, Args: ArgTuple, P: 'static, X> Drop for Job<A, Args, P, X> {
    fn drop(&mut self) {
        self.drop_args();
    }
}

impl<A: 'static, Args: ArgTuple, P: 'static, X> Job<A, Args, P, X> {
    fn new(args: Args, extra: X) -> Self {
        Job {
            args: MaybeUninit::new(args),
            result: None,
            has_args: true,
            extra,
            method: PhantomData,
        }
    }

    #[inline]
    fn args(&self) -> Option<&Args> {
        // SAFETY: initialized while `has_args`.
        self.has_args
            .then(|| unsafe { self.args.assume_init_ref() })
    }

    #[inline]
    fn take_args(&mut self) -> Option<Args> {
        // SAFETY: initialized while `has_args`, which is cleared here: read
        // once.
        std::mem::take(&mut self.has_args).then(|| unsafe { self.args.assume_init_read() })
    }

    fn drop_args(&mut self) {
        drop(self.take_args());
    }

    fn is_ready(&self) -> bool {
        self.args().is_none_or(|a| a.is_ready())
    }

    fn wait_ready(&self) -> BoxFuture<'static, ()> {
        match self.args() {
            Some(a) => a.wait_ready(),
            None => Box::pin(async {}),
        }
    }

    /// Runs the method: takes the arguments (with `keep_args`, a copy, so
    /// that the call can run again), runs it catching panics, and keeps the
    /// result.
    ///
    /// # Safety
    /// `desc` is the one the job's call was made with ([`CallBox::method`]).
    #[inline]
    unsafe fn run<'a>(
        &'a mut self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a>
    where
        A: Send,
        P: Send,
        X: Send,
    {
        // SAFETY: the caller's promise.
        let method = unsafe { Method::<A, Args::Values, P>::of(desc) };
        let taken = if keep_args {
            self.args().map(|a| a.duplicate().take())
        } else {
            self.take_args().map(ArgTuple::take)
        };
        let values = match taken {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.result = Some(Err(e));
                return Running::Done(Outcome {
                    ran: false,
                    panic: None,
                });
            }
            None => {
                self.result = Some(Err(Box::new(Error::invalid(
                    "internal: a call ran twice (please report)",
                ))));
                return Running::Done(Outcome {
                    ran: false,
                    panic: None,
                });
            }
        };
        match method.invoke {
            Invoke::Sync(f) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(actor, values)))
                    .map_err(|p| panic_message(&*p));
                let (stored, outcome) = settle(desc, r);
                self.result = Some(stored);
                Running::Done(outcome)
            }
            Invoke::Async(f) => Running::Pending(Box::pin(async move {
                let r = catch_unwind(f(actor, values)).await;
                let (stored, outcome) = settle(desc, r);
                self.result = Some(stored);
                outcome
            })),
        }
    }

    /// Moves the kept arguments into the envelope of a replay log entry,
    /// numbered like the call.
    ///
    /// # Safety
    /// As for [`run`](Self::run).
    unsafe fn entry(
        &mut self,
        handle: ActorHandleId,
        counter: u64,
        desc: &'static MethodDescriptor,
    ) -> Option<Envelope<A>>
    where
        A: Send,
        P: Send,
    {
        let entry = ReplayEntry {
            job: UnsafeCell::new(Job::new(self.take_args()?, ())),
        };
        // SAFETY: the caller's promise: `desc` leads to this job's method.
        let method = unsafe { Method::<A, Args::Values, P>::of(desc) };
        Some(Envelope::new(
            CallBox::method(handle, method, entry),
            counter,
        ))
    }

    /// Drops the arguments and the result.
    fn clear(&mut self) {
        self.drop_args();
        self.result = None;
    }
}

// SAFETY: `inline` is `Sync` (the `Returns` contract); `state` is only
// accessed through the call's one `Envelope` (the `CallBody` contract), so
// never from two threads at once, and moving it between threads needs only
// `Send`, which its parts are (arguments, sinks and payloads are `Send`).
unsafe impl<A: 'static, Args: ArgTuple, R: Returns> Sync for MethodCall<A, Args, R> {}

impl<A: 'static, Args: ArgTuple, R: Returns> MethodCall<A, Args, R> {
    /// Whether a logged call is kept as it is rather than copied into a
    /// [`ReplayEntry`] (see [`CallBody::serves_as_entry`]): its result holds
    /// no memory of its own (no drop glue) and the call is at most 32 bytes
    /// larger than the copy. A copy costs an allocation and its free, about
    /// 300 instructions per logged call (W1, `ray recon=3`); kept, the call's
    /// refs read its result under the slot's lock while the log holds it.
    /// The sizes are the allocations', the call's padding ([`MIN_CALL_BODY`])
    /// included: the log would keep it too. So on glibc the smallest calls
    /// (no arguments, no result: 64 bytes held, 112 padded, against a
    /// 64-byte copy) are copied.
    const SERVES_AS_ENTRY: bool = !std::mem::needs_drop::<R::Payload>()
        && std::mem::size_of::<CallBox<Self>>()
            <= std::mem::size_of::<CallBox<ReplayEntry<A, Args, R::Payload>>>() + 32;

    pub(crate) fn new(inline: R::Inline, args: Args, sink: Option<R::CallSink>) -> Self {
        Self(AtLeast::new(CallFields {
            inline,
            state: UnsafeCell::new(Job::new(args, Delivery { sink, done: false })),
        }))
    }
}

impl<A: 'static, Args: ArgTuple, R: Returns> CallFields<A, Args, R> {
    /// # Safety
    /// No other access to the state while the reference lives.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn state(&self) -> &mut CallState<A, Args, R> {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.state.get() }
    }

    /// Delivers `result` unless the results already went out.
    fn deliver(
        &self,
        st: &mut CallState<A, Args, R>,
        result: Stored<R::Payload>,
    ) -> (Option<Box<Error>>, Wake) {
        if std::mem::replace(&mut st.extra.done, true) {
            return (None, Wake::default());
        }
        R::deliver_call(&self.inline, st.extra.sink.take(), result)
    }
}

/// How a method call's refs are made (`One`'s from the call itself, which
/// holds its result slot).
#[doc(hidden)]
pub trait CallRefs<A: 'static, Args: ArgTuple>: Returns + Sized {
    /// The refs of `call`; `made` are those [`Returns::call_channel`] made.
    fn refs(made: Option<Self::Refs>, call: &Arc<CallBox<MethodCall<A, Args, Self>>>)
        -> Self::Refs;
}

impl<A: 'static, Args: ArgTuple, T: Send + Clone + 'static> CallRefs<A, Args> for One<T> {
    #[inline]
    fn refs(
        _: Option<ObjectRef<T>>,
        call: &Arc<CallBox<MethodCall<A, Args, One<T>>>>,
    ) -> ObjectRef<T> {
        ObjectRef::held_by(call.clone())
    }
}

impl<A: 'static, Args: ArgTuple> CallRefs<A, Args> for Zero {
    fn refs(_: Option<()>, _: &Arc<CallBox<MethodCall<A, Args, Zero>>>) {}
}

macro_rules! many_refs {
    ($($t:ident),*) => {
        impl<A: 'static, Args: ArgTuple, $($t: Send + Clone + 'static),*> CallRefs<A, Args> for Many<($($t,)*)> {
            fn refs(made: Option<Self::Refs>, _: &Arc<CallBox<MethodCall<A, Args, Self>>>) -> Self::Refs {
                made.expect("Many::call_channel makes the refs")
            }
        }
    };
}

many_refs!(B, C);
many_refs!(B, C, D);
many_refs!(B, C, D, E);
many_refs!(B, C, D, E, F);
many_refs!(B, C, D, E, F, G);
many_refs!(B, C, D, E, F, G, H);
many_refs!(B, C, D, E, F, G, H, I);
many_refs!(B, C, D, E, F, G, H, I, J);
many_refs!(B, C, D, E, F, G, H, I, J, K);
many_refs!(B, C, D, E, F, G, H, I, J, K, L);
many_refs!(B, C, D, E, F, G, H, I, J, K, L, M);

/// A single-result call holds its own result slot.
impl<A: 'static, Args: ArgTuple, T: Send + Clone + 'static> SlotHolder<T>
    for CallBox<MethodCall<A, Args, One<T>>>
{
    #[inline]
    fn slot(&self) -> &Slot<T> {
        &self.body.inline
    }

    #[inline]
    fn slot_mut(&mut self) -> &mut Slot<T> {
        &mut self.body.inline
    }
}

fn task_error(desc: &MethodDescriptor, message: String) -> Error {
    Error::Task {
        class: desc.class_name.to_owned(),
        method: desc.name.to_owned(),
        message,
    }
}

/// The result a method run produced (the error boxed, as calls keep it) and
/// what the run did.
#[inline(always)]
fn settle<P>(
    desc: &MethodDescriptor,
    r: std::result::Result<std::result::Result<P, String>, String>,
) -> (Stored<P>, Outcome) {
    let (result, panic) = match r {
        Ok(Ok(v)) => {
            return (
                Ok(v),
                Outcome {
                    ran: true,
                    panic: None,
                },
            )
        }
        Ok(Err(m)) => (task_error(desc, m), None),
        Err(p) => (
            task_error(desc, format!("panicked: {p}")),
            Some(Box::new(p)),
        ),
    };
    (Err(Box::new(result)), Outcome { ran: true, panic })
}

impl<A: Send + 'static, Args: ArgTuple, R: Returns> CallBody<A>
    for CallBox<MethodCall<A, Args, R>>
{
    unsafe fn is_ready(&self) -> bool {
        // SAFETY (every method): the caller's promise (the trait's contract).
        unsafe { self.body.state() }.is_ready()
    }

    unsafe fn wait_ready(&self) -> BoxFuture<'static, ()> {
        unsafe { self.body.state() }.wait_ready()
    }

    unsafe fn run<'a>(
        &'a self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a> {
        // The promise covers the returned future's life; `desc` is the
        // call's (the trait's contract).
        unsafe { self.body.state().run(actor, desc, keep_args) }
    }

    unsafe fn finish(&self) -> (Option<Box<Error>>, Wake) {
        let st = unsafe { self.body.state() };
        let result = st.result.take().unwrap_or_else(|| {
            Err(Box::new(Error::invalid(
                "internal: a call finished without running (please report)",
            )))
        });
        self.body.deliver(st, result)
    }

    unsafe fn has_args(&self) -> bool {
        unsafe { self.body.state() }.has_args
    }

    #[inline]
    unsafe fn serves_as_entry(&self) -> bool {
        MethodCall::<A, Args, R>::SERVES_AS_ENTRY && unsafe { self.body.state() }.has_args
    }

    unsafe fn replay_entry(
        &self,
        handle: ActorHandleId,
        counter: u64,
        desc: &'static MethodDescriptor,
    ) -> Option<Envelope<A>> {
        unsafe { self.body.state().entry(handle, counter, desc) }
    }

    unsafe fn fail(&self, err: Error) -> Option<Error> {
        let st = unsafe { self.body.state() };
        self.body.deliver(st, Err(Box::new(err))).0.map(|e| *e)
    }

    unsafe fn abandon(&self) {
        let st = unsafe { self.body.state() };
        st.clear();
        if !std::mem::replace(&mut st.extra.done, true) {
            R::lose_call(&self.body.inline, st.extra.sink.take());
        }
    }
}

/// A call kept in the replay log: its arguments and method, and no result
/// slot (its results went out with the original call, whose slot belongs
/// to the callers). Smaller than the call (a log holds up to
/// `max_replay_log` of them).
pub(crate) struct ReplayEntry<A: 'static, Args: ArgTuple, P: 'static> {
    job: UnsafeCell<Job<A, Args, P>>,
}

// SAFETY: as for `MethodCall`: the job is only accessed through the entry's
// one `Envelope`.
unsafe impl<A: 'static, Args: ArgTuple, P: Send + 'static> Sync for ReplayEntry<A, Args, P> {}

impl<A: 'static, Args: ArgTuple, P: 'static> ReplayEntry<A, Args, P> {
    /// # Safety
    /// As for [`MethodCall::state`].
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn job(&self) -> &mut Job<A, Args, P> {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.job.get() }
    }
}

impl<A: Send + 'static, Args: ArgTuple, P: Send + 'static> CallBody<A>
    for CallBox<ReplayEntry<A, Args, P>>
{
    unsafe fn is_ready(&self) -> bool {
        // SAFETY (every method): the caller's promise (the trait's contract).
        unsafe { self.body.job() }.is_ready()
    }

    unsafe fn wait_ready(&self) -> BoxFuture<'static, ()> {
        unsafe { self.body.job() }.wait_ready()
    }

    unsafe fn run<'a>(
        &'a self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a> {
        unsafe { self.body.job().run(actor, desc, keep_args) }
    }

    unsafe fn finish(&self) -> (Option<Box<Error>>, Wake) {
        // The result goes nowhere.
        unsafe { self.body.job() }.result = None;
        (None, Wake::default())
    }

    unsafe fn has_args(&self) -> bool {
        unsafe { self.body.job() }.has_args
    }

    unsafe fn serves_as_entry(&self) -> bool {
        // An entry is logged as it is already (it never gets here).
        false
    }

    unsafe fn replay_entry(
        &self,
        handle: ActorHandleId,
        counter: u64,
        desc: &'static MethodDescriptor,
    ) -> Option<Envelope<A>> {
        unsafe { self.body.job().entry(handle, counter, desc) }
    }

    unsafe fn fail(&self, _: Error) -> Option<Error> {
        None
    }

    unsafe fn abandon(&self) {
        unsafe { self.body.job() }.clear();
    }
}

/// One call: which handle sent it, its place in that handle's order, the
/// method, and its body (with its inline result slot), in one allocation.
///
/// `repr(C)`, the header first: a pointer to any call is also a pointer to
/// its header ([`Envelope`] reads it without knowing the body's type).
#[doc(hidden)]
#[repr(C)]
pub struct CallBox<B> {
    header: CallHeader,
    body: B,
}

/// What every call starts with (see [`CallBox`]).
#[repr(C)]
struct CallHeader {
    handle: ActorHandleId,
    /// Set once, before the call is sent (the refs may already hold the
    /// allocation, so it is not `&mut` any more).
    counter: AtomicU64,
    desc: &'static MethodDescriptor,
}

impl<B> std::fmt::Debug for CallBox<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.header;
        f.debug_struct("CallBox")
            .field("handle", &h.handle)
            .field("counter", &h.counter.load(Ordering::Relaxed))
            .field("method", &h.desc.name)
            .finish_non_exhaustive()
    }
}

impl<B> CallBox<B> {
    /// A new call of `method` sent by `handle` (its counter set at the
    /// send). The only way to make a call: its body finds the method from
    /// the descriptor kept here ([`Method::of`]), so `method` must be the
    /// one of `body`'s job, which the types ensure.
    pub(crate) fn method<A, V, P>(
        handle: ActorHandleId,
        method: &'static Method<A, V, P>,
        body: B,
    ) -> Arc<Self>
    where
        B: RunsMethod<A, V, P>,
    {
        Arc::new(CallBox {
            header: CallHeader {
                handle,
                counter: AtomicU64::new(0),
                desc: &method.desc,
            },
            body,
        })
    }
}

/// A call body whose job runs `Method<A, V, P>` (ties [`CallBox::method`]'s
/// method to the body's types).
pub(crate) trait RunsMethod<A, V, P> {}

impl<A: 'static, Args: ArgTuple, R: Returns> RunsMethod<A, Args::Values, R::Payload>
    for MethodCall<A, Args, R>
{
}

impl<A: 'static, Args: ArgTuple, P: 'static> RunsMethod<A, Args::Values, P>
    for ReplayEntry<A, Args, P>
{
}

/// One call in the mailbox, the reorder buffer or the replay log: the only
/// way to the call's state (its refs read only the inline result slot).
/// Dropped unrun, its results fail with `Error::ObjectLost`.
///
/// It keeps its reference to the call as the pointer [`Arc::into_raw`] gives,
/// to the call itself rather than to the `Arc`'s counts before it, and with
/// the call's box as the trait object: the header is at the pointer, and a
/// dynamic call passes the pointer on. Through an `Arc<CallBox<dyn ..>>`
/// each of these first worked out where the call (or its body) starts from
/// the vtable's alignment (W1-W3: ~40 instructions per call; callgrind).
pub(crate) struct Envelope<A: 'static> {
    /// One strong reference of an `Arc<CallBox<B>>` for some body `B`
    /// (see [`Envelope::arc`]).
    call: NonNull<dyn CallBody<A>>,
}

// SAFETY: the envelope owns one strong reference of an `Arc<dyn
// CallBody<A>>`, which is `Send` and `Sync` (`CallBody` is `Send + Sync`);
// the pointer only stands for it.
unsafe impl<A: 'static> Send for Envelope<A> {}
unsafe impl<A: 'static> Sync for Envelope<A> {}

impl<A: 'static> Envelope<A> {
    /// The envelope of `call`, numbered `counter` in its handle's order.
    /// It must be the only envelope of `call` (one per call, made at send).
    pub(crate) fn new<B: 'static>(call: Arc<CallBox<B>>, counter: u64) -> Self
    where
        CallBox<B>: CallBody<A>,
    {
        call.header.counter.store(counter, Ordering::Relaxed);
        let call: Arc<dyn CallBody<A>> = call;
        Envelope {
            // SAFETY: `Arc::into_raw` never gives null.
            call: unsafe { NonNull::new_unchecked(Arc::into_raw(call).cast_mut()) },
        }
    }

    /// The call's header.
    #[inline]
    fn header(&self) -> &CallHeader {
        // SAFETY: the pointer is to a `CallBox` (made in `new`), which
        // starts with its header (`repr(C)`); the envelope's strong
        // reference keeps it alive.
        unsafe { &*(self.call.as_ptr() as *const CallHeader) }
    }

    /// The call, to run its body's methods.
    #[inline]
    fn call(&self) -> &dyn CallBody<A> {
        // SAFETY: kept alive by the envelope's strong reference.
        unsafe { self.call.as_ref() }
    }

    /// The envelope's reference as the `Arc` it came from (given up by the
    /// envelope: called once, as it goes).
    #[inline]
    unsafe fn arc(&self) -> Arc<dyn CallBody<A>> {
        // SAFETY: from `Arc::into_raw` in `new`; the caller gives the
        // envelope's reference up.
        unsafe { Arc::from_raw(self.call.as_ptr()) }
    }

    #[inline]
    pub(crate) fn handle(&self) -> ActorHandleId {
        self.header().handle
    }

    /// The handle's ID where the call keeps it.
    #[inline]
    pub(crate) fn handle_ref(&self) -> &ActorHandleId {
        &self.header().handle
    }

    #[inline]
    pub(crate) fn counter(&self) -> u64 {
        self.header().counter.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn desc(&self) -> &'static MethodDescriptor {
        self.header().desc
    }

    // SAFETY (every method below): `&mut self` on the call's only envelope
    // is exclusive access to the call's state.

    #[inline]
    pub(crate) fn is_ready(&mut self) -> bool {
        unsafe { self.call().is_ready() }
    }

    pub(crate) fn wait_ready(&mut self) -> BoxFuture<'static, ()> {
        unsafe { self.call().wait_ready() }
    }

    /// Runs the method on `actor` (see [`CallBody::run`]).
    #[inline]
    pub(crate) fn run<'a>(&'a mut self, actor: &'a mut A, keep_args: bool) -> Running<'a> {
        let desc = self.header().desc;
        unsafe { self.call().run(actor, desc, keep_args) }
    }

    /// Delivers the result (see [`CallBody::finish`]).
    #[inline]
    pub(crate) fn finish(&mut self) -> (Option<Box<Error>>, Wake) {
        unsafe { self.call().finish() }
    }

    /// [`finish`](Self::finish) for a call that is done with for good: the
    /// envelope goes with it, without its drop's `abandon` (one dynamic call
    /// fewer on the fast path): once the results went out, all `abandon`
    /// would do is drop arguments kept for a rerun, which then go with the
    /// call's last ref instead.
    #[inline]
    pub(crate) fn finish_last(mut self) -> (Option<Box<Error>>, Wake) {
        let out = self.finish();
        // SAFETY: `self` is forgotten right after, so its reference is
        // given up once, here.
        let call = unsafe { self.arc() };
        std::mem::forget(self);
        drop(call);
        out
    }

    /// Whether the arguments were kept (the call can run again).
    pub(crate) fn has_args(&mut self) -> bool {
        unsafe { self.call().has_args() }
    }

    /// Whether this call, finished, can be its own replay log entry (see
    /// [`CallBody::serves_as_entry`]).
    #[inline]
    pub(crate) fn serves_as_entry(&mut self) -> bool {
        unsafe { self.call().serves_as_entry() }
    }

    /// The replay log's entry for this call (see [`CallBody::replay_entry`]).
    pub(crate) fn replay_entry(&mut self) -> Option<Envelope<A>> {
        let (handle, counter, desc) = (self.handle(), self.counter(), self.desc());
        unsafe { self.call().replay_entry(handle, counter, desc) }
    }

    /// Fails the call; returns the error if no caller can see it.
    pub(crate) fn fail_unseen(&mut self, err: Error) -> Option<Error> {
        unsafe { self.call().fail(err) }
    }

    /// Fails the call with `err` (reporting it if no caller can see it).
    pub(crate) fn fail(mut self, err: Error, info: &ActorInfo) {
        if let Some(unseen) = self.fail_unseen(err) {
            let desc = self.desc();
            info.report(
                ErrorKind::TaskFailed,
                format!("{}.{} was not run: {unseen}", desc.class_name, desc.name),
            );
        }
    }
}

impl<A: 'static> Drop for Envelope<A> {
    fn drop(&mut self) {
        // SAFETY: the envelope goes: its reference is given up once, here,
        // and let go even if dropping the arguments panics.
        let call = unsafe { self.arc() };
        // SAFETY: as above (`&mut self`).
        unsafe { call.abandon() }
    }
}

pub(crate) enum Msg<A: 'static> {
    Call(Envelope<A>),
    /// Wakes the task to look at its stop flag.
    Wake,
}

impl<A: 'static> Msg<A> {
    /// The call, if this is one (what is left to fail when the actor stops).
    fn into_call(self) -> Option<Envelope<A>> {
        match self {
            Msg::Call(env) => Some(env),
            Msg::Wake => None,
        }
    }
}

/// The constructor call (counter 0 of the original handle). It can run more
/// than once: restore falls back to a fresh construction.
pub(crate) struct CtorCall<A, Args: ArgTuple> {
    pub(crate) args: Args,
    pub(crate) ctor: fn(Args::Values) -> std::result::Result<A, String>,
}

pub(crate) trait CtorBody<A>: Send {
    fn wait_ready(&self) -> Option<BoxFuture<'static, ()>>;
    fn construct(&self) -> std::result::Result<A, String>;
}

impl<A: Send + 'static, Args: ArgTuple> CtorBody<A> for CtorCall<A, Args> {
    fn wait_ready(&self) -> Option<BoxFuture<'static, ()>> {
        (!self.args.is_ready()).then(|| self.args.wait_ready())
    }

    fn construct(&self) -> std::result::Result<A, String> {
        let values = self
            .args
            .duplicate()
            .take()
            .map_err(|e| format!("a constructor argument failed: {e}"))?;
        let ctor = self.ctor;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctor(values))) {
            Ok(r) => r,
            Err(p) => Err(format!("the constructor panicked: {}", panic_message(&*p))),
        }
    }
}

/// Where an actor's resources come from (SEMANTICS §6).
pub(crate) enum Placement {
    /// Local mode: resources are not modelled.
    None,
    /// Declared with resource options: held for the actor's life, once placed.
    /// Boxed: the actor task's future keeps room for its placement (twice),
    /// and most actors are declared without resources.
    Lifetime(Box<crate::resources::Acquire>),
    /// Declared without: 1 CPU from the node for each method run.
    PerCall(Arc<crate::resources::ResourcePool>),
}

/// Waits until the actor is placed, keeping the calls that arrive meanwhile.
/// `None`: the actor was stopped (or lost every handle) before placement.
async fn place<A>(
    info: &ActorInfo,
    mailbox: &Mailbox<Msg<A>>,
    mut acquire: crate::resources::Acquire,
    early: &mut Vec<Envelope<A>>,
) -> Option<(crate::resources::Allocation, bool)> {
    let waited = acquire.is_waiting();
    if waited {
        tracing::info!(
            class = info.class,
            actor_id = %info.id,
            "ray: actor waits for resources to be placed"
        );
    }
    loop {
        tokio::select! {
            allocation = &mut acquire => return Some((allocation, waited)),
            msg = mailbox.recv() => match msg {
                None => {
                    info.mark_dead(info.died("every handle to the actor was dropped before it was placed"));
                    return None;
                }
                Some(Msg::Wake) if info.stop_requested() => return None,
                // Nothing to crash before the actor exists.
                Some(Msg::Wake) => drop(info.take_crash_request()),
                Some(Msg::Call(env)) => early.push(env),
            },
        }
    }
}

/// The actor task: wait for placement, build, run calls until every handle
/// is gone, a stop is requested or the actor dies, then fail whatever is left.
///
/// Its future is boxed into the task, so its size is memory per actor: the
/// rare phases (waiting for placement, rebuilding) are boxed futures of their
/// own, and one loop ([`run_calls`]) runs both the calls that arrived before
/// placement and the rest.
///
/// Not an `async fn`: its future would keep every argument twice, as the
/// argument and as the local it moves into (the constructor call included),
/// for the actor's whole life. The block captures each once: 312 -> 248
/// bytes for the benchmark's counter.
///
/// The constructor call is kept inline (not boxed) until the actor is built;
/// the core boxes it only if the actor may be rebuilt.
#[allow(clippy::manual_async_fn)]
pub(crate) fn actor_main<A: ActorClass, C: CtorBody<A> + 'static>(
    info: Arc<ActorInfo>,
    driver: TaskDriver<A>,
    ctor: C,
    max_reconstructions: u64,
    placement: Placement,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let mut early = Vec::new();
        let mut per_call = None;
        let allocation = match placement {
            Placement::Lifetime(acquire) => {
                match Box::pin(place(&info, &driver.mailbox, *acquire, &mut early)).await {
                    Some((a, waited)) => {
                        if waited {
                            let since = Some(info.obs.created_at);
                            let name = EventName::Static("pending placement");
                            info.obs
                                .event_since(info.id, since, name, "actor", Vec::new);
                        }
                        crate::runtime::set_gpu_ids(a.gpu_ids());
                        info.obs.set_lifetime(Some(a.resources().clone()));
                        // Boxed: held across the actor's whole life, so
                        // unboxed it would be room in every actor's task.
                        Some(Box::new(a))
                    }
                    None => {
                        finish(&info, &driver.mailbox, early);
                        return;
                    }
                }
            }
            Placement::PerCall(pool) => {
                per_call = Some(pool);
                None
            }
            Placement::None => None,
        };
        if let Some(wait) = ctor.wait_ready() {
            wait.await;
        }
        if build(&info, &driver, ctor, max_reconstructions, per_call) {
            // The early calls not run stay in `early`, ahead of those left in
            // the reorder buffers.
            let drained = run_calls(&info, &driver, &mut early).await;
            early.extend(drained);
        }
        finish(&info, &driver.mailbox, early);
        // The actor's resources go back to the node last.
        if let Some(allocation) = allocation {
            drop(allocation);
            info.obs.set_lifetime(None);
        }
    }
}

/// Builds the actor and installs it into the driver (`true`), or reports
/// that it could not be built.
///
/// Not async, so that the actor (moved into the driver at once) takes no
/// room in the actor task's future.
fn build<A: ActorClass, C: CtorBody<A> + 'static>(
    info: &ActorInfo,
    driver: &Driver<A>,
    ctor: C,
    max_reconstructions: u64,
    per_call: Option<Arc<crate::resources::ResourcePool>>,
) -> bool {
    let t0 = info.obs.clock();
    let built = ActorCore::build(info, ctor, max_reconstructions);
    info.obs
        .event_since(info.id, t0, EventName::Static("create"), "actor", || {
            let outcome = if built.is_ok() { "ok" } else { "failed" };
            vec![("outcome", outcome.into())]
        });
    match built {
        Ok(mut core) => {
            info.obs.set_alive();
            tracing::debug!(class = A::NAME, actor_id = %info.id, "ray: actor alive");
            core.cpu_per_call = per_call;
            driver.install(Live::new(core));
            true
        }
        Err(message) => {
            let err = info.set_dead(Error::ActorCreationFailed {
                class: A::NAME.to_owned(),
                actor_id: info.id,
                message,
            });
            info.report(ErrorKind::ActorDied, err.to_string());
            false
        }
    }
}

/// The actor task's reference to its driver. Dropped with the task, however
/// it ends (also unpolled, when its tokio runtime goes away first): the
/// mailbox closes and the calls still in it are dropped, so their callers
/// see `ObjectLost` instead of waiting forever.
pub(crate) struct TaskDriver<A: 'static>(pub(crate) Arc<Driver<A>>);

impl<A: 'static> std::ops::Deref for TaskDriver<A> {
    type Target = Driver<A>;
    fn deref(&self) -> &Driver<A> {
        &self.0
    }
}

impl<A: 'static> Drop for TaskDriver<A> {
    fn drop(&mut self) {
        drop(self.0.mailbox.close_and_drain());
    }
}

/// Closes the mailbox, fails every call left over or still in it, then
/// leaves the registry.
fn finish<A>(info: &ActorInfo, mailbox: &Mailbox<Msg<A>>, leftovers: Vec<Envelope<A>>) {
    let queued = mailbox.close_and_drain().filter_map(Msg::into_call);
    // Built only if some call is left to fail with it.
    let mut err = None;
    for env in leftovers.into_iter().chain(queued) {
        let e = err.get_or_insert_with(|| info.death_error()).clone();
        env.fail(e, info);
    }
    // The actor task runs in its runtime's task context: no upgrade of the
    // info's weak reference needed (see `with_task_runtime`).
    let done = crate::runtime::with_task_runtime(info.runtime_weak(), |rt| {
        rt.unregister(&info.id);
    });
    if done.is_none() {
        if let Some(rt) = info.runtime() {
            rt.unregister(&info.id);
        }
    }
}

/// Runs the calls that arrived before placement (`early`), then every call
/// from the mailbox, until the actor dies or every handle is gone. Calls of
/// `early` not run are left in it. Then drops the actor and returns the
/// calls left in its reorder buffers, to fail.
///
/// The actor is in `driver` (installed by the caller), where a caller about
/// to wait for its own call may run the queued calls itself while the task
/// waits for mail (see [`Driver`]); the task holds it for everything else.
async fn run_calls<A: ActorClass>(
    info: &ActorInfo,
    driver: &Driver<A>,
    early: &mut Vec<Envelope<A>>,
) -> Vec<Envelope<A>> {
    // Declared first, so dropped last: after the flag below is released.
    let _installed = Installed(driver);
    let mut held = std::future::poll_fn(|cx| driver.poll_hold(cx)).await;
    let mut queued = std::mem::take(early).into_iter();
    loop {
        // Each early call is run (or handed over) in one statement, so that
        // neither the call nor its handoff is room kept across the await in
        // this future, which every actor keeps for life.
        let step = {
            let Some(env) = queued.next() else {
                break;
            };
            let more_queued = queued.len() != 0 || !driver.mailbox.is_empty();
            let live = held.live();
            match process(info, live, Msg::Call(env), more_queued) {
                Some(handoff) => take_over(info, live, handoff),
                None => continue,
            }
        };
        if !step.await {
            early.extend(queued);
            return held.retire();
        }
    }
    let mut held = Some(held);
    loop {
        let handoff = std::future::poll_fn(|cx| driver.serve(cx, &mut held)).await;
        // `serve` returns holding the actor.
        let h = held.as_mut().expect("serve returns holding the actor");
        if !take_over(info, h.live(), handoff).await {
            return h.retire();
        }
    }
}

/// The actor task's async side: what the synchronous step handed over.
/// `false`: the actor is done (dead, stopped, or every handle is gone).
///
/// Not an `async fn`: one would keep the handoff (and the largest of the
/// futures below) as room in every actor task's future for the actor's
/// whole life. The handoff is taken apart here, synchronously, and only an
/// async step is awaited, boxed.
fn take_over<'a, A: ActorClass>(
    info: &'a ActorInfo,
    live: &'a mut Live<A>,
    handoff: Handoff<A>,
) -> TakeOver<'a> {
    match handoff {
        // Boxed: the async path's future (about 1 KiB: an async method, the
        // waits for arguments and a CPU) would otherwise be room kept in
        // every actor task, used or not. Only handed-over calls pay for it
        // (one allocation per take-over, from the thread cache).
        Handoff::Step(step) => TakeOver::Async(Box::pin(async move {
            live.core.resume(info, step).await.is_ok()
        })),
        // A crash requested by `kill(.., no_restart = false)` while idle.
        Handoff::Wake => TakeOver::Async(Box::pin(async move {
            live.core.crash_if_requested(info).await.is_ok()
        })),
        Handoff::Exit => TakeOver::Done(false),
        Handoff::Closed => {
            if !info.stop_requested() {
                info.mark_handles_dropped();
            }
            TakeOver::Done(false)
        }
    }
}

/// What [`take_over`] leaves to await, if anything.
enum TakeOver<'a> {
    Done(bool),
    Async(BoxFuture<'a, bool>),
}

/// Resolves to whether the actor carries on. A future of its own rather
/// than an `async fn`, which would keep room for itself and its awaitee.
impl std::future::Future for TakeOver<'_> {
    type Output = bool;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match self.get_mut() {
            TakeOver::Done(on) => Poll::Ready(*on),
            TakeOver::Async(step) => step.as_mut().poll(cx),
        }
    }
}

/// A live actor: its core, and what the synchronous side
/// (the task's [`Driver::serve`] or a helping caller) hands to the task's
/// async side.
pub(crate) struct Live<A: 'static> {
    core: ActorCore<A>,
    handoff: Option<Handoff<A>>,
    /// The actor task's waker, for a caller that hands it something.
    task: Option<Waker>,
    /// Mail taken from the mailbox and not yet run, oldest first (see
    /// [`Mailbox::try_recv_into`]): whoever holds the actor receives from
    /// here first.
    inbox: Queue<Msg<A>>,
    /// How many times callers ran calls (some runs are timed).
    helps: u32,
    /// Callers leave this many more chances to run calls to the actor task:
    /// set when a timed run kept its caller busy too long.
    help_pause: u32,
}

impl<A: 'static> Live<A> {
    pub(crate) fn new(core: ActorCore<A>) -> Self {
        Live {
            core,
            handoff: None,
            task: None,
            inbox: Queue::new(),
            helps: 0,
            help_pause: 0,
        }
    }
}

/// What the synchronous side leaves for the actor task.
enum Handoff<A: 'static> {
    /// A call that needs the async path, or a call's death.
    Step(Step<A>),
    /// A wake-up message: maybe a crash request.
    Wake,
    /// The actor is stopped or dead: no more calls.
    Exit,
    /// Every handle is gone and the mailbox is empty.
    Closed,
}

/// One message, synchronously: what the actor task and a helping caller both
/// do (`more_queued`: whether more calls wait after it). `Some`: the actor
/// task must take over.
///
/// Admitted in two steps: the common case (a ready synchronous call) runs
/// here without building a future, and only waits, async methods and deaths
/// take the async path ([`take_over`]).
#[inline(always)]
fn process<A: ActorClass>(
    info: &ActorInfo,
    live: &mut Live<A>,
    msg: Msg<A>,
    more_queued: bool,
) -> Option<Handoff<A>> {
    live.core.more_queued = more_queued;
    let stop = info.stop_requested();
    match msg {
        Msg::Call(env) if stop => {
            env.fail(info.death_error(), info);
            Some(Handoff::Exit)
        }
        Msg::Call(env) => match live.core.admit_now(info, env) {
            Ok(None) => None,
            Ok(Some(step)) => Some(Handoff::Step(step)),
            Err(_) => Some(Handoff::Exit),
        },
        Msg::Wake if stop => Some(Handoff::Exit),
        Msg::Wake => Some(Handoff::Wake),
    }
}

/// How many calls a helping caller runs at most before it waits like any
/// other caller.
const HELP_BUDGET: usize = 64;

/// How long a caller may be kept busy running calls before its actor's
/// callers stop running calls (see [`Driver`]'s `help`).
const SLOW_HELP: std::time::Duration = std::time::Duration::from_millis(1);

/// How long the actor task runs queued calls in one poll before it yields
/// to the other tasks of its worker (see [`TimeSlice`]).
const TIME_SLICE: std::time::Duration = std::time::Duration::from_micros(500);

/// How many calls run between two looks at the clock in one poll.
const SLICE_CHECK_EVERY: u32 = 32;

/// The actor task's turn on its worker, for one poll: a backlog of calls
/// (a million pipelined) is not run in one go, which would keep the
/// worker's other tasks waiting. Yielding also lets the scheduler move the
/// actor to an idle worker while the caller it woke reads its results on
/// this one (a task woken from a worker waits in that worker's LIFO slot,
/// which no other worker takes from): measured on W2, the await phase went
/// from 124-140 ms to 64-73 ms (the floor's: 40-64 ms).
///
/// A slice of time rather than a count of calls: yields every 128 calls
/// (tokio's cooperative budget) cost more in wake-ups than they saved
/// (156 ms), and a count would let slow methods keep the worker for long.
/// The clock is read every [`SLICE_CHECK_EVERY`] calls only, and not at all
/// in polls that run fewer (one call per poll, as sequential callers make).
#[derive(Default)]
struct TimeSlice {
    calls: u32,
    since: Option<std::time::Instant>,
}

impl TimeSlice {
    /// One more call ran; whether the slice is spent.
    #[inline]
    fn spent(&mut self) -> bool {
        self.calls = self.calls.wrapping_add(1);
        if !self.calls.is_multiple_of(SLICE_CHECK_EVERY) {
            return false;
        }
        self.check()
    }

    #[cold]
    fn check(&mut self) -> bool {
        let now = std::time::Instant::now();
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) >= TIME_SLICE
    }
}

/// How many chances to run calls callers then leave to the actor task.
const HELP_PAUSE: u32 = 256;

/// An actor, shared by its task and its callers.
///
/// A caller about to wait for the result of the call it just made (its
/// `.await` would park it until the actor task ran the call) runs the queued
/// calls itself instead, up to its own, if the actor is idle: the same
/// synchronous step the actor task takes ([`process`]), holding the same
/// flag, so calls still run one at a time and in mailbox order. What cannot
/// run synchronously (an async method, a call waiting for an argument or a
/// CPU, a death, a wake-up) is handed to the actor task, and nobody runs
/// anything more until it took over. This saves the two task switches of a
/// round trip (see the book's performance chapter).
///
/// The flag is a lock without waiting: the actor task holds it except while
/// it waits for mail, a caller only takes it if it is free. The actor task
/// never blocks on it either: if a caller holds it, the caller wakes the task
/// once done.
#[repr(C)]
pub(crate) struct Driver<A: 'static> {
    info: Arc<ActorInfo>,
    /// Callers may run calls (not for actors holding lifetime resources:
    /// their GPU IDs belong to the actor task's thread). Read by every send,
    /// so it sits by the mailbox's lock (which the send takes next), away
    /// from the actor's state, which whoever runs calls writes.
    helpable: bool,
    /// Sent to by the handles; received from by whoever holds `flag` (and
    /// by the task before the actor is built and after it stopped).
    mailbox: Mailbox<Msg<A>>,
    flag: HoldFlag,
    /// The actor; `None` before it is built and after it stopped. Accessed
    /// only by whoever holds `flag`.
    live: UnsafeCell<Option<Live<A>>>,
    /// What the actor's handles share (the registry hands out new handles
    /// through it while any handle keeps it alive).
    shared: std::sync::Weak<crate::actor::ActorShared<A>>,
}

// SAFETY: `live` is only accessed by the holder of `flag` (taken with
// `Acquire`, released with `Release`), so never from two threads at once;
// moving it between threads needs `Send`, which its parts are.
unsafe impl<A: Send + 'static> Sync for Driver<A> {}

/// The held flag of a [`Driver`]: access to its actor until dropped.
pub(crate) struct Held<'a, A: 'static>(&'a Driver<A>);

impl<'a, A: 'static> Held<'a, A> {
    fn slot(&mut self) -> &mut Option<Live<A>> {
        // SAFETY: the flag is held (see `Driver`); `&mut self` is unique.
        unsafe { &mut *self.0.live.get() }
    }

    /// The actor (the task holds the flag only once it installed it).
    fn live(&mut self) -> &mut Live<A> {
        self.slot()
            .as_mut()
            .expect("the actor task installed the actor")
    }

    /// Takes the actor out for good and drops it: the calls left in its
    /// reorder buffers and its inbox are what remains to fail (with those
    /// still in the mailbox).
    fn retire(&mut self) -> Vec<Envelope<A>> {
        let mut live = self
            .slot()
            .take()
            .expect("the actor task installed the actor");
        let mut left = live.core.frontier.drain();
        left.extend(live.inbox.drain().filter_map(Msg::into_call));
        left
    }
}

impl<A: 'static> Drop for Held<'_, A> {
    fn drop(&mut self) {
        self.0.flag.release();
    }
}

impl<A: 'static> Driver<A> {
    pub(crate) fn new(
        info: Arc<ActorInfo>,
        helpable: bool,
        shared: std::sync::Weak<crate::actor::ActorShared<A>>,
    ) -> Self {
        Driver {
            shared,
            info,
            mailbox: Mailbox::new(),
            flag: HoldFlag::new(),
            live: UnsafeCell::new(None),
            helpable,
        }
    }

    /// Puts the built actor in (before its task serves it). Callers only
    /// glance at the empty driver until then.
    pub(crate) fn install(&self, live: Live<A>) {
        *self.hold_now().slot() = Some(live);
    }

    /// Takes the flag outside the task's async loop (installing the actor,
    /// dropping it): a caller holds it only while it runs calls, so this
    /// yields until it is free.
    fn hold_now(&self) -> Held<'_, A> {
        loop {
            match self.try_hold() {
                Some(h) => return h,
                None => std::thread::yield_now(),
            }
        }
    }

    /// Sends to the actor; `Err(msg)` once its mailbox is closed.
    #[inline]
    pub(crate) fn send(&self, msg: Msg<A>) -> Result<(), Msg<A>> {
        self.mailbox.send(msg)
    }

    /// Sends the message `make` builds, under the mailbox's lock (so what it
    /// numbers goes in mailbox order); `Err(msg)` once the mailbox is closed
    /// (see [`Mailbox::send_with`]).
    #[inline]
    pub(crate) fn send_with(&self, make: impl FnOnce(bool) -> Msg<A>) -> Result<(), Msg<A>> {
        self.mailbox.send_with(make)
    }

    /// Every handle is gone: no more mail (the task stops once the queued
    /// calls ran).
    pub(crate) fn close_mailbox(&self) {
        self.mailbox.close();
    }

    /// The actor's shared info.
    pub(crate) fn info(&self) -> &Arc<ActorInfo> {
        &self.info
    }

    /// What the actor's handles share, while any handle lives.
    pub(crate) fn shared(&self) -> &std::sync::Weak<crate::actor::ActorShared<A>> {
        &self.shared
    }

    /// Whether callers may run this actor's calls.
    #[inline]
    pub(crate) fn helpable(&self) -> bool {
        self.helpable
    }

    #[inline]
    fn try_hold(&self) -> Option<Held<'_, A>> {
        // Lazily: a `Held` made and dropped on failure would release the
        // flag its holder still holds.
        self.flag.try_take().then(|| Held(self))
    }

    /// The actor task takes the flag, or is woken once it is released.
    fn poll_hold(&self, cx: &mut Context<'_>) -> Poll<Held<'_, A>> {
        self.flag.poll_take(cx).map(|()| Held(self))
    }

    /// Wakes the actor task if it found the flag taken meanwhile. Called by a
    /// caller once it released the flag.
    fn wake_missed(&self) {
        self.flag.wake_missed();
    }
}

impl<A: ActorClass> Driver<A> {
    /// The actor task's synchronous step: runs mail until something needs
    /// the async side (then returns it, still holding the actor in `held`)
    /// or the mailbox is empty (then lets go of the actor and waits).
    fn serve<'a>(
        &'a self,
        cx: &mut Context<'_>,
        held: &mut Option<Held<'a, A>>,
    ) -> Poll<Handoff<A>> {
        if held.is_none() {
            *held = Some(std::task::ready!(self.poll_hold(cx)));
        }
        let h = held.as_mut().expect("set above");
        let live = h.live();
        if !live.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            live.task = Some(cx.waker().clone());
        }
        if let Some(handoff) = live.handoff.take() {
            return Poll::Ready(handoff);
        }
        let mut slice = TimeSlice::default();
        loop {
            match self.mailbox.poll_recv_into(cx, &mut live.inbox) {
                Poll::Ready(Some((msg, more_queued))) => {
                    if let Some(handoff) = process(&self.info, live, msg, more_queued) {
                        return Poll::Ready(handoff);
                    }
                    if more_queued && slice.spent() {
                        // Back in the run queue at once; meanwhile the
                        // actor is free (a caller may run calls).
                        live.core.give_back_kept_cpu(&self.info);
                        *held = None;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => return Poll::Ready(Handoff::Closed),
                Poll::Pending => {
                    // A CPU kept between calls goes back before the task idles.
                    live.core.give_back_kept_cpu(&self.info);
                    *held = None;
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Drops the actor with the task, whatever ends it (a runtime shutting down
/// drops the task's future while the actor is in the driver).
struct Installed<'a, A: 'static>(&'a Driver<A>);

impl<A: 'static> Drop for Installed<'_, A> {
    fn drop(&mut self) {
        let mut held = self.0.hold_now();
        let live = held.slot().take();
        drop(held);
        drop(live);
    }
}

/// An actor whose queued calls a caller can run (type-erased [`Driver`]).
pub(crate) trait Help: Send + Sync {
    /// Runs queued calls until `done()`, the mailbox is empty, the budget is
    /// spent or something needs the actor task; nothing if the actor is busy.
    /// `enter`: the caller is not a tokio task, so the actor's runtime is
    /// entered meanwhile.
    fn help(&self, done: &mut dyn FnMut() -> bool, enter: bool);
}

impl<A: ActorClass> Help for Driver<A> {
    fn help(&self, done: &mut dyn FnMut() -> bool, enter: bool) {
        if !crate::runtime::task_runtime_is(self.info.runtime_weak().as_ptr()) {
            return;
        }
        // A caller outside any tokio task enters the runtime the actor task
        // runs on, so that the calls find what they would there
        // (`tokio::spawn`, timers, `Handle::current`); none, no help.
        let rt = if enter {
            let Some(rt) = self.info.runtime() else {
                return;
            };
            Some(rt)
        } else {
            None
        };
        // Busy: whoever holds the actor wakes the task if it found the flag
        // taken (see `HoldFlag`); nothing to do here.
        let Some(mut held) = self.try_hold() else {
            return;
        };
        let mut wake = None;
        if let Some(live) = held.slot().as_mut() {
            if live.help_pause > 0 {
                live.help_pause -= 1;
            } else if live.handoff.is_none() {
                // A caller running calls is busy until they return, as
                // with a synchronous call (a `timeout` around its
                // `.await` cannot fire meanwhile). Cheap for quick
                // methods, which are what this is for: some runs are
                // timed (the first ones, then one in 32), and after one
                // that took over a millisecond, callers leave the next
                // 256 chances to the actor task, then try again.
                let timed = live.helps < 8 || live.helps % 32 == 0;
                live.helps = live.helps.wrapping_add(1);
                let t0 = timed.then(std::time::Instant::now);
                let _entered = rt.as_ref().map(|rt| rt.tokio_handle().enter());
                // The calls run as the actor's, not as the waiting task's.
                crate::runtime::outside_task(self.info.runtime_weak(), || {
                    for _ in 0..HELP_BUDGET {
                        let Recv::Msg(msg, more_queued) =
                            self.mailbox.try_recv_into(&mut live.inbox)
                        else {
                            // Empty, or closed: the task hears of that itself.
                            break;
                        };
                        if let Some(h) = process(&self.info, live, msg, more_queued) {
                            live.handoff = Some(h);
                            break;
                        }
                        if done() {
                            break;
                        }
                    }
                    live.core.give_back_kept_cpu(&self.info);
                });
                if t0.is_some_and(|t0| t0.elapsed() > SLOW_HELP) {
                    live.help_pause = HELP_PAUSE;
                    // The next run after the pause is timed.
                    live.helps = 0;
                }
            }
            // Something for the task: a handoff, or mail this caller
            // took from the mailbox and left (no sender wakes the task
            // for it).
            if live.handoff.is_some() || !live.inbox.is_empty() {
                wake = live.task.clone();
            }
        }
        drop(held);
        self.wake_missed();
        if let Some(w) = wake {
            w.wake();
        }
    }
}

thread_local! {
    /// The address of the call this thread sent last (0: none to run): its
    /// caller may run it while it waits for it ([`help_with`]).
    static LAST_CALL: Cell<usize> = const { Cell::new(0) };
    /// The actor of that call (its driver's address, to compare cheaply).
    static LAST_ACTOR: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
    /// That actor, kept from one call to the next (a reference count is
    /// touched only when the thread calls another actor).
    static LAST_DRIVER: RefCell<Option<Arc<dyn Help>>> = const { RefCell::new(None) };
}

/// Records that this thread just sent `call` to `driver`'s actor.
#[inline]
pub(crate) fn note_call<A: ActorClass>(driver: &Arc<Driver<A>>, call: usize) {
    if !driver.helpable() {
        // Not to be run by its caller; nor is the call noted before (its
        // address may be this call's now).
        LAST_CALL.set(0);
        return;
    }
    let actor = Arc::as_ptr(driver) as *const ();
    if LAST_ACTOR.get() != actor {
        let set = LAST_DRIVER.with(|d| match d.try_borrow_mut() {
            Ok(mut d) => {
                *d = Some(driver.clone());
                true
            }
            Err(_) => false,
        });
        if !set {
            return;
        }
        LAST_ACTOR.set(actor);
    }
    LAST_CALL.set(call);
}

/// If `call` is the call this thread sent last and `done()` is false, runs
/// the actor's queued calls up to it here, when the actor is idle (see
/// [`Driver`]), within the task's cooperative budget.
#[inline]
pub(crate) fn help_with(call: usize, cx: &mut Context<'_>, done: &mut dyn FnMut() -> bool) {
    if LAST_CALL.get() != call {
        return;
    }
    help_slow(cx, done);
}

#[inline(never)]
fn help_slow(cx: &mut Context<'_>, done: &mut dyn FnMut() -> bool) {
    // Not the last call any more: a ref at the same address later is
    // another call.
    LAST_CALL.set(0);
    // Taken out while the calls run (they may call other actors).
    let Some(driver) = LAST_DRIVER.with(|d| d.try_borrow_mut().ok()?.take()) else {
        return;
    };
    LAST_ACTOR.set(std::ptr::null());
    if !done() {
        if let Poll::Ready(restore) = tokio::task::coop::poll_proceed(cx) {
            // Outside a tokio task (a `block_on`, `get_blocking` on a plain
            // thread) the actor's runtime is entered while the calls run.
            driver.help(done, tokio::task::try_id().is_none());
            restore.made_progress();
        }
    }
    // Kept for the next call to the same actor, unless the calls run here
    // called another one meanwhile.
    if LAST_ACTOR.get().is_null() {
        LAST_DRIVER.with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                LAST_ACTOR.set(Arc::as_ptr(&driver) as *const ());
                *d = Some(driver);
            }
        });
    }
}

/// Every call in flight costs its allocation: a pipelined caller holds a
/// million of them (W2), where each 16 bytes cost ~2 % of the throughput in
/// page faults and cache misses (measured with the benchmark).
#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    use super::*;
    use crate::call::Arg;

    struct Z;

    /// The actor task's future keeps room for its placement twice, for
    /// every actor's life: only a word and a tag.
    #[test]
    fn a_placement_is_two_words() {
        assert_eq!(std::mem::size_of::<Placement>(), 16);
    }

    #[test]
    fn a_single_result_call_fits_in_a_small_allocation() {
        type Call = CallBox<MethodCall<Z, (Arg<u64>,), One<u64>>>;
        // The slot: a word (a lazily boxed ID and the flags, the lock bit
        // among them), then one inline waker or the value.
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 24);
        // What the call holds: with the `Arc` counts, 120 bytes.
        let held = std::mem::size_of::<CallHeader>()
            + std::mem::size_of::<CallFields<Z, (Arg<u64>,), One<u64>>>();
        assert!(held <= 104, "a call grew to {held} bytes");
        // Padded just past glibc's largest fast-bin chunk (see
        // `MIN_CALL_BODY`): 128 bytes with the counts, a 144-byte chunk;
        // every call is, whatever its arguments and results. Elsewhere,
        // not padded.
        let counts = 2 * std::mem::size_of::<usize>();
        if cfg!(target_env = "gnu") {
            assert_eq!(std::mem::size_of::<Call>() + counts, 128);
            assert!(std::mem::size_of::<CallBox<MethodCall<Z, (), Zero>>>() + counts > 120);
            assert!(
                std::mem::size_of::<CallBox<MethodCall<Z, (Arg<u8>,), One<u8>>>>() + counts > 120
            );
        } else {
            assert_eq!(std::mem::size_of::<Call>(), held);
        }
        // Logged, such a call is its own replay entry (its result holds no
        // memory); a call whose result owns memory is copied.
        const {
            assert!(MethodCall::<Z, (Arg<u64>,), One<u64>>::SERVES_AS_ENTRY);
            assert!(MethodCall::<Z, (Arg<String>,), One<usize>>::SERVES_AS_ENTRY);
            assert!(!MethodCall::<Z, (Arg<u64>,), One<String>>::SERVES_AS_ENTRY);
        }
        // The padding counts: the smallest call is copied on glibc, where
        // it is 48 bytes larger than its copy, and kept elsewhere.
        assert_eq!(
            MethodCall::<Z, (), Zero>::SERVES_AS_ENTRY,
            !cfg!(target_env = "gnu")
        );
        // Its replay log entry, without a slot: 96 bytes, a 112-byte chunk.
        type Entry = CallBox<ReplayEntry<Z, (Arg<u64>,), u64>>;
        assert!(
            std::mem::size_of::<Entry>() <= 80,
            "a replay entry grew to {} bytes",
            std::mem::size_of::<Entry>()
        );
    }
}
