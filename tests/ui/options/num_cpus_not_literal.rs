const CPUS: f64 = 2.0;

#[ray::actor(num_cpus = CPUS)]
pub struct Counter {
    value: i64,
}

fn main() {}
