//! Arguments, return kinds and method metadata: the typed plumbing between a
//! generated stub and the executor.

use std::future::Future;
use std::pin::Pin;

use crate::error::{Error, Result};
use crate::object::{self, ObjectRef, ObjectSender, Slot, Stored, Wake};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One argument of a remote call: a value, or a ref resolved before the call runs.
#[derive(Debug)]
pub enum Arg<T> {
    /// A value, moved into the call.
    Value(T),
    /// An object produced elsewhere; the call waits for it and fails with its
    /// error if it failed.
    Ref(ObjectRef<T>),
}

impl<T: Clone> Clone for Arg<T> {
    fn clone(&self) -> Self {
        match self {
            Arg::Value(v) => Arg::Value(v.clone()),
            Arg::Ref(r) => Arg::Ref(r.clone()),
        }
    }
}

/// What a stub argument accepts for a parameter of type `T`: a `T`, an
/// `ObjectRef<T>`, or an `&ObjectRef<T>` (and a `&str` for a `String`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed where the remote method expects `{T}`",
    label = "expected `{T}` or `ObjectRef<{T}>`",
    note = "each argument of a remote call accepts a value of the parameter's type, or an `ObjectRef` (or `&ObjectRef`) of it"
)]
pub trait IntoArg<T> {
    /// Converts into an [`Arg`].
    fn into_arg(self) -> Arg<T>;
}

impl<T> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Value(self)
    }
}

impl<T> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self)
    }
}

impl<T> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self.clone())
    }
}

/// A string literal where the method takes a `String`: `actor.greet("hi")`.
impl IntoArg<String> for &str {
    fn into_arg(self) -> Arg<String> {
        Arg::Value(self.to_owned())
    }
}

impl<T: Clone + Send + 'static> Arg<T> {
    fn is_ready(&self) -> bool {
        match self {
            Arg::Value(_) => true,
            Arg::Ref(r) => r.is_ready(),
        }
    }

    /// Inlined, with a ref's read out of line: a plain value is a move
    /// (as a call of its own with the read inline, ~16 instructions per
    /// argument; callgrind, W2).
    #[inline(always)]
    fn take(self) -> Stored<T> {
        match self {
            Arg::Value(v) => Ok(v),
            Arg::Ref(r) => Self::take_ref(r),
        }
    }

    #[inline(never)]
    fn take_ref(r: ObjectRef<T>) -> Stored<T> {
        r.try_get()
            .unwrap_or_else(|| {
                Err(Error::invalid(
                    "internal: argument taken before it was ready (please report)",
                ))
            })
            .map_err(Box::new)
    }
}

/// The arguments of one call, as a tuple of [`Arg`]s.
pub trait ArgTuple: Send + 'static {
    /// The resolved values, as a tuple.
    type Values: Send + 'static;
    /// Whether every argument is available now.
    fn is_ready(&self) -> bool;
    /// Waits until every argument is available.
    fn wait_ready(&self) -> BoxFuture<'static, ()>;
    /// Takes the values; a failed ref gives its error (boxed: the values
    /// go through the call path, and mostly there is no error).
    fn take(self) -> Stored<Self::Values>;
    /// A copy (for local mode and the replay log).
    fn duplicate(&self) -> Self;
}

macro_rules! arg_tuple {
    ($($t:ident $v:ident),*) => {
        impl<$($t: Clone + Send + 'static),*> ArgTuple for ($(Arg<$t>,)*) {
            type Values = ($($t,)*);

            #[allow(unused_variables)]
            fn is_ready(&self) -> bool {
                let ($($v,)*) = self;
                true $(&& $v.is_ready())*
            }

            #[allow(unused_variables)]
            fn wait_ready(&self) -> BoxFuture<'static, ()> {
                let ($($v,)*) = self;
                $(let $v = match $v { Arg::Ref(r) => Some(r.clone()), Arg::Value(_) => None };)*
                Box::pin(async move {
                    $(if let Some(r) = $v { r.wait_ready().await; })*
                })
            }

            #[allow(clippy::unused_unit)]
            #[inline]
            fn take(self) -> Stored<Self::Values> {
                let ($($v,)*) = self;
                Ok(($($v.take()?,)*))
            }

            #[allow(clippy::unused_unit)]
            fn duplicate(&self) -> Self {
                let ($($v,)*) = self;
                ($($v.clone(),)*)
            }
        }
    };
}

arg_tuple!();
arg_tuple!(A a);
arg_tuple!(A a, B b);
arg_tuple!(A a, B b, C c);
arg_tuple!(A a, B b, C c, D d);
arg_tuple!(A a, B b, C c, D d, E e);
arg_tuple!(A a, B b, C c, D d, E e, F f);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l, M m);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l, M m, N n);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l, M m, N n, O o);
arg_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l, M m, N n, O o, P p);

/// How a method's result reaches its callers (`#[method(num_returns = N)]`).
pub trait Returns: 'static {
    /// What the method body produces: `T`, `()` or an N-tuple.
    type Payload: Send + 'static;
    /// What the stub returns: `ObjectRef<T>`, `()` or an N-tuple of refs.
    type Refs;
    /// Where the runtime puts the result.
    type Sink: Send + 'static;
    /// A fresh pair.
    fn channel() -> (Self::Refs, Self::Sink);
    /// Delivers the result. Returns the error if no caller can see it
    /// (fire-and-forget calls), so the runtime can report it.
    fn deliver(sink: Self::Sink, result: Result<Self::Payload>) -> Option<Error>;

    /// The part of an actor method call's results kept inside the call's
    /// own allocation: `One`'s result slot; nothing for the others.
    #[doc(hidden)]
    type Inline: Send + Sync + 'static;
    /// Where an actor method call's results kept outside the call go: the
    /// senders of `Many`'s refs; nothing for the others (a `One` call's
    /// result goes to its inline slot).
    #[doc(hidden)]
    type CallSink: Send + 'static;
    /// The results of an actor method call: refs made now (else made from
    /// the call, [`CallRefs`](crate::exec::CallRefs)), a sink for results
    /// kept outside the call, and the inline part.
    #[doc(hidden)]
    fn call_channel() -> (Option<Self::Refs>, Option<Self::CallSink>, Self::Inline);
    /// Delivers a method call's result; returns the error if no caller can
    /// see it (boxed: mostly there is none, and this goes back up through
    /// the call path), and the waiters of the inline result to wake.
    #[doc(hidden)]
    fn deliver_call(
        inline: &Self::Inline,
        sink: Option<Self::CallSink>,
        result: Stored<Self::Payload>,
    ) -> (Option<Box<Error>>, Wake);
    /// A method call was dropped unrun: its results fail with
    /// [`Error::ObjectLost`].
    #[doc(hidden)]
    fn lose_call(inline: &Self::Inline, sink: Option<Self::CallSink>);
}

/// `num_returns = 1`: one [`ObjectRef`].
#[derive(Debug)]
pub struct One<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Send + Clone + 'static> Returns for One<T> {
    type Payload = T;
    type Refs = ObjectRef<T>;
    type Sink = ObjectSender<T>;
    fn channel() -> (ObjectRef<T>, ObjectSender<T>) {
        object::channel()
    }
    fn deliver(sink: ObjectSender<T>, result: Result<T>) -> Option<Error> {
        sink.send(result);
        None
    }
    type Inline = Slot<T>;
    type CallSink = ();
    fn call_channel() -> (Option<ObjectRef<T>>, Option<()>, Slot<T>) {
        (None, None, Slot::new())
    }
    #[inline]
    fn deliver_call(
        inline: &Slot<T>,
        _: Option<()>,
        result: Stored<T>,
    ) -> (Option<Box<Error>>, Wake) {
        (None, inline.complete_later(result))
    }
    fn lose_call(inline: &Slot<T>, _: Option<()>) {
        inline.lose();
    }
}

/// `num_returns = 0`: fire and forget, failures go to the error stream.
#[derive(Debug)]
pub struct Zero;

impl Returns for Zero {
    type Payload = ();
    type Refs = ();
    type Sink = ();
    fn channel() -> ((), ()) {
        ((), ())
    }
    fn deliver(_: (), result: Result<()>) -> Option<Error> {
        result.err()
    }
    type Inline = ();
    type CallSink = ();
    fn call_channel() -> (Option<()>, Option<()>, ()) {
        (Some(()), None, ())
    }
    fn deliver_call(_: &(), _: Option<()>, result: Stored<()>) -> (Option<Box<Error>>, Wake) {
        (result.err(), Wake::default())
    }
    fn lose_call(_: &(), _: Option<()>) {}
}

/// `num_returns = N >= 2`: an N-tuple of refs.
#[derive(Debug)]
pub struct Many<T>(std::marker::PhantomData<fn() -> T>);

macro_rules! many {
    ($($t:ident $v:ident $s:ident),*) => {
        impl<$($t: Send + Clone + 'static),*> Returns for Many<($($t,)*)> {
            type Payload = ($($t,)*);
            type Refs = ($(ObjectRef<$t>,)*);
            type Sink = ($(ObjectSender<$t>,)*);
            fn channel() -> (Self::Refs, Self::Sink) {
                $(let ($v, $s) = object::channel::<$t>();)*
                (($($v,)*), ($($s,)*))
            }
            fn deliver(sink: Self::Sink, result: Result<Self::Payload>) -> Option<Error> {
                let ($($s,)*) = sink;
                match result {
                    Ok(($($v,)*)) => { $($s.send(Ok($v));)* }
                    Err(e) => { $($s.send(Err(e.clone()));)* }
                }
                None
            }
            type Inline = ();
            type CallSink = Self::Sink;
            fn call_channel() -> (Option<Self::Refs>, Option<Self::Sink>, ()) {
                let (refs, sink) = Self::channel();
                (Some(refs), Some(sink), ())
            }
            fn deliver_call(_: &(), sink: Option<Self::Sink>, result: Stored<Self::Payload>) -> (Option<Box<Error>>, Wake) {
                (sink.and_then(|sink| Self::deliver(sink, result.map_err(|e| *e))).map(Box::new), Wake::default())
            }
            fn lose_call(_: &(), sink: Option<Self::Sink>) {
                // Each sender fails its object as it drops.
                drop(sink);
            }
        }
    };
}

many!(A a sa, B b sb);
many!(A a sa, B b sb, C c sc);
many!(A a sa, B b sb, C c sc, D d sd);
many!(A a sa, B b sb, C c sc, D d sd, E e se);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg, H h sh);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg, H h sh, I i si);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg, H h sh, I i si, J j sj);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg, H h sh, I i si, J j sj, K k sk);
many!(A a sa, B b sb, C c sc, D d sd, E e se, F f sf, G g sg, H h sh, I i si, J j sj, K k sk, L l sl);

/// The largest `num_returns` supported.
pub const MAX_NUM_RETURNS: usize = 12;

/// How a remote method takes its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Receiver {
    /// `&self`
    Ref,
    /// `&mut self`
    Mut,
}

/// Metadata of one remote method, generated by `#[ray::actor]` and readable
/// without creating an actor (`Counter::METHODS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodDescriptor {
    /// The actor class (`"Counter"`).
    pub class_name: &'static str,
    /// `module_path!()` where the class is declared.
    pub module_path: &'static str,
    /// The method name.
    pub name: &'static str,
    /// How many refs a call returns (0, 1 or N).
    pub num_returns: usize,
    /// `&self` or `&mut self`.
    pub receiver: Receiver,
    /// Whether the method is `async fn`.
    pub is_async: bool,
}

impl MethodDescriptor {
    #[doc(hidden)]
    pub const fn __new(
        class_name: &'static str,
        module_path: &'static str,
        name: &'static str,
        num_returns: usize,
        receiver: Receiver,
        is_async: bool,
    ) -> Self {
        MethodDescriptor {
            class_name,
            module_path,
            name,
            num_returns,
            receiver,
            is_async,
        }
    }
}
