#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(num_return = 2)]
    pub fn split(&self) -> (i64, String) {
        (self.value, self.value.to_string())
    }
}

fn main() {}
