//! The floor: a hand-written tokio actor, a spawned task over an unbounded
//! `mpsc` of `(msg, oneshot::Sender)`.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::common::{Bench, Expect, Live, LiveToken};

enum Msg {
    Incr(u64),
}

struct State {
    value: u64,
    _live: LiveToken,
}

/// The actor task: one message at a time, until every sender is dropped.
async fn run(mut state: State, mut rx: mpsc::UnboundedReceiver<(Msg, oneshot::Sender<u64>)>) {
    while let Some((msg, reply)) = rx.recv().await {
        match msg {
            Msg::Incr(by) => {
                state.value += by;
                let _ = reply.send(state.value);
            }
        }
    }
}

/// The caller's side: a sender into the actor's mailbox.
#[derive(Clone)]
pub struct TokioCounter {
    tx: mpsc::UnboundedSender<(Msg, oneshot::Sender<u64>)>,
}

impl Bench for TokioCounter {
    async fn create(live: Live) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<(Msg, oneshot::Sender<u64>)>();
        let state = State {
            value: 0,
            _live: live.token(),
        };
        tokio::spawn(run(state, rx));
        TokioCounter { tx }
    }

    fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        if self.tx.send((Msg::Incr(by), reply)).is_err() {
            panic!("the tokio actor stopped");
        }
        Expect(rx)
    }
}
