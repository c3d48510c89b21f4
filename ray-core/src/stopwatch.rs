//! Milliseconds since a start, cheap enough to read after every call.
//!
//! The checkpoint policy sees the time elapsed since the last checkpoint
//! after every completed call (SEMANTICS §8). A precise clock read
//! (`Instant::now`, ~20 ns here) is a seventh of a whole short call, so the
//! [`Stopwatch`] reads it at most once per tick of the kernel's coarse clock
//! (`CLOCK_MONOTONIC_COARSE`, one scheduler tick, 1-4 ms, read from memory in
//! a few nanoseconds): within one tick, later reads repeat the first read's
//! value.
//!
//! What a reader gets: the first read in each tick is exact; a later read in
//! the same tick lags the precise value by less than the time since that
//! first read, so by less than one tick, and never runs ahead. A read after a
//! pause (a sleep, an idle actor) is in a new tick, so it is exact.
//! Without a coarse clock (not Linux), every read is precise.

use std::time::Instant;

/// Milliseconds since the last [`restart`](Stopwatch::restart).
#[derive(Debug)]
pub(crate) struct Stopwatch {
    start: Instant,
    /// The coarse clock at the last precise read (`None`: read precisely).
    tick: Option<u64>,
    /// The precise elapsed milliseconds at that read.
    ms: u64,
}

impl Stopwatch {
    /// A stopwatch started now.
    pub(crate) fn started() -> Self {
        Stopwatch {
            start: Instant::now(),
            tick: coarse_now(),
            ms: 0,
        }
    }

    /// Starts again from zero, now.
    pub(crate) fn restart(&mut self) {
        *self = Stopwatch::started();
    }

    /// Whole milliseconds since the start (see the module docs for the
    /// precision).
    #[inline]
    pub(crate) fn elapsed_ms(&mut self) -> u64 {
        let tick = coarse_now();
        if tick.is_none() || tick != self.tick {
            self.tick = tick;
            self.ms = self.start.elapsed().as_millis() as u64;
        }
        self.ms
    }
}

/// The coarse monotonic clock in nanoseconds.
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (r == 0).then(|| (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn coarse_now() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn starts_at_zero_and_is_exact_after_a_pause() {
        let mut w = Stopwatch::started();
        let read = w.elapsed_ms();
        assert!(read <= w.start.elapsed().as_millis() as u64);
        // Pauses longer than a tick (at most 10 ms: HZ >= 100).
        for pause in [12u64, 30, 15] {
            let before = w.start.elapsed().as_millis() as u64;
            std::thread::sleep(Duration::from_millis(pause));
            // A read after a pause is in a new tick: at least the precise
            // elapsed time before the pause plus the pause.
            let read = w.elapsed_ms();
            let after = w.start.elapsed().as_millis() as u64;
            assert!(read >= before + pause, "{read} < {before} + {pause}");
            assert!(read <= after, "{read} ran ahead of {after}");
        }
        std::thread::sleep(Duration::from_millis(12));
        w.restart();
        let read = w.elapsed_ms();
        assert!(read <= w.start.elapsed().as_millis() as u64, "restarted");
        assert!(read < 12, "restarted: counts from the restart");
    }

    #[test]
    fn never_runs_ahead_and_lags_by_less_than_a_tick() {
        let mut w = Stopwatch::started();
        let mut last = 0;
        let until = Instant::now() + Duration::from_millis(40);
        while Instant::now() < until {
            let before = w.start.elapsed().as_millis() as u64;
            let read = w.elapsed_ms();
            let after = w.start.elapsed().as_millis() as u64;
            assert!(read >= last, "went backwards: {read} < {last}");
            assert!(read <= after, "{read} ran ahead of {after}");
            // The read repeats a precise read made in the same tick (at most
            // 10 ms: HZ >= 100), so before this one started.
            assert!(before <= read + 10, "lagged: {read} vs {before}");
            last = read;
        }
    }
}
