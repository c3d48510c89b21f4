#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn greet(&self, name: &str) -> String {
        format!("{name}: {}", self.value)
    }
}

fn main() {}
