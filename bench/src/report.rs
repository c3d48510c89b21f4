//! The header, the table and the notes under it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Sizes, Workload};
use crate::envs::Col;
use crate::probe::Memory;

pub fn print_header(argv: &[String], summary: &str) {
    let features = if cfg!(feature = "peers") {
        " --features peers"
    } else {
        ""
    };
    let profile = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    let extra = if argv.is_empty() {
        String::new()
    } else {
        format!(" -- {}", argv.join(" "))
    };
    println!("ray-bench: ray against the raw-tokio floor and peer frameworks (issue 8)");
    println!("date:    {}", utc_now());
    println!("machine: {}", machine());
    println!("command: cargo run -p ray-bench{profile}{features}{extra}");
    println!("{summary}");
    println!();
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    format!("{cores} cores, {model}")
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// `200000` as `200k`, `1000000` as `1M`, `200` as `200`.
fn count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn row_label(w: Workload, s: &Sizes) -> String {
    match w {
        Workload::W1 => format!("W1 {} seq calls, ns/call", count(s.n)),
        Workload::W2 => format!("W2 {} pipelined, calls/s", count(s.m)),
        Workload::W3 => format!("W3 {}x{} callers, calls/s", s.callers, count(s.k)),
        Workload::W4 => format!("W4 {} create+call+drop, actors/s", count(s.a)),
    }
}

/// The figure of one cell: ns per call for W1, operations per second otherwise.
fn figure(w: Workload, s: &Sizes, d: Duration) -> f64 {
    let ops = w.ops(s) as f64;
    let secs = d.as_secs_f64().max(1e-9);
    match w {
        Workload::W1 => secs * 1e9 / ops,
        _ => ops / secs,
    }
}

fn fmt_figure(w: Workload, x: f64) -> String {
    match w {
        Workload::W1 if x < 10.0 => format!("{x:.1} ns"),
        Workload::W1 => format!("{x:.0} ns"),
        _ => fmt_rate(x),
    }
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k/s", x / 1e3)
    } else {
        format!("{x:.0}/s")
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r < 0.01 {
        "<0.01x".into()
    } else if r < 10.0 {
        format!("{r:.2}x")
    } else {
        format!("{r:.0}x")
    }
}

fn fmt_mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// A cell: the figure, then its ratio to the tokio column of the same row.
fn cell(text: String, ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{text} {}", fmt_ratio(r)),
        None => text,
    }
}

pub fn print_table(
    cols: &[Col],
    workloads: &[Workload],
    s: &Sizes,
    medians: &HashMap<(Workload, Col), Duration>,
    memory: Option<&Memory>,
) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec![String::from("workload")];
    header.extend(cols.iter().map(|c| c.label().to_owned()));
    rows.push(header);

    for &w in workloads {
        let tokio = medians.get(&(w, Col::Tokio)).map(|&d| figure(w, s, d));
        let mut row = vec![row_label(w, s)];
        for &c in cols {
            let text = match medians.get(&(w, c)) {
                Some(&d) => {
                    let x = figure(w, s, d);
                    let ratio = tokio.filter(|_| c != Col::Tokio).map(|t| x / t);
                    cell(fmt_figure(w, x), ratio)
                }
                None => "-".into(),
            };
            row.push(text);
        }
        rows.push(row);
    }

    if let Some(m) = memory {
        let mut row = vec![format!("idle actor ({}), bytes/actor", count(s.idle))];
        let mut rss_row = vec![format!("RSS after {} calls", count(s.rss_calls))];
        for &c in cols {
            let (idle, rss) = match c {
                Col::Tokio => (cell(format!("{:.0} B", m.idle_bytes[0]), None), 0),
                Col::Ray => (
                    cell(
                        format!("{:.0} B", m.idle_bytes[1]),
                        Some(m.idle_bytes[1] / m.idle_bytes[0]),
                    ),
                    1,
                ),
                _ => ("-".into(), usize::MAX),
            };
            row.push(idle);
            rss_row.push(match (m.rss, rss) {
                (Some(r), i) if i < 2 => {
                    let (before, after) = r[i];
                    format!(
                        "{} (+{})",
                        fmt_mib(after),
                        fmt_mib(after.saturating_sub(before))
                    )
                }
                _ => "-".into(),
            });
        }
        rows.push(row);
        if m.rss.is_some() {
            rows.push(rss_row);
        }
    }

    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (text, &w))| {
                if i == 0 {
                    format!("{text:<w$}")
                } else {
                    format!("{text:>w$}")
                }
            })
            .collect();
        println!("| {} |", line.join(" | "));
        if n == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, &w)| {
                    if i == 0 {
                        format!(":{}", "-".repeat(w.max(1) - 1))
                    } else {
                        format!("{}:", "-".repeat(w.max(1) - 1))
                    }
                })
                .collect();
            println!(
                "|{}|",
                rule.iter()
                    .map(|r| format!(" {r} "))
                    .collect::<Vec<_>>()
                    .join("|")
            );
        }
    }
    println!();
}

pub fn print_notes(checkpoint_calls: u64, s: &Sizes, memory: bool) {
    println!("Each cell: median figure, then its ratio to the tokio cell of the same row");
    println!("(W1: lower is better; W2-W4 and memory: the ratio of the figures, so for");
    println!("W2-W4 higher is better, for memory lower is better).");
    println!("- plain: a direct `&mut` method call on a struct; W3's 8 callers take turns");
    println!("  on one thread (no concurrency).");
    println!(
        "- tokio: the floor, a spawned task over an unbounded mpsc of (msg, oneshot::Sender)."
    );
    if cfg!(feature = "peers") {
        println!("- kameo, ractor: idiomatic, unbounded mailboxes, on the same tokio runtime.");
        println!("  actix: its own System thread (actor and callers share that one thread),");
        println!("  unbounded mailbox (capacity 0).");
    }
    if checkpoint_calls == 0 {
        println!("- ray ckpt-no: #[ray::actor(checkpointable)], should_checkpoint says no; the");
        println!("  runtime does not call the checkpoint hooks yet (should_checkpoint was never");
        println!("  called in this run), so this column shows no policy cost yet.");
    } else {
        println!("- ray ckpt-no: #[ray::actor(checkpointable)], should_checkpoint called");
        println!("  {checkpoint_calls} times in this run, always answered no.");
    }
    println!("- ray recon=3: #[ray::actor(max_reconstructions = 3)] (the replay log, where the");
    println!("  runtime keeps one).");
    println!("- ray local: Config::local_mode(true), calls run inline in the caller (own");
    println!("  current-thread tokio runtime).");
    println!("- ray sync: a plain thread called ray::init outside any runtime and waits with");
    println!("  get_blocking(); W3 runs 8 OS threads.");
    println!(
        "- W4 times creation, one call each, and the drop until every actor's state is dropped."
    );
    if memory {
        println!(
            "- memory: each in a fresh child process; idle = RSS growth / {} actors that each",
            s.idle
        );
        if s.rss_calls > 0 {
            println!(
                "  answered one call; RSS after {} calls pipelined in batches of 1000 (+ growth).",
                s.rss_calls
            );
        } else {
            println!("  answered one call (the RSS-after-10M-calls row runs only at full size).");
        }
    }
    println!();
}
