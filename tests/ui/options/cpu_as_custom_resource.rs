#[ray::actor(resources(disk = 1, CPU = 2))]
pub struct Counter {
    value: i64,
}

fn main() {}
