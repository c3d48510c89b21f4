//! Handles: fork IDs against the shared vectors (through the real handle
//! code path), named actors, actors inside actors.

use ray::prelude::*;
use ray::{ActorHandleId, TaskId};

#[ray::actor]
#[derive(Default)]
pub struct Node {
    value: i64,
    children: Vec<NodeHandle>,
}

#[ray::actor]
impl Node {
    pub fn set(&mut self, v: i64) -> i64 {
        std::mem::replace(&mut self.value, v)
    }

    pub fn get(&self) -> i64 {
        self.value
    }

    /// Creates a child actor from inside a method and keeps its handle.
    pub async fn spawn_child(&mut self, v: i64) -> Result<NodeHandle, ray::Error> {
        let child = Node::remote()?;
        child.set(v).await?;
        self.children.push(child.clone());
        Ok(child)
    }

    /// Takes a handle as an argument and calls through it.
    pub async fn sum_with(&self, other: NodeHandle) -> Result<i64, ray::Error> {
        Ok(self.value + other.get().await?)
    }

    /// Sums the children by calling them.
    pub async fn sum_children(&self) -> Result<i64, ray::Error> {
        let mut total = 0;
        for c in &self.children {
            total += c.get().await?;
        }
        Ok(total)
    }
}

#[ray::actor]
#[derive(Default)]
pub struct Other;

#[ray::actor]
impl Other {
    pub fn ping(&self) -> u8 {
        1
    }
}

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/handle_ids.json")).unwrap()
}

fn hex_id(v: &serde_json::Value) -> ActorHandleId {
    ActorHandleId::from_hex(v.as_str().unwrap()).unwrap()
}

/// Every `forked` vector, checked on a real handle: a handle with the
/// parent's ID is cloned `num_forks + 1` times; the last clone's ID must match.
#[tokio::test]
async fn forked_vectors_through_handle_clone() {
    let _ray = ray::init(Config::default()).unwrap();
    let original = Node::remote().unwrap();
    assert!(original.handle_id().is_nil());
    let v = vectors();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        if case["kind"] != "forked" {
            continue;
        }
        let parent_id = hex_id(&case["parent_handle_id"]);
        let n = case["num_forks"].as_u64().unwrap();
        let parent = if parent_id.is_nil() {
            // A fresh original handle, so its fork count starts at 0.
            Node::remote().unwrap()
        } else {
            ray::__private::handle_with_id(&original, parent_id)
        };
        assert_eq!(parent.handle_id(), parent_id);
        let mut last = None;
        for _ in 0..=n {
            last = Some(parent.clone());
        }
        let fork = last.unwrap();
        assert_eq!(
            fork.handle_id().hex(),
            case["expected"].as_str().unwrap(),
            "fork #{n} of {parent_id}"
        );
        // The fork works.
        fork.set(n as i64);
        assert_eq!(fork.get().await.unwrap(), n as i64);
        checked += 1;
    }
    assert_eq!(checked, 18);
}

#[tokio::test]
async fn chain_of_first_forks_from_nil() {
    let _ray = ray::init(Config::default()).unwrap();
    let v = vectors();
    let expected: Vec<&str> = v["chain_from_nil_first_fork_three_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let h0 = Node::remote().unwrap();
    let h1 = h0.clone();
    let h2 = h1.clone();
    let h3 = h2.clone();
    assert_eq!(
        vec![
            h1.handle_id().hex(),
            h2.handle_id().hex(),
            h3.handle_id().hex()
        ],
        expected
    );
    h3.set(3);
    assert_eq!(h1.get().await.unwrap(), 3);
}

#[tokio::test]
async fn named_actors() {
    let _ray = ray::init(Config::default()).unwrap();
    let a = Node::options().name("main").remote().unwrap();
    a.set(7);
    let same: NodeHandle = ray::get_actor::<Node>("main").unwrap();
    assert_eq!(same.actor_id(), a.actor_id());
    assert_ne!(same.handle_id(), a.handle_id());
    assert_eq!(same.get().await.unwrap(), 7);
    // The ID derives from the class and the name, so a restarted program finds it again.
    assert_eq!(a.actor_id(), ray::ActorId::for_name("Node", "main"));

    let dup = Node::options().name("main").remote().unwrap_err();
    assert!(
        matches!(&dup, Error::InvalidArgument(m) if m.contains("already exists")),
        "{dup}"
    );
    let missing = ray::get_actor::<Node>("nope").unwrap_err();
    assert!(
        matches!(&missing, Error::ActorNotFound(m) if m.contains("nope")),
        "{missing}"
    );
    let wrong = ray::get_actor::<Other>("main").unwrap_err();
    assert!(
        matches!(&wrong, Error::ActorNotFound(m) if m.contains("class Node")),
        "{wrong}"
    );
    assert!(Other::options().name("").remote().is_err());

    // Once the actor is gone, its name is free again, and only its name.
    let neighbour = Node::options().name("neighbour").remote().unwrap();
    drop(a);
    drop(same);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Node::options().name("main").remote() {
            Ok(b) => {
                assert_eq!(b.get().await.unwrap(), 0, "a fresh actor");
                break;
            }
            Err(_) if std::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("the name was not freed: {e}"),
        }
    }
    let found: NodeHandle = ray::get_actor::<Node>("neighbour").unwrap();
    assert_eq!(found.actor_id(), neighbour.actor_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_inside_actors() {
    let _ray = ray::init(Config::default()).unwrap();
    let root = Node::remote().unwrap();
    root.set(1);
    let c1 = root.spawn_child(10).await.unwrap();
    let c2 = root.spawn_child(20).await.unwrap();
    assert_eq!(root.sum_children().await.unwrap(), 30);
    // Handles returned from a method work, and can be passed back in.
    assert_eq!(c1.get().await.unwrap(), 10);
    assert_eq!(root.sum_with(c2.clone()).await.unwrap(), 21);
    assert_eq!(c2.set(5).await.unwrap(), 20);
    assert_eq!(root.sum_children().await.unwrap(), 15);
}

#[tokio::test]
async fn task_ids() {
    let _ray = ray::init(Config::default()).unwrap();
    let driver = ray::current_task_id().unwrap();
    assert_eq!(
        driver,
        ray::current_task_id().unwrap(),
        "the driver has one task ID"
    );
    let forced = TaskId::from_bytes([7; 20]);
    ray::__private::with_task_id(forced, || {
        assert_eq!(ray::current_task_id().unwrap(), forced)
    });
}

#[ray::actor]
#[derive(Default)]
pub struct Courier;

#[ray::actor]
impl Courier {
    /// Deserializes a handle inside a running call, uses it, and reports the
    /// new handle's ID and this call's task ID.
    pub async fn relay(&self, json: String) -> Result<(ActorHandleId, TaskId, i64), String> {
        let task = ray::current_task_id().map_err(|e| e.to_string())?;
        let h: NodeHandle = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        let v = h.get().await.map_err(|e| e.to_string())?;
        Ok((h.handle_id(), task, v))
    }
}

/// Every `non_forked` vector, through real serde deserialization of a handle
/// whose serialized ID is the vector's parent, inside the vector's task.
#[tokio::test]
async fn non_forked_vectors_through_deserialization() {
    let _ray = ray::init(Config::default()).unwrap();
    let node = Node::remote().unwrap();
    let v = vectors();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        if case["kind"] != "non_forked" {
            continue;
        }
        let parent = hex_id(&case["parent_handle_id"]);
        let task = TaskId::from_hex(case["task_id"].as_str().unwrap()).unwrap();
        let serialized =
            serde_json::to_string(&ray::__private::handle_with_id(&node, parent)).unwrap();
        let h: NodeHandle =
            ray::__private::with_task_id(task, || serde_json::from_str(&serialized).unwrap());
        assert_eq!(h.handle_id().hex(), case["expected"].as_str().unwrap());
        assert_eq!(h.actor_id(), node.actor_id());
        h.set(checked);
        assert_eq!(h.get().await.unwrap(), checked);
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_deserialized_inside_a_call_derives_its_id_from_the_call() {
    let _ray = ray::init(Config::default()).unwrap();
    let node = Node::remote().unwrap();
    node.set(5);
    let courier = Courier::remote().unwrap();
    let json = serde_json::to_string(&node).unwrap();
    let (id, task, v) = courier.relay(json.clone()).await.unwrap();
    assert_eq!(v, 5);
    assert_eq!(id, ActorHandleId::deserialized(&node.handle_id(), &task));
    // Another call is another task: another ID, and it works.
    let (id2, task2, _) = courier.relay(json.clone()).await.unwrap();
    assert_ne!(task2, task);
    assert_ne!(id2, id);
    // In the driver, the driver's task ID is used; twice in one task is refused.
    let h: NodeHandle = serde_json::from_str(&json).unwrap();
    assert_eq!(
        h.handle_id(),
        ActorHandleId::deserialized(&node.handle_id(), &ray::current_task_id().unwrap())
    );
    let again = serde_json::from_str::<NodeHandle>(&json).unwrap_err();
    assert!(
        again.to_string().contains("already deserialized"),
        "{again}"
    );
    // A fork of a deserialized handle is fine.
    assert_eq!(h.clone().get().await.unwrap(), 5);
}

#[tokio::test]
async fn a_handle_deserialized_in_another_runtime_fails_clearly() {
    let json = {
        let _ray = ray::init(Config::default()).unwrap();
        let node = Node::remote().unwrap();
        serde_json::to_string(&node).unwrap()
    };
    let _other = ray::init(Config::default()).unwrap();
    let h: NodeHandle = serde_json::from_str(&json).unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), h.get())
        .await
        .expect("never a hang")
        .unwrap_err();
    assert!(
        matches!(&e, Error::ActorNotFound(m) if m.contains("does not know")),
        "{e}"
    );
    // Wrong class: refused at deserialization.
    let e = serde_json::from_str::<OtherHandle>(&json).unwrap_err();
    assert!(e.to_string().contains("class Node"), "{e}");
}

#[ray::actor]
#[derive(Default)]
pub struct Teller;

#[ray::actor]
impl Teller {
    /// This call's task ID, from a synchronous method (run by its caller or
    /// by the actor task).
    pub fn task(&self) -> TaskId {
        ray::current_task_id().unwrap()
    }

    /// The same from an async method, before and after an await.
    pub async fn task_across_await(&self) -> (TaskId, TaskId) {
        let before = ray::current_task_id().unwrap();
        tokio::task::yield_now().await;
        (before, ray::current_task_id().unwrap())
    }
}

/// `sha1("ray-task" || actor ID || handle ID || counter, 8 bytes LE)`.
fn expected_task(actor: &ray::ActorId, handle: &ActorHandleId, counter: u64) -> TaskId {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(b"ray-task");
    h.update(actor.as_bytes());
    h.update(handle.as_bytes());
    h.update(counter.to_le_bytes());
    TaskId::from_bytes(h.finalize().into())
}

/// Inside a call, `current_task_id()` is the call's own, derived from its
/// actor, handle and counter: whoever runs it (the actor task, or a caller
/// waiting for it), on the original handle and on a fork, sync or async.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_task_id_is_derived_from_its_actor_handle_and_counter() {
    let _ray = ray::init(Config::default()).unwrap();
    let t = Teller::remote().unwrap();
    let fork = t.clone();
    let actor = t.actor_id();
    // Counter 0 of the original handle is the creation: calls start at 1.
    for counter in 1..=50u64 {
        assert_eq!(
            t.task().await.unwrap(),
            expected_task(&actor, &t.handle_id(), counter)
        );
    }
    // Pipelined, so mostly run by the actor task; a fork counts from 0.
    let refs: Vec<_> = (0..50).map(|_| fork.task()).collect();
    for (i, r) in refs.into_iter().enumerate() {
        let counter = i as u64;
        assert_eq!(
            r.await.unwrap(),
            expected_task(&actor, &fork.handle_id(), counter)
        );
    }
    let (before, after) = t.task_across_await().await.unwrap();
    let expected = expected_task(&actor, &t.handle_id(), 51);
    assert_eq!((before, after), (expected, expected));
    // Outside any call: the driver's task ID again.
    assert_ne!(ray::current_task_id().unwrap(), expected);
}
