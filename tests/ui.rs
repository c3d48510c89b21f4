//! Compile-time diagnostics of `#[ray::actor]` and `#[method]`, and corner
//! cases that must compile. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test ui`, then read every one of them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/options/*.rs");
    t.compile_fail("tests/ui/num_returns/*.rs");
    t.compile_fail("tests/ui/receivers/*.rs");
    t.compile_fail("tests/ui/constructors/*.rs");
    t.compile_fail("tests/ui/clashes/*.rs");
    t.compile_fail("tests/ui/misuse/*.rs");
    t.compile_fail("tests/ui/arguments/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
