#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {
    let _ = __ray_invoke;
    let _ = Counter::__ray_construct;
}
