#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    #[method(constructor)]
    pub fn start() -> i64 {
        0
    }
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
