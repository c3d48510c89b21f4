#[ray::actor(num_gpus = 1.5)]
pub struct Counter {
    value: i64,
}

fn main() {}
