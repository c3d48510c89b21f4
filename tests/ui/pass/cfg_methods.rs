// `#[cfg]` on methods: the stub and the METHODS entry follow the cfg.

#[ray::actor]
#[derive(Default)]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
    #[cfg(any())]
    pub fn never(&self) -> Missing {
        Missing
    }
    #[cfg(all())]
    #[method(num_returns = 2)]
    pub fn always(&self) -> (i64, i64) {
        (self.value, self.value + 1)
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let c = Counter::remote().unwrap();
    let (a, b) = c.always();
    assert_eq!(a.get_blocking().unwrap(), 0);
    assert_eq!(b.get_blocking().unwrap(), 1);
    assert_eq!(Counter::METHODS.len(), 2);
    assert_eq!(Counter::METHODS[1].name, "always");
    assert_eq!(Counter::METHODS[1].num_returns, 2);
    drop(ray);
}
