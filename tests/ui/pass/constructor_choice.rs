// Two associated functions return `Self`; `#[method(constructor)]` picks one.

#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    pub fn zero() -> Self {
        Counter { value: 0 }
    }
    #[method(constructor)]
    pub fn with(value: i64, offset: i64) -> Self {
        Counter {
            value: value + offset,
        }
    }
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let c = Counter::remote(40, 2).unwrap();
    assert_eq!(c.get().get_blocking().unwrap(), 42);
    assert_eq!(Counter::zero().value, 0);
    drop(ray);
}
