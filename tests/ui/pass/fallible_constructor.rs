// A constructor returning `Result<Self, E>`: its `Err` fails the creation.

use std::fmt;

#[derive(Debug)]
pub struct TooBig(u8);

impl fmt::Display for TooBig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is too big", self.0)
    }
}

#[ray::actor]
pub struct Small {
    value: u8,
}

#[ray::actor]
impl Small {
    pub fn new(value: u8) -> Result<Self, TooBig> {
        if value > 10 {
            Err(TooBig(value))
        } else {
            Ok(Small { value })
        }
    }
    pub fn get(&self) -> u8 {
        self.value
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let ok = Small::remote(3).unwrap();
    assert_eq!(ok.get().get_blocking().unwrap(), 3);
    let err = match Small::remote(11) {
        Err(e) => e,
        Ok(h) => h.get().get_blocking().unwrap_err(),
    };
    assert!(err.to_string().contains("11 is too big"), "{err}");
    drop(ray);
}
