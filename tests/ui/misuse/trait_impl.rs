#[ray::actor]
#[derive(Default)]
pub struct Counter {
    value: i64,
}

pub trait Get {
    fn get(&self) -> i64;
}

#[ray::actor]
impl Get for Counter {
    fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
