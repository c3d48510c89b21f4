//! Remote functions: `#[ray::remote] fn f(..)` gives `f::remote(..)`.

use std::time::Duration;

use ray::prelude::*;

#[ray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[ray::remote(num_returns = 2)]
fn div_mod(a: u32, b: u32) -> Result<(u32, u32), String> {
    if b == 0 {
        return Err("division by zero".into());
    }
    Ok((a / b, a % b))
}

#[ray::remote]
async fn slow_echo(s: String, ms: u64) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    s
}

#[ray::remote(num_cpus = 1)]
fn boom(msg: String) -> u8 {
    panic!("{msg}")
}

#[ray::remote(num_returns = 0)]
fn note(fail: bool) -> Result<(), String> {
    if fail {
        Err("note failed".into())
    } else {
        Ok(())
    }
}

/// Calls a remote function and an actor from inside a remote function.
#[ray::remote]
async fn fan_out(n: i64) -> Result<i64, ray::Error> {
    let refs: Vec<_> = (0..n).map(|i| add::remote(i, 1)).collect();
    let mut total = 0;
    for r in refs {
        total += r.await?;
    }
    let acc = Acc::remote()?;
    acc.add(total);
    acc.add(0).await
}

#[ray::actor]
#[derive(Default)]
pub struct Acc {
    total: i64,
}

#[ray::actor]
impl Acc {
    pub fn add(&mut self, x: i64) -> i64 {
        self.total += x;
        self.total
    }

    /// Calls a remote function from a method.
    pub async fn add_remote(&mut self, a: i64, b: i64) -> Result<i64, ray::Error> {
        self.total += add::remote(a, b).await?;
        Ok(self.total)
    }
}

async fn scenario() {
    assert_eq!(add::remote(2, 3).await.unwrap(), 5);
    // Refs as arguments, chained without waiting.
    let x = add::remote(1, 1);
    let y = add::remote(&x, ray::put(10));
    assert_eq!(y.await.unwrap(), 12);
    let (q, r) = div_mod::remote(17, 5);
    assert_eq!((q.await.unwrap(), r.await.unwrap()), (3, 2));
    let (q, _) = div_mod::remote(1, 0);
    let e = q.await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { method, message, .. } if method == "div_mod" && message == "division by zero"),
        "{e:?}"
    );
    assert_eq!(slow_echo::remote("hi", 5).await.unwrap(), "hi");
    let e = boom::remote("kapow").await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { message, .. } if message.contains("kapow")),
        "{e:?}"
    );
    // A failed dependency fails the call without running it.
    let (bad, _) = div_mod::remote(1, 0);
    let e = add::remote(bad.clone().await.map(i64::from).unwrap_or(0), 1);
    assert_eq!(e.await.unwrap(), 1);
    assert_eq!(fan_out::remote(4).await.unwrap(), 10);
    let acc = Acc::remote().unwrap();
    assert_eq!(acc.add_remote(20, 22).await.unwrap(), 42);
    assert_eq!(add::options().num_cpus(1).remote(1, 2).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_functions() {
    let _ray = ray::init(Config::default()).unwrap();
    scenario().await;
    note::remote(true);
    note::remote(false);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !ray::error_info()
            .iter()
            .any(|e| e.message.contains("note failed"))
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the fire-and-forget failure is reported");
}

#[tokio::test]
async fn remote_functions_in_local_mode() {
    let _ray = ray::init(Config::default().local_mode(true)).unwrap();
    let r = add::remote(1, 2);
    assert_eq!(r.try_get(), Some(Ok(3)), "ran at submission");
    scenario().await;
}

#[test]
fn without_a_runtime_the_ref_fails_with_not_initialized() {
    std::thread::spawn(|| {
        assert_eq!(add::remote(1, 2).get_blocking(), Err(Error::NotInitialized));
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn a_failed_dependency_fails_a_remote_function() {
    let _ray = ray::init(Config::default()).unwrap();
    let (bad, _) = div_mod::remote(1, 0);
    let r = add::remote(ray::put(1), 1);
    assert_eq!(r.await.unwrap(), 2);
    let dependent = slow_echo::remote(ray::put(String::from("x")), 0);
    assert_eq!(dependent.await.unwrap(), "x");
    let q = bad.clone();
    let failed = div_mod::remote(&q, 1).0;
    assert!(
        matches!(failed.await, Err(Error::Task { ref message, .. }) if message == "division by zero")
    );
}
