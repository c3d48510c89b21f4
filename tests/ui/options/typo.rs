#[ray::actor(max_reconstruction = 3)]
pub struct Counter {
    value: i64,
}

fn main() {}
