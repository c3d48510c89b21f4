#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor(max_reconstructions = 3)]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
