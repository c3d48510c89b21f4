#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn zero() -> Self {
        Counter { value: 0 }
    }
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
