// Argument names that look like the generated locals do not collide with them,
// and arguments accept values, refs and `&ref`s.

#[ray::actor]
#[derive(Default)]
pub struct Echo {}

#[ray::actor]
impl Echo {
    #[allow(clippy::too_many_arguments)]
    pub fn echo(
        &self,
        __ray_this: i64,
        __ray_value: i64,
        __ray_error: i64,
        __ray_invoke: i64,
        __raw: i64,
    ) -> i64 {
        __ray_this + __ray_value + __ray_error + __ray_invoke + __raw
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let e = Echo::remote().unwrap();
    let r = ray::put(10);
    let sum = e.echo(1, 2, ray::put(3), &r, r.clone());
    assert_eq!(sum.get_blocking().unwrap(), 26);
    drop(ray);
}
