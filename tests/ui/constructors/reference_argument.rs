#[ray::actor]
pub struct Greeter {
    name: String,
}

#[ray::actor]
impl Greeter {
    pub fn new(name: &str) -> Self {
        Greeter {
            name: name.to_owned(),
        }
    }
    pub fn name(&self) -> String {
        self.name.clone()
    }
}

fn main() {}
