use ray::prelude::*;

#[ray::actor(max_reconstructions = 3)]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(start: i64) -> Self {
        Counter { value: start }
    }
    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }
    pub fn get(&self) -> i64 {
        self.value
    }
    #[method(num_returns = 2)]
    pub fn split(&self) -> (i64, String) {
        (self.value, self.value.to_string())
    }
    #[method(num_returns = 0)]
    pub fn reset(&mut self) {
        self.value = 0
    }
    pub async fn slow_incr(&mut self) -> Result<i64, String> {
        tokio::task::yield_now().await;
        self.value += 1;
        Ok(self.value)
    }
    pub fn fail(&self) -> Result<i64, String> {
        Err("nope".into())
    }
}

#[tokio::test]
async fn api_example() -> ray::Result<()> {
    let ray = ray::init(Config::default().num_cpus(4))?;
    let c: CounterHandle = Counter::remote(10)?;
    let r: ObjectRef<i64> = c.incr(5);
    assert_eq!(r.get().await?, 15);
    let (a, b) = c.split();
    assert_eq!(a.await?, 15);
    assert_eq!(b.await?, "15");
    c.reset();
    let x = c.incr(ray::put(7));
    assert_eq!(x.await?, 7);
    assert_eq!(c.slow_incr().await?, 8);
    let e = c.fail().await.unwrap_err();
    assert!(
        matches!(e, Error::Task { ref message, .. } if message == "nope"),
        "{e}"
    );
    assert_eq!(c.get().await?, 8);
    assert_eq!(Counter::METHODS.len(), 6);
    assert_eq!(Counter::METHODS[3].name, "reset");
    assert_eq!(Counter::METHODS[3].num_returns, 0);
    ray.shutdown().await;
    Ok(())
}
