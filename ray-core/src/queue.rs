//! A FIFO queue kept in blocks of [`BLOCK`] messages: the mailbox's queue and
//! its receiver's inbox.
//!
//! Why not a `VecDeque`: a burst of calls (a million pipelined) grew one
//! buffer by doubling to megabytes, every regrowth copying the queue, and a
//! receiver moved messages into its own queue one by one (~40 instructions
//! each, W2 by callgrind). Blocks are never copied: a receiver takes every
//! queued block at once by moving two pointers ([`append`](Queue::append)).
//!
//! Emptied blocks are kept, not freed, and go back to the queue that pushes
//! ([`append`](Queue::append) hands the receiver's to the sender's): a block
//! allocated by a sender's thread and freed by the receiver's costs glibc
//! far more than a call's small chunk (it is merged with free neighbours,
//! and merges that grow large make glibc sweep all its small free chunks).
//! Kept blocks are let go when the queue goes idle
//! ([`trim_spares`](Queue::trim_spares)).

use std::mem::MaybeUninit;
use std::ptr;

/// Messages per block.
pub(crate) const BLOCK: usize = 32;

/// One block: messages in `slots[read..write]`, older first.
struct Block<T> {
    /// The block of the messages after these (null: the last block).
    next: *mut Block<T>,
    read: u32,
    write: u32,
    slots: [MaybeUninit<T>; BLOCK],
}

/// A FIFO queue of `T` in linked blocks (see the module docs).
///
/// Every linked block holds at least one message: a block is unlinked as
/// its last message is taken, and kept as a spare for later pushes.
pub(crate) struct Queue<T> {
    /// Oldest block (null when empty).
    head: *mut Block<T>,
    /// Newest block, where pushes go (null when empty).
    tail: *mut Block<T>,
    len: usize,
    /// Emptied blocks kept for reuse, linked through `next` (null: none).
    spare: *mut Block<T>,
    spares: usize,
}

// SAFETY: the queue owns its blocks and the messages in them; nothing is
// shared between queues, so it moves between threads with its messages.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: `&Queue` only reads the length.
unsafe impl<T: Sync> Sync for Queue<T> {}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
            spare: ptr::null_mut(),
            spares: 0,
        }
    }
}

impl<T> Queue<T> {
    /// An empty queue (allocates nothing).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// How many messages are queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `msg` after the others.
    #[inline]
    pub(crate) fn push_back(&mut self, msg: T) {
        let mut b = self.tail;
        // SAFETY: a non-null tail is a live block of this queue.
        if b.is_null() || unsafe { (*b).write } as usize == BLOCK {
            b = self.grow();
        }
        // SAFETY: `b` is the live tail with room at `write` (checked or
        // fresh); the slot is free, and counted once written.
        unsafe {
            let w = (*b).write;
            (*b).slots
                .as_mut_ptr()
                .add(w as usize)
                .write(MaybeUninit::new(msg));
            (*b).write = w + 1;
        }
        self.len += 1;
    }

    /// Links a block with room after the tail and returns it.
    #[inline(never)]
    fn grow(&mut self) -> *mut Block<T> {
        let b = if self.spare.is_null() {
            Box::into_raw(Box::<Block<T>>::new_uninit()).cast::<Block<T>>()
        } else {
            let b = self.spare;
            // SAFETY: a spare is a live block of this queue's.
            self.spare = unsafe { (*b).next };
            self.spares -= 1;
            b
        };
        // SAFETY: `b` is an allocated block no one else holds; only its
        // header is written (its slots are `MaybeUninit`, valid as they are).
        unsafe {
            ptr::addr_of_mut!((*b).next).write(ptr::null_mut());
            ptr::addr_of_mut!((*b).read).write(0);
            ptr::addr_of_mut!((*b).write).write(0);
            if self.tail.is_null() {
                self.head = b;
            } else {
                (*self.tail).next = b;
            }
        }
        self.tail = b;
        b
    }

    /// Takes the oldest message.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let b = self.head;
        // SAFETY: with messages queued, `head` is a live block holding at
        // least one (the invariant), at `read`; it is read once, as `read`
        // moves past it.
        unsafe {
            let r = (*b).read;
            let msg = (*b).slots.as_ptr().add(r as usize).read().assume_init();
            (*b).read = r + 1;
            self.len -= 1;
            if r + 1 == (*b).write {
                self.unlink_head();
            }
            Some(msg)
        }
    }

    /// Unlinks the emptied head block and keeps it as a spare.
    #[inline(never)]
    fn unlink_head(&mut self) {
        let b = self.head;
        // SAFETY: `b` is the live head block, emptied: unlinked here and
        // kept (its slots hold nothing to drop).
        unsafe {
            self.head = (*b).next;
            if self.head.is_null() {
                self.tail = ptr::null_mut();
            }
            (*b).next = self.spare;
        }
        self.spare = b;
        self.spares += 1;
    }

    /// Frees the spare blocks beyond `keep`.
    #[inline]
    pub(crate) fn trim_spares(&mut self, keep: usize) {
        if self.spares > keep {
            self.free_spares(keep);
        }
    }

    #[inline(never)]
    fn free_spares(&mut self, keep: usize) {
        while self.spares > keep {
            let b = self.spare;
            // SAFETY: a spare is a live block only this queue holds, with
            // nothing in its slots to drop.
            unsafe {
                self.spare = (*b).next;
                drop(Box::from_raw(b));
            }
            self.spares -= 1;
        }
    }

    /// Moves every message of `other` after this queue's, in order, by
    /// linking its blocks (no message is moved), and gives `other` this
    /// queue's spare blocks: the receiver's emptied blocks go back to the
    /// queue senders push to.
    #[inline]
    pub(crate) fn append(&mut self, other: &mut Queue<T>) {
        self.give_spares(other);
        if other.len == 0 {
            return;
        }
        if self.tail.is_null() {
            self.head = other.head;
        } else {
            // SAFETY: a non-null tail is a live block of this queue; the
            // blocks linked after it move here with their messages.
            unsafe { (*self.tail).next = other.head };
        }
        self.tail = other.tail;
        self.len += other.len;
        other.head = ptr::null_mut();
        other.tail = ptr::null_mut();
        other.len = 0;
    }

    /// Moves this queue's spare blocks, if any, to `other`'s.
    #[inline]
    pub(crate) fn give_spares(&mut self, other: &mut Queue<T>) {
        if !self.spare.is_null() {
            self.move_spares(other);
        }
    }

    #[inline(never)]
    fn move_spares(&mut self, other: &mut Queue<T>) {
        let mut last = self.spare;
        // SAFETY: spares are live blocks of this queue's, linked through
        // `next` up to a null; the list moves to `other` whole.
        unsafe {
            while !(*last).next.is_null() {
                last = (*last).next;
            }
            (*last).next = other.spare;
        }
        other.spare = std::mem::replace(&mut self.spare, ptr::null_mut());
        other.spares += std::mem::take(&mut self.spares);
    }

    /// Takes every message, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.pop_front())
    }

    /// How many blocks the queue holds, its spares included.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> usize {
        let mut n = 0;
        let mut b = self.spare;
        while !b.is_null() {
            n += 1;
            // SAFETY: spares are live.
            b = unsafe { (*b).next };
        }
        assert_eq!(n, self.spares, "the spare count");
        let mut b = self.head;
        while !b.is_null() {
            n += 1;
            // SAFETY: linked blocks are live.
            b = unsafe { (*b).next };
        }
        n
    }
}

impl<T> IntoIterator for Queue<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

/// A queue's messages by value, oldest first.
pub(crate) struct IntoIter<T>(Queue<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.len, Some(self.0.len))
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // Unlinks each block as its last message goes, into the spares.
        while self.pop_front().is_some() {}
        self.trim_spares(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn messages_come_out_in_order_across_blocks() {
        let mut q = Queue::new();
        assert_eq!(q.blocks(), 0, "an empty queue allocates nothing");
        for i in 0..(3 * BLOCK + 5) {
            q.push_back(i);
        }
        assert_eq!(q.len(), 3 * BLOCK + 5);
        assert_eq!(q.blocks(), 4);
        for i in 0..(3 * BLOCK + 5) {
            assert_eq!(q.pop_front(), Some(i));
        }
        assert_eq!(q.pop_front(), None);
        assert!(q.is_empty());
        assert_eq!(q.blocks(), 4, "emptied blocks are kept");
        q.trim_spares(1);
        assert_eq!(q.blocks(), 1);
        for i in 0..(BLOCK + 1) {
            q.push_back(i);
        }
        assert_eq!(q.blocks(), 2, "the spare was used, one more allocated");
    }

    #[test]
    fn append_links_the_other_queue_after_this_one() {
        let mut a = Queue::new();
        let mut b = Queue::new();
        for i in 0..40 {
            a.push_back(i);
        }
        for i in 40..100 {
            b.push_back(i);
        }
        // A partly read head block in `a`, a partly filled tail block.
        assert_eq!(a.pop_front(), Some(0));
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(b.blocks(), 0);
        a.push_back(100);
        assert_eq!(a.blocks(), 4, "the last block had room for one more");
        assert_eq!(a.drain().collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
        // The receiver's emptied blocks go to the queue it takes from.
        let mut c = Queue::new();
        c.push_back(7);
        a.append(&mut c);
        assert_eq!(c.blocks(), 4, "the emptied queue got the other's spares");
        assert_eq!(a.pop_front(), Some(7));
        assert_eq!(a.blocks(), 1);
        // Nothing to move: the spares go all the same.
        let mut d = Queue::<usize>::new();
        a.append(&mut d);
        assert_eq!((a.blocks(), d.blocks()), (0, 1));
    }

    /// Counts drops, to see every message dropped exactly once.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn dropping_a_queue_drops_each_message_left_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut q = Queue::new();
        for _ in 0..(2 * BLOCK + 3) {
            q.push_back(Counted(drops.clone()));
        }
        for _ in 0..(BLOCK + 1) {
            drop(q.pop_front());
        }
        assert_eq!(drops.load(Ordering::Relaxed), BLOCK + 1);
        drop(q);
        assert_eq!(drops.load(Ordering::Relaxed), 2 * BLOCK + 3);
        // By value: what the iterator did not take goes with it.
        let mut q = Queue::new();
        for _ in 0..10 {
            q.push_back(Counted(drops.clone()));
        }
        let mut it = q.into_iter();
        drop(it.next());
        drop(it);
        assert_eq!(drops.load(Ordering::Relaxed), 2 * BLOCK + 13);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Pop(u8),
        /// Moves the second queue's messages after the first's.
        Append,
        /// Pushes into the second queue.
        PushOther(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..80).prop_map(Op::Push),
            (1u8..80).prop_map(Op::Pop),
            Just(Op::Append),
            (1u8..80).prop_map(Op::PushOther),
        ]
    }

    proptest! {
        /// Any mix of pushes, pops and appends behaves like two `VecDeque`s,
        /// and every linked block holds a message.
        #[test]
        fn behaves_like_a_vecdeque(ops in prop::collection::vec(op(), 1..60)) {
            let (mut q, mut other) = (Queue::new(), Queue::new());
            let (mut m, mut m_other) = (VecDeque::new(), VecDeque::new());
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Push(n) => for _ in 0..n {
                        q.push_back(next);
                        m.push_back(next);
                        next += 1;
                    },
                    Op::PushOther(n) => for _ in 0..n {
                        other.push_back(next);
                        m_other.push_back(next);
                        next += 1;
                    },
                    Op::Pop(n) => for _ in 0..n {
                        prop_assert_eq!(q.pop_front(), m.pop_front());
                    },
                    Op::Append => {
                        q.append(&mut other);
                        m.append(&mut m_other);
                    }
                }
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(other.len(), m_other.len());
                prop_assert!(q.blocks() - q.spares <= m.len());
                prop_assert!(other.blocks() - other.spares <= m_other.len());
            }
            prop_assert_eq!(q.drain().collect::<Vec<_>>(), Vec::from(m));
            q.trim_spares(0);
            prop_assert_eq!(q.blocks(), 0);
        }
    }
}
