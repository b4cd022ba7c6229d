//! Operations of the HTTP API: parsing a JSON request body into typed operations, checked
//! against the key's type before anything is applied.
//!
//! A body is one operation object or an array of them (applied together, atomically, in order):
//!
//! ```
//! use dd_node::ops::{Operation, parse_body};
//! use dd_node::types::DataType;
//! let ops = parse_body(DataType::PNCounter, br#"{"op":"increment","by":5}"#).unwrap();
//! assert_eq!(ops, vec![Operation::Increment { key: None, by: 5 }]);
//! let err = parse_body(DataType::ORSet, br#"{"op":"increment"}"#).unwrap_err();
//! assert!(err.to_string().contains("orset supports add, remove, clear"));
//! ```

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::types::DataType;

/// One operation as it appears in a request body (before it is checked against the type).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRequest {
    /// The operation's name (`increment`, `add`, `set`, ...).
    pub op: String,
    /// The amount of `increment` / `decrement` (default 1): a whole number from 0 to
    /// 18446744073709551615; anything outside is refused as out of range.
    #[serde(default, deserialize_with = "amount")]
    pub by: Option<u64>,
    /// The set element of `add` / `remove`.
    pub element: Option<String>,
    /// The map key of map operations.
    pub key: Option<String>,
    /// The value of `set` (registers), `put` (lwwmap) and bindings (ormultimap).
    pub value: Option<String>,
    /// The values of `put` on an ormultimap.
    pub values: Option<Vec<String>>,
}

/// Deserializes `by`: a JSON number that fits in a `u64`. serde_json reads integers beyond
/// `u64` as floating point, so without this they would be refused as "invalid type: floating
/// point"; here they, and negative numbers, are "out of range".
fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Amount;

    impl<'de> Visitor<'de> for Amount {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a whole number from 0 to {}", u64::MAX)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v).map(Some).map_err(|_| out_of_range(v))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // u64::MAX as f64 is 2^64, the first value that does not fit.
            if !(0.0..u64::MAX as f64).contains(&v) {
                Err(out_of_range(v))
            } else {
                Err(E::custom(format!(
                    "`by` must be a whole number (without a fraction or exponent), got {v}"
                )))
            }
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Amount)
        }
    }

    fn out_of_range<E: de::Error>(v: impl std::fmt::Display) -> E {
        E::custom(format!(
            "`by` {v} is out of range: it must be a whole number from 0 to {}",
            u64::MAX
        ))
    }

    deserializer.deserialize_option(Amount)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<OpRequest>),
    One(OpRequest),
}

/// A checked operation, valid for the type it was parsed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Adds `by` to a counter (`key`: the entry of a pncountermap).
    Increment {
        /// The pncountermap entry, `None` for plain counters.
        key: Option<String>,
        /// The amount.
        by: u64,
    },
    /// Subtracts `by` from a counter (`key`: the entry of a pncountermap).
    Decrement {
        /// The pncountermap entry, `None` for plain counters.
        key: Option<String>,
        /// The amount.
        by: u64,
    },
    /// Adds an element to a set.
    Add {
        /// The element.
        element: String,
    },
    /// Removes an element from an orset.
    Remove {
        /// The element.
        element: String,
    },
    /// Empties an orset or an mvregister.
    Clear,
    /// Switches a flag on.
    Enable,
    /// Sets a register.
    Set {
        /// The new value.
        value: String,
    },
    /// Puts `key` → `value` into an lwwmap.
    Put {
        /// The map key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes a key from a map.
    RemoveKey {
        /// The map key.
        key: String,
    },
    /// Adds the binding `key` → `value` to an ormultimap.
    AddBinding {
        /// The map key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes the binding `key` → `value` from an ormultimap.
    RemoveBinding {
        /// The map key.
        key: String,
        /// The value.
        value: String,
    },
    /// Replaces the values bound to `key` in an ormultimap.
    PutBindings {
        /// The map key.
        key: String,
        /// The values.
        values: Vec<String>,
    },
}

/// Why a request body is not a valid list of operations for the type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// Not JSON, or not operation objects.
    #[error("bad JSON body: {0}")]
    BadJson(String),
    /// An empty array.
    #[error("no operation given: send an object like {{\"op\": \"...\"}} or a non-empty array")]
    Empty,
    /// The operation does not exist for this type.
    #[error("operation '{op}' is not supported by {data_type}: {data_type} supports {}", supported.join(", "))]
    Unsupported {
        /// The operation given.
        op: String,
        /// The key's type.
        data_type: DataType,
        /// The operations it supports.
        supported: Vec<&'static str>,
    },
    /// A field the operation needs is missing.
    #[error("operation '{op}' on {data_type} needs the field '{field}'")]
    Missing {
        /// The operation.
        op: String,
        /// The key's type.
        data_type: DataType,
        /// The missing field.
        field: &'static str,
    },
    /// A field the operation does not take was given.
    #[error("operation '{op}' on {data_type} does not take the field '{field}'")]
    Unexpected {
        /// The operation.
        op: String,
        /// The key's type.
        data_type: DataType,
        /// The unexpected field.
        field: &'static str,
    },
}

/// The operations of a type with their required and optional fields.
struct OpSpec {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> OpSpec {
    OpSpec {
        name,
        required,
        optional,
    }
}

fn specs(t: DataType) -> &'static [OpSpec] {
    const GCOUNTER: &[OpSpec] = &[spec("increment", &[], &["by"])];
    const PNCOUNTER: &[OpSpec] = &[
        spec("increment", &[], &["by"]),
        spec("decrement", &[], &["by"]),
    ];
    const GSET: &[OpSpec] = &[spec("add", &["element"], &[])];
    const ORSET: &[OpSpec] = &[
        spec("add", &["element"], &[]),
        spec("remove", &["element"], &[]),
        spec("clear", &[], &[]),
    ];
    const FLAG: &[OpSpec] = &[spec("enable", &[], &[])];
    const LWWREGISTER: &[OpSpec] = &[spec("set", &["value"], &[])];
    const MVREGISTER: &[OpSpec] = &[spec("set", &["value"], &[]), spec("clear", &[], &[])];
    const LWWMAP: &[OpSpec] = &[
        spec("put", &["key", "value"], &[]),
        spec("remove", &["key"], &[]),
    ];
    const PNCOUNTERMAP: &[OpSpec] = &[
        spec("increment", &["key"], &["by"]),
        spec("decrement", &["key"], &["by"]),
        spec("remove", &["key"], &[]),
    ];
    const ORMULTIMAP: &[OpSpec] = &[
        spec("add", &["key", "value"], &[]),
        spec("remove", &["key"], &["value"]),
        spec("put", &["key", "values"], &[]),
    ];
    match t {
        DataType::GCounter => GCOUNTER,
        DataType::PNCounter => PNCOUNTER,
        DataType::GSet => GSET,
        DataType::ORSet => ORSET,
        DataType::Flag => FLAG,
        DataType::LWWRegister => LWWREGISTER,
        DataType::MVRegister => MVREGISTER,
        DataType::LWWMap => LWWMAP,
        DataType::PNCounterMap => PNCOUNTERMAP,
        DataType::ORMultiMap => ORMULTIMAP,
    }
}

/// The operation names `t` supports.
pub fn supported_ops(t: DataType) -> Vec<&'static str> {
    specs(t).iter().map(|s| s.name).collect()
}

/// A short usage line per operation of `t`, for documentation and errors.
pub fn usage(t: DataType) -> Vec<String> {
    specs(t)
        .iter()
        .map(|s| {
            let mut fields = vec![format!("\"op\":\"{}\"", s.name)];
            fields.extend(s.required.iter().map(|f| format!("\"{f}\":...")));
            fields.extend(s.optional.iter().map(|f| format!("[\"{f}\":...]")));
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}

impl OpRequest {
    fn present_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.by.is_some() {
            fields.push("by");
        }
        if self.element.is_some() {
            fields.push("element");
        }
        if self.key.is_some() {
            fields.push("key");
        }
        if self.value.is_some() {
            fields.push("value");
        }
        if self.values.is_some() {
            fields.push("values");
        }
        fields
    }
}

/// Checks one request operation against `t` and turns it into an [`Operation`].
pub fn parse_op(t: DataType, req: OpRequest) -> Result<Operation, OpError> {
    let spec = specs(t)
        .iter()
        .find(|s| s.name == req.op)
        .ok_or_else(|| OpError::Unsupported {
            op: req.op.clone(),
            data_type: t,
            supported: supported_ops(t),
        })?;
    for field in req.present_fields() {
        if !spec.required.contains(&field) && !spec.optional.contains(&field) {
            return Err(OpError::Unexpected {
                op: req.op.clone(),
                data_type: t,
                field,
            });
        }
    }
    let missing = |field: &'static str| OpError::Missing {
        op: req.op.clone(),
        data_type: t,
        field,
    };
    let by = req.by.unwrap_or(1);
    let op = match (t, spec.name) {
        (DataType::PNCounterMap, "increment") => Operation::Increment {
            key: Some(req.key.clone().ok_or_else(|| missing("key"))?),
            by,
        },
        (DataType::PNCounterMap, "decrement") => Operation::Decrement {
            key: Some(req.key.clone().ok_or_else(|| missing("key"))?),
            by,
        },
        (_, "increment") => Operation::Increment { key: None, by },
        (_, "decrement") => Operation::Decrement { key: None, by },
        (DataType::ORMultiMap, "add") => Operation::AddBinding {
            key: req.key.clone().ok_or_else(|| missing("key"))?,
            value: req.value.clone().ok_or_else(|| missing("value"))?,
        },
        (DataType::ORMultiMap, "remove") => {
            let key = req.key.clone().ok_or_else(|| missing("key"))?;
            match req.value.clone() {
                Some(value) => Operation::RemoveBinding { key, value },
                None => Operation::RemoveKey { key },
            }
        }
        (DataType::ORMultiMap, "put") => Operation::PutBindings {
            key: req.key.clone().ok_or_else(|| missing("key"))?,
            values: req.values.clone().ok_or_else(|| missing("values"))?,
        },
        (DataType::LWWMap | DataType::PNCounterMap, "remove") => Operation::RemoveKey {
            key: req.key.clone().ok_or_else(|| missing("key"))?,
        },
        (_, "add") => Operation::Add {
            element: req.element.clone().ok_or_else(|| missing("element"))?,
        },
        (_, "remove") => Operation::Remove {
            element: req.element.clone().ok_or_else(|| missing("element"))?,
        },
        (_, "clear") => Operation::Clear,
        (_, "enable") => Operation::Enable,
        (_, "set") => Operation::Set {
            value: req.value.clone().ok_or_else(|| missing("value"))?,
        },
        (_, "put") => Operation::Put {
            key: req.key.clone().ok_or_else(|| missing("key"))?,
            value: req.value.clone().ok_or_else(|| missing("value"))?,
        },
        _ => {
            return Err(OpError::Unsupported {
                op: req.op,
                data_type: t,
                supported: supported_ops(t),
            });
        }
    };
    Ok(op)
}

/// Parses a request body (one operation object or a non-empty array) for a key of type `t`.
pub fn parse_body(t: DataType, body: &[u8]) -> Result<Vec<Operation>, OpError> {
    let parsed: OneOrMany =
        serde_json::from_slice(body).map_err(|e| OpError::BadJson(bad_json_message(body, &e)))?;
    let requests = match parsed {
        OneOrMany::One(r) => vec![r],
        OneOrMany::Many(rs) => rs,
    };
    if requests.is_empty() {
        return Err(OpError::Empty);
    }
    requests.into_iter().map(|r| parse_op(t, r)).collect()
}

/// A precise message for a body that is not a list of operations: untagged enums only say "did
/// not match any variant", so retry as a single object to get serde's field-level message.
fn bad_json_message(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() {
        return e.to_string();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => {
            for item in items {
                if let Err(inner) = serde_json::from_value::<OpRequest>(item) {
                    return inner.to_string();
                }
            }
            e.to_string()
        }
        Ok(_) => match serde_json::from_slice::<OpRequest>(body) {
            Err(inner) => inner.to_string(),
            Ok(_) => e.to_string(),
        },
        Err(inner) => inner.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(t: DataType, body: &str) -> Result<Vec<Operation>, OpError> {
        parse_body(t, body.as_bytes())
    }

    #[test]
    fn counters() {
        assert_eq!(
            parse(DataType::GCounter, r#"{"op":"increment"}"#).unwrap(),
            vec![Operation::Increment { key: None, by: 1 }]
        );
        assert_eq!(
            parse(DataType::PNCounter, r#"[{"op":"decrement","by":3}]"#).unwrap(),
            vec![Operation::Decrement { key: None, by: 3 }]
        );
        assert!(matches!(
            parse(DataType::GCounter, r#"{"op":"decrement"}"#),
            Err(OpError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(DataType::PNCounter, r#"{"op":"increment","by":-1}"#),
            Err(OpError::BadJson(_))
        ));
        assert_eq!(
            parse(
                DataType::GCounter,
                r#"{"op":"increment","by":18446744073709551615}"#
            )
            .unwrap(),
            vec![Operation::Increment {
                key: None,
                by: u64::MAX
            }]
        );
        assert_eq!(
            parse(DataType::GCounter, r#"{"op":"increment","by":null}"#).unwrap(),
            vec![Operation::Increment { key: None, by: 1 }]
        );
    }

    #[test]
    fn amounts_out_of_range_say_so() {
        for body in [
            r#"{"op":"increment","by":18446744073709551616}"#,
            r#"[{"op":"increment","by":18446744073709551616}]"#,
            r#"{"op":"increment","by":1e30}"#,
            r#"{"op":"increment","by":-1}"#,
        ] {
            let e = parse(DataType::PNCounter, body).unwrap_err().to_string();
            assert!(
                e.contains("out of range") && e.contains("18446744073709551615"),
                "{body}: {e}"
            );
        }
        let e = parse(DataType::PNCounter, r#"{"op":"increment","by":1.5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
        let e = parse(DataType::PNCounter, r#"{"op":"increment","by":"2"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type: string"), "{e}");
    }

    #[test]
    fn sets_and_registers() {
        assert_eq!(
            parse(DataType::ORSet, r#"{"op":"remove","element":"x"}"#).unwrap(),
            vec![Operation::Remove {
                element: "x".into()
            }]
        );
        assert_eq!(
            parse(DataType::ORSet, r#"{"op":"add"}"#),
            Err(OpError::Missing {
                op: "add".into(),
                data_type: DataType::ORSet,
                field: "element"
            })
        );
        assert_eq!(
            parse(DataType::LWWRegister, r#"{"op":"set","value":"v","by":2}"#),
            Err(OpError::Unexpected {
                op: "set".into(),
                data_type: DataType::LWWRegister,
                field: "by"
            })
        );
        assert_eq!(
            parse(DataType::Flag, r#"{"op":"enable"}"#).unwrap(),
            vec![Operation::Enable]
        );
    }

    #[test]
    fn maps() {
        assert_eq!(
            parse(DataType::LWWMap, r#"{"op":"put","key":"k","value":"v"}"#).unwrap(),
            vec![Operation::Put {
                key: "k".into(),
                value: "v".into()
            }]
        );
        assert_eq!(
            parse(
                DataType::PNCounterMap,
                r#"{"op":"increment","key":"k","by":2}"#
            )
            .unwrap(),
            vec![Operation::Increment {
                key: Some("k".into()),
                by: 2
            }]
        );
        assert!(matches!(
            parse(DataType::PNCounterMap, r#"{"op":"increment"}"#),
            Err(OpError::Missing { field: "key", .. })
        ));
        assert_eq!(
            parse(DataType::ORMultiMap, r#"{"op":"remove","key":"k"}"#).unwrap(),
            vec![Operation::RemoveKey { key: "k".into() }]
        );
        assert_eq!(
            parse(
                DataType::ORMultiMap,
                r#"{"op":"put","key":"k","values":["a","b"]}"#
            )
            .unwrap(),
            vec![Operation::PutBindings {
                key: "k".into(),
                values: vec!["a".into(), "b".into()]
            }]
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let e = parse(DataType::ORSet, "{").unwrap_err().to_string();
        assert!(e.starts_with("bad JSON body: EOF"), "{e}");
        let e = parse(DataType::ORSet, r#"{"op":"add","elemnt":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `elemnt`"), "{e}");
        let e = parse(DataType::ORSet, r#"[{"op":"add","element":1}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type: integer"), "{e}");
        assert_eq!(parse(DataType::ORSet, "[]"), Err(OpError::Empty));
    }

    #[test]
    fn usage_lists_every_op() {
        for t in DataType::ALL {
            assert_eq!(usage(t).len(), supported_ops(t).len());
        }
        assert_eq!(
            usage(DataType::PNCounterMap)[0],
            r#"{"op":"increment","key":...,["by":...]}"#
        );
    }
}
