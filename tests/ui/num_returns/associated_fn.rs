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
    pub fn pair() -> (i64, i64) {
        (1, 2)
    }
}

fn main() {}
