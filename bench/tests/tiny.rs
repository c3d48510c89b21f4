//! CI's hook: `cargo test --workspace` runs the harness once at tiny sizes
//! (without the peers), so it cannot rot.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ray-bench"))
        .args(args)
        .output()
        .expect("running ray-bench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_tiny_run_prints_one_full_table() {
    let (ok, stdout, stderr) = run(&["--tiny"]);
    assert!(ok, "ray-bench --tiny failed:\n{stdout}\n{stderr}");
    for line in ["date:", "machine:", "command: cargo run -p ray-bench"] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    let header = stdout
        .lines()
        .find(|l| l.starts_with("| workload"))
        .unwrap_or_else(|| panic!("no table in:\n{stdout}"));
    for col in [
        "plain",
        "tokio",
        "ray",
        "ray ckpt-no",
        "ray recon=3",
        "ray local",
        "ray sync",
    ] {
        assert!(header.contains(col), "no column `{col}` in {header}");
    }
    for row in ["| W1 ", "| W2 ", "| W3 ", "| W4 ", "| idle actor"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row `{row}` in:\n{stdout}"));
        // At tiny sizes the memory figures are noise (the floor's can be 0 B).
        if row.starts_with("| W") {
            assert!(line.contains("x |"), "no ratio in {line}");
        }
    }
    let large = stdout
        .lines()
        .find(|l| l.starts_with("large results"))
        .unwrap_or_else(|| panic!("no large-results line in:\n{stdout}"));
    for part in ["64 KiB: tokio", "1 MiB: tokio", ", ray "] {
        assert!(large.contains(part), "no `{part}` in {large}");
    }
}

#[test]
fn only_and_bad_arguments() {
    let (ok, stdout, stderr) = run(&["--tiny", "--only", "W2"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("| W2 ")));
    assert!(!stdout.lines().any(|l| l.starts_with("| W1 ")));
    assert!(!stdout.contains("| idle actor"));
    let (ok, _, stderr) = run(&["--rounds", "zero"]);
    assert!(!ok);
    assert!(stderr.contains("not a number"), "{stderr}");
}
