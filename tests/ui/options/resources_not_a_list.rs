// Both macros share one resource-option parser: the same message for both.
#[ray::actor(resources = 2)]
pub struct Counter {
    value: i64,
}

#[ray::remote(num_gpus = 1, resources = "disk")]
fn embed(x: u32) -> u32 {
    x
}

fn main() {}
