#[ray::actor(max_reconstructions = 1073741825)]
pub struct Counter {
    value: i64,
}

fn main() {}
