#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    #[method(constructor)]
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(constructor)]
    pub fn zero() -> Self {
        Counter { value: 0 }
    }
}

fn main() {
    let _ = Counter::remote(1);
}
