#[ray::actor(priority = 3)]
pub struct Counter {
    value: i64,
}

fn main() {}
