//! Resources and placement (SEMANTICS §6): the node's pool of CPUs, GPUs and
//! named custom resources.
//!
//! - [`ResourceSet`] is a validated bundle of quantities. Quantities are kept
//!   as fixed-point integers in units of 1/10 000, so any sequence of acquires
//!   and releases returns to exactly the starting amounts (no floating-point
//!   drift); `f64` appears only at the edges ([`ResourceSet::from_parts`],
//!   [`ResourceSet::to_map`]).
//! - `ResourcePool` is one node's pool. `try_acquire` takes a request now or
//!   not at all; `acquire` returns a future that takes its place in line *when
//!   `acquire` is called* (not when first polled) and resolves to an
//!   `Allocation`, which gives everything back when dropped.
//!
//! # Waiter policy
//!
//! Waiters are considered in arrival order, and **every waiter that fits is
//! granted**: a waiter that does not fit yet is skipped, it does not block the
//! smaller requests behind it. After every change (release, grant,
//! cancellation) no queued waiter fits in what is available, so a new request
//! that fits at once is granted at once without overtaking anyone who could
//! have run. Among equal requests the order is strictly first come, first
//! served. A large request can be overtaken by smaller ones for as long as
//! they keep fitting; it is placed at the first release that leaves enough
//! free. Strict head-of-line FIFO was rejected because the same pool serves
//! actor placement and the 1-CPU method runs of default actors: a pending
//! GPU actor at the head would freeze every default actor's methods until some
//! GPU actor stopped, which can deadlock programs whose GPU actors wait on
//! them. Ray's scheduler likewise dispatches whatever fits.
//!
//! # GPU IDs
//!
//! The node's GPUs have IDs `0..n`. A request for whole GPUs gets that many
//! distinct, entirely free IDs, lowest first (so freed IDs are reused); no two
//! live allocations share an ID through whole-GPU requests. A fractional
//! request (below 1) gets one ID with enough of its capacity left, choosing
//! the *fullest* such ID (best fit, lowest ID on ties, as Ray does) so
//! fractions pack together and whole GPUs stay free. Fractional requests may
//! therefore share an ID, as in Ray; a whole-GPU request never shares an ID
//! with anything. A node with a fractional total (`num_gpus(0.5)`) has one ID,
//! `0`, of that capacity.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::config::{check_quantity, check_resource_name, Config};
use crate::error::{Error, Result};

/// Fixed-point units per whole resource: quantities are counted in steps of 0.0001.
const UNIT: u64 = 10_000;

/// The largest quantity accepted, so that sums of quantities never overflow.
const MAX_QUANTITY: f64 = 1e14;

/// Converts a validated quantity to fixed-point units.
fn to_units(what: &str, q: f64) -> Result<u64> {
    check_quantity(what, q)?;
    if q > MAX_QUANTITY {
        return Err(Error::invalid(format!(
            "{what} = {q} is too large: quantities are at most {MAX_QUANTITY:e}"
        )));
    }
    let scaled = q * UNIT as f64;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(Error::invalid(format!(
            "{what} = {q}: quantities are counted in steps of 0.0001 (at most 4 decimal places)"
        )));
    }
    Ok(rounded as u64)
}

fn from_units(u: u64) -> f64 {
    u as f64 / UNIT as f64
}

/// A bundle of resource quantities: CPUs, GPUs and named custom resources.
///
/// Built by [`ResourceSet::from_parts`], which validates every quantity
/// (non-negative; fractions only below 1; at most 4 decimal places) and every
/// custom name (`CPU` and `GPU` are not custom names). Serialized as the map
/// of [`to_map`](ResourceSet::to_map); deserialization validates the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct ResourceSet {
    cpu: u64,
    gpu: u64,
    /// Only non-zero quantities are kept, so equal sets compare equal.
    custom: BTreeMap<String, u64>,
}

impl ResourceSet {
    /// A validated set of `cpus` CPUs, `gpus` GPUs and the `custom`
    /// resources. Custom resources of quantity 0 are dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] saying what is allowed when a quantity is
    /// negative or not finite, a fraction above 1, finer than 0.0001 or above
    /// 10^14, or when a custom name is `CPU`, `GPU` or empty.
    pub fn from_parts(cpus: f64, gpus: f64, custom: &BTreeMap<String, f64>) -> Result<Self> {
        let cpu = to_units("num_cpus", cpus)?;
        let gpu = to_units("num_gpus", gpus)?;
        let mut set = ResourceSet {
            cpu,
            gpu,
            custom: BTreeMap::new(),
        };
        for (name, q) in custom {
            check_resource_name(name)?;
            let units = to_units(&format!("resource `{name}`"), *q)?;
            if units > 0 {
                set.custom.insert(name.clone(), units);
            }
        }
        Ok(set)
    }

    /// One CPU and nothing else: what a method run of an actor declared
    /// without resource options needs.
    pub(crate) fn one_cpu() -> Self {
        ResourceSet {
            cpu: UNIT,
            ..ResourceSet::default()
        }
    }

    /// CPUs.
    pub fn cpus(&self) -> f64 {
        from_units(self.cpu)
    }

    /// GPUs.
    pub fn gpus(&self) -> f64 {
        from_units(self.gpu)
    }

    /// The quantity of `name`: `"CPU"`, `"GPU"` or a custom resource (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "CPU" => self.cpus(),
            "GPU" => self.gpus(),
            _ => from_units(self.custom.get(name).copied().unwrap_or(0)),
        }
    }

    /// Whether every quantity is 0.
    pub fn is_empty(&self) -> bool {
        self.cpu == 0 && self.gpu == 0 && self.custom.is_empty()
    }

    /// The quantities by name, the shape of Ray's `ray.available_resources()`:
    /// `"CPU"` and `"GPU"` are always present (possibly 0), custom resources
    /// only when non-zero. (Ray also omits CPU and GPU when they are 0; here
    /// they stay so that `map["CPU"]` never panics.)
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut map = BTreeMap::new();
        map.insert("CPU".to_owned(), self.cpus());
        map.insert("GPU".to_owned(), self.gpus());
        for (name, q) in &self.custom {
            map.insert(name.clone(), from_units(*q));
        }
        map
    }
}

impl fmt::Display for ResourceSet {
    /// `{CPU: 1, GPU: 0.5, disk: 2}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{CPU: {}, GPU: {}", self.cpus(), self.gpus())?;
        for (name, q) in &self.custom {
            write!(f, ", {name}: {}", from_units(*q))?;
        }
        f.write_str("}")
    }
}

impl From<ResourceSet> for BTreeMap<String, f64> {
    fn from(set: ResourceSet) -> Self {
        set.to_map()
    }
}

impl TryFrom<BTreeMap<String, f64>> for ResourceSet {
    type Error = Error;

    /// Reads the shape of [`ResourceSet::to_map`]: the keys `CPU` and `GPU`
    /// are the CPUs and GPUs, every other key a custom resource.
    fn try_from(mut map: BTreeMap<String, f64>) -> Result<Self> {
        let cpus = map.remove("CPU").unwrap_or(0.0);
        let gpus = map.remove("GPU").unwrap_or(0.0);
        ResourceSet::from_parts(cpus, gpus, &map)
    }
}

/// The GPUs taken by one allocation: `gpu_each` units of each ID.
#[derive(Debug, Default)]
struct Grant {
    gpu_ids: Vec<usize>,
    gpu_each: u64,
}

/// What is free right now.
#[derive(Debug)]
struct Available {
    cpu: u64,
    /// Every custom resource of the node, including those at 0.
    custom: BTreeMap<String, u64>,
    /// Free units of each GPU ID.
    gpu_free: Vec<u64>,
}

impl Available {
    /// Takes `req` if it fits now, choosing its GPU IDs.
    fn take(&mut self, req: &ResourceSet) -> Option<Grant> {
        if req.cpu > self.cpu {
            return None;
        }
        for (name, q) in &req.custom {
            if self.custom.get(name).copied().unwrap_or(0) < *q {
                return None;
            }
        }
        let grant = self.pick_gpus(req.gpu)?;
        self.cpu -= req.cpu;
        for (name, q) in &req.custom {
            *self.custom.get_mut(name).expect("checked above") -= q;
        }
        for &id in &grant.gpu_ids {
            self.gpu_free[id] -= grant.gpu_each;
        }
        Some(grant)
    }

    /// The GPU IDs a request of `gpu` units would get now, if it fits.
    fn pick_gpus(&self, gpu: u64) -> Option<Grant> {
        if gpu == 0 {
            return Some(Grant::default());
        }
        if gpu < UNIT {
            // Best fit: the fullest ID that still has room, lowest on ties.
            let (id, _) = self
                .gpu_free
                .iter()
                .enumerate()
                .filter(|(_, free)| **free >= gpu)
                .min_by_key(|(id, free)| (**free, *id))?;
            return Some(Grant {
                gpu_ids: vec![id],
                gpu_each: gpu,
            });
        }
        // Whole GPUs (validation makes quantities above 1 whole): entirely
        // free IDs of full capacity, lowest first.
        let needed = gpu.div_ceil(UNIT) as usize;
        let ids: Vec<usize> = self
            .gpu_free
            .iter()
            .enumerate()
            .filter(|(_, free)| **free == UNIT)
            .map(|(id, _)| id)
            .take(needed)
            .collect();
        (ids.len() == needed).then_some(Grant {
            gpu_ids: ids,
            gpu_each: UNIT,
        })
    }

    fn give_back(&mut self, req: &ResourceSet, grant: &Grant) {
        self.cpu += req.cpu;
        for (name, q) in &req.custom {
            *self.custom.get_mut(name).expect("granted from this pool") += q;
        }
        for &id in &grant.gpu_ids {
            self.gpu_free[id] += grant.gpu_each;
        }
    }

    /// Nothing at all is free: no (non-empty) request can fit.
    fn exhausted(&self) -> bool {
        self.cpu == 0
            && self.gpu_free.iter().all(|f| *f == 0)
            && self.custom.values().all(|q| *q == 0)
    }
}

#[derive(Debug)]
struct Waiter {
    req: ResourceSet,
    /// Absent until the waiting future is first polled.
    waker: Option<Waker>,
}

#[derive(Debug)]
struct State {
    avail: Available,
    /// Waiting requests by ticket, i.e. in arrival order.
    queue: BTreeMap<u64, Waiter>,
    /// Grants handed to waiters whose futures have not collected them yet.
    granted: HashMap<u64, Grant>,
    next_ticket: u64,
}

impl State {
    /// Grants, in arrival order, every waiter that fits now; returns the
    /// wakers to call once the lock is released.
    fn grant_waiters(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let mut cursor = 0;
        while !self.avail.exhausted() {
            let Some((&ticket, waiter)) = self.queue.range_mut(cursor..).next() else {
                break;
            };
            cursor = ticket + 1;
            if let Some(grant) = self.avail.take(&waiter.req) {
                wakers.extend(waiter.waker.take());
                self.queue.remove(&ticket);
                self.granted.insert(ticket, grant);
            }
        }
        wakers
    }
}

/// One node's pool of resources. Each runtime owns its own (no global state);
/// it works under any executor (std `Mutex` plus its own waker list).
#[derive(Debug)]
pub(crate) struct ResourcePool {
    total: ResourceSet,
    /// Capacity of each GPU ID in units: a whole GPU each, or the fraction
    /// when the node's total is below 1.
    gpu_capacity: Vec<u64>,
    state: Mutex<State>,
    /// How many requests wait in line: `state.queue.len()`, stored under the
    /// lock whenever the line changes, so that the CPU fast lane (and an
    /// actor keeping a CPU between calls) sees without the lock that
    /// someone waits.
    waiting: AtomicUsize,
    /// Free CPU units parked outside the lock: the 1-CPU fast path of
    /// default actors' method runs takes from here and gives back here with
    /// one atomic operation each, while nobody waits in line. Whoever takes
    /// the lock to take resources moves them into `state.avail` first.
    ///
    /// No CPU is stranded here while a request waits: a giver adds to it
    /// and then reads `waiting`; a request joining the line stores
    /// `waiting` and then empties this (both sequentially consistent), so
    /// at least one of them sees the other and hands the CPU to the line.
    fast_cpu: AtomicU64,
}

impl ResourcePool {
    /// A pool holding `total`, with GPU IDs `0..ceil(total GPUs)`.
    pub(crate) fn new(total: ResourceSet) -> Self {
        let mut gpu_capacity = vec![UNIT; (total.gpu / UNIT) as usize];
        if !total.gpu.is_multiple_of(UNIT) {
            gpu_capacity.push(total.gpu % UNIT);
        }
        let avail = Available {
            cpu: total.cpu,
            custom: total.custom.clone(),
            gpu_free: gpu_capacity.clone(),
        };
        ResourcePool {
            total,
            gpu_capacity,
            state: Mutex::new(State {
                avail,
                queue: BTreeMap::new(),
                granted: HashMap::new(),
                next_ticket: 0,
            }),
            waiting: AtomicUsize::new(0),
            fast_cpu: AtomicU64::new(0),
        }
    }

    /// The pool of a node configured by `config` (CPUs default to the
    /// machine's cores).
    pub(crate) fn from_config(config: &Config) -> Result<Self> {
        let total =
            ResourceSet::from_parts(config.get_num_cpus(), config.num_gpus, &config.resources)?;
        Ok(ResourcePool::new(total))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in a critical section panics short of a bug; keep going if one did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock, with the fast lane's CPUs moved into what is free: for
    /// everything that takes resources or grants waiters.
    fn lock_all(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        self.drain_fast(&mut st);
        st
    }

    /// Moves the fast lane's CPUs into `st.avail`.
    #[inline]
    fn drain_fast(&self, st: &mut State) {
        if self.fast_cpu.load(AtomicOrdering::Relaxed) != 0 {
            st.avail.cpu += self.fast_cpu.swap(0, AtomicOrdering::SeqCst);
        }
    }

    /// Publishes the length of the line (under the lock, after it changed).
    fn publish_line(&self, st: &State) {
        self.waiting.store(st.queue.len(), AtomicOrdering::SeqCst);
    }

    /// Moves the fast lane's CPUs into what is free, grants, in arrival
    /// order, every waiter that fits, and publishes the new line; returns
    /// the wakers to call once the lock is released.
    fn grant_line(&self, st: &mut State) -> Vec<Waker> {
        self.drain_fast(st);
        let wakers = st.grant_waiters();
        self.publish_line(st);
        wakers
    }

    /// Everything the node has (`ray.cluster_resources()`).
    pub(crate) fn total(&self) -> ResourceSet {
        self.total.clone()
    }

    /// What is free now (`ray.available_resources()`). Its GPUs are the sum
    /// of the free parts of every GPU ID.
    pub(crate) fn available(&self) -> ResourceSet {
        let st = self.lock_all();
        ResourceSet {
            cpu: st.avail.cpu,
            gpu: st.avail.gpu_free.iter().sum(),
            custom: st
                .avail
                .custom
                .iter()
                .filter(|(_, q)| **q > 0)
                .map(|(n, q)| (n.clone(), *q))
                .collect(),
        }
    }

    /// How many requests are waiting.
    #[allow(dead_code)] // for tests and the coming state API
    pub(crate) fn num_waiting(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether the node has at least one whole CPU (so that 1 CPU, what a
    /// default actor's method run needs, is feasible).
    #[inline]
    pub(crate) fn has_a_whole_cpu(&self) -> bool {
        self.total.cpu >= UNIT
    }

    /// Whether `req` could ever be granted on this node (by waiting long
    /// enough); call it before [`acquire`](Self::acquire), which would wait
    /// forever for an infeasible request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming everything the node lacks.
    pub(crate) fn check_feasible(&self, req: &ResourceSet) -> Result<()> {
        let total = &self.total;
        let mut missing = Vec::new();
        if req.cpu > total.cpu {
            missing.push(format!(
                "{} CPU but the node has {} CPU",
                req.cpus(),
                total.cpus()
            ));
        }
        if req.gpu > 0 && req.gpu < UNIT {
            if !self.gpu_capacity.iter().any(|c| *c >= req.gpu) {
                missing.push(format!(
                    "{} GPU on one device but the node has {} GPU",
                    req.gpus(),
                    total.gpus()
                ));
            }
        } else if req.gpu >= UNIT {
            let whole = self.gpu_capacity.iter().filter(|c| **c == UNIT).count();
            if req.gpu.div_ceil(UNIT) as usize > whole {
                missing.push(format!(
                    "{} GPU but the node has {} GPU",
                    req.gpus(),
                    total.gpus()
                ));
            }
        }
        for (name, q) in &req.custom {
            match total.custom.get(name) {
                None => missing.push(format!(
                    "custom resource `{name}`, which the node does not have"
                )),
                Some(have) if q > have => missing.push(format!(
                    "{} of `{name}` but the node has {}",
                    from_units(*q),
                    from_units(*have)
                )),
                Some(_) => {}
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "resources {req} can never be satisfied by this node (total {total}): needs {}",
                missing.join("; ")
            )))
        }
    }

    /// Takes `req` now, or returns `None` if it does not fit now. Never
    /// overtakes a waiter that could run (no queued waiter fits in what is free).
    pub(crate) fn try_acquire(self: &Arc<Self>, req: &ResourceSet) -> Option<Allocation> {
        let grant = self.lock_all().avail.take(req)?;
        Some(Allocation {
            pool: self.clone(),
            req: req.clone(),
            grant,
        })
    }

    /// The fast path of a default actor's method run: takes 1 CPU now if it
    /// is free (never overtaking a waiter: none fits in what is free). Give
    /// it back with [`give_one_cpu`](Self::give_one_cpu).
    #[inline]
    pub(crate) fn try_take_one_cpu(&self) -> bool {
        // The fast lane, while nobody waits: one atomic operation.
        if self.waiting.load(AtomicOrdering::SeqCst) == 0
            && self
                .fast_cpu
                .fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::Relaxed, |f| {
                    f.checked_sub(UNIT)
                })
                .is_ok()
        {
            return true;
        }
        let mut st = self.lock_all();
        if st.avail.cpu >= UNIT {
            st.avail.cpu -= UNIT;
            true
        } else {
            false
        }
    }

    /// Whether some request waits in line (a hint: read without the lock).
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(AtomicOrdering::Relaxed) != 0
    }

    /// Gives back a CPU taken by [`try_take_one_cpu`](Self::try_take_one_cpu).
    #[inline]
    pub(crate) fn give_one_cpu(&self) {
        // Into the fast lane; if someone waits, hand it to the line.
        self.fast_cpu.fetch_add(UNIT, AtomicOrdering::SeqCst);
        if self.waiting.load(AtomicOrdering::SeqCst) != 0 {
            self.give_back(|_| {});
        }
    }

    /// A future resolving to an allocation of `req`. It takes its place in
    /// line now, at the call, so requests are served in the order of the
    /// `acquire` calls; it is granted now if `req` fits. Dropping the future
    /// leaves the line, giving back anything granted to it meanwhile.
    ///
    /// `req` must be feasible ([`check_feasible`](Self::check_feasible)),
    /// else the future never resolves.
    pub(crate) fn acquire(self: &Arc<Self>, req: ResourceSet) -> Acquire {
        let mut st = self.lock_all();
        let mut wakers = Vec::new();
        let state = match st.avail.take(&req) {
            Some(grant) => AcquireState::Granted(grant),
            None => {
                let ticket = st.next_ticket;
                st.next_ticket += 1;
                st.queue.insert(
                    ticket,
                    Waiter {
                        req: req.clone(),
                        waker: None,
                    },
                );
                // Joining the line, then emptying the fast lane: see
                // `fast_cpu` for why this order strands no CPU.
                self.publish_line(&st);
                if self.fast_cpu.load(AtomicOrdering::SeqCst) != 0 {
                    wakers = self.grant_line(&mut st);
                }
                AcquireState::Queued(ticket)
            }
        };
        drop(st);
        for waker in wakers {
            waker.wake();
        }
        Acquire {
            pool: self.clone(),
            req,
            state,
        }
    }

    /// Gives back `req` (granted as `grant`) and grants the waiters that now fit.
    fn release(&self, req: &ResourceSet, grant: &Grant) {
        self.give_back(|avail| avail.give_back(req, grant));
    }

    /// Returns resources to what is free (`put`), then grants the waiters
    /// that now fit and wakes them once the lock is released.
    #[inline]
    fn give_back(&self, put: impl FnOnce(&mut Available)) {
        let wakers = {
            let mut st = self.lock();
            put(&mut st.avail);
            if st.queue.is_empty() {
                return;
            }
            self.grant_line(&mut st)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

#[derive(Debug)]
enum AcquireState {
    /// Granted at the call.
    Granted(Grant),
    /// In line (or granted in `State::granted`, not yet collected).
    Queued(u64),
    /// Resolved: the allocation owns the resources.
    Done,
}

/// The future of [`ResourcePool::acquire`].
#[derive(Debug)]
#[must_use = "a dropped Acquire gives up its place in line"]
pub(crate) struct Acquire {
    pool: Arc<ResourcePool>,
    req: ResourceSet,
    state: AcquireState,
}

impl Acquire {
    /// Whether the request is still waiting (not granted yet).
    pub(crate) fn is_waiting(&self) -> bool {
        match self.state {
            AcquireState::Queued(ticket) => self.pool.lock().queue.contains_key(&ticket),
            AcquireState::Granted(_) | AcquireState::Done => false,
        }
    }

    fn allocation(&mut self, grant: Grant) -> Allocation {
        Allocation {
            pool: self.pool.clone(),
            req: std::mem::take(&mut self.req),
            grant,
        }
    }
}

impl Future for Acquire {
    type Output = Allocation;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Allocation> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, AcquireState::Done) {
            AcquireState::Granted(grant) => Poll::Ready(this.allocation(grant)),
            AcquireState::Queued(ticket) => {
                let mut st = this.pool.lock();
                if let Some(grant) = st.granted.remove(&ticket) {
                    drop(st);
                    return Poll::Ready(this.allocation(grant));
                }
                let waiter = st
                    .queue
                    .get_mut(&ticket)
                    .expect("a queued ticket is either waiting or granted");
                match &mut waiter.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                drop(st);
                this.state = AcquireState::Queued(ticket);
                Poll::Pending
            }
            AcquireState::Done => panic!("resource acquisition polled after completion"),
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, AcquireState::Done) {
            AcquireState::Granted(grant) => self.pool.release(&self.req, &grant),
            AcquireState::Queued(ticket) => {
                let wakers = {
                    let mut st = self.pool.lock();
                    if st.queue.remove(&ticket).is_some() {
                        self.pool.publish_line(&st);
                        return;
                    }
                    let Some(grant) = st.granted.remove(&ticket) else {
                        return;
                    };
                    st.avail.give_back(&self.req, &grant);
                    self.pool.grant_line(&mut st)
                };
                for waker in wakers {
                    waker.wake();
                }
            }
            AcquireState::Done => {}
        }
    }
}

/// Resources taken from a pool, given back when dropped.
#[derive(Debug)]
pub(crate) struct Allocation {
    pool: Arc<ResourcePool>,
    req: ResourceSet,
    grant: Grant,
}

impl Allocation {
    /// The GPU IDs of this allocation, in increasing order: one per whole
    /// GPU, or the one (possibly shared) ID of a fractional request; empty
    /// without GPUs.
    pub(crate) fn gpu_ids(&self) -> &[usize] {
        &self.grant.gpu_ids
    }

    /// What this allocation holds.
    pub(crate) fn resources(&self) -> &ResourceSet {
        &self.req
    }

    /// Whether a suspended task may give this allocation back and take it
    /// again later ([`HeldWhilePolled`]): only CPUs, nothing whose identity
    /// (GPU IDs) or scarcity (custom resources) the task may rely on.
    pub(crate) fn releasable_while_suspended(&self) -> bool {
        self.req.gpu == 0 && self.req.custom.is_empty()
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.pool.release(&self.req, &self.grant);
    }
}

thread_local! {
    /// Set when an object (an `ObjectRef`, `ray::wait`) returns `Pending`
    /// on this thread: the task being polled is blocked on an object.
    static AWAITING_OBJECT: Cell<bool> = const { Cell::new(false) };
}

/// Records that the task being polled on this thread is waiting for an
/// object (called by `ObjectRef` futures when they return `Pending`).
pub(crate) fn note_awaiting_object() {
    AWAITING_OBJECT.with(|f| f.set(true));
}

/// Runs a future holding an allocation, except while the future is blocked
/// on an object: when it returns `Pending` because it awaits an `ObjectRef`
/// (another actor's result, `ray::wait`), the allocation goes back to the
/// pool, and it is taken again, in line with everyone else, before the
/// future is polled once more. Pending on anything else (a timer, a channel)
/// keeps it: that is still the method's time on the CPU.
///
/// This is what a Ray worker does while blocked in `ray.get`: without it, N
/// async methods awaiting N callees on an N-CPU node hold every CPU and wait
/// forever. Only CPU-only allocations are released this way (GPU IDs must not
/// change under a running method); see
/// [`Allocation::releasable_while_suspended`].
pub(crate) struct HeldWhilePolled<'a, F> {
    fut: F,
    /// The pool and request to take again; `None`: nothing is held.
    gate: Option<(Arc<ResourcePool>, ResourceSet)>,
    held: Option<Allocation>,
    acquiring: Option<Acquire>,
    /// Mirrors whether the allocation is held (for the state API).
    flag: Option<&'a AtomicBool>,
}

impl<'a, F> HeldWhilePolled<'a, F> {
    /// Wraps `fut`, which starts holding `held` (or holds nothing).
    pub(crate) fn new(fut: F, held: Option<Allocation>) -> Self {
        HeldWhilePolled {
            fut,
            gate: held.as_ref().map(|h| (h.pool.clone(), h.req.clone())),
            held,
            acquiring: None,
            flag: None,
        }
    }

    /// Keeps `flag` equal to "the allocation is held".
    pub(crate) fn tracking(mut self, flag: &'a AtomicBool) -> Self {
        flag.store(self.held.is_some(), AtomicOrdering::Relaxed);
        self.flag = Some(flag);
        self
    }

    fn set_held(&mut self, a: Option<Allocation>) {
        if let Some(f) = self.flag {
            f.store(a.is_some(), AtomicOrdering::Relaxed);
        }
        self.held = a;
    }
}

impl<F: Future + Unpin> Future for HeldWhilePolled<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some((pool, req)) = &this.gate else {
            return Pin::new(&mut this.fut).poll(cx);
        };
        if this.held.is_none() {
            let mut acquiring = match this.acquiring.take() {
                Some(a) => a,
                None => match pool.try_acquire(req) {
                    Some(a) => {
                        this.set_held(Some(a));
                        return this.poll_held(cx);
                    }
                    None => pool.acquire(req.clone()),
                },
            };
            match Pin::new(&mut acquiring).poll(cx) {
                Poll::Ready(a) => this.set_held(Some(a)),
                Poll::Pending => {
                    this.acquiring = Some(acquiring);
                    return Poll::Pending;
                }
            }
        }
        this.poll_held(cx)
    }
}

impl<F> Drop for HeldWhilePolled<'_, F> {
    /// Dropped unfinished (the call was interrupted): whatever it held goes
    /// back with `held`; the flag must not say otherwise.
    fn drop(&mut self) {
        if let Some(f) = self.flag {
            f.store(false, AtomicOrdering::Relaxed);
        }
    }
}

impl<F: Future + Unpin> HeldWhilePolled<'_, F> {
    fn poll_held(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = AWAITING_OBJECT.with(|f| f.replace(false));
        let r = Pin::new(&mut self.fut).poll(cx);
        let awaited = AWAITING_OBJECT.with(|f| f.replace(outer || f.get()));
        if r.is_ready() || awaited {
            // Finished, or blocked on an object: the resources go back now.
            self.set_held(None);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;
    use std::time::Duration;

    fn set(cpus: f64, gpus: f64, custom: &[(&str, f64)]) -> ResourceSet {
        let custom = custom.iter().map(|(n, q)| (n.to_string(), *q)).collect();
        ResourceSet::from_parts(cpus, gpus, &custom).unwrap()
    }

    fn cpus(q: f64) -> ResourceSet {
        set(q, 0.0, &[])
    }

    fn gpus(q: f64) -> ResourceSet {
        set(0.0, q, &[])
    }

    fn pool(total: ResourceSet) -> Arc<ResourcePool> {
        Arc::new(ResourcePool::new(total))
    }

    fn invalid_message(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    /// Polls once with a no-op waker.
    fn poll_once(acq: &mut Acquire) -> Option<Allocation> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(acq).poll(&mut cx) {
            Poll::Ready(a) => Some(a),
            Poll::Pending => None,
        }
    }

    const WAIT: Duration = Duration::from_secs(10);
    const SHORT: Duration = Duration::from_millis(50);

    // ---- ResourceSet -------------------------------------------------------

    #[test]
    fn validation_says_what_is_allowed() {
        let none = BTreeMap::new();
        let m = invalid_message(ResourceSet::from_parts(-1.0, 0.0, &none));
        assert!(m.contains("num_cpus") && m.contains("non-negative"), "{m}");
        let m = invalid_message(ResourceSet::from_parts(f64::NAN, 0.0, &none));
        assert!(m.contains("non-negative"), "{m}");
        let m = invalid_message(ResourceSet::from_parts(1.5, 0.0, &none));
        assert!(m.contains("whole") && m.contains("below 1"), "{m}");
        let m = invalid_message(ResourceSet::from_parts(0.0, 2.5, &none));
        assert!(m.contains("num_gpus") && m.contains("whole"), "{m}");
        let m = invalid_message(ResourceSet::from_parts(0.00001, 0.0, &none));
        assert!(m.contains("0.0001"), "{m}");
        let m = invalid_message(ResourceSet::from_parts(1e15, 0.0, &none));
        assert!(m.contains("too large"), "{m}");
        for name in ["CPU", "GPU"] {
            let custom = BTreeMap::from([(name.to_owned(), 1.0)]);
            let m = invalid_message(ResourceSet::from_parts(1.0, 0.0, &custom));
            assert!(m.contains(name) && m.contains("num_cpus / num_gpus"), "{m}");
        }
        let custom = BTreeMap::from([(String::new(), 1.0)]);
        invalid_message(ResourceSet::from_parts(1.0, 0.0, &custom));
        let custom = BTreeMap::from([("disk".to_owned(), -2.0)]);
        let m = invalid_message(ResourceSet::from_parts(1.0, 0.0, &custom));
        assert!(m.contains("`disk`"), "{m}");
        // Allowed: fractions below 1, whole numbers, 4 decimal places, 0.
        ResourceSet::from_parts(0.1234, 0.5, &BTreeMap::from([("a".to_owned(), 7.0)])).unwrap();
        ResourceSet::from_parts(0.0, 0.0, &none).unwrap();
    }

    #[test]
    fn map_shape_and_accessors() {
        let s = set(2.0, 0.5, &[("disk", 3.0), ("zero", 0.0)]);
        assert_eq!(
            s.to_map(),
            BTreeMap::from([
                ("CPU".to_owned(), 2.0),
                ("GPU".to_owned(), 0.5),
                ("disk".to_owned(), 3.0)
            ])
        );
        assert_eq!(s.cpus(), 2.0);
        assert_eq!(s.gpus(), 0.5);
        assert_eq!(s.get("CPU"), 2.0);
        assert_eq!(s.get("GPU"), 0.5);
        assert_eq!(s.get("disk"), 3.0);
        assert_eq!(s.get("zero"), 0.0);
        assert_eq!(s.to_string(), "{CPU: 2, GPU: 0.5, disk: 3}");
        assert!(ResourceSet::default().is_empty());
        assert!(set(0.0, 0.0, &[("zero", 0.0)]).is_empty());
        assert_eq!(ResourceSet::default().to_map().len(), 2);
        assert_eq!(ResourceSet::one_cpu(), cpus(1.0));
    }

    #[test]
    fn serde_round_trip_validates() {
        let s = set(0.25, 1.0, &[("disk", 3.0)]);
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<ResourceSet>(&bytes).unwrap(), s);
        let bad = BTreeMap::from([("CPU".to_owned(), 1.5)]);
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<ResourceSet>(&bytes).is_err());
        let map = s.to_map();
        assert_eq!(ResourceSet::try_from(map).unwrap(), s);
    }

    #[test]
    fn fixed_point_never_drifts() {
        // Ten 0.1-CPU requests fill exactly one CPU (0.1 * 10 != 1.0 in f64 sums).
        let p = pool(cpus(1.0));
        let tenth = cpus(0.1);
        let held: Vec<_> = (0..10).map(|_| p.try_acquire(&tenth).unwrap()).collect();
        assert!(p.try_acquire(&cpus(0.0001)).is_none());
        assert_eq!(p.available().cpus(), 0.0);
        drop(held);
        assert_eq!(p.available(), p.total());
        // Many mixed acquire/release rounds come back to exactly the total.
        let p = pool(set(3.0, 2.0, &[("x", 1.0)]));
        let reqs = [
            cpus(0.1),
            cpus(0.3),
            gpus(0.7),
            set(0.0, 0.0, &[("x", 0.3)]),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut held = Vec::new();
        for _ in 0..10_000 {
            if rng.random_bool(0.5) || held.is_empty() {
                if let Some(a) = p.try_acquire(&reqs[rng.random_range(0..reqs.len())]) {
                    held.push(a);
                }
            } else {
                held.swap_remove(rng.random_range(0..held.len()));
            }
        }
        drop(held);
        assert_eq!(p.available(), p.total());
    }

    // ---- Pool bookkeeping -------------------------------------------------

    #[test]
    fn from_config_uses_node_resources() {
        let config = Config::default()
            .num_cpus(3)
            .num_gpus(2)
            .resource("disk", 5);
        let p = ResourcePool::from_config(&config).unwrap();
        assert_eq!(p.total(), set(3.0, 2.0, &[("disk", 5.0)]));
        assert_eq!(p.available(), p.total());
        let p = ResourcePool::from_config(&Config::default()).unwrap();
        assert_eq!(p.total().cpus(), crate::config::machine_cores() as f64);
        assert_eq!(p.total().gpus(), 0.0);
        let bad = Config::default().num_cpus(1).resource("GPU", 1);
        invalid_message(ResourcePool::from_config(&bad));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_cpu_bookkeeping() {
        let p = pool(cpus(1.0));
        let first = p.try_acquire(&cpus(1.0)).expect("1 CPU is free");
        assert_eq!(p.available().cpus(), 0.0);
        assert!(p.try_acquire(&cpus(1.0)).is_none());
        let second = p.acquire(cpus(1.0));
        assert!(second.is_waiting());
        let task = tokio::spawn(second);
        tokio::time::sleep(SHORT).await;
        assert!(!task.is_finished(), "the second request must wait");
        assert_eq!(p.num_waiting(), 1);
        drop(first);
        let second = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert_eq!(p.available().cpus(), 0.0);
        assert_eq!(p.num_waiting(), 0);
        drop(second);
        assert_eq!(p.available(), p.total());
    }

    #[tokio::test]
    async fn fractional_cpus() {
        let p = pool(cpus(1.0));
        let a = p.acquire(cpus(0.5)).await;
        let b = p.acquire(cpus(0.5)).await;
        assert_eq!(p.available().cpus(), 0.0);
        let mut c = p.acquire(cpus(0.5));
        assert!(poll_once(&mut c).is_none());
        assert!(tokio::time::timeout(SHORT, &mut c).await.is_err());
        drop(a);
        let c = tokio::time::timeout(WAIT, c).await.unwrap();
        assert_eq!(c.resources(), &cpus(0.5));
        drop((b, c));
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn empty_requests_always_fit() {
        let p = pool(cpus(1.0));
        let _all = p.try_acquire(&cpus(1.0)).unwrap();
        let _waiting = p.acquire(cpus(1.0));
        let nothing = p.try_acquire(&ResourceSet::default()).unwrap();
        assert!(nothing.gpu_ids().is_empty());
        let mut acq = p.acquire(ResourceSet::default());
        assert!(poll_once(&mut acq).is_some());
    }

    // ---- GPUs --------------------------------------------------------------

    #[test]
    fn gpu_ids_are_exclusive_and_reused_lowest_first() {
        let p = pool(gpus(4.0));
        let held: Vec<_> = (0..4).map(|_| p.try_acquire(&gpus(1.0)).unwrap()).collect();
        let ids: Vec<_> = held.iter().map(|a| a.gpu_ids().to_vec()).collect();
        assert_eq!(ids, vec![vec![0], vec![1], vec![2], vec![3]]);
        assert!(p.try_acquire(&gpus(1.0)).is_none());
        assert!(p.try_acquire(&gpus(0.1)).is_none());
        let mut held: Vec<Option<Allocation>> = held.into_iter().map(Some).collect();
        held[2] = None;
        held[1] = None;
        // Freed IDs are reused, lowest first.
        let a = p.try_acquire(&gpus(1.0)).unwrap();
        assert_eq!(a.gpu_ids(), &[1]);
        let b = p.try_acquire(&gpus(1.0)).unwrap();
        assert_eq!(b.gpu_ids(), &[2]);
        assert_eq!(p.available().gpus(), 0.0);
        drop((a, b, held));
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn multi_gpu_packing() {
        let p = pool(gpus(4.0));
        let two = p.try_acquire(&gpus(2.0)).unwrap();
        assert_eq!(two.gpu_ids(), &[0, 1]);
        let one = p.try_acquire(&gpus(1.0)).unwrap();
        assert_eq!(one.gpu_ids(), &[2]);
        // Two GPUs are needed but only ID 3 is free: waits.
        let mut other_two = p.acquire(gpus(2.0));
        assert!(poll_once(&mut other_two).is_none());
        drop(two);
        // IDs 0, 1 and 3 are free: the waiter gets the lowest two.
        let other_two = poll_once(&mut other_two).expect("granted at the release");
        assert_eq!(other_two.gpu_ids(), &[0, 1]);
        drop((one, other_two));
        // Free IDs need not be adjacent: hold 0, 1, 2, free 1, ask for 2.
        let held: Vec<_> = (0..3).map(|_| p.try_acquire(&gpus(1.0)).unwrap()).collect();
        let [a, b, c]: [Allocation; 3] = held.try_into().unwrap();
        drop(b);
        let gapped = p.try_acquire(&gpus(2.0)).unwrap();
        assert_eq!(gapped.gpu_ids(), &[1, 3]);
        // Four GPUs at once once all are free.
        let mut all = p.acquire(gpus(4.0));
        drop((a, c));
        assert!(all.is_waiting());
        drop(gapped);
        let all = poll_once(&mut all).unwrap();
        assert_eq!(all.gpu_ids(), &[0, 1, 2, 3]);
        drop(all);
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn fractional_gpus_share_ids_best_fit() {
        let p = pool(gpus(2.0));
        let a = p.try_acquire(&gpus(0.5)).unwrap();
        let b = p.try_acquire(&gpus(0.5)).unwrap();
        // Best fit: both halves on GPU 0, GPU 1 stays whole.
        assert_eq!((a.gpu_ids(), b.gpu_ids()), (&[0][..], &[0][..]));
        let whole = p.try_acquire(&gpus(1.0)).unwrap();
        assert_eq!(whole.gpu_ids(), &[1]);
        assert!(p.try_acquire(&gpus(0.1)).is_none());
        drop((a, whole));
        // GPU 0 has 0.5 left, GPU 1 is whole: a 0.25 goes to the fuller GPU 0.
        let c = p.try_acquire(&gpus(0.25)).unwrap();
        assert_eq!(c.gpu_ids(), &[0]);
        // 0.75 fits only on GPU 1; then a whole GPU does not fit although
        // 0.5 GPU is free in total (0.25 on each ID).
        let d = p.try_acquire(&gpus(0.75)).unwrap();
        assert_eq!(d.gpu_ids(), &[1]);
        assert_eq!(p.available().gpus(), 0.5);
        assert!(p.try_acquire(&gpus(0.5)).is_none());
        assert!(p.try_acquire(&gpus(1.0)).is_none());
        p.check_feasible(&gpus(1.0)).unwrap();
        drop((b, c, d));
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn fractional_node_gpu() {
        let p = pool(gpus(0.5));
        let a = p.try_acquire(&gpus(0.25)).unwrap();
        let b = p.try_acquire(&gpus(0.25)).unwrap();
        assert_eq!((a.gpu_ids(), b.gpu_ids()), (&[0][..], &[0][..]));
        assert!(p.try_acquire(&gpus(0.25)).is_none());
        drop((a, b));
        let m = invalid_message(p.check_feasible(&gpus(1.0)));
        assert!(m.contains("1 GPU but the node has 0.5 GPU"), "{m}");
        let m = invalid_message(p.check_feasible(&gpus(0.75)));
        assert!(m.contains("on one device"), "{m}");
        p.check_feasible(&gpus(0.5)).unwrap();
    }

    // ---- Custom resources and feasibility ---------------------------------

    #[test]
    fn custom_resources() {
        let p = pool(set(4.0, 0.0, &[("disk", 2.0), ("tpu", 0.5)]));
        let disk = set(0.0, 0.0, &[("disk", 1.0)]);
        let a = p.try_acquire(&disk).unwrap();
        let b = p.try_acquire(&disk).unwrap();
        assert!(p.try_acquire(&disk).is_none());
        assert_eq!(p.available().get("disk"), 0.0);
        assert!(!p.available().to_map().contains_key("disk"));
        let mut c = p.acquire(disk.clone());
        assert!(poll_once(&mut c).is_none());
        // CPUs are still free for others.
        let cpu = p.try_acquire(&cpus(4.0)).unwrap();
        drop(a);
        let c = poll_once(&mut c).unwrap();
        let tpu = p.try_acquire(&set(0.0, 0.0, &[("tpu", 0.5)])).unwrap();
        assert!(p.available().is_empty());
        drop((b, c, cpu, tpu));
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn infeasible_requests_name_what_is_missing() {
        let p = pool(set(2.0, 1.0, &[("disk", 2.0)]));
        p.check_feasible(&set(2.0, 1.0, &[("disk", 2.0)])).unwrap();
        p.check_feasible(&ResourceSet::default()).unwrap();
        let m = invalid_message(p.check_feasible(&gpus(2.0)));
        assert!(m.contains("2 GPU but the node has 1 GPU"), "{m}");
        let m = invalid_message(p.check_feasible(&cpus(3.0)));
        assert!(m.contains("3 CPU but the node has 2 CPU"), "{m}");
        let m = invalid_message(p.check_feasible(&set(0.0, 0.0, &[("foo", 1.0)])));
        assert!(
            m.contains("custom resource `foo`, which the node does not have"),
            "{m}"
        );
        let m = invalid_message(p.check_feasible(&set(3.0, 0.0, &[("disk", 3.0)])));
        assert!(
            m.contains("3 CPU but") && m.contains("3 of `disk` but the node has 2"),
            "{m}"
        );
        assert!(m.contains("never"), "{m}");
        let none = pool(cpus(1.0));
        let m = invalid_message(none.check_feasible(&gpus(0.5)));
        assert!(
            m.contains("0.5 GPU on one device but the node has 0 GPU"),
            "{m}"
        );
    }

    // ---- Waiter order -------------------------------------------------------

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn equal_requests_are_served_in_arrival_order() {
        let p = pool(cpus(1.0));
        let hold = p.try_acquire(&cpus(1.0)).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Line is taken at the acquire() call, whatever order tasks first run in.
        let waiting: Vec<_> = (0..8).map(|i| (i, p.acquire(cpus(1.0)))).collect();
        let mut tasks = Vec::new();
        for (i, acq) in waiting.into_iter().rev() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let alloc = acq.await;
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(alloc);
            }));
        }
        tokio::time::sleep(SHORT).await;
        assert!(order.lock().unwrap().is_empty());
        drop(hold);
        for t in tasks {
            tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn small_requests_are_not_blocked_by_a_large_waiter() {
        let p = pool(cpus(2.0));
        let a = p.try_acquire(&cpus(1.0)).unwrap();
        let b = p.try_acquire(&cpus(1.0)).unwrap();
        let mut big = p.acquire(cpus(2.0));
        let mut small = p.acquire(cpus(1.0));
        assert!(poll_once(&mut big).is_none());
        assert!(poll_once(&mut small).is_none());
        // One CPU frees: the big waiter (first) does not fit, the small one does.
        drop(a);
        assert!(poll_once(&mut big).is_none());
        let small = poll_once(&mut small).expect("the small waiter fits");
        // A new small request that fits is granted although the big one waits.
        drop(b);
        let late = p
            .try_acquire(&cpus(1.0))
            .expect("fits and nobody waiting fits");
        assert!(poll_once(&mut big).is_none());
        drop((small, late));
        let big = poll_once(&mut big).expect("the big waiter is placed once 2 CPUs are free");
        assert_eq!(big.resources().cpus(), 2.0);
    }

    #[test]
    fn one_release_grants_every_waiter_that_fits_in_order() {
        let p = pool(set(2.0, 1.0, &[]));
        let all = p.try_acquire(&set(2.0, 1.0, &[])).unwrap();
        let mut w: Vec<Acquire> = [cpus(1.0), gpus(1.0), cpus(1.0), cpus(1.0)]
            .into_iter()
            .map(|r| p.acquire(r))
            .collect();
        drop(all);
        let granted: Vec<bool> = w.iter().map(|a| !a.is_waiting()).collect();
        assert_eq!(granted, vec![true, true, true, false]);
        let _held: Vec<_> = w[..3].iter_mut().map(|a| poll_once(a).unwrap()).collect();
        assert!(poll_once(&mut w[3]).is_none());
    }

    // ---- Cancellation -------------------------------------------------------

    #[tokio::test]
    async fn cancelled_acquire_leaves_the_line() {
        let p = pool(cpus(1.0));
        let hold = p.acquire(cpus(1.0)).await;
        let r = tokio::time::timeout(SHORT, p.acquire(cpus(1.0))).await;
        assert!(r.is_err(), "must time out while the CPU is held");
        assert_eq!(p.num_waiting(), 0);
        // A never-polled future also leaves the line when dropped.
        drop(p.acquire(cpus(0.5)));
        assert_eq!(p.num_waiting(), 0);
        drop(hold);
        assert_eq!(p.available(), p.total());
        let again = tokio::time::timeout(WAIT, p.acquire(cpus(1.0)))
            .await
            .unwrap();
        drop(again);
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn cancelled_after_grant_passes_resources_on() {
        let p = pool(cpus(1.0));
        let hold = p.try_acquire(&cpus(1.0)).unwrap();
        let mut first = p.acquire(cpus(1.0));
        let mut second = p.acquire(cpus(1.0));
        assert!(poll_once(&mut first).is_none());
        drop(hold);
        // Granted to `first`, which is dropped before collecting it.
        assert!(!first.is_waiting());
        assert!(second.is_waiting());
        drop(first);
        let second = poll_once(&mut second).expect("handed on to the next waiter");
        drop(second);
        assert_eq!(p.available(), p.total());
        // Granted at the call and dropped unpolled: given back too.
        drop(p.acquire(cpus(1.0)));
        assert_eq!(p.available(), p.total());
    }

    #[test]
    fn wakes_across_threads_and_runtimes() {
        // No runtime is needed to release; the waiter's own runtime is woken.
        let p = pool(cpus(1.0));
        let hold = p.try_acquire(&cpus(1.0)).unwrap();
        let acq = p.acquire(cpus(1.0));
        let waiter = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async { tokio::time::timeout(WAIT, acq).await.is_ok() })
        });
        std::thread::sleep(SHORT);
        drop(hold);
        assert!(waiter.join().unwrap());
        assert_eq!(p.available(), p.total());
    }

    // ---- Randomized -----------------------------------------------------------

    /// What the tests see held at once, checked against the node.
    #[derive(Default)]
    struct Ledger {
        cpu: u64,
        custom: u64,
        /// Units held of each GPU ID, and IDs held by whole-GPU requests.
        gpu: HashMap<usize, u64>,
        whole: HashSet<usize>,
    }

    impl Ledger {
        fn add(&mut self, a: &Allocation, total: &ResourceSet) {
            let r = a.resources();
            self.cpu += r.cpu;
            assert!(self.cpu <= total.cpu, "CPU over-allocated");
            self.custom += r.custom.get("x").copied().unwrap_or(0);
            assert!(self.custom <= total.custom["x"], "custom over-allocated");
            let ids = a.gpu_ids();
            let needed = if r.gpu == 0 { 0 } else { r.gpu.div_ceil(UNIT) };
            assert_eq!(ids.len() as u64, needed);
            for &id in ids {
                let used = self.gpu.entry(id).or_default();
                *used += if r.gpu >= UNIT { UNIT } else { r.gpu };
                assert!(*used <= UNIT, "GPU {id} over-allocated");
                if r.gpu >= UNIT {
                    assert!(self.whole.insert(id), "GPU {id} given twice");
                }
            }
        }

        fn remove(&mut self, a: &Allocation) {
            let r = a.resources();
            self.cpu -= r.cpu;
            self.custom -= r.custom.get("x").copied().unwrap_or(0);
            for &id in a.gpu_ids() {
                *self.gpu.get_mut(&id).unwrap() -= if r.gpu >= UNIT { UNIT } else { r.gpu };
                if r.gpu >= UNIT {
                    self.whole.remove(&id);
                }
            }
        }
    }

    fn random_request(rng: &mut impl Rng) -> ResourceSet {
        let cpu = [0.0, 0.25, 0.5, 1.0, 2.0][rng.random_range(0..5)];
        let gpu = [0.0, 0.0, 0.3, 0.5, 1.0, 2.0][rng.random_range(0..6)];
        let x = [0.0, 0.0, 1.0][rng.random_range(0..3)];
        set(cpu, gpu, &[("x", x)])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stress_no_lost_wakeups_no_overallocation() {
        let total = set(3.0, 3.0, &[("x", 2.0)]);
        let p = pool(total.clone());
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let mut tasks = Vec::new();
        for seed in 0..32u64 {
            let p = p.clone();
            let ledger = ledger.clone();
            let total = total.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut granted = 0;
                for _ in 0..150 {
                    let req = random_request(&mut rng);
                    p.check_feasible(&req).unwrap();
                    let alloc = match rng.random_range(0..4) {
                        // Sometimes give up while waiting.
                        0 => {
                            let patience = Duration::from_micros(rng.random_range(0..300));
                            match tokio::time::timeout(patience, p.acquire(req)).await {
                                Ok(a) => a,
                                Err(_) => continue,
                            }
                        }
                        1 => match p.try_acquire(&req) {
                            Some(a) => a,
                            None => continue,
                        },
                        _ => p.acquire(req).await,
                    };
                    granted += 1;
                    ledger.lock().unwrap().add(&alloc, &total);
                    match rng.random_range(0..3) {
                        0 => tokio::task::yield_now().await,
                        1 => {
                            let d = Duration::from_micros(rng.random_range(0..200));
                            tokio::time::sleep(d).await;
                        }
                        _ => {}
                    }
                    ledger.lock().unwrap().remove(&alloc);
                    drop(alloc);
                }
                granted
            }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("a waiter was never woken")
                .unwrap();
        }
        assert!(granted > 1000, "only {granted} grants");
        assert_eq!(p.num_waiting(), 0);
        assert_eq!(p.available(), total);
    }

    /// The 1-CPU fast lane racing the line: tasks taking and giving CPUs
    /// one at a time (default actors' method runs) against tasks acquiring
    /// CPUs in line, on many threads: never more CPUs held than the node
    /// has, no waiter left asleep with a CPU free (every acquire resolves),
    /// everything back at the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stress_fast_lane_against_the_line() {
        use std::sync::atomic::AtomicI64;
        for cpus in [1.0, 2.0] {
            let total = set(cpus, 0.0, &[]);
            let p = pool(total.clone());
            let held = Arc::new(AtomicI64::new(0));
            let limit = (cpus as i64) * UNIT as i64;
            let mut tasks = Vec::new();
            for seed in 0..12u64 {
                let (p, held) = (p.clone(), held.clone());
                tasks.push(tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                    let mut done = 0u32;
                    while done < 300 {
                        let hold = |held: &AtomicI64, q: i64| {
                            let now = held.fetch_add(q, AtomicOrdering::SeqCst) + q;
                            assert!(now <= limit, "{now} units held of {limit}");
                        };
                        if seed % 3 == 0 {
                            // In line, for 1 or 0.5 CPU.
                            let q = if rng.random_bool(0.5) { 1.0 } else { 0.5 };
                            let a = p.acquire(set(q, 0.0, &[])).await;
                            let units = a.resources().cpu as i64;
                            hold(&held, units);
                            tokio::task::yield_now().await;
                            held.fetch_sub(units, AtomicOrdering::SeqCst);
                            drop(a);
                            done += 1;
                        } else if p.try_take_one_cpu() {
                            hold(&held, UNIT as i64);
                            if rng.random_bool(0.3) {
                                tokio::task::yield_now().await;
                            }
                            held.fetch_sub(UNIT as i64, AtomicOrdering::SeqCst);
                            p.give_one_cpu();
                            done += 1;
                        } else {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            for t in tasks {
                tokio::time::timeout(Duration::from_secs(60), t)
                    .await
                    .expect("a waiter was never woken")
                    .unwrap();
            }
            assert_eq!(p.num_waiting(), 0);
            assert_eq!(p.available(), total);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Start an acquire (granted now or queued).
        Acquire(ResourceSet),
        /// Poll the i-th pending acquire (mod count).
        Poll(usize),
        /// Drop the i-th pending acquire (cancellation).
        Cancel(usize),
        /// Drop the i-th held allocation.
        Release(usize),
        /// A default actor's method run takes 1 CPU (the fast path).
        TakeOne,
        /// ... and gives it back.
        GiveOne,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u64>().prop_map(|s| {
                Op::Acquire(random_request(&mut rand::rngs::StdRng::seed_from_u64(s)))
            }),
            2 => any::<usize>().prop_map(Op::Poll),
            1 => any::<usize>().prop_map(Op::Cancel),
            2 => any::<usize>().prop_map(Op::Release),
            2 => Just(Op::TakeOne),
            2 => Just(Op::GiveOne),
        ]
    }

    proptest! {
        /// A model check of the bookkeeping under any interleaving of
        /// acquires, polls, cancellations and releases.
        #[test]
        fn model_check(ops in proptest::collection::vec(op(), 1..120)) {
            let total = set(3.0, 3.0, &[("x", 2.0)]);
            let p = pool(total.clone());
            let mut pending: Vec<Acquire> = Vec::new();
            let mut held: Vec<Allocation> = Vec::new();
            let mut ledger = Ledger::default();
            let mut ones = 0u64;
            for op in ops {
                match op {
                    Op::Acquire(req) => pending.push(p.acquire(req)),
                    Op::Poll(i) if !pending.is_empty() => {
                        let i = i % pending.len();
                        let was_waiting = pending[i].is_waiting();
                        if let Some(a) = poll_once(&mut pending[i]) {
                            prop_assert!(!was_waiting);
                            ledger.add(&a, &total);
                            held.push(a);
                            drop(pending.swap_remove(i));
                        } else {
                            prop_assert!(was_waiting);
                        }
                    }
                    Op::Cancel(i) if !pending.is_empty() => {
                        drop(pending.swap_remove(i % pending.len()));
                    }
                    Op::Release(i) if !held.is_empty() => {
                        let a = held.swap_remove(i % held.len());
                        ledger.remove(&a);
                        drop(a);
                    }
                    Op::TakeOne if p.try_take_one_cpu() => {
                        ones += 1;
                        ledger.cpu += UNIT;
                        prop_assert!(ledger.cpu <= total.cpu, "CPU over-allocated");
                    }
                    Op::GiveOne if ones > 0 => {
                        ones -= 1;
                        ledger.cpu -= UNIT;
                        p.give_one_cpu();
                    }
                    _ => {}
                }
                // The fast lane holds CPUs only while nobody waits.
                let fast = p.fast_cpu.load(AtomicOrdering::SeqCst);
                prop_assert!(fast == 0 || p.num_waiting() == 0, "{fast} stranded");
                // Invariant: no waiter fits in what is free.
                let st = p.lock();
                let mut avail = Available {
                    cpu: st.avail.cpu + fast,
                    custom: st.avail.custom.clone(),
                    gpu_free: st.avail.gpu_free.clone(),
                };
                for w in st.queue.values() {
                    prop_assert!(avail.take(&w.req).is_none(), "waiter {} fits", w.req);
                }
                // Free + held + granted-not-collected == total.
                let granted_cpu: u64 = pending
                    .iter()
                    .filter(|a| !matches!(a.state, AcquireState::Queued(t) if st.queue.contains_key(&t)))
                    .map(|a| a.req.cpu)
                    .sum();
                prop_assert_eq!(st.avail.cpu + fast + ledger.cpu + granted_cpu, total.cpu);
            }
            drop(pending);
            drop(held);
            for _ in 0..ones {
                p.give_one_cpu();
            }
            prop_assert_eq!(p.available(), total);
            prop_assert_eq!(p.num_waiting(), 0);
        }
    }
}
