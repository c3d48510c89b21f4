#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }
}

fn main() {
    let c = Counter::remote(1).unwrap();
    let _ = c.incr(String::from("5"));
}
