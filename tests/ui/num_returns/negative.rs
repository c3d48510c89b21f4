#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(num_returns = -1)]
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
