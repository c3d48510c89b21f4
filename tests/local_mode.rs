//! Local mode: same API, calls run synchronously at submission, same results.

use ray::prelude::*;

#[ray::actor]
pub struct Acc {
    items: Vec<String>,
}

#[ray::actor]
impl Acc {
    pub fn new(first: String) -> Self {
        Acc { items: vec![first] }
    }

    pub fn push(&mut self, s: String) -> usize {
        self.items.push(s);
        self.items.len()
    }

    #[method(num_returns = 2)]
    pub fn stats(&self) -> (usize, String) {
        (self.items.len(), self.items.join(","))
    }

    #[method(num_returns = 0)]
    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub async fn push_async(&mut self, s: String) -> usize {
        self.items.push(s);
        self.items.len()
    }

    pub fn fail(&self) -> Result<(), String> {
        Err("bad".into())
    }

    pub fn boom(&self) -> usize {
        panic!("local boom")
    }
}

/// The same scenario, run in both modes, gives the same results.
async fn scenario() -> Vec<String> {
    let a = Acc::remote("a").unwrap();
    let mut out = Vec::new();
    out.push(a.push("b").await.unwrap().to_string());
    let (n, joined) = a.stats();
    out.push(format!("{} {}", n.await.unwrap(), joined.await.unwrap()));
    out.push(a.push(ray::put("c".to_string())).await.unwrap().to_string());
    out.push(a.push_async("d").await.unwrap().to_string());
    out.push(a.fail().await.unwrap_err().to_string());
    a.clear();
    out.push(a.push("e").await.unwrap().to_string());
    out.push(format!("{:?}", a.boom().await.unwrap_err()));
    out.push(matches!(a.push("f").await, Err(Error::ActorDied { .. })).to_string());
    out
}

#[tokio::test]
async fn local_mode_gives_the_same_results_as_the_default_mode() {
    let local = {
        let _ray = ray::init(Config::default().local_mode(true)).unwrap();
        scenario().await
    };
    let remote = {
        let _ray = ray::init(Config::default()).unwrap();
        scenario().await
    };
    assert_eq!(local, remote);
    assert_eq!(local[0], "2");
    assert_eq!(local[1], "2 a,b");
    assert_eq!(local[5], "1");
    assert_eq!(local[7], "true");
}

#[test]
fn local_mode_runs_each_call_at_submission() {
    let ray = ray::init(Config::default().local_mode(true)).unwrap();
    assert!(ray.config().is_local_mode());
    let a = Acc::remote("x").unwrap();
    let r = a.push("y");
    assert!(r.is_ready(), "the call ran synchronously in the caller");
    assert_eq!(r.try_get(), Some(Ok(2)));
    let r = a.push_async("z");
    assert_eq!(r.try_get(), Some(Ok(3)));
    a.fail();
    let failed = ray::error_info();
    assert!(
        failed.is_empty(),
        "a failed call with a ref is not reported: {failed:?}"
    );
}
