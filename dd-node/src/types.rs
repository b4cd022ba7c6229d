//! The CRDT types the HTTP API serves, by their short names in request paths.

use std::fmt;
use std::str::FromStr;

use dd_core::TypeName;
use dd_core::crdt::{
    Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMultiMap, ORSet, PNCounter,
    PNCounterMap,
};

/// A CRDT type of the HTTP API. Elements, map keys and values are strings.
///
/// ```
/// use dd_node::types::DataType;
/// let t: DataType = "orset".parse().unwrap();
/// assert_eq!(t, DataType::ORSet);
/// assert_eq!(t.crdt_type_name(), "ORSet<String>");
/// assert!("hyperloglog".parse::<DataType>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// `gcounter`: [`GCounter`], a grow-only counter.
    GCounter,
    /// `pncounter`: [`PNCounter`], a counter that goes up and down.
    PNCounter,
    /// `gset`: [`GSet<String>`](GSet), a grow-only set.
    GSet,
    /// `orset`: [`ORSet<String>`](ORSet), an add-wins set with removal.
    ORSet,
    /// `flag`: [`Flag`], a boolean that can only be switched on.
    Flag,
    /// `lwwregister`: [`LWWRegister<String>`](LWWRegister), last writer wins.
    LWWRegister,
    /// `mvregister`: [`MVRegister<String>`](MVRegister), keeps concurrent writes.
    MVRegister,
    /// `lwwmap`: [`LWWMap<String, String>`](LWWMap), string to string, last writer wins per key.
    LWWMap,
    /// `pncountermap`: [`PNCounterMap<String>`](PNCounterMap), string to counter.
    PNCounterMap,
    /// `ormultimap`: [`ORMultiMap<String, String>`](ORMultiMap), string to set of strings.
    ORMultiMap,
}

/// A type name that is not one of [`DataType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type '{given}': expected one of {}", DataType::names().join(", "))]
pub struct UnknownType {
    /// The name given.
    pub given: String,
}

impl DataType {
    /// Every type, in documentation order.
    pub const ALL: [DataType; 10] = [
        DataType::GCounter,
        DataType::PNCounter,
        DataType::GSet,
        DataType::ORSet,
        DataType::Flag,
        DataType::LWWRegister,
        DataType::MVRegister,
        DataType::LWWMap,
        DataType::PNCounterMap,
        DataType::ORMultiMap,
    ];

    /// The short name used in request paths, for example `pncounter`.
    pub fn name(self) -> &'static str {
        match self {
            DataType::GCounter => "gcounter",
            DataType::PNCounter => "pncounter",
            DataType::GSet => "gset",
            DataType::ORSet => "orset",
            DataType::Flag => "flag",
            DataType::LWWRegister => "lwwregister",
            DataType::MVRegister => "mvregister",
            DataType::LWWMap => "lwwmap",
            DataType::PNCounterMap => "pncountermap",
            DataType::ORMultiMap => "ormultimap",
        }
    }

    /// Every short name.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|t| t.name()).collect()
    }

    /// The dd-core type name of the values (as written into durable records).
    pub fn crdt_type_name(self) -> String {
        match self {
            DataType::GCounter => GCounter::type_name(),
            DataType::PNCounter => PNCounter::type_name(),
            DataType::GSet => GSet::<String>::type_name(),
            DataType::ORSet => ORSet::<String>::type_name(),
            DataType::Flag => Flag::type_name(),
            DataType::LWWRegister => LWWRegister::<String>::type_name(),
            DataType::MVRegister => MVRegister::<String>::type_name(),
            DataType::LWWMap => LWWMap::<String, String>::type_name(),
            DataType::PNCounterMap => PNCounterMap::<String>::type_name(),
            DataType::ORMultiMap => ORMultiMap::<String, String>::type_name(),
        }
    }

    /// The API type whose values have the dd-core type name `name`, if there is one.
    pub fn from_crdt_type_name(name: &str) -> Option<DataType> {
        Self::ALL.into_iter().find(|t| t.crdt_type_name() == name)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataType {
    type Err = UnknownType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownType {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(t.name().parse::<DataType>(), Ok(t));
            assert_eq!(DataType::from_crdt_type_name(&t.crdt_type_name()), Some(t));
        }
        let err = "PNCounter".parse::<DataType>().unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of gcounter, pncounter")
        );
    }
}
