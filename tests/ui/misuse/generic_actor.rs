#[ray::actor]
pub struct Cell<T> {
    value: T,
}

fn main() {}
