// Every problem is reported in one compile.

#[ray::actor(num_cpus = -1, resources(GPU = 1), checkpointable = true)]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn new(value: i64) -> Self {
        Counter { value }
    }
    #[method(num_returns = 2)]
    pub fn get(&self) -> i64 {
        self.value
    }
    pub fn take(self) -> i64 {
        self.value
    }
}

fn main() {}
