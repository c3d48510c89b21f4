#[ray::actor]
#[derive(Default)]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    #[method(constructor)]
    pub fn reset(&mut self) -> Self {
        Counter { value: self.value }
    }
}

fn main() {}
