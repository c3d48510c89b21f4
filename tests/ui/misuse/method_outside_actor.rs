use ray::method;

pub struct Counter {
    value: i64,
}

impl Counter {
    #[method(num_returns = 2)]
    pub fn split(&self) -> (i64, i64) {
        (self.value, self.value)
    }
}

fn main() {}
