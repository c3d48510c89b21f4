#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
