#[ray::actor(checkpointable)]
pub struct Account {
    balance: i64,
}

fn main() {}
