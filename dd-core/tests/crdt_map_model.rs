//! A reference model of the ORMap family's remove / re-add semantics (issue 16), and property
//! tests that run random interleavings of updates, puts, removes, re-adds and merges (full states
//! and deltas, in random orders, over 3 replicas) on every map type and compare each replica's
//! value with the model's after every step.
//!
//! The model is the specification, written to be obviously right rather than fast: every
//! operation is kept with the set of operations its replica had seen when it ran (its causal
//! history), a replica is the set of operations it has seen, and a map's value is computed from
//! that set alone:
//!
//! - a key is present when some write of it (update, put, add) is not in the history of a remove
//!   of the key;
//! - a counter is the sum of the amounts of the increments (and puts) of the key that are in the
//!   history of no remove and no put of the key (reset-remove);
//! - a set holds the elements added (or put) by an operation that is in the history of no remove
//!   of the key, of no removal of that element and of no put of the key (a put replaces the set
//!   it has seen);
//! - a register holds the write, among the key's puts that are in the history of no other
//!   operation of the key, with the greatest (timestamp, replica).
//!
//! `cargo test` runs a bounded number of cases per map type (64); set `DD_MODEL_CASES` (for
//! example `DD_MODEL_CASES=100000`) for more.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use dd_core::crdt::{LWWMap, ORMap, ORMultiMap, ORSet, PNCounter, PNCounterMap};
use dd_core::{DeltaReplicatedData, ReplicatedData, UniqueReplicaId};
use proptest::prelude::*;

/// What a replica did, as the model keeps it.
#[derive(Debug, Clone)]
enum Event {
    /// A counter of `key` changed by `amount` (an update of the key).
    Count { key: u64, amount: i128 },
    /// A counter of `key` was put to `amount` (forgets what it saw of the key, then writes).
    PutCount { key: u64, amount: i128 },
    /// `element` was added to the set of `key`.
    Add { key: u64, element: u64 },
    /// `element` was removed from the set of `key` (an update of the key).
    RemoveElement { key: u64, element: u64 },
    /// The set of `key` was replaced by `elements` (an update of the key).
    PutSet { key: u64, elements: BTreeSet<u64> },
    /// `key` was set to `value` at `timestamp` by replica `replica`.
    PutRegister {
        key: u64,
        value: u64,
        timestamp: i64,
        replica: usize,
    },
    /// `key` was removed.
    RemoveKey { key: u64 },
    /// Every key was removed.
    Clear,
}

impl Event {
    /// The key a write event writes.
    fn written_key(&self) -> Option<u64> {
        match self {
            Event::Count { key, .. }
            | Event::PutCount { key, .. }
            | Event::Add { key, .. }
            | Event::RemoveElement { key, .. }
            | Event::PutSet { key, .. }
            | Event::PutRegister { key, .. } => Some(*key),
            Event::RemoveKey { .. } | Event::Clear => None,
        }
    }

    /// Whether this event removes `key` (what it saw of the key is forgotten).
    fn removes_key(&self, of: u64) -> bool {
        match self {
            Event::RemoveKey { key } => *key == of,
            Event::Clear => true,
            _ => false,
        }
    }
}

/// One operation of the history: what happened, and the ids of the operations seen before.
#[derive(Debug, Clone)]
struct Operation {
    event: Event,
    seen: BTreeSet<usize>,
}

/// The whole history and what each replica has seen of it.
#[derive(Debug, Default)]
struct History {
    operations: Vec<Operation>,
}

impl History {
    fn record(&mut self, known: &mut BTreeSet<usize>, event: Event) -> usize {
        let id = self.operations.len();
        self.operations.push(Operation {
            event,
            seen: known.clone(),
        });
        known.insert(id);
        id
    }

    fn known<'a>(
        &'a self,
        known: &'a BTreeSet<usize>,
    ) -> impl Iterator<Item = (usize, &'a Operation)> + 'a {
        known.iter().map(|&id| (id, &self.operations[id]))
    }

    /// Whether operation `id` is in the history of a known operation `by` accepts.
    fn seen_by(&self, known: &BTreeSet<usize>, id: usize, by: impl Fn(&Event) -> bool) -> bool {
        self.known(known)
            .any(|(_, o)| by(&o.event) && o.seen.contains(&id))
    }

    /// The keys present: written by an operation no known remove of the key has seen.
    fn present(&self, known: &BTreeSet<usize>) -> BTreeSet<u64> {
        self.known(known)
            .filter_map(|(id, o)| o.event.written_key().map(|k| (id, k)))
            .filter(|&(id, k)| !self.seen_by(known, id, |e| e.removes_key(k)))
            .map(|(_, k)| k)
            .collect()
    }

    /// The counters (reset-remove).
    fn counters(&self, known: &BTreeSet<usize>) -> BTreeMap<u64, i128> {
        let mut values: BTreeMap<u64, i128> =
            self.present(known).into_iter().map(|k| (k, 0)).collect();
        for (id, o) in self.known(known) {
            let (key, amount) = match o.event {
                Event::Count { key, amount } | Event::PutCount { key, amount } => (key, amount),
                _ => continue,
            };
            let forgotten = self.seen_by(known, id, |e| {
                e.removes_key(key) || matches!(e, Event::PutCount { key: k, .. } if *k == key)
            });
            if !forgotten && let Some(v) = values.get_mut(&key) {
                *v += amount;
            }
        }
        values
    }

    /// The sets (add-wins inside a key, a remove of the key forgets what it saw).
    fn sets(&self, known: &BTreeSet<usize>) -> BTreeMap<u64, BTreeSet<u64>> {
        let mut values: BTreeMap<u64, BTreeSet<u64>> = self
            .present(known)
            .into_iter()
            .map(|k| (k, BTreeSet::new()))
            .collect();
        for (id, o) in self.known(known) {
            let (key, added): (u64, Vec<u64>) = match &o.event {
                Event::Add { key, element } => (*key, vec![*element]),
                Event::PutSet { key, elements } => (*key, elements.iter().copied().collect()),
                _ => continue,
            };
            for element in added {
                let forgotten = self.seen_by(known, id, |e| {
                    e.removes_key(key)
                        || matches!(e, Event::PutSet { key: k, .. } if *k == key)
                        || matches!(e, Event::RemoveElement { key: k, element: x }
                            if *k == key && *x == element)
                });
                if !forgotten && let Some(set) = values.get_mut(&key) {
                    set.insert(element);
                }
            }
        }
        values
    }

    /// The registers (last writer wins among the puts no other operation of the key has seen).
    fn registers(&self, known: &BTreeSet<usize>) -> BTreeMap<u64, u64> {
        let present = self.present(known);
        let mut best: BTreeMap<u64, ((i64, usize), u64)> = BTreeMap::new();
        for (id, o) in self.known(known) {
            let Event::PutRegister {
                key,
                value,
                timestamp,
                replica,
            } = o.event
            else {
                continue;
            };
            if !present.contains(&key)
                || self.seen_by(known, id, |e| {
                    e.removes_key(key) || e.written_key() == Some(key)
                })
            {
                continue;
            }
            let order = (timestamp, replica);
            if best.get(&key).is_none_or(|(b, _)| order > *b) {
                best.insert(key, (order, value));
            }
        }
        best.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }
}

/// An operation a test asks a replica to do.
#[derive(Debug, Clone)]
enum Request {
    /// Count, add an element, or put a register (by map type).
    Write { key: u64, arg: u64 },
    /// Put the key (counter, set of up to two elements, register).
    Put { key: u64, arg: u64 },
    /// Remove an element (sets only; other types do a write).
    RemoveElement { key: u64, arg: u64 },
    /// Remove the key.
    Remove { key: u64 },
    /// Remove every key (maps with `clear` only; the others remove key 0).
    Clear,
}

/// One step of a run.
#[derive(Debug, Clone)]
enum Step {
    Local {
        replica: usize,
        request: Request,
    },
    /// Merge `from`'s full state (sometimes through postcard) into `to`.
    Merge {
        from: usize,
        to: usize,
        encode: bool,
    },
    /// Merge `from`'s delta into `to` when causal delivery allows it (a full merge otherwise).
    Delta {
        from: usize,
        to: usize,
        encode: bool,
    },
    /// `replica` resets its delta (it went out).
    Reset {
        replica: usize,
    },
}

fn request() -> impl Strategy<Value = Request> {
    let key = 0u64..3;
    prop_oneof![
        6 => (key.clone(), 0u64..6).prop_map(|(key, arg)| Request::Write { key, arg }),
        2 => (key.clone(), 0u64..6).prop_map(|(key, arg)| Request::Put { key, arg }),
        2 => (key.clone(), 0u64..6).prop_map(|(key, arg)| Request::RemoveElement { key, arg }),
        4 => key.prop_map(|key| Request::Remove { key }),
        1 => Just(Request::Clear),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let pair = (0usize..3, 1usize..3).prop_map(|(from, offset)| (from, (from + offset) % 3));
    prop_oneof![
        8 => (0usize..3, request()).prop_map(|(replica, request)| Step::Local { replica, request }),
        3 => (pair.clone(), any::<bool>())
            .prop_map(|((from, to), encode)| Step::Merge { from, to, encode }),
        4 => (pair, any::<bool>())
            .prop_map(|((from, to), encode)| Step::Delta { from, to, encode }),
        2 => (0usize..3).prop_map(|replica| Step::Reset { replica }),
    ]
}

/// A map type under test: how it does a request, what it shows, what the model says.
trait MapUnderTest: DeltaReplicatedData<Delta = Self> + Default {
    type Value: PartialEq + Debug;
    /// Does `request` as replica `replica` (node `node`); returns the event to record, or
    /// `None` when the map does nothing for it.
    fn apply(&mut self, node: &UniqueReplicaId, replica: usize, request: &Request)
    -> Option<Event>;
    fn observe(&self) -> Self::Value;
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value;
}

fn amount(arg: u64) -> i128 {
    i128::from(arg) - 2
}

fn change(c: &mut PNCounter, node: &UniqueReplicaId, arg: u64) {
    c.change(node, i64::try_from(amount(arg)).unwrap()).unwrap();
}

impl MapUnderTest for PNCounterMap<u64> {
    type Value = BTreeMap<u64, i128>;
    fn apply(&mut self, node: &UniqueReplicaId, _: usize, request: &Request) -> Option<Event> {
        match *request {
            Request::Write { key, arg }
            | Request::Put { key, arg }
            | Request::RemoveElement { key, arg } => {
                self.change(node, key, i64::try_from(amount(arg)).unwrap())
                    .unwrap();
                Some(Event::Count {
                    key,
                    amount: amount(arg),
                })
            }
            Request::Remove { key } => {
                self.remove(node, &key);
                Some(Event::RemoveKey { key })
            }
            Request::Clear => {
                self.remove(node, &0);
                Some(Event::RemoveKey { key: 0 })
            }
        }
    }
    fn observe(&self) -> Self::Value {
        self.entries()
    }
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value {
        history.counters(known)
    }
}

impl MapUnderTest for ORMap<u64, PNCounter> {
    type Value = BTreeMap<u64, i128>;
    fn apply(&mut self, node: &UniqueReplicaId, _: usize, request: &Request) -> Option<Event> {
        match *request {
            Request::Write { key, arg } | Request::RemoveElement { key, arg } => {
                self.update(node, key, PNCounter::new(), |c| change(c, node, arg));
                Some(Event::Count {
                    key,
                    amount: amount(arg),
                })
            }
            Request::Put { key, arg } => {
                let mut c = PNCounter::new();
                change(&mut c, node, arg);
                self.put(node, key, c);
                Some(Event::PutCount {
                    key,
                    amount: amount(arg),
                })
            }
            Request::Remove { key } => {
                self.remove(node, &key);
                Some(Event::RemoveKey { key })
            }
            Request::Clear => {
                self.clear(node);
                Some(Event::Clear)
            }
        }
    }
    fn observe(&self) -> Self::Value {
        self.iter().map(|(k, c)| (*k, c.value())).collect()
    }
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value {
        history.counters(known)
    }
}

/// The elements a set put writes.
fn put_elements(arg: u64) -> BTreeSet<u64> {
    [arg % 4, (arg + 1) % 4].into()
}

impl MapUnderTest for ORMultiMap<u64, u64> {
    type Value = BTreeMap<u64, BTreeSet<u64>>;
    fn apply(&mut self, node: &UniqueReplicaId, _: usize, request: &Request) -> Option<Event> {
        match *request {
            Request::Write { key, arg } => {
                let element = arg % 4;
                self.add_binding(node, key, element);
                Some(Event::Add { key, element })
            }
            Request::Put { key, arg } => {
                let elements = put_elements(arg);
                self.put(node, key, elements.clone());
                Some(Event::PutSet { key, elements })
            }
            Request::RemoveElement { key, arg } => {
                let element = arg % 4;
                let before = self.get(&key)?;
                if !before.contains(&element) {
                    self.remove_binding(node, &key, &element);
                    return None;
                }
                self.remove_binding(node, &key, &element);
                // removing the last binding removes the key
                Some(if before.len() == 1 {
                    Event::RemoveKey { key }
                } else {
                    Event::RemoveElement { key, element }
                })
            }
            Request::Remove { key } => {
                self.remove(node, &key);
                Some(Event::RemoveKey { key })
            }
            Request::Clear => {
                self.remove(node, &0);
                Some(Event::RemoveKey { key: 0 })
            }
        }
    }
    fn observe(&self) -> Self::Value {
        self.entries()
    }
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value {
        history.sets(known)
    }
}

impl MapUnderTest for ORMap<u64, ORSet<u64>> {
    type Value = BTreeMap<u64, BTreeSet<u64>>;
    fn apply(&mut self, node: &UniqueReplicaId, _: usize, request: &Request) -> Option<Event> {
        match *request {
            Request::Write { key, arg } => {
                let element = arg % 4;
                self.update(node, key, ORSet::new(), |s| s.add(node, element));
                Some(Event::Add { key, element })
            }
            Request::Put { key, arg } => {
                let elements = put_elements(arg);
                self.update(node, key, ORSet::new(), |s| {
                    s.clear(node);
                    for e in &elements {
                        s.add(node, *e);
                    }
                });
                Some(Event::PutSet { key, elements })
            }
            Request::RemoveElement { key, arg } => {
                let element = arg % 4;
                // an update of the key, even when the element is absent
                self.update(node, key, ORSet::new(), |s| s.remove(node, &element));
                Some(Event::RemoveElement { key, element })
            }
            Request::Remove { key } => {
                self.remove(node, &key);
                Some(Event::RemoveKey { key })
            }
            Request::Clear => {
                self.clear(node);
                Some(Event::Clear)
            }
        }
    }
    fn observe(&self) -> Self::Value {
        self.iter().map(|(k, s)| (*k, s.elements())).collect()
    }
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value {
        history.sets(known)
    }
}

impl MapUnderTest for LWWMap<u64, u64> {
    type Value = BTreeMap<u64, u64>;
    fn apply(
        &mut self,
        node: &UniqueReplicaId,
        replica: usize,
        request: &Request,
    ) -> Option<Event> {
        match *request {
            Request::Write { key, arg }
            | Request::Put { key, arg }
            | Request::RemoveElement { key, arg } => {
                // timestamps repeat and go backwards, so ties and stale writes happen
                let timestamp = i64::try_from(arg % 3).unwrap();
                self.put(node, key, arg, &move |_, _: &u64| timestamp);
                Some(Event::PutRegister {
                    key,
                    value: arg,
                    timestamp,
                    replica,
                })
            }
            Request::Remove { key } => {
                self.remove(node, &key);
                Some(Event::RemoveKey { key })
            }
            Request::Clear => {
                self.remove(node, &0);
                Some(Event::RemoveKey { key: 0 })
            }
        }
    }
    fn observe(&self) -> Self::Value {
        self.entries()
    }
    fn model(history: &History, known: &BTreeSet<usize>) -> Self::Value {
        history.registers(known)
    }
}

/// Through postcard and back (the durable and wire encoding).
fn round_trip<T: ReplicatedData>(value: &T) -> T {
    let bytes = postcard::to_stdvec(value).unwrap();
    postcard::from_bytes(&bytes).unwrap()
}

/// Runs `steps` on three replicas of `M`, checking every replica against the model after every
/// step, and that all of them converge to the model's value of the whole history at the end.
fn run<M: MapUnderTest>(steps: &[Step]) -> Result<(), TestCaseError> {
    let nodes = [
        UniqueReplicaId::new("a", 1),
        UniqueReplicaId::new("b", 1),
        UniqueReplicaId::new("c", 1),
    ];
    let mut replicas: [M; 3] = Default::default();
    let mut known: [BTreeSet<usize>; 3] = Default::default();
    // what each replica has done itself since its delta was last reset
    let mut local_since_reset: [BTreeSet<usize>; 3] = Default::default();
    let mut history = History::default();
    for (i, step) in steps.iter().enumerate() {
        let touched = match *step {
            Step::Local {
                replica,
                ref request,
            } => {
                if let Some(event) = replicas[replica].apply(&nodes[replica], replica, request) {
                    let id = history.record(&mut known[replica], event);
                    local_since_reset[replica].insert(id);
                }
                replica
            }
            Step::Merge { from, to, encode } => {
                let other = if encode {
                    round_trip(&replicas[from])
                } else {
                    replicas[from].clone()
                };
                replicas[to].merge(&other);
                let seen = known[from].clone();
                known[to].extend(seen);
                to
            }
            Step::Delta { from, to, encode } => {
                // causal delivery: `to` has seen everything `from` had, but its own recent ops
                let causal = known[from]
                    .iter()
                    .all(|id| known[to].contains(id) || local_since_reset[from].contains(id));
                if causal {
                    if let Some(delta) = replicas[from].delta() {
                        let delta = if encode { round_trip(&delta) } else { delta };
                        replicas[to].merge_delta(&delta);
                    }
                } else {
                    let other = replicas[from].clone();
                    replicas[to].merge(&other);
                }
                let seen = known[from].clone();
                known[to].extend(seen);
                to
            }
            Step::Reset { replica } => {
                replicas[replica].reset_delta();
                local_since_reset[replica].clear();
                replica
            }
        };
        prop_assert_eq!(
            replicas[touched].observe(),
            M::model(&history, &known[touched]),
            "replica {} after step {} ({:?})",
            touched,
            i,
            step
        );
    }
    let mut all = replicas[0].clone();
    all.merge(&replicas[1]);
    all.merge(&replicas[2]);
    let everything: BTreeSet<usize> = (0..history.operations.len()).collect();
    prop_assert_eq!(all.observe(), M::model(&history, &everything));
    for r in &replicas {
        let mut other_order = r.clone();
        for o in replicas.iter().rev() {
            other_order.merge(o);
        }
        prop_assert_eq!(&other_order, &all);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("DD_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn pncounter_map_matches_the_model(steps in prop::collection::vec(step(), 0..40)) {
        run::<PNCounterMap<u64>>(&steps)?;
    }

    #[test]
    fn ormap_of_counters_matches_the_model(steps in prop::collection::vec(step(), 0..40)) {
        run::<ORMap<u64, PNCounter>>(&steps)?;
    }

    #[test]
    fn ormultimap_matches_the_model(steps in prop::collection::vec(step(), 0..40)) {
        run::<ORMultiMap<u64, u64>>(&steps)?;
    }

    #[test]
    fn ormap_of_sets_matches_the_model(steps in prop::collection::vec(step(), 0..40)) {
        run::<ORMap<u64, ORSet<u64>>>(&steps)?;
    }

    #[test]
    fn lww_map_matches_the_model(steps in prop::collection::vec(step(), 0..40)) {
        run::<LWWMap<u64, u64>>(&steps)?;
    }
}
