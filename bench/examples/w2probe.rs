use ray::prelude::*;
use std::time::Instant;

#[ray::actor]
pub struct C {
    v: u64,
}
#[ray::actor]
impl C {
    pub fn new() -> Self {
        C { v: 0 }
    }
    pub fn incr(&mut self, by: u64) -> u64 {
        self.v += by;
        self.v
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ray = rt
        .block_on(async { ray::init(ray::Config::default()) })
        .unwrap();
    rt.block_on(async {
        tokio::spawn(async {
        for _round in 0..6 {
            let h = C::remote().unwrap();
            assert_eq!(h.incr(0).await.unwrap(), 0);
            let m = 1_000_000u64;
            let t = Instant::now();
            let replies: Vec<_> = (0..m).map(|_| h.incr(1)).collect();
            let ts = t.elapsed();
            let mut done_at = None;
            let mut pend = 0u64;
            let mut caught = None;
            let last_ready_at_send = replies.last().unwrap().is_ready();
            let n = replies.len();
            let mut it = replies.into_iter().enumerate();
            let mut rest = Vec::new();
            // keep the last ref aside to check readiness
            let mut all: Vec<_> = Vec::with_capacity(n);
            while let Some((i, r)) = it.next() { if i + 1 == n { rest.push(r); } else { all.push(r); } }
            let last = rest.pop().unwrap();
            for (i, r) in all.into_iter().enumerate() {
                if i % 1024 == 0 && done_at.is_none() && last.is_ready() { done_at = Some((t.elapsed(), i)); }
                if !r.is_ready() { pend += 1; if caught.is_none() { caught = Some((t.elapsed(), i)); } }
                assert_eq!(r.await.unwrap(), i as u64 + 1);
            }
            assert_eq!(last.await.unwrap(), m);
            let d = t.elapsed();
            eprintln!("send {ts:?} total {d:?} ({:.2}M/s) actor-done {done_at:?} first-catch-up {caught:?} pending-reads {pend} last-ready-at-send {last_ready_at_send}", m as f64 / d.as_secs_f64() / 1e6);
        }
        }).await.unwrap();
    });
}
