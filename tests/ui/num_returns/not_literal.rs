const TWO: usize = 2;

#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(num_returns = TWO)]
    pub fn split(&self) -> (i64, i64) {
        (self.value, self.value)
    }
}

fn main() {}
