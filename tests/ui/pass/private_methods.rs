// Methods (and the constructor) without `pub`: the stubs keep that visibility.

#[ray::actor]
struct Secret {
    value: u32,
}

#[ray::actor]
impl Secret {
    fn new(value: u32) -> Self {
        Secret { value }
    }
    fn reveal(&self) -> u32 {
        self.value
    }
    pub(crate) fn bump(&mut self) -> u32 {
        self.value += 1;
        self.value
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let s = Secret::remote(41).unwrap();
    assert_eq!(s.bump().get_blocking().unwrap(), 42);
    assert_eq!(s.reveal().get_blocking().unwrap(), 42);
    drop(ray);
}
