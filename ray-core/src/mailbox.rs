//! An actor's mailbox: an unbounded queue with one receiver (the actor's
//! task, or a caller running queued calls for it), kept inside the actor's
//! driver.
//!
//! A tokio `mpsc` channel is two allocations of its own per actor (the
//! channel, 128-byte aligned, and a first block of 32 slots: over 1 KiB), for
//! a queue that is mostly empty or holds a few calls. This one is a locked
//! slot for one message, a [`Queue`] of small blocks for more (the first
//! allocated when two are queued at once) and the waiting receiver's waker.
//! The lock is held for a push or a pop, never across a call.
//!
//! A receiver with its own queue (the actor's inbox, see
//! [`Mailbox::try_recv_into`]) takes every queued message per lock, by
//! moving their blocks: when callers send faster than the actor runs calls,
//! sender and receiver would otherwise pass the lock's cache line back and
//! forth on every message.
//!
//! Closing: when every handle is gone, or when the actor task stops taking
//! mail. Later sends fail and give their message back; messages already in
//! the queue are still received, then the receiver sees the end.

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pub(crate) use crate::queue::Queue;

/// An unbounded queue of `T` with one receiver at a time (see the module
/// docs).
pub(crate) struct Mailbox<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The oldest message, when it came to an empty queue: one call at a
    /// time (a caller awaiting each call) needs no buffer.
    first: Option<T>,
    /// The messages after `first`.
    queue: Queue<T>,
    /// The receiver, while it waits for mail.
    waker: Option<Waker>,
    closed: bool,
}

/// What a receive found.
pub(crate) enum Recv<T> {
    /// A message, and whether more wait after it.
    Msg(T, bool),
    /// Nothing now.
    Empty,
    /// Closed, and nothing left.
    Closed,
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            state: Mutex::new(State {
                first: None,
                queue: Queue::new(),
                waker: None,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held but a failed allocation; the
        // queue is whole either way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg` and wakes the receiver if it waits; `Err(msg)` once the
    /// mailbox is closed.
    pub(crate) fn send(&self, msg: T) -> Result<(), T> {
        self.send_with(|_| msg)
    }

    /// Queues the message `make(true)` builds, under the lock: messages
    /// numbered in `make` go in the order of their numbers, and what `make`
    /// counts is counted under the lock. Once the mailbox is closed, `Err`
    /// with the message `make(false)` built outside the lock, to give back.
    #[inline]
    pub(crate) fn send_with(&self, make: impl FnOnce(bool) -> T) -> Result<(), T> {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            return Err(make(false));
        }
        let msg = make(true);
        if st.is_empty() {
            st.first = Some(msg);
        } else {
            st.queue.push_back(msg);
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Closes the mailbox (later sends fail) and wakes the receiver if it
    /// waits. Queued messages stay to be received.
    pub(crate) fn close(&self) {
        self.close_with(|_| ());
    }

    /// Closes the mailbox and takes every message still queued, oldest
    /// first (dropped or failed by the caller, outside the lock).
    pub(crate) fn close_and_drain(&self) -> impl Iterator<Item = T> {
        // Taken under the closing lock: nothing more can come.
        let (first, queue) = self.close_with(|st| (st.first.take(), std::mem::take(&mut st.queue)));
        first.into_iter().chain(queue)
    }

    /// Closes the mailbox and runs `f` on its state under the same lock,
    /// then wakes the receiver if it waits.
    fn close_with<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        let mut st = self.lock();
        st.closed = true;
        let waker = st.waker.take();
        let r = f(&mut st);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        r
    }

    /// The next message, without waiting.
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Recv<T> {
        self.try_recv_locked(None)
    }

    /// The next message without waiting, for a receiver with its own
    /// queue, `inbox`: the next message comes from there first; else from the
    /// mailbox, and every message queued behind it moves into `inbox` under
    /// the same lock (their blocks do). A receiver that keeps up with a busy
    /// sender takes the lock once per batch instead of once per message, and
    /// the sender mostly finds the lock where it left it.
    #[inline]
    pub(crate) fn try_recv_into(&self, inbox: &mut Queue<T>) -> Recv<T> {
        match pop_inbox(inbox) {
            Some((msg, more)) => Recv::Msg(msg, more),
            None => self.try_recv_locked(Some(inbox)),
        }
    }

    /// A receive from the mailbox itself (a batch into `inbox`, if given).
    #[inline]
    fn try_recv_locked(&self, inbox: Option<&mut Queue<T>>) -> Recv<T> {
        let mut st = self.lock();
        match pop(&mut st, inbox) {
            Some((msg, more)) => Recv::Msg(msg, more),
            None if st.closed => Recv::Closed,
            None => Recv::Empty,
        }
    }

    /// [`poll_recv`](Self::poll_recv) for a receiver with its own queue
    /// (see [`try_recv_into`](Self::try_recv_into)).
    #[inline]
    pub(crate) fn poll_recv_into(
        &self,
        cx: &mut Context<'_>,
        inbox: &mut Queue<T>,
    ) -> Poll<Option<(T, bool)>> {
        match pop_inbox(inbox) {
            Some(msg) => Poll::Ready(Some(msg)),
            None => self.poll_recv_locked(cx, Some(inbox)),
        }
    }

    /// The next message (and whether more wait after it), or `None` once the
    /// mailbox is closed and empty; if there is none yet, `cx` is woken when
    /// one arrives or the mailbox closes.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<(T, bool)>> {
        self.poll_recv_locked(cx, None)
    }

    /// A poll of the mailbox itself (a batch into `inbox`, if given).
    #[inline]
    fn poll_recv_locked(
        &self,
        cx: &mut Context<'_>,
        inbox: Option<&mut Queue<T>>,
    ) -> Poll<Option<(T, bool)>> {
        let mut st = self.lock();
        match pop(&mut st, inbox) {
            Some(msg) => Poll::Ready(Some(msg)),
            None if st.closed => Poll::Ready(None),
            None => {
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// The next message, waiting for one; `None` once closed and empty.
    pub(crate) async fn recv(&self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx))
            .await
            .map(|(msg, _)| msg)
    }

    /// Whether no message waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl<T> State<T> {
    fn is_empty(&self) -> bool {
        self.first.is_none() && self.queue.is_empty()
    }
}

/// The next message from a receiver's own queue, and whether more wait
/// there. Whether more wait in the mailbox is not looked up (that is the
/// lock): `more` is a hint (whether to keep a CPU between calls).
#[inline]
fn pop_inbox<T>(inbox: &mut Queue<T>) -> Option<(T, bool)> {
    let msg = inbox.pop_front()?;
    Some((msg, !inbox.is_empty()))
}

/// The first message and whether more wait; with an `inbox` (empty), every
/// message behind it moves there, and the inbox's emptied blocks come back
/// for the senders.
#[inline]
fn pop<T>(st: &mut State<T>, inbox: Option<&mut Queue<T>>) -> Option<(T, bool)> {
    let msg = match st.first.take() {
        Some(msg) => msg,
        None => match st.queue.pop_front() {
            Some(msg) => msg,
            None => {
                idle(st, inbox);
                return None;
            }
        },
    };
    let more = !st.queue.is_empty();
    if more {
        if let Some(inbox) = inbox {
            inbox.append(&mut st.queue);
        }
    }
    Some((msg, more))
}

/// The receiver found nothing and goes idle: a burst's blocks go, but one
/// kept for the next.
#[inline]
fn idle<T>(st: &mut State<T>, inbox: Option<&mut Queue<T>>) {
    if let Some(inbox) = inbox {
        inbox.give_spares(&mut st.queue);
    }
    st.queue.trim_spares(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn messages_come_out_in_order_then_the_end_after_close() {
        let m = Mailbox::new();
        m.send(1).unwrap();
        m.send(2).unwrap();
        assert!(matches!(m.try_recv(), Recv::Msg(1, true)));
        m.close();
        assert_eq!(m.send(3), Err(3), "a closed mailbox gives the message back");
        assert!(matches!(m.try_recv(), Recv::Msg(2, false)));
        assert!(matches!(m.try_recv(), Recv::Closed));
        assert!(m.is_empty());
    }

    #[test]
    fn close_and_drain_takes_the_slot_and_the_queue_in_order() {
        let m = Mailbox::new();
        for i in 1..=3 {
            m.send(i).unwrap();
        }
        assert_eq!(m.close_and_drain().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(m.send(4), Err(4));
        assert!(matches!(m.try_recv(), Recv::Closed));
    }

    #[test]
    fn an_emptied_queue_gives_a_burst_s_memory_back() {
        let m = Mailbox::new();
        for i in 0..10_000 {
            m.send(i).unwrap();
        }
        assert!(m.lock().queue.blocks() >= 10_000 / crate::queue::BLOCK);
        for i in 0..10_000 {
            assert!(matches!(m.try_recv(), Recv::Msg(j, _) if j == i));
        }
        assert!(
            m.lock().queue.blocks() >= 10_000 / crate::queue::BLOCK,
            "kept while busy"
        );
        assert!(matches!(m.try_recv(), Recv::Empty));
        assert_eq!(
            m.lock().queue.blocks(),
            1,
            "one emptied block is kept once idle"
        );
        // One message at a time needs no block at all.
        let m = Mailbox::new();
        m.send(1).unwrap();
        assert!(matches!(m.try_recv(), Recv::Msg(1, false)));
        assert_eq!(m.lock().queue.blocks(), 0);
        // A small queue keeps its one block (no allocation per message).
        for round in 0..3 {
            for i in 0..3 {
                m.send(i).unwrap();
            }
            for i in 0..3 {
                assert!(matches!(m.try_recv(), Recv::Msg(j, more) if j == i && more == (i < 2)));
            }
            assert_eq!(m.lock().queue.blocks(), 1, "round {round}");
        }
        // Interleaved sends and receives keep the order across the slot and
        // the queue.
        let mut next_in = 0;
        let mut next_out = 0;
        for round in 0..200 {
            for _ in 0..(round % 5) {
                m.send(next_in).unwrap();
                next_in += 1;
            }
            for _ in 0..(round % 3) {
                if let Recv::Msg(j, _) = m.try_recv() {
                    assert_eq!(j, next_out);
                    next_out += 1;
                }
            }
        }
        while let Recv::Msg(j, _) = m.try_recv() {
            assert_eq!(j, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receiver_gets_every_message_from_many_senders() {
        let m = Arc::new(Mailbox::new());
        let senders: Vec<_> = (0..4u64)
            .map(|s| {
                let m = m.clone();
                tokio::spawn(async move {
                    for i in 0..2_000u64 {
                        m.send((s, i)).unwrap();
                        if i % 97 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let closer = {
            let m = m.clone();
            tokio::spawn(async move {
                for s in senders {
                    s.await.unwrap();
                }
                m.close();
            })
        };
        let mut next = [0u64; 4];
        while let Some((s, i)) = m.recv().await {
            // Each sender's messages arrive in its order, none lost.
            assert_eq!(i, next[s as usize]);
            next[s as usize] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        closer.await.unwrap();
    }

    /// Threads numbering their messages from one shared counter inside
    /// `send_with` (as a handle shared by many callers numbers its calls):
    /// the receiver sees the numbers in order, none skipped, none twice.
    #[test]
    fn numbers_taken_in_send_with_arrive_in_order() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let m = Arc::new(Mailbox::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (m, counter) = (m.clone(), counter.clone());
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        m.send_with(|_| counter.fetch_add(1, Ordering::Relaxed))
                            .unwrap();
                        if (i + t) % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = 0;
        let receive = |next: &mut u64| {
            while let Recv::Msg(n, _) = m.try_recv() {
                assert_eq!(n, *next, "a number arrived out of order");
                *next += 1;
            }
        };
        while threads.iter().any(|t| !t.is_finished()) {
            receive(&mut next);
        }
        for t in threads {
            t.join().unwrap();
        }
        receive(&mut next);
        assert_eq!(next, 20_000);
    }

    /// A receiver with its own queue, against 4 senders: every message
    /// arrives, each sender's in its order, and the end comes only once both
    /// are empty.
    #[test]
    fn a_receiver_with_an_inbox_gets_everything_in_order() {
        let m = Arc::new(Mailbox::new());
        let senders: Vec<_> = (0..4u64)
            .map(|s| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        m.send((s, i)).unwrap();
                        if (i + s) % 50 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let closer = {
            let m = m.clone();
            std::thread::spawn(move || {
                for s in senders {
                    s.join().unwrap();
                }
                m.close();
            })
        };
        let mut inbox = Queue::new();
        let mut next = [0u64; 4];
        loop {
            match m.try_recv_into(&mut inbox) {
                Recv::Msg((s, i), more) => {
                    assert_eq!(i, next[s as usize], "sender {s} out of order");
                    next[s as usize] += 1;
                    if !inbox.is_empty() {
                        assert!(more, "messages wait in the inbox");
                    }
                }
                Recv::Empty => std::thread::yield_now(),
                Recv::Closed => break,
            }
        }
        closer.join().unwrap();
        assert!(inbox.is_empty());
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn one_lock_takes_everything_queued_in_order() {
        let m = Mailbox::new();
        let n = 3 * crate::queue::BLOCK as u32 + 5;
        for i in 0..n {
            m.send(i).unwrap();
        }
        let mut inbox = Queue::new();
        assert!(matches!(m.try_recv_into(&mut inbox), Recv::Msg(0, true)));
        assert_eq!(inbox.len(), n as usize - 1, "one lock takes every message");
        assert!(m.is_empty());
        // Sent meanwhile: received after the inbox's, in order.
        for i in n..n + 10 {
            m.send(i).unwrap();
        }
        for i in 1..n + 10 {
            match m.try_recv_into(&mut inbox) {
                Recv::Msg(j, more) => {
                    assert_eq!(j, i);
                    // A hint from the inbox alone: false at its last
                    // message, though the mailbox has more.
                    assert_eq!(more, i != n - 1 && i != n + 9, "message {i}");
                }
                _ => panic!("message {i} missing"),
            }
        }
        assert!(matches!(m.try_recv_into(&mut inbox), Recv::Empty));
        m.close();
        assert!(matches!(m.try_recv_into(&mut inbox), Recv::Closed));
    }
}
