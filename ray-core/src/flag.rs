//! The flag an actor's task and its callers take to run the actor's calls
//! (see `exec::Driver`). Nobody waits for it: a caller takes it only if it
//! is free, and the actor task, finding it taken, returns `Pending` and is
//! woken by the holder once the flag is released.
//!
//! The handshake is checked by a loom model (`flag::model`):
//! `RUSTFLAGS="--cfg ray_loom" cargo test -p ray-core --lib --release flag::model`.

use std::task::{Context, Poll, Waker};

#[cfg(ray_loom)]
use loom::sync::{
    atomic::{fence, AtomicBool, Ordering},
    Mutex,
};
#[cfg(not(ray_loom))]
use std::sync::{
    atomic::{fence, AtomicBool, Ordering},
    Mutex,
};

/// See the module docs.
pub(crate) struct HoldFlag {
    held: AtomicBool,
    /// The task found the flag taken: the holder wakes it after releasing.
    missed: AtomicBool,
    /// The task's waker for that case.
    missed_waker: Mutex<Option<Waker>>,
}

impl HoldFlag {
    pub(crate) fn new() -> Self {
        HoldFlag {
            held: AtomicBool::new(false),
            missed: AtomicBool::new(false),
            missed_waker: Mutex::new(None),
        }
    }

    /// Takes the flag if it is free.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        self.held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the flag (by its holder).
    #[inline]
    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// The actor task takes the flag, or arranges to be woken once it is
    /// released. The fences on both sides make that airtight: either the
    /// retry here sees the flag released, or the holder (release, fence,
    /// then reading `missed`, in [`wake_missed`](Self::wake_missed)) sees
    /// `missed` set.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.try_take() {
            return Poll::Ready(());
        }
        *self.missed_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        self.missed.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.try_take() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Wakes the actor task if it found the flag taken meanwhile. Called by
    /// a caller once it released the flag.
    #[inline]
    pub(crate) fn wake_missed(&self) {
        fence(Ordering::SeqCst);
        if self.missed.load(Ordering::Relaxed) && self.missed.swap(false, Ordering::Acquire) {
            let w = self
                .missed_waker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

#[cfg(all(test, ray_loom))]
mod model {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    /// A waker that records being woken.
    struct Woken(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A caller runs calls while the task tries to take the flag: if the
    /// task got `Pending`, it was woken (no lost wake-up).
    #[test]
    fn a_task_finding_the_flag_taken_is_woken() {
        loom::model(|| {
            let flag = Arc::new(HoldFlag::new());
            let caller = {
                let flag = flag.clone();
                loom::thread::spawn(move || {
                    if flag.try_take() {
                        flag.release();
                        flag.wake_missed();
                    }
                })
            };
            let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicBool::new(false)));
            let waker = Waker::from(woken.clone());
            let got = flag.poll_take(&mut Context::from_waker(&waker));
            caller.join().unwrap();
            match got {
                Poll::Ready(()) => flag.release(),
                Poll::Pending => assert!(
                    woken.0.load(std::sync::atomic::Ordering::SeqCst),
                    "the task found the flag taken and was never woken"
                ),
            }
        });
    }

    /// Two callers and the task: never two holders at once.
    #[test]
    fn one_holder_at_a_time() {
        loom::model(|| {
            let flag = Arc::new(HoldFlag::new());
            let inside = Arc::new(AtomicUsize::new(0));
            let run = |flag: &HoldFlag, inside: &AtomicUsize| {
                if flag.try_take() {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    flag.release();
                    flag.wake_missed();
                }
            };
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let (flag, inside) = (flag.clone(), inside.clone());
                    loom::thread::spawn(move || run(&flag, &inside))
                })
                .collect();
            run(&flag, &inside);
            for t in others {
                t.join().unwrap();
            }
        });
    }
}
