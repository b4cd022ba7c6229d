//! Rendering CRDT values as plain JSON: a counter as a number, a set as a sorted array, a map as
//! an object, a register as its value, a flag as a boolean.
//!
//! ```
//! use dd_core::crdt::ORSet;
//! use dd_core::UniqueReplicaId;
//! use dd_node::render::RenderJson;
//! let a = UniqueReplicaId::new("a", 1);
//! let mut s = ORSet::new();
//! s.add(&a, "b".to_string());
//! s.add(&a, "a".to_string());
//! assert_eq!(s.render(), serde_json::json!(["a", "b"]));
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

use dd_core::crdt::{
    Element, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet,
    PNCounter, PNCounterMap, VersionVector,
};
use dd_core::data::ErasedData;

/// The observed value of a CRDT as plain JSON.
pub trait RenderJson {
    /// The value as JSON.
    fn render(&self) -> Value;
}

/// A number as JSON; integers beyond 64 bits (possible for counters) become decimal strings.
fn number_u128(n: u128) -> Value {
    match u64::try_from(n) {
        Ok(v) => Value::from(v),
        Err(_) => Value::String(n.to_string()),
    }
}

fn number_i128(n: i128) -> Value {
    match i64::try_from(n) {
        Ok(v) => Value::from(v),
        Err(_) => Value::String(n.to_string()),
    }
}

/// An element as JSON (strings and integers as themselves, bytes as an array of numbers).
fn element<T: Serialize>(e: &T) -> Value {
    serde_json::to_value(e).unwrap_or_else(|err| Value::String(format!("<unrenderable: {err}>")))
}

fn array<'a, T: Serialize + 'a>(items: impl IntoIterator<Item = &'a T>) -> Value {
    Value::Array(items.into_iter().map(element).collect())
}

/// A map with string keys as a JSON object.
fn object(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(entries.into_iter().collect::<Map<String, Value>>())
}

impl RenderJson for GCounter {
    fn render(&self) -> Value {
        number_u128(self.value())
    }
}

impl RenderJson for PNCounter {
    fn render(&self) -> Value {
        number_i128(self.value())
    }
}

impl RenderJson for Flag {
    fn render(&self) -> Value {
        Value::Bool(self.enabled())
    }
}

impl<T: Element> RenderJson for GSet<T> {
    fn render(&self) -> Value {
        array(self.iter())
    }
}

impl<T: Element> RenderJson for ORSet<T> {
    fn render(&self) -> Value {
        array(self.elements().iter())
    }
}

impl<T: Element> RenderJson for LWWRegister<T> {
    fn render(&self) -> Value {
        element(self.value())
    }
}

impl<T: Element> RenderJson for MVRegister<T> {
    fn render(&self) -> Value {
        array(self.values().iter())
    }
}

impl<T: Element> RenderJson for LWWMap<String, T> {
    fn render(&self) -> Value {
        object(self.entries().into_iter().map(|(k, v)| (k, element(&v))))
    }
}

impl RenderJson for PNCounterMap<String> {
    fn render(&self) -> Value {
        object(self.entries().into_iter().map(|(k, v)| (k, number_i128(v))))
    }
}

impl<T: Element> RenderJson for ORMultiMap<String, T> {
    fn render(&self) -> Value {
        object(
            self.entries()
                .into_iter()
                .map(|(k, v)| (k, array(v.iter()))),
        )
    }
}

impl<V: RenderJson + dd_core::crdt::Crdt> RenderJson for ORMap<String, V> {
    fn render(&self) -> Value {
        object(self.iter().map(|(k, v)| (k.clone(), v.render())))
    }
}

impl RenderJson for VersionVector {
    fn render(&self) -> Value {
        object(
            self.iter()
                .map(|(node, v)| (node.to_string(), Value::from(v))),
        )
    }
}

/// Renders a type-erased value of any built-in CRDT type (those of
/// [`register_builtin_types`](dd_core::data::register_builtin_types)); `None` for other types.
///
/// ```
/// use dd_core::crdt::GCounter;
/// use dd_core::data::ErasedData;
/// use dd_core::UniqueReplicaId;
/// let mut c = GCounter::new();
/// c.increment(&UniqueReplicaId::new("a", 1), 7).unwrap();
/// let erased: Box<dyn ErasedData> = Box::new(c);
/// assert_eq!(dd_node::render::render_erased(erased.as_ref()), Some(serde_json::json!(7)));
/// ```
pub fn render_erased(value: &dyn ErasedData) -> Option<Value> {
    macro_rules! try_types {
        ($($t:ty),+ $(,)?) => {
            $(if let Some(v) = value.downcast_ref::<$t>() {
                return Some(v.render());
            })+
        };
    }
    macro_rules! try_elements {
        ($($e:ty),+) => {$(
            try_types!(
                GSet<$e>,
                ORSet<$e>,
                LWWRegister<$e>,
                MVRegister<$e>,
                LWWMap<String, $e>,
                ORMultiMap<String, $e>,
                ORMap<String, ORSet<$e>>,
                ORMap<String, GSet<$e>>,
                ORMap<String, LWWRegister<$e>>,
                ORMap<String, MVRegister<$e>>,
            );
        )+};
    }
    try_types!(
        GCounter,
        PNCounter,
        Flag,
        VersionVector,
        PNCounterMap<String>,
        ORMap<String, GCounter>,
        ORMap<String, PNCounter>,
        ORMap<String, Flag>,
    );
    try_elements!(String, u64, i64, Vec<u8>);
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use dd_core::UniqueReplicaId;
    use dd_core::crdt::WallClock;
    use dd_core::data::{TypeRegistry, builtin_type_names};
    use serde_json::json;

    fn a() -> UniqueReplicaId {
        UniqueReplicaId::new("a", 1)
    }

    #[test]
    fn plain_json_per_type() {
        let mut c = PNCounter::new();
        c.decrement(&a(), 3).unwrap();
        assert_eq!(c.render(), json!(-3));
        let mut f = Flag::new();
        assert_eq!(f.render(), json!(false));
        f.switch_on();
        assert_eq!(f.render(), json!(true));
        let r = LWWRegister::new(&a(), "v".to_string(), &WallClock);
        assert_eq!(r.render(), json!("v"));
        let mut m = LWWMap::new();
        m.put(&a(), "k".to_string(), "v".to_string(), &WallClock);
        assert_eq!(m.render(), json!({"k": "v"}));
        let mut pm = PNCounterMap::new();
        pm.increment(&a(), "x".to_string(), 2).unwrap();
        assert_eq!(pm.render(), json!({"x": 2}));
        let mut mm = ORMultiMap::new();
        mm.add_binding(&a(), "k".to_string(), "2".to_string());
        mm.add_binding(&a(), "k".to_string(), "1".to_string());
        assert_eq!(mm.render(), json!({"k": ["1", "2"]}));
        let mut mv = MVRegister::new();
        mv.set(&a(), 5u64);
        assert_eq!(mv.render(), json!([5]));
    }

    #[test]
    fn huge_counters_are_strings() {
        let mut c = GCounter::new();
        c.increment(&a(), u64::MAX).unwrap();
        c.increment(&UniqueReplicaId::new("b", 1), 1).unwrap();
        assert_eq!(c.render(), json!("18446744073709551616"));
    }

    #[test]
    fn every_builtin_type_renders() {
        let registry = TypeRegistry::with_builtin_types();
        for name in builtin_type_names() {
            let zero = registry.zero(&name).unwrap();
            let Some(zero) = zero else { continue };
            assert!(render_erased(zero.as_ref()).is_some(), "{name}");
        }
        let r: Box<dyn ErasedData> = Box::new(LWWRegister::new(&a(), vec![1u8, 2], &WallClock));
        assert_eq!(render_erased(r.as_ref()), Some(json!([1, 2])));
    }
}
