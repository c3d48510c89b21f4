//! Ordered execution (SEMANTICS §4): per-handle counters, a frontier, and a
//! reorder buffer for early arrivals.
//!
//! Every call carries `(handle_id, counter)`. The [`Frontier`] keeps, per handle,
//! the next counter it expects. A call whose counter equals it runs now; a later
//! one waits in the handle's reorder buffer; an earlier one is a duplicate and is
//! dropped, so no call ever runs twice, whatever the arrival order.
//!
//! In one process every handle submits through the same FIFO mailbox with its
//! counter taken under the mailbox's lock, so calls usually arrive in order
//! and the buffer stays empty; the buffer is what keeps the executor correct
//! for any arrival order (retransmits, calls that cross machines later).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::ActorHandleId;

/// What [`Frontier::offer`] did with a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// The call is next for its handle: run it now, then call [`Frontier::complete`].
    Ready(T),
    /// The call arrived early and is buffered until its turn.
    Buffered,
    /// The call is at or below the frontier, or already buffered: a duplicate,
    /// given back so the caller can drop it.
    Duplicate(T),
}

#[derive(Debug)]
struct Lane<T> {
    next: u64,
    running: bool,
    early: BTreeMap<u64, T>,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            next: 0,
            running: false,
            early: BTreeMap::new(),
        }
    }
}

/// The hasher of the frontier's map. An ID hashes as one `u64` (its first 8
/// bytes, already uniformly spread), which this mixes with one multiply:
/// SipHash per call showed up in profiles.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
}

/// Builds [`IdHasher`]s: the hasher of maps keyed by IDs.
pub(crate) type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;

type IdMap<V> = HashMap<ActorHandleId, V, IdBuildHasher>;

/// Which lane of a [`Frontier`] a handle's calls go to
/// ([`Frontier::lane_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneKey {
    /// The first handle's lane, kept inline.
    First,
    /// Another handle's: its place in `others`.
    Other(usize),
}

/// The per-actor frontier with its reorder buffers. `T` is the queued call.
///
/// The first handle seen (the original handle, whose creation task
/// [`advance_to`](Frontier::advance_to) records) keeps its lane inline: most
/// actors are called through it alone, and then no map is allocated or
/// hashed per call. Every other handle's lane is in the map.
#[derive(Debug)]
pub struct Frontier<T> {
    first: Option<(ActorHandleId, Lane<T>)>,
    /// Every other handle's lane: boxed, as most actors never have one.
    others: Option<Box<Others<T>>>,
}

/// The lanes of every handle but the first.
#[derive(Debug)]
struct Others<T> {
    /// In the order first seen (lanes are never removed: a handle's
    /// counters must stay known).
    lanes: Vec<(ActorHandleId, Lane<T>)>,
    /// Where each handle's lane is in `lanes`.
    index: IdMap<usize>,
}

impl<T> Default for Frontier<T> {
    fn default() -> Self {
        Frontier {
            first: None,
            others: None,
        }
    }
}

/// A serializable snapshot of a frontier: per handle, the next counter expected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontierSnapshot {
    /// Next expected counter per handle.
    pub next: BTreeMap<ActorHandleId, u64>,
}

impl FrontierSnapshot {
    /// The next counter expected from `handle` (0 for a handle it does not
    /// know): the calls of `handle` below it are reflected in the snapshot.
    pub fn next_expected(&self, handle: &ActorHandleId) -> u64 {
        self.next.get(handle).copied().unwrap_or(0)
    }
}

impl<T> Frontier<T> {
    /// An empty frontier: every handle starts at counter 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lane of `handle`, created if new.
    #[inline]
    fn lane_entry(&mut self, handle: ActorHandleId) -> &mut Lane<T> {
        let key = self.lane_key(&handle);
        self.lane_at(&key).expect("a key lane_key just made")
    }

    /// Every other handle's lane.
    fn other_lanes(&self) -> &[(ActorHandleId, Lane<T>)] {
        self.others.as_deref().map_or(&[], |o| &o.lanes)
    }

    fn other_lanes_mut(&mut self) -> &mut [(ActorHandleId, Lane<T>)] {
        self.others.as_deref_mut().map_or(&mut [], |o| &mut o.lanes)
    }

    /// The place in `others` of `handle`'s lane, created if new.
    fn other_lane(&mut self, handle: &ActorHandleId) -> usize {
        let o = self.others.get_or_insert_with(|| {
            Box::new(Others {
                lanes: Vec::new(),
                index: IdMap::default(),
            })
        });
        if let Some(&i) = o.index.get(handle) {
            return i;
        }
        o.lanes.push((*handle, Lane::default()));
        o.index.insert(*handle, o.lanes.len() - 1);
        o.lanes.len() - 1
    }

    /// The lane of `handle`, if it has one.
    #[inline]
    fn lane_mut(&mut self, handle: &ActorHandleId) -> Option<&mut Lane<T>> {
        if let Some((h, lane)) = &mut self.first {
            if h == handle {
                return Some(lane);
            }
        }
        let o = self.others.as_deref_mut()?;
        let i = *o.index.get(handle)?;
        Some(&mut o.lanes[i].1)
    }

    /// Every lane.
    fn all_lanes(&self) -> impl Iterator<Item = (&ActorHandleId, &Lane<T>)> {
        self.first
            .iter()
            .map(|(h, l)| (h, l))
            .chain(self.other_lanes().iter().map(|(h, l)| (h, l)))
    }

    /// The next counter expected from `handle`.
    pub fn next_expected(&self, handle: &ActorHandleId) -> u64 {
        self.all_lanes()
            .find(|(h, _)| *h == handle)
            .map_or(0, |(_, l)| l.next)
    }

    /// Marks every counter of `handle` up to and including `counter` as done
    /// (used for the creation task, counter 0 of the original handle).
    pub fn advance_to(&mut self, handle: ActorHandleId, counter: u64) {
        let lane = self.lane_entry(handle);
        if lane.next <= counter {
            lane.next = counter + 1;
            lane.early.retain(|c, _| *c > counter);
        }
    }

    /// Offers a call. At most one call per handle is `Ready` at a time: the next
    /// one becomes available through [`Frontier::complete`].
    #[inline]
    pub fn offer(&mut self, handle: ActorHandleId, counter: u64, call: T) -> Offer<T> {
        let lane = self.lane_key(&handle);
        self.offer_in(&lane, counter, call)
    }

    /// Where `handle`'s lane is (created if new), to [`offer_in`] and
    /// [`complete_in`] without comparing or copying the handle's ID again
    /// (~40 instructions per call, W2).
    ///
    /// [`offer_in`]: Self::offer_in
    /// [`complete_in`]: Self::complete_in
    #[inline(always)]
    pub(crate) fn lane_key(&mut self, handle: &ActorHandleId) -> LaneKey {
        match &self.first {
            Some((h, _)) if h == handle => LaneKey::First,
            _ => self.lane_key_slow(handle),
        }
    }

    /// [`lane_key`](Self::lane_key) for any handle but the first: out of
    /// line, so that the first handle's case stays a compare.
    #[inline(never)]
    fn lane_key_slow(&mut self, handle: &ActorHandleId) -> LaneKey {
        if self.first.is_none() {
            self.first = Some((*handle, Lane::default()));
            return LaneKey::First;
        }
        LaneKey::Other(self.other_lane(handle))
    }

    /// The lane `key` names (made by [`lane_key`](Self::lane_key), which
    /// created it).
    #[inline]
    fn lane_at(&mut self, key: &LaneKey) -> Option<&mut Lane<T>> {
        match key {
            LaneKey::First => self.first.as_mut().map(|(_, lane)| lane),
            LaneKey::Other(i) => self.other_lanes_mut().get_mut(*i).map(|(_, lane)| lane),
        }
    }

    /// The ID of the handle whose lane `key` names.
    pub(crate) fn handle_of(&self, key: &LaneKey) -> ActorHandleId {
        match (key, &self.first) {
            (LaneKey::First, Some((h, _))) => *h,
            (LaneKey::Other(i), _) => self.other_lanes()[*i].0,
            (LaneKey::First, None) => unreachable!("a first lane key without a first lane"),
        }
    }

    /// [`offer`](Self::offer) to the lane `key` names.
    #[inline]
    pub(crate) fn offer_in(&mut self, key: &LaneKey, counter: u64, call: T) -> Offer<T> {
        let Some(lane) = self.lane_at(key) else {
            // Not a key of this frontier: nothing runs out of order.
            debug_assert!(false, "a lane key from another frontier");
            return Offer::Duplicate(call);
        };
        if counter < lane.next || (counter == lane.next && lane.running) {
            return Offer::Duplicate(call);
        }
        if counter == lane.next {
            lane.running = true;
            return Offer::Ready(call);
        }
        if lane.early.contains_key(&counter) {
            return Offer::Duplicate(call);
        }
        lane.early.insert(counter, call);
        Offer::Buffered
    }

    /// Records that the ready call of `handle` finished; returns the handle's
    /// next call if it is already buffered (it is then the ready one).
    #[inline]
    pub fn complete(&mut self, handle: &ActorHandleId) -> Option<T> {
        let lane = self.lane_mut(handle)?;
        Self::complete_lane(lane)
    }

    /// [`complete`](Self::complete) for the lane `key` names.
    #[inline]
    pub(crate) fn complete_in(&mut self, key: &LaneKey) -> Option<T> {
        Self::complete_lane(self.lane_at(key)?)
    }

    #[inline]
    fn complete_lane(lane: &mut Lane<T>) -> Option<T> {
        debug_assert!(lane.running, "complete() without a ready call");
        lane.next += 1;
        match lane.early.remove(&lane.next) {
            Some(call) => Some(call),
            None => {
                lane.running = false;
                None
            }
        }
    }

    /// Number of calls waiting in reorder buffers.
    pub fn buffered(&self) -> usize {
        self.all_lanes().map(|(_, l)| l.early.len()).sum()
    }

    /// Drains every buffered call (to fail them when the actor dies).
    pub fn drain(&mut self) -> Vec<T> {
        // Usually nothing is buffered; collecting from every lane costs
        // ~180 instructions even then (once per actor, as it dies).
        if self.buffered() == 0 {
            return Vec::new();
        }
        let others = self
            .others
            .as_deref_mut()
            .map_or(&mut [][..], |o| &mut o.lanes);
        self.first
            .iter_mut()
            .map(|(_, l)| l)
            .chain(others.iter_mut().map(|(_, l)| l))
            .flat_map(|l| std::mem::take(&mut l.early).into_values())
            .collect()
    }

    /// The frontier's serializable snapshot (what a checkpoint records).
    pub fn snapshot(&self) -> FrontierSnapshot {
        FrontierSnapshot {
            next: self.all_lanes().map(|(h, l)| (*h, l.next)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn handle(i: u8) -> ActorHandleId {
        ActorHandleId::from_bytes([i; 20])
    }

    /// Delivers `deliveries` (handle index, counter) in the given order and
    /// returns the execution order, running each ready call to completion.
    fn run(deliveries: &[(u8, u64)]) -> Vec<(u8, u64)> {
        let mut f = Frontier::new();
        let mut executed = Vec::new();
        for &(h, c) in deliveries {
            if let Offer::Ready(call) = f.offer(handle(h), c, (h, c)) {
                let mut next = Some(call);
                while let Some(call) = next {
                    executed.push(call);
                    next = f.complete(&handle(call.0));
                }
            }
        }
        executed
    }

    /// [`run`] the way the actor does it: the lane found once per
    /// delivery, its key used to offer and to complete.
    fn run_keyed(deliveries: &[(u8, u64)]) -> Vec<(u8, u64)> {
        let mut f = Frontier::new();
        let mut executed = Vec::new();
        for &(h, c) in deliveries {
            let lane = f.lane_key(&handle(h));
            assert_eq!(f.handle_of(&lane), handle(h));
            if let Offer::Ready(call) = f.offer_in(&lane, c, (h, c)) {
                let mut next = Some(call);
                while let Some(call) = next {
                    executed.push(call);
                    next = f.complete_in(&lane);
                }
            }
        }
        executed
    }

    #[test]
    fn a_lane_key_names_the_same_lane_as_the_handle() {
        let mut f = Frontier::new();
        // Handle 1 is first (inline); 2 and 3 go to the others.
        let keys: Vec<_> = [1, 2, 3, 2, 1]
            .iter()
            .map(|&h| f.lane_key(&handle(h)))
            .collect();
        assert_eq!(keys[0], LaneKey::First);
        assert_eq!(keys[1], keys[3]);
        assert_ne!(keys[1], keys[2]);
        assert_eq!(keys[4], LaneKey::First);
        assert!(matches!(f.offer_in(&keys[2], 0, 30), Offer::Ready(30)));
        // Handle 3's next call, offered by ID, finds the same lane.
        assert!(matches!(f.offer(handle(3), 1, 31), Offer::Buffered));
        assert_eq!(f.complete_in(&keys[2]), Some(31));
        assert_eq!(f.complete(&handle(3)), None);
        assert_eq!(f.next_expected(&handle(3)), 2);
        assert_eq!(f.next_expected(&handle(2)), 0);
    }

    #[test]
    fn early_calls_wait_and_duplicates_are_dropped() {
        let executed = run(&[(0, 2), (0, 0), (0, 0), (0, 1), (0, 2), (0, 1)]);
        assert_eq!(executed, vec![(0, 0), (0, 1), (0, 2)]);
    }

    #[test]
    fn advance_to_skips_the_creation_counter() {
        let mut f = Frontier::new();
        f.advance_to(ActorHandleId::NIL, 0);
        assert_eq!(f.next_expected(&ActorHandleId::NIL), 1);
        assert!(matches!(
            f.offer(ActorHandleId::NIL, 0, ()),
            Offer::Duplicate(())
        ));
        assert!(matches!(
            f.offer(ActorHandleId::NIL, 1, ()),
            Offer::Ready(())
        ));
    }

    fn schedule() -> impl Strategy<Value = (Vec<u64>, Vec<(u8, u64)>)> {
        // Up to 5 handles with up to 40 calls each; every call delivered 1-3
        // times; the whole delivery list shuffled.
        prop::collection::vec(0u64..40, 1..6)
            .prop_flat_map(|counts| {
                let mut calls = Vec::new();
                for (h, &n) in counts.iter().enumerate() {
                    for c in 0..n {
                        calls.push((h as u8, c));
                    }
                }
                let len = calls.len();
                (
                    Just(counts),
                    Just(calls),
                    prop::collection::vec(1usize..4, len),
                )
            })
            .prop_flat_map(|(counts, calls, copies)| {
                let mut deliveries = Vec::new();
                for (call, k) in calls.into_iter().zip(copies) {
                    for _ in 0..k {
                        deliveries.push(call);
                    }
                }
                (Just(counts), Just(deliveries).prop_shuffle())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_call_runs_exactly_once_in_counter_order((counts, deliveries) in schedule()) {
            let executed = run(&deliveries);
            // The actor's way (lane keys) runs the same calls in the same order.
            prop_assert_eq!(&run_keyed(&deliveries), &executed);
            // Exactly once: as many executions as distinct calls.
            let total: u64 = counts.iter().sum();
            prop_assert_eq!(executed.len() as u64, total);
            // Per handle, counters 0, 1, 2, ... in order.
            for (h, &n) in counts.iter().enumerate() {
                let mine: Vec<u64> = executed.iter().filter(|e| e.0 == h as u8).map(|e| e.1).collect();
                prop_assert_eq!(mine, (0..n).collect::<Vec<_>>());
            }
        }

        #[test]
        fn a_call_runs_as_soon_as_its_predecessors_have((counts, deliveries) in schedule()) {
            // Replay deliveries and check that after each delivery every handle's
            // executed prefix is as long as the delivered prefix allows.
            let mut f = Frontier::new();
            let mut done: HashMap<u8, u64> = HashMap::new();
            let mut seen: HashMap<u8, std::collections::BTreeSet<u64>> = HashMap::new();
            for &(h, c) in &deliveries {
                seen.entry(h).or_default().insert(c);
                if let Offer::Ready(call) = f.offer(handle(h), c, (h, c)) {
                    let mut next = Some(call);
                    while let Some(call) = next {
                        *done.entry(call.0).or_default() += 1;
                        next = f.complete(&handle(call.0));
                    }
                }
                let s = &seen[&h];
                let mut prefix = 0;
                while s.contains(&prefix) { prefix += 1; }
                prop_assert_eq!(done.get(&h).copied().unwrap_or(0), prefix);
            }
            prop_assert_eq!(f.buffered(), 0);
            let _ = counts;
        }
    }
}
