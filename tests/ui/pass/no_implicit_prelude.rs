// Every path in the generated code is absolute: it compiles without the prelude.

mod actors {
    #![no_implicit_prelude]

    #[::ray::actor(num_cpus = 1, max_reconstructions = 2)]
    pub struct Counter {
        value: i64,
    }

    #[::ray::actor]
    impl Counter {
        pub fn new(value: i64) -> ::std::result::Result<Self, ::std::string::String> {
            ::std::result::Result::Ok(Counter { value })
        }
        pub fn incr(&mut self, by: i64) -> i64 {
            self.value += by;
            self.value
        }
        pub fn check(&self) -> ::std::result::Result<i64, ::std::string::String> {
            ::std::result::Result::Ok(self.value)
        }
        #[method(num_returns = 2)]
        pub fn split(&self) -> (i64, ::std::string::String) {
            (self.value, ::std::string::ToString::to_string(&self.value))
        }
        #[method(num_returns = 0)]
        pub fn reset(&mut self) {
            self.value = 0;
        }
        pub async fn slow(&self) -> i64 {
            self.value
        }
    }

    #[::ray::actor]
    #[derive(Default)]
    pub struct Empty {}

    #[::ray::actor]
    impl Empty {
        pub fn ping(&self) {}
    }

    pub fn run() {
        let ray =
            ::ray::init(<::ray::Config as ::std::default::Default>::default().local_mode(true))
                .unwrap();
        let c = Counter::remote(1).unwrap();
        ::std::assert_eq!(c.incr(2).get_blocking().unwrap(), 3);
        ::std::assert_eq!(c.check().get_blocking().unwrap(), 3);
        let (a, b) = c.split();
        ::std::assert_eq!(a.get_blocking().unwrap(), 3);
        ::std::assert_eq!(b.get_blocking().unwrap(), "3");
        c.reset();
        ::std::assert_eq!(c.slow().get_blocking().unwrap(), 0);
        let e = Empty::remote().unwrap();
        e.ping().get_blocking().unwrap();
        ::std::mem::drop(ray);
    }
}

fn main() {
    actors::run();
}
