use renamed_crate::{Counter, CounterHandle, Tally};

#[tokio::test]
async fn actor_through_renamed_crate() -> my_ray::Result<()> {
    let ray = my_ray::init(my_ray::Config::default().num_cpus(4))?;
    let c: CounterHandle = Counter::remote(10)?;
    assert_eq!(c.incr(5).await?, 15);
    let (n, s) = c.split();
    assert_eq!(n.await?, 15);
    assert_eq!(s.await?, "15");
    c.reset();
    assert_eq!(c.slow_get().await?, 0);
    let fork = c.clone();
    assert_eq!(fork.incr(my_ray::put(3)).await?, 3);
    let named = Counter::options().name("renamed").remote(1)?;
    assert_eq!(named.incr(1).await?, 2);
    assert_eq!(Counter::METHODS.len(), 4);
    let t = Tally::remote()?;
    assert_eq!(t.tick().await?, 1);
    ray.shutdown().await;
    Ok(())
}
