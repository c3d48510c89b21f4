// No associated function returns `Self`: `Default` builds the actor and
// `remote()` takes no arguments. Other associated functions are left alone.

#[ray::actor]
#[derive(Default)]
pub struct Tally {
    count: u64,
}

#[ray::actor]
impl Tally {
    pub fn helper() -> u64 {
        7
    }
    pub fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.count
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let t = Tally::remote().unwrap();
    assert_eq!(t.add(Tally::helper()).get_blocking().unwrap(), 7);
    assert_eq!(Tally::METHODS.len(), 1);
    drop(ray);
}
