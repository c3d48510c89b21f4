//! The peer frameworks, each in its idiomatic setup with an unbounded mailbox.
//! Compiled only with `--features peers`.

use std::future::Future;

use crate::common::{Bench, Expect, Live, LiveToken};

/// kameo: `#[derive(Actor)]`, `Message` impl, `ask`.
pub mod kameo_col {
    use super::*;
    use kameo::actor::{ActorRef, Spawn};
    use kameo::mailbox;
    use kameo::message::{Context, Message};

    #[derive(kameo::Actor)]
    pub struct KCounter {
        value: u64,
        _live: LiveToken,
    }

    pub struct Incr(u64);

    impl Message<Incr> for KCounter {
        type Reply = u64;

        async fn handle(&mut self, msg: Incr, _ctx: &mut Context<Self, Self::Reply>) -> u64 {
            self.value += msg.0;
            self.value
        }
    }

    #[derive(Clone)]
    pub struct KameoCounter(ActorRef<KCounter>);

    impl Bench for KameoCounter {
        async fn create(live: Live) -> Self {
            let state = KCounter {
                value: 0,
                _live: live.token(),
            };
            KameoCounter(KCounter::spawn_with_mailbox(state, mailbox::unbounded()))
        }

        fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static {
            let pending = self
                .0
                .ask(Incr(by))
                .try_enqueue()
                .unwrap_or_else(|e| panic!("kameo enqueue failed: {e}"));
            Expect(pending)
        }

        async fn call(&self, by: u64) -> u64 {
            self.0.ask(Incr(by)).await.expect("a kameo ask failed")
        }
    }
}

/// ractor: `Actor` impl with a message enum, `call!` / `RpcReplyPort`.
pub mod ractor_col {
    use super::*;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    pub struct RCounter;

    pub enum RMsg {
        Incr(u64, RpcReplyPort<u64>),
    }

    pub struct RState {
        value: u64,
        _live: LiveToken,
    }

    impl Actor for RCounter {
        type Msg = RMsg;
        type State = RState;
        type Arguments = Live;

        async fn pre_start(
            &self,
            _myself: ActorRef<RMsg>,
            live: Live,
        ) -> Result<RState, ActorProcessingErr> {
            Ok(RState {
                value: 0,
                _live: live.token(),
            })
        }

        async fn handle(
            &self,
            _myself: ActorRef<RMsg>,
            msg: RMsg,
            state: &mut RState,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                RMsg::Incr(by, reply) => {
                    state.value += by;
                    let _ = reply.send(state.value);
                }
            }
            Ok(())
        }
    }

    #[derive(Clone)]
    pub struct RactorCounter(ActorRef<RMsg>);

    impl Bench for RactorCounter {
        async fn create(live: Live) -> Self {
            let (actor, _join) = Actor::spawn(None, RCounter, live)
                .await
                .expect("spawning a ractor actor");
            RactorCounter(actor)
        }

        fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static {
            let (tx, rx) = ractor::concurrency::oneshot();
            if self.0.cast(RMsg::Incr(by, tx.into())).is_err() {
                panic!("ractor cast failed");
            }
            Expect(rx)
        }

        async fn call(&self, by: u64) -> u64 {
            match ractor::call!(self.0, RMsg::Incr, by) {
                Ok(v) => v,
                Err(e) => panic!("a ractor call failed: {e}"),
            }
        }

        /// ractor actors live until stopped, whatever refs remain.
        fn retire(self) {
            self.0.stop(None);
        }
    }
}

/// actix: `Actor` + `Handler`, `Addr::send`, on its own `System` thread;
/// unbounded mailbox (capacity 0).
pub mod actix_col {
    use super::*;
    use actix::{Actor, Addr, Context, Handler, Message};

    pub struct ACounter {
        value: u64,
        _live: LiveToken,
    }

    impl Actor for ACounter {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "u64")]
    pub struct Incr(u64);

    impl Handler<Incr> for ACounter {
        type Result = u64;

        fn handle(&mut self, msg: Incr, _ctx: &mut Context<Self>) -> u64 {
            self.value += msg.0;
            self.value
        }
    }

    #[derive(Clone)]
    pub struct ActixCounter(Addr<ACounter>);

    impl Bench for ActixCounter {
        async fn create(live: Live) -> Self {
            let token = live.token();
            ActixCounter(ACounter::create(move |ctx| {
                ctx.set_mailbox_capacity(0); // 0: unbounded
                ACounter {
                    value: 0,
                    _live: token,
                }
            }))
        }

        fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static {
            let req = self.0.send(Incr(by));
            Expect(req)
        }

        fn spawn_task<F>(f: F) -> tokio::task::JoinHandle<F::Output>
        where
            F: Future + Send + 'static,
            F::Output: Send + 'static,
        {
            actix::spawn(f)
        }
    }
}
