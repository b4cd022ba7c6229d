//! Typed reads, updates, deletes and subscriptions for a key whose type is given at run time.

use std::pin::Pin;

use dd_core::crdt::{
    Crdt, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMultiMap, ORSet, PNCounter,
    PNCounterMap, WallClock,
};
use dd_core::replicator::BoxError;
use dd_core::{
    Key, ReadConsistency, Replicator, ReplicatorError, UniqueReplicaId, WriteConsistency,
};
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::ops::Operation;
use crate::render::RenderJson;
use crate::types::DataType;

/// A stream of rendered values of one key.
pub type ValueStream = Pin<Box<dyn Stream<Item = Value> + Send>>;

/// An operation that does not belong to the type (the parser never lets one through).
#[derive(Debug, thiserror::Error)]
#[error("operation {op:?} does not apply to {data_type}")]
pub struct NotApplicable {
    op: Operation,
    data_type: DataType,
}

/// Runs (and awaits) `$body` with `T` bound to the CRDT type of `$t`.
macro_rules! with_type {
    ($t:expr, $body:ident ( $($arg:expr),* )) => {
        match $t {
            DataType::GCounter => $body::<GCounter>($($arg),*).await,
            DataType::PNCounter => $body::<PNCounter>($($arg),*).await,
            DataType::GSet => $body::<GSet<String>>($($arg),*).await,
            DataType::ORSet => $body::<ORSet<String>>($($arg),*).await,
            DataType::Flag => $body::<Flag>($($arg),*).await,
            DataType::LWWRegister => $body::<LWWRegister<String>>($($arg),*).await,
            DataType::MVRegister => $body::<MVRegister<String>>($($arg),*).await,
            DataType::LWWMap => $body::<LWWMap<String, String>>($($arg),*).await,
            DataType::PNCounterMap => $body::<PNCounterMap<String>>($($arg),*).await,
            DataType::ORMultiMap => $body::<ORMultiMap<String, String>>($($arg),*).await,
        }
    };
}

async fn get_as<T: Crdt + RenderJson>(
    r: &Replicator,
    key: &str,
    consistency: ReadConsistency,
) -> Result<Value, ReplicatorError> {
    Ok(r.get(&Key::<T>::new(key), consistency).await?.render())
}

/// Reads `key` as a `data_type` and renders it.
pub async fn read(
    r: &Replicator,
    data_type: DataType,
    key: &str,
    consistency: ReadConsistency,
) -> Result<Value, ReplicatorError> {
    with_type!(data_type, get_as(r, key, consistency))
}

async fn delete_as<T: Crdt>(
    r: &Replicator,
    key: &str,
    consistency: WriteConsistency,
) -> Result<(), ReplicatorError> {
    r.delete(&Key::<T>::new(key), consistency).await
}

/// Deletes `key` (which must hold a `data_type`).
pub async fn delete(
    r: &Replicator,
    data_type: DataType,
    key: &str,
    consistency: WriteConsistency,
) -> Result<(), ReplicatorError> {
    with_type!(data_type, delete_as(r, key, consistency))
}

async fn subscribe_as<T: Crdt + RenderJson>(
    r: &Replicator,
    key: &str,
) -> Result<ValueStream, ReplicatorError> {
    let stream = r.subscribe(&Key::<T>::new(key)).await?;
    Ok(Box::pin(stream.map(|v| v.render())))
}

/// Subscribes to `key` as a `data_type`: the current value first (if any), then every change.
pub async fn subscribe(
    r: &Replicator,
    data_type: DataType,
    key: &str,
) -> Result<ValueStream, ReplicatorError> {
    with_type!(data_type, subscribe_as(r, key))
}

/// A CRDT the HTTP operations apply to.
trait Apply: Crdt + RenderJson + Sized {
    /// The value a key starts from (the first operations decide it for registers).
    fn initial(me: &UniqueReplicaId, ops: &[Operation]) -> Self;
    /// Applies one operation.
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError>;
}

fn not_applicable<T>(op: Operation, data_type: DataType) -> Result<T, BoxError> {
    Err(Box::new(NotApplicable { op, data_type }))
}

impl Apply for GCounter {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        GCounter::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Increment { key: None, by } => Ok(self.increment(me, by)?),
            op => not_applicable(op, DataType::GCounter),
        }
    }
}

impl Apply for PNCounter {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        PNCounter::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Increment { key: None, by } => Ok(self.increment(me, by)?),
            Operation::Decrement { key: None, by } => Ok(self.decrement(me, by)?),
            op => not_applicable(op, DataType::PNCounter),
        }
    }
}

impl Apply for GSet<String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        GSet::new()
    }
    fn apply(&mut self, _: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Add { element } => {
                self.add(element);
                Ok(())
            }
            op => not_applicable(op, DataType::GSet),
        }
    }
}

impl Apply for ORSet<String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        ORSet::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Add { element } => self.add(me, element),
            Operation::Remove { element } => self.remove(me, &element),
            Operation::Clear => self.clear(me),
            op => return not_applicable(op, DataType::ORSet),
        }
        Ok(())
    }
}

impl Apply for Flag {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        Flag::new()
    }
    fn apply(&mut self, _: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Enable => {
                self.switch_on();
                Ok(())
            }
            op => not_applicable(op, DataType::Flag),
        }
    }
}

impl Apply for LWWRegister<String> {
    fn initial(me: &UniqueReplicaId, ops: &[Operation]) -> Self {
        let first = ops.iter().find_map(|op| match op {
            Operation::Set { value } => Some(value.clone()),
            _ => None,
        });
        LWWRegister::new(me, first.unwrap_or_default(), &WallClock)
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Set { value } => {
                self.set(me, value, &WallClock);
                Ok(())
            }
            op => not_applicable(op, DataType::LWWRegister),
        }
    }
}

impl Apply for MVRegister<String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        MVRegister::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Set { value } => self.set(me, value),
            Operation::Clear => self.clear(me),
            op => return not_applicable(op, DataType::MVRegister),
        }
        Ok(())
    }
}

impl Apply for LWWMap<String, String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        LWWMap::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Put { key, value } => self.put(me, key, value, &WallClock),
            Operation::RemoveKey { key } => self.remove(me, &key),
            op => return not_applicable(op, DataType::LWWMap),
        }
        Ok(())
    }
}

impl Apply for PNCounterMap<String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        PNCounterMap::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::Increment { key: Some(key), by } => Ok(self.increment(me, key, by)?),
            Operation::Decrement { key: Some(key), by } => Ok(self.decrement(me, key, by)?),
            Operation::RemoveKey { key } => {
                self.remove(me, &key);
                Ok(())
            }
            op => not_applicable(op, DataType::PNCounterMap),
        }
    }
}

impl Apply for ORMultiMap<String, String> {
    fn initial(_: &UniqueReplicaId, _: &[Operation]) -> Self {
        ORMultiMap::new()
    }
    fn apply(&mut self, me: &UniqueReplicaId, op: Operation) -> Result<(), BoxError> {
        match op {
            Operation::AddBinding { key, value } => self.add_binding(me, key, value),
            Operation::RemoveBinding { key, value } => self.remove_binding(me, &key, &value),
            Operation::RemoveKey { key } => self.remove(me, &key),
            Operation::PutBindings { key, values } => self.put(me, key, values),
            op => return not_applicable(op, DataType::ORMultiMap),
        }
        Ok(())
    }
}

async fn update_as<T: Apply>(
    r: &Replicator,
    key: &str,
    ops: Vec<Operation>,
    consistency: WriteConsistency,
) -> Result<Value, ReplicatorError> {
    let me = r.self_id();
    let initial = T::initial(&me, &ops);
    let value = r
        .update(
            &Key::<T>::new(key),
            initial,
            consistency,
            move |v: &mut T| ops.into_iter().try_for_each(|op| v.apply(&me, op)),
        )
        .await?;
    Ok(value.render())
}

/// Applies `ops` (checked for `data_type` by [`crate::ops::parse_body`]) to `key` atomically and
/// returns the new value.
pub async fn update(
    r: &Replicator,
    data_type: DataType,
    key: &str,
    ops: Vec<Operation>,
    consistency: WriteConsistency,
) -> Result<Value, ReplicatorError> {
    with_type!(data_type, update_as(r, key, ops, consistency))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use dd_core::ReplicaId;
    use dd_core::cluster::StaticCluster;
    use dd_core::replicator::{DistributedData, Settings};
    use dd_core::transport::memory::{Faults, MemoryNetwork};
    use serde_json::json;

    async fn replicator() -> Replicator {
        let net = MemoryNetwork::new(1, Faults::default());
        let id = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
        DistributedData::start(
            StaticCluster::new(id.clone(), []),
            net.join(id),
            Settings::default(),
        )
        .await
        .unwrap()
    }

    fn ops(t: DataType, body: &str) -> Vec<Operation> {
        crate::ops::parse_body(t, body.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn every_type_updates_and_reads() {
        let r = replicator().await;
        let cases = [
            (DataType::GCounter, r#"{"op":"increment","by":3}"#, json!(3)),
            (
                DataType::PNCounter,
                r#"[{"op":"increment","by":3},{"op":"decrement","by":5}]"#,
                json!(-2),
            ),
            (
                DataType::GSet,
                r#"{"op":"add","element":"x"}"#,
                json!(["x"]),
            ),
            (
                DataType::ORSet,
                r#"[{"op":"add","element":"y"},{"op":"add","element":"x"},{"op":"remove","element":"y"}]"#,
                json!(["x"]),
            ),
            (DataType::Flag, r#"{"op":"enable"}"#, json!(true)),
            (
                DataType::LWWRegister,
                r#"[{"op":"set","value":"a"},{"op":"set","value":"b"}]"#,
                json!("b"),
            ),
            (
                DataType::MVRegister,
                r#"{"op":"set","value":"v"}"#,
                json!(["v"]),
            ),
            (
                DataType::LWWMap,
                r#"{"op":"put","key":"k","value":"v"}"#,
                json!({"k":"v"}),
            ),
            (
                DataType::PNCounterMap,
                r#"{"op":"decrement","key":"k","by":2}"#,
                json!({"k":-2}),
            ),
            (
                DataType::ORMultiMap,
                r#"[{"op":"add","key":"k","value":"2"},{"op":"add","key":"k","value":"1"}]"#,
                json!({"k":["1","2"]}),
            ),
        ];
        for (t, body, expected) in cases {
            let key = format!("k-{t}");
            let v = update(&r, t, &key, ops(t, body), WriteConsistency::Local)
                .await
                .unwrap();
            assert_eq!(v, expected, "{t}");
            assert_eq!(
                read(&r, t, &key, ReadConsistency::Local).await.unwrap(),
                expected,
                "{t}"
            );
        }
        let mut sub = subscribe(&r, DataType::GCounter, "k-gcounter")
            .await
            .unwrap();
        assert_eq!(sub.next().await, Some(json!(3)));
        r.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn wrong_type_is_refused_and_not_applied() {
        let r = replicator().await;
        update(
            &r,
            DataType::ORSet,
            "s",
            ops(DataType::ORSet, r#"{"op":"add","element":"x"}"#),
            WriteConsistency::Local,
        )
        .await
        .unwrap();
        let err = update(
            &r,
            DataType::GCounter,
            "s",
            ops(DataType::GCounter, r#"{"op":"increment"}"#),
            WriteConsistency::Local,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReplicatorError::WrongType { .. }), "{err}");
        assert_eq!(
            read(&r, DataType::ORSet, "s", ReadConsistency::Local)
                .await
                .unwrap(),
            json!(["x"])
        );
        // a failing operation in a list leaves the value unchanged
        let start = u64::MAX - 5;
        let c = |by| Operation::Increment { key: None, by };
        update(
            &r,
            DataType::GCounter,
            "c",
            vec![c(start)],
            WriteConsistency::Local,
        )
        .await
        .unwrap();
        let err = update(
            &r,
            DataType::GCounter,
            "c",
            vec![c(1), c(10)],
            WriteConsistency::Local,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ReplicatorError::ModifyFailed { .. }), "{err}");
        assert_eq!(
            read(&r, DataType::GCounter, "c", ReadConsistency::Local)
                .await
                .unwrap(),
            json!(start)
        );
        r.shutdown().await.unwrap();
    }
}
