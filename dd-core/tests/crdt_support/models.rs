//! The model of every built-in CRDT type: its random operations and its observed value.

use std::collections::{BTreeMap, BTreeSet};

use dd_core::UniqueReplicaId;
use dd_core::crdt::{
    Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet, PNCounter,
    PNCounterMap, VersionVector,
};
use proptest::prelude::*;

use super::Model;

/// Small element domain, so that operations collide.
fn elem() -> impl Strategy<Value = u64> {
    0u64..5
}

/// Small key domain.
fn key() -> impl Strategy<Value = String> {
    (0u8..3).prop_map(|k| format!("k{k}"))
}

/// Amounts, now and then huge so that overflow is exercised.
fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..100, 1 => Just(u64::MAX / 2 + 1)]
}

impl Model for GCounter {
    type Op = u64;
    type Observed = u128;
    fn op() -> BoxedStrategy<u64> {
        amount().boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &u64) {
        let before = self.clone();
        if self.increment(node, *op).is_err() {
            assert_eq!(self, &before, "refused increment changed the counter");
        }
    }
    fn observe(&self) -> u128 {
        self.value()
    }
}

#[derive(Debug, Clone)]
pub enum CounterOp {
    Inc(u64),
    Dec(u64),
}

fn counter_op() -> impl Strategy<Value = CounterOp> {
    prop_oneof![
        amount().prop_map(CounterOp::Inc),
        amount().prop_map(CounterOp::Dec)
    ]
}

impl Model for PNCounter {
    type Op = CounterOp;
    type Observed = i128;
    fn op() -> BoxedStrategy<CounterOp> {
        counter_op().boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &CounterOp) {
        let before = self.clone();
        let result = match op {
            CounterOp::Inc(n) => self.increment(node, *n),
            CounterOp::Dec(n) => self.decrement(node, *n),
        };
        if result.is_err() {
            assert_eq!(self, &before, "refused change changed the counter");
        }
    }
    fn observe(&self) -> i128 {
        self.value()
    }
}

impl Model for GSet<u64> {
    type Op = u64;
    type Observed = BTreeSet<u64>;
    fn op() -> BoxedStrategy<u64> {
        elem().boxed()
    }
    fn apply(&mut self, _node: &UniqueReplicaId, op: &u64) {
        self.add(*op);
    }
    fn observe(&self) -> BTreeSet<u64> {
        self.elements().clone()
    }
}

#[derive(Debug, Clone)]
pub enum SetOp {
    Add(u64),
    Remove(u64),
    Clear,
}

impl Model for ORSet<u64> {
    type Op = SetOp;
    type Observed = BTreeSet<u64>;
    fn op() -> BoxedStrategy<SetOp> {
        prop_oneof![
            4 => elem().prop_map(SetOp::Add),
            3 => elem().prop_map(SetOp::Remove),
            1 => Just(SetOp::Clear),
        ]
        .boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &SetOp) {
        match op {
            SetOp::Add(e) => self.add(node, *e),
            SetOp::Remove(e) => self.remove(node, e),
            SetOp::Clear => self.clear(node),
        }
    }
    fn observe(&self) -> BTreeSet<u64> {
        self.elements()
    }
}

impl Model for Flag {
    type Op = bool;
    type Observed = bool;
    fn op() -> BoxedStrategy<bool> {
        prop_oneof![3 => Just(false), 1 => Just(true)].boxed()
    }
    fn apply(&mut self, _node: &UniqueReplicaId, op: &bool) {
        if *op {
            self.switch_on();
        }
    }
    fn observe(&self) -> bool {
        self.enabled()
    }
}

/// A write of a value with a logical clock advancing by `step` (0 makes equal timestamps).
#[derive(Debug, Clone)]
pub struct RegisterWrite {
    pub value: u64,
    pub step: i64,
}

fn register_write() -> impl Strategy<Value = RegisterWrite> {
    (elem(), 0i64..3).prop_map(|(value, step)| RegisterWrite { value, step })
}

impl Model for LWWRegister<u64> {
    type Op = RegisterWrite;
    type Observed = u64;
    fn op() -> BoxedStrategy<RegisterWrite> {
        register_write().boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &RegisterWrite) {
        let step = op.step;
        self.set(node, op.value, &move |current: i64, _: &u64| current + step);
    }
    fn initial() -> Self {
        LWWRegister::with_timestamp(&UniqueReplicaId::new("origin", 0), 0, 0)
    }
    fn observe(&self) -> u64 {
        *self.value()
    }
}

impl Model for MVRegister<u64> {
    type Op = Option<u64>;
    type Observed = BTreeSet<u64>;
    fn op() -> BoxedStrategy<Option<u64>> {
        prop_oneof![4 => elem().prop_map(Some), 1 => Just(None)].boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &Option<u64>) {
        match op {
            Some(v) => self.set(node, *v),
            None => self.clear(node),
        }
    }
    fn observe(&self) -> BTreeSet<u64> {
        self.values()
    }
}

#[derive(Debug, Clone)]
pub enum CounterMapOp {
    Change(String, CounterOp),
    Put(String, u64),
    Remove(String),
    Clear,
}

impl Model for ORMap<String, PNCounter> {
    type Op = CounterMapOp;
    type Observed = BTreeMap<String, i128>;
    fn op() -> BoxedStrategy<CounterMapOp> {
        prop_oneof![
            5 => (key(), counter_op()).prop_map(|(k, op)| CounterMapOp::Change(k, op)),
            1 => (key(), 0u64..10).prop_map(|(k, n)| CounterMapOp::Put(k, n)),
            2 => key().prop_map(CounterMapOp::Remove),
            1 => Just(CounterMapOp::Clear),
        ]
        .boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &CounterMapOp) {
        match op {
            CounterMapOp::Change(k, op) => {
                let before = self.clone();
                let result = self.try_update(node, k.clone(), PNCounter::new(), |c| match op {
                    CounterOp::Inc(n) => c.increment(node, *n),
                    CounterOp::Dec(n) => c.decrement(node, *n),
                });
                if result.is_err() {
                    assert_eq!(self, &before);
                }
            }
            CounterMapOp::Put(k, n) => {
                let mut c = PNCounter::new();
                c.increment(node, *n).expect("small increment");
                self.put(node, k.clone(), c);
            }
            CounterMapOp::Remove(k) => self.remove(node, k),
            CounterMapOp::Clear => self.clear(node),
        }
    }
    fn observe(&self) -> BTreeMap<String, i128> {
        self.iter().map(|(k, c)| (k.clone(), c.value())).collect()
    }
}

#[derive(Debug, Clone)]
pub enum SetMapOp {
    Add(String, u64),
    RemoveElement(String, u64),
    Remove(String),
}

fn set_map_op() -> impl Strategy<Value = SetMapOp> {
    prop_oneof![
        4 => (key(), elem()).prop_map(|(k, e)| SetMapOp::Add(k, e)),
        2 => (key(), elem()).prop_map(|(k, e)| SetMapOp::RemoveElement(k, e)),
        1 => key().prop_map(SetMapOp::Remove),
    ]
}

impl Model for ORMap<String, ORSet<u64>> {
    type Op = SetMapOp;
    type Observed = BTreeMap<String, BTreeSet<u64>>;
    fn op() -> BoxedStrategy<SetMapOp> {
        set_map_op().boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &SetMapOp) {
        match op {
            SetMapOp::Add(k, e) => self.update(node, k.clone(), ORSet::new(), |s| s.add(node, *e)),
            SetMapOp::RemoveElement(k, e) => {
                if self.contains_key(k) {
                    self.update(node, k.clone(), ORSet::new(), |s| s.remove(node, e))
                }
            }
            SetMapOp::Remove(k) => self.remove(node, k),
        }
    }
    fn observe(&self) -> BTreeMap<String, BTreeSet<u64>> {
        self.iter()
            .map(|(k, s)| (k.clone(), s.elements()))
            .collect()
    }
}

impl Model for ORMultiMap<String, u64> {
    type Op = SetMapOp;
    type Observed = BTreeMap<String, BTreeSet<u64>>;
    fn op() -> BoxedStrategy<SetMapOp> {
        set_map_op().boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &SetMapOp) {
        match op {
            SetMapOp::Add(k, e) => self.add_binding(node, k.clone(), *e),
            SetMapOp::RemoveElement(k, e) => self.remove_binding(node, k, e),
            SetMapOp::Remove(k) => self.remove(node, k),
        }
    }
    fn observe(&self) -> BTreeMap<String, BTreeSet<u64>> {
        self.entries()
    }
}

#[derive(Debug, Clone)]
pub enum RegisterMapOp {
    Put(String, RegisterWrite),
    Remove(String),
}

impl Model for LWWMap<String, u64> {
    type Op = RegisterMapOp;
    type Observed = BTreeMap<String, u64>;
    fn op() -> BoxedStrategy<RegisterMapOp> {
        prop_oneof![
            3 => (key(), register_write()).prop_map(|(k, w)| RegisterMapOp::Put(k, w)),
            1 => key().prop_map(RegisterMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &RegisterMapOp) {
        match op {
            RegisterMapOp::Put(k, w) => {
                let step = w.step;
                self.put(node, k.clone(), w.value, &move |current: i64, _: &u64| {
                    current + step
                })
            }
            RegisterMapOp::Remove(k) => self.remove(node, k),
        }
    }
    fn observe(&self) -> BTreeMap<String, u64> {
        self.entries()
    }
}

impl Model for PNCounterMap<String> {
    type Op = CounterMapOp;
    type Observed = BTreeMap<String, i128>;
    fn op() -> BoxedStrategy<CounterMapOp> {
        prop_oneof![
            5 => (key(), counter_op()).prop_map(|(k, op)| CounterMapOp::Change(k, op)),
            2 => key().prop_map(CounterMapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, op: &CounterMapOp) {
        let before = self.clone();
        let result = match op {
            CounterMapOp::Change(k, CounterOp::Inc(n)) => self.increment(node, k.clone(), *n),
            CounterMapOp::Change(k, CounterOp::Dec(n)) => self.decrement(node, k.clone(), *n),
            CounterMapOp::Put(k, n) => self.increment(node, k.clone(), *n),
            CounterMapOp::Remove(k) => {
                self.remove(node, k);
                Ok(())
            }
            CounterMapOp::Clear => Ok(()),
        };
        if result.is_err() {
            assert_eq!(self, &before);
        }
    }
    fn observe(&self) -> BTreeMap<String, i128> {
        self.entries()
    }
}

impl Model for VersionVector {
    type Op = ();
    type Observed = VersionVector;
    fn op() -> BoxedStrategy<()> {
        Just(()).boxed()
    }
    fn apply(&mut self, node: &UniqueReplicaId, _op: &()) {
        self.increment(node);
    }
    fn observe(&self) -> VersionVector {
        self.clone()
    }
    fn pruning_keeps_value() -> bool {
        false
    }
}
