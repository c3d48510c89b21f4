//! The benchmark harness of issue 8: ray against a plain method call, the
//! raw-tokio floor and (with `--features peers`) kameo, ractor and actix.
//!
//! ```sh
//! cargo run -p ray-bench --release --features peers            # the full table
//! cargo run -p ray-bench --features peers -- --tiny            # CI's smoke run
//! cargo run -p ray-bench --release -- --rounds 3 --only W1,W3  # a subset
//! ```
//!
//! Every column runs in this one process; within each round every column runs
//! each workload once, in an order shuffled afresh each round (neighbours
//! change too), so machine noise hits every column alike. Each figure is the
//! median of the rounds.

mod common;
mod envs;
mod large;
#[cfg(feature = "peers")]
mod peers;
mod probe;
mod ray_cols;
mod report;
mod store;
mod tokio_floor;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Sizes, Workload};
use envs::{Col, Envs};

/// What the command line asked for.
#[derive(Debug, Clone)]
struct Args {
    tiny: bool,
    rounds: usize,
    workloads: Vec<Workload>,
    memory: bool,
    /// Column names to keep (`None`: all); also skips the store figures.
    cols: Option<Vec<String>>,
    /// Print every round's figure as it is measured (stderr).
    raw: bool,
}

const USAGE: &str = "\
usage: ray-bench [--tiny] [--rounds R] [--only W1,W2,W3,W4,MEM] [--cols tokio,ray,..] [--raw]

  --tiny        sizes divided by 1000, 1 round (CI's smoke run)
  --rounds R    rounds per figure (default 5; the median is printed)
  --only LIST   run only these rows: W1..W4 and MEM (the memory rows)
  --cols LIST   run only these columns (names as in the table header, e.g.
                tokio,ray,ray-local: `-` may stand for a space); for profiling
  --raw         also print each round's time (and the process's minor page
                faults meanwhile) per row and column as it is measured
                (stderr), to see a median's spread";

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        tiny: false,
        rounds: 5,
        workloads: Workload::ALL.to_vec(),
        memory: true,
        cols: None,
        raw: false,
    };
    let mut rounds = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tiny" => args.tiny = true,
            "--raw" => args.raw = true,
            "--rounds" => {
                let r = it.next().ok_or("--rounds needs a number")?;
                let r: usize = r
                    .parse()
                    .map_err(|_| format!("--rounds {r}: not a number"))?;
                if r == 0 {
                    return Err("--rounds must be at least 1".into());
                }
                rounds = Some(r);
            }
            "--only" => {
                let list = it.next().ok_or("--only needs a list, e.g. W1,W3")?;
                args.workloads.clear();
                args.memory = false;
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match item.to_ascii_uppercase().as_str() {
                        "MEM" => args.memory = true,
                        w => args.workloads.push(
                            *Workload::ALL
                                .iter()
                                .find(|x| x.name() == w)
                                .ok_or(format!("--only: unknown row `{item}` (W1..W4, MEM)"))?,
                        ),
                    }
                }
            }
            "--cols" => {
                let list = it.next().ok_or("--cols needs a list, e.g. tokio,ray")?;
                let names: Vec<String> = list
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                for n in &names {
                    if !Col::all().iter().any(|c| col_matches(*c, n)) {
                        return Err(format!("--cols: unknown column `{n}`"));
                    }
                }
                args.cols = Some(names);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    args.rounds = rounds.unwrap_or(if args.tiny { 1 } else { 5 });
    Ok(args)
}

/// The column order of round `round`: a fresh permutation each round (a
/// fixed seed per round, so runs are comparable). Rotating one order would
/// keep every column behind the same neighbour, and a column pays for what
/// its predecessor leaves behind (a heap to regrow after the floor's W4,
/// say), so the neighbours change too.
fn round_order(cols: &[Col], round: usize) -> Vec<Col> {
    let mut order = cols.to_vec();
    // SplitMix64: enough to shuffle a dozen columns, no dependency.
    let mut x = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(round as u64 + 1);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..order.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--probe") {
        probe::child_main(&argv[1..]);
        return;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let sizes = if args.tiny { Sizes::TINY } else { Sizes::FULL };
    report::print_header(&argv, &args_summary(&args, &sizes));

    let envs = Envs::start();
    let cols: Vec<Col> = Col::all()
        .into_iter()
        .filter(|c| {
            args.cols
                .as_ref()
                .is_none_or(|keep| keep.iter().any(|k| col_matches(*c, k)))
        })
        .collect();

    // Warm-up: every column runs every workload once at tiny sizes.
    for &w in &args.workloads {
        for &c in &cols {
            envs.run(c, w, Sizes::TINY);
        }
    }

    let mut times: HashMap<(Workload, Col), Vec<Duration>> = HashMap::new();
    for round in 0..args.rounds {
        eprintln!("round {}/{} ...", round + 1, args.rounds);
        let order = round_order(&cols, round);
        for &w in &args.workloads {
            for &c in &order {
                let faults = args.raw.then(common::minor_faults);
                let d = envs.run(c, w, sizes);
                if let Some(f0) = faults {
                    eprintln!(
                        "raw: round {} {} {}: {:.3} ms, {} minor page faults",
                        round + 1,
                        w.name(),
                        c.label(),
                        d.as_secs_f64() * 1e3,
                        common::minor_faults().saturating_sub(f0)
                    );
                }
                times.entry((w, c)).or_default().push(d);
            }
        }
    }
    let checkpoint_calls = ray_cols::should_checkpoint_calls();
    let large = args.cols.is_none().then(|| {
        eprintln!("large results ...");
        large::measure(&envs, args.rounds, args.tiny)
    });
    drop(envs);

    let memory = if args.memory {
        eprintln!("memory probes ...");
        Some(probe::measure_all(&sizes))
    } else {
        None
    };

    let medians: HashMap<(Workload, Col), Duration> = times
        .into_iter()
        .map(|(key, mut ds)| {
            ds.sort();
            (key, ds[ds.len() / 2])
        })
        .collect();
    report::print_table(&cols, &args.workloads, &sizes, &medians, memory.as_ref());
    report::print_notes(checkpoint_calls, &sizes, memory.is_some());
    if let Some(line) = large {
        println!();
        println!("{line}");
    }
    if args.cols.is_none() {
        store::print(if args.tiny { 20 } else { 2000 });
    }
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
}

/// Whether `name` names column `c` (its label, spaces optionally as `-`).
fn col_matches(c: Col, name: &str) -> bool {
    c.label() == name || c.label().replace(' ', "-") == name
}

fn args_summary(args: &Args, s: &Sizes) -> String {
    let ws: Vec<&str> = args.workloads.iter().map(|w| w.name()).collect();
    format!(
        "sizes: W1 N={}, W2 M={}, W3 {}x{}, W4 A={}, idle actors {}, {}; \
         rows {}{}; median of {} round{}, columns interleaved, shuffled each round",
        s.n,
        s.m,
        s.callers,
        s.k,
        s.a,
        s.idle,
        if s.rss_calls > 0 {
            format!("RSS after {} calls", s.rss_calls)
        } else {
            "no RSS-after-calls probe".to_owned()
        },
        ws.join(","),
        if args.memory { ",MEM" } else { "" },
        args.rounds,
        if args.rounds == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse_args(&v)
    }

    #[test]
    fn flags() {
        let a = parse("").unwrap();
        assert_eq!(
            (a.tiny, a.rounds, a.workloads.len(), a.memory),
            (false, 5, 4, true)
        );
        let a = parse("--tiny").unwrap();
        assert_eq!((a.tiny, a.rounds), (true, 1));
        let a = parse("--tiny --rounds 3 --only w1,W3").unwrap();
        assert_eq!(a.rounds, 3);
        assert_eq!(a.workloads, vec![Workload::W1, Workload::W3]);
        assert!(!a.memory);
        assert!(parse("--only MEM").unwrap().memory);
        assert!(!a.raw);
        assert!(parse("--raw --only W2").unwrap().raw);
        assert!(parse("--rounds 0").is_err());
        assert!(parse("--only W9").is_err());
        assert!(parse("--bogus").is_err());
    }
}
