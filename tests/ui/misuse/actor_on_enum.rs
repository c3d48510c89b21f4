#[ray::actor]
pub enum Light {
    On,
    Off,
}

fn main() {}
