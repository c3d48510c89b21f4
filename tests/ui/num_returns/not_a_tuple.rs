#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(num_returns = 2)]
    pub fn get(&self) -> Vec<i64> {
        vec![self.value]
    }
}

fn main() {}
