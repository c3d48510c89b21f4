//! Errors: method `Err`, panics, constructor failures, no runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ray::prelude::*;
use ray::{ErrorKind, INFINITE_RECONSTRUCTION};

#[ray::actor]
pub struct Worker {
    done: u32,
    drops: Option<Arc<AtomicUsize>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(d) = &self.drops {
            d.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[ray::actor]
impl Worker {
    pub fn new(fail: Option<String>, drops: Option<Arc<AtomicUsize>>) -> Result<Self, String> {
        match fail {
            Some(msg) if msg == "panic" => panic!("constructor blew up"),
            Some(msg) => Err(msg),
            None => Ok(Worker { done: 0, drops }),
        }
    }

    pub fn work(&mut self) -> u32 {
        self.done += 1;
        self.done
    }

    pub fn refuse(&mut self, why: String) -> Result<u32, std::io::Error> {
        self.done += 1;
        Err(std::io::Error::other(why))
    }

    pub fn explode(&mut self, msg: String) -> u32 {
        panic!("{msg}")
    }

    pub async fn explode_later(&mut self) -> u32 {
        tokio::task::yield_now().await;
        panic!("async boom")
    }

    #[method(num_returns = 0)]
    pub fn fire(&mut self, fail: bool) -> Result<(), String> {
        if fail {
            Err("fire-and-forget failed".into())
        } else {
            self.done += 1;
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_method_err_fails_that_call_and_the_actor_goes_on() {
    let _ray = ray::init(Config::default()).unwrap();
    let w = Worker::remote(None, None).unwrap();
    let err = w.refuse("not today").await.unwrap_err();
    match err {
        Error::Task {
            class,
            method,
            message,
        } => {
            assert_eq!(class, "Worker");
            assert_eq!(method, "refuse");
            assert_eq!(message, "not today");
        }
        other => panic!("expected Error::Task, got {other:?}"),
    }
    // The failed call still ran (and counted); the actor is alive.
    assert_eq!(w.work().await.unwrap(), 2);
}

#[tokio::test]
async fn a_panic_fails_that_call_with_its_message_and_the_actor_dies() {
    let _ray = ray::init(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let w = Worker::remote(None, Some(drops.clone())).unwrap();
    assert_eq!(w.work().await.unwrap(), 1);
    let boom = w.explode("kaboom");
    let after = w.work();
    match boom.await.unwrap_err() {
        Error::Task {
            method, message, ..
        } => {
            assert_eq!(method, "explode");
            assert!(message.contains("kaboom"), "{message}");
        }
        other => panic!("expected Error::Task, got {other:?}"),
    }
    match after.await.unwrap_err() {
        Error::ActorDied { cause, class, .. } => {
            assert_eq!(class, "Worker");
            assert!(cause.contains("kaboom"), "{cause}");
        }
        other => panic!("expected Error::ActorDied, got {other:?}"),
    }
    // Later calls fail at once, too.
    assert!(matches!(w.work().await, Err(Error::ActorDied { .. })));
    assert!(ray::error_info()
        .iter()
        .any(|e| e.kind == ErrorKind::ActorDied && e.actor_id == Some(w.actor_id())));
    // The state was dropped.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while drops.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dead actor's state is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_an_async_method_is_caught_too() {
    let _ray = ray::init(Config::default()).unwrap();
    let w = Worker::remote(None, None).unwrap();
    let e = w.explode_later().await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { message, .. } if message.contains("async boom")),
        "{e:?}"
    );
    assert!(matches!(w.work().await, Err(Error::ActorDied { .. })));
}

#[tokio::test]
async fn a_failing_constructor_fails_every_call() {
    let _ray = ray::init(Config::default()).unwrap();
    let w = Worker::remote(Some("no disk".to_string()), None).unwrap();
    for _ in 0..3 {
        match w.work().await.unwrap_err() {
            Error::ActorCreationFailed {
                class,
                message,
                actor_id,
            } => {
                assert_eq!(class, "Worker");
                assert_eq!(message, "no disk");
                assert_eq!(actor_id, w.actor_id());
            }
            other => panic!("expected ActorCreationFailed, got {other:?}"),
        }
    }
    let p = Worker::remote(Some("panic".to_string()), None).unwrap();
    match p.work().await.unwrap_err() {
        Error::ActorCreationFailed { message, .. } => {
            assert!(message.contains("constructor blew up"), "{message}")
        }
        other => panic!("expected ActorCreationFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn fire_and_forget_failures_reach_the_error_stream() {
    let _ray = ray::init(Config::default()).unwrap();
    let w = Worker::remote(None, None).unwrap();
    w.fire(false);
    w.fire(true);
    // Ordered: the next call sees the first fire's effect.
    assert_eq!(w.work().await.unwrap(), 2);
    let errors = ray::error_info();
    let e = errors
        .iter()
        .find(|e| e.kind == ErrorKind::TaskFailed)
        .expect("the failed fire-and-forget call is reported");
    assert_eq!(e.actor_id, Some(w.actor_id()));
    assert!(
        e.message.contains("fire-and-forget failed"),
        "{}",
        e.message
    );
}

#[test]
fn creating_an_actor_without_a_runtime_is_not_initialized() {
    std::thread::spawn(|| {
        let e = Worker::remote(None, None).unwrap_err();
        assert_eq!(e, Error::NotInitialized);
        assert!(e.to_string().contains("ray::init()"), "{e}");
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn out_of_range_options_are_invalid_arguments() {
    let _ray = ray::init(Config::default()).unwrap();
    let e = Worker::options()
        .max_reconstructions(INFINITE_RECONSTRUCTION + 1)
        .remote(None, None)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("0..=1073741824")),
        "{e}"
    );
    let e = Worker::options()
        .num_cpus(-1)
        .remote(None, None)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = Worker::options()
        .num_gpus(1.5)
        .remote(None, None)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("whole")),
        "{e}"
    );
    let e = Worker::options()
        .resource("GPU", 1)
        .remote(None, None)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert!(Worker::options()
        .max_reconstructions(INFINITE_RECONSTRUCTION)
        .remote(None, None)
        .is_ok());
    assert!(matches!(
        ray::init(Config::default().num_cpus(-2)),
        Err(Error::InvalidArgument(_))
    ));
}
