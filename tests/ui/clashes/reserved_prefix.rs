#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn __ray_invoke(&self) -> i64 {
        self.value
    }
}

fn main() {}
