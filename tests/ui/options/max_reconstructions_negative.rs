#[ray::actor(max_reconstructions = -1)]
pub struct Counter {
    value: i64,
}

fn main() {}
