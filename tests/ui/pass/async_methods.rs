// `async fn` methods, plain and fallible, run under `#[tokio::main]`.

#[ray::actor]
pub struct Store {
    items: Vec<String>,
}

#[ray::actor]
impl Store {
    pub fn new() -> Self {
        Store { items: Vec::new() }
    }
    pub async fn push(&mut self, item: String) -> usize {
        tokio::task::yield_now().await;
        self.items.push(item);
        self.items.len()
    }
    pub async fn first(&self) -> Result<String, String> {
        self.items
            .first()
            .cloned()
            .ok_or_else(|| "empty".to_owned())
    }
    #[method(num_returns = 2)]
    pub async fn both(&self) -> Result<(usize, bool), String> {
        Ok((self.items.len(), self.items.is_empty()))
    }
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let ray = ray::init(ray::Config::default())?;
    let s = Store::remote()?;
    assert!(s.first().await.is_err());
    assert_eq!(s.push("a".to_owned()).await?, 1);
    assert_eq!(s.first().await?, "a");
    let (n, empty) = s.both();
    assert_eq!(n.await?, 1);
    assert!(!empty.await?);
    assert!(Store::METHODS.iter().all(|m| m.is_async));
    ray.shutdown().await;
    Ok(())
}
