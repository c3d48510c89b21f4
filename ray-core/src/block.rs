//! Small executor helpers that work with or without a tokio runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on the current thread, parking between polls.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// `Err(())` when `fut` did not finish within `t`. Uses tokio's timer inside a
/// tokio runtime, a sleeping helper thread elsewhere.
pub(crate) async fn timeout<F: Future>(t: Duration, fut: F) -> Result<F::Output, ()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return tokio::time::timeout(t, fut).await.map_err(|_| ());
    }
    let timer = ThreadTimer::start(t);
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if timer.poll_elapsed(cx) {
            return Poll::Ready(Err(()));
        }
        Poll::Pending
    })
    .await
}

struct ThreadTimer {
    shared: Arc<(AtomicBool, Mutex<Option<Waker>>)>,
}

impl ThreadTimer {
    fn start(t: Duration) -> Self {
        let shared = Arc::new((AtomicBool::new(false), Mutex::new(None::<Waker>)));
        let s = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            s.0.store(true, Ordering::SeqCst);
            if let Some(w) = s.1.lock().unwrap_or_else(|p| p.into_inner()).take() {
                w.wake();
            }
        });
        ThreadTimer { shared }
    }

    fn poll_elapsed(&self, cx: &mut Context<'_>) -> bool {
        let mut w = self.shared.1.lock().unwrap_or_else(|p| p.into_inner());
        if self.shared.0.load(Ordering::SeqCst) {
            return true;
        }
        *w = Some(cx.waker().clone());
        false
    }
}

/// Turns a panic payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Polls `fut`, turning a panic inside it into `Err(message)`.
pub(crate) async fn catch_unwind<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(panic_message(&*p))),
        }
    })
    .await
}
