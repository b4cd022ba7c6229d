//! CQL types and values the test double understands, with their native protocol encoding.

use std::cmp::Ordering;
use std::net::IpAddr;

use cassandra_protocol::frame::message_result::{ColType, ColTypeOption, ColTypeOptionValue};

use crate::error::CqlError;

/// A CQL column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CqlType {
    /// `text` (also `varchar`, `ascii`).
    Text,
    /// `int`.
    Int,
    /// `bigint`.
    BigInt,
    /// `blob`.
    Blob,
    /// `boolean`.
    Boolean,
    /// `uuid`.
    Uuid,
    /// `inet`.
    Inet,
    /// `list<T>`.
    List(Box<CqlType>),
    /// `set<T>`.
    Set(Box<CqlType>),
    /// `map<K, V>`.
    Map(Box<CqlType>, Box<CqlType>),
}

impl CqlType {
    /// Parses a simple type name (`text`, `bigint`, ...), as written in `CREATE TABLE`.
    pub fn from_name(name: &str) -> Option<CqlType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "text" | "varchar" | "ascii" => CqlType::Text,
            "int" => CqlType::Int,
            "bigint" => CqlType::BigInt,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "uuid" => CqlType::Uuid,
            "inet" => CqlType::Inet,
            _ => return None,
        })
    }

    /// The type as CQL writes it (`system_schema.columns.type`).
    pub fn cql_name(&self) -> String {
        match self {
            CqlType::Text => "text".to_owned(),
            CqlType::Int => "int".to_owned(),
            CqlType::BigInt => "bigint".to_owned(),
            CqlType::Blob => "blob".to_owned(),
            CqlType::Boolean => "boolean".to_owned(),
            CqlType::Uuid => "uuid".to_owned(),
            CqlType::Inet => "inet".to_owned(),
            CqlType::List(t) => format!("list<{}>", t.cql_name()),
            CqlType::Set(t) => format!("set<{}>", t.cql_name()),
            CqlType::Map(k, v) => format!("map<{}, {}>", k.cql_name(), v.cql_name()),
        }
    }

    /// The protocol's `[option]` describing this type in result and prepared metadata.
    pub fn col_type_option(&self) -> ColTypeOption {
        let simple = |id| ColTypeOption { id, value: None };
        match self {
            CqlType::Text => simple(ColType::Varchar),
            CqlType::Int => simple(ColType::Int),
            CqlType::BigInt => simple(ColType::Bigint),
            CqlType::Blob => simple(ColType::Blob),
            CqlType::Boolean => simple(ColType::Boolean),
            CqlType::Uuid => simple(ColType::Uuid),
            CqlType::Inet => simple(ColType::Inet),
            CqlType::List(t) => ColTypeOption {
                id: ColType::List,
                value: Some(ColTypeOptionValue::CList(Box::new(t.col_type_option()))),
            },
            CqlType::Set(t) => ColTypeOption {
                id: ColType::Set,
                value: Some(ColTypeOptionValue::CSet(Box::new(t.col_type_option()))),
            },
            CqlType::Map(k, v) => ColTypeOption {
                id: ColType::Map,
                value: Some(ColTypeOptionValue::CMap(
                    Box::new(k.col_type_option()),
                    Box::new(v.col_type_option()),
                )),
            },
        }
    }

    /// Decodes a bound value of this type from its protocol bytes.
    pub fn decode(&self, bytes: &[u8]) -> Result<CqlValue, CqlError> {
        let invalid = |what: &str| {
            CqlError::invalid(format!(
                "invalid {} value of {} bytes: {what}",
                self.cql_name(),
                bytes.len()
            ))
        };
        Ok(match self {
            CqlType::Text => {
                CqlValue::Text(String::from_utf8(bytes.to_vec()).map_err(|_| invalid("not UTF-8"))?)
            }
            CqlType::Int => CqlValue::Int(i32::from_be_bytes(
                bytes.try_into().map_err(|_| invalid("expected 4 bytes"))?,
            )),
            CqlType::BigInt => CqlValue::BigInt(i64::from_be_bytes(
                bytes.try_into().map_err(|_| invalid("expected 8 bytes"))?,
            )),
            CqlType::Blob => CqlValue::Blob(bytes.to_vec()),
            CqlType::Boolean => match bytes {
                [b] => CqlValue::Boolean(*b != 0),
                _ => return Err(invalid("expected 1 byte")),
            },
            CqlType::Uuid => {
                CqlValue::Uuid(bytes.try_into().map_err(|_| invalid("expected 16 bytes"))?)
            }
            CqlType::Inet => match bytes.len() {
                4 => {
                    let octets: [u8; 4] = bytes.try_into().map_err(|_| invalid("bad length"))?;
                    CqlValue::Inet(IpAddr::from(octets))
                }
                16 => {
                    let octets: [u8; 16] = bytes.try_into().map_err(|_| invalid("bad length"))?;
                    CqlValue::Inet(IpAddr::from(octets))
                }
                _ => return Err(invalid("expected 4 or 16 bytes")),
            },
            CqlType::List(t) | CqlType::Set(t) => {
                let mut reader = Reader::new(bytes);
                let n = reader.int().ok_or_else(|| invalid("truncated"))?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    let item = reader.value().ok_or_else(|| invalid("truncated element"))?;
                    items.push(t.decode(item)?);
                }
                CqlValue::List(items)
            }
            CqlType::Map(k, v) => {
                let mut reader = Reader::new(bytes);
                let n = reader.int().ok_or_else(|| invalid("truncated"))?;
                let mut entries = Vec::new();
                for _ in 0..n.max(0) {
                    let key = reader.value().ok_or_else(|| invalid("truncated key"))?;
                    let value = reader.value().ok_or_else(|| invalid("truncated value"))?;
                    entries.push((k.decode(key)?, v.decode(value)?));
                }
                CqlValue::Map(entries)
            }
        })
    }
}

/// A CQL value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CqlValue {
    /// A `text` value; ordered by its UTF-8 bytes, as Cassandra orders `text`.
    Text(String),
    /// An `int`.
    Int(i32),
    /// A `bigint`.
    BigInt(i64),
    /// A `blob`.
    Blob(Vec<u8>),
    /// A `boolean`.
    Boolean(bool),
    /// A `uuid`.
    Uuid([u8; 16]),
    /// An `inet`.
    Inet(IpAddr),
    /// A `list` or `set`.
    List(Vec<CqlValue>),
    /// A `map`.
    Map(Vec<(CqlValue, CqlValue)>),
}

impl CqlValue {
    /// The protocol bytes of this value.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            CqlValue::Text(s) => s.as_bytes().to_vec(),
            CqlValue::Int(i) => i.to_be_bytes().to_vec(),
            CqlValue::BigInt(i) => i.to_be_bytes().to_vec(),
            CqlValue::Blob(b) => b.clone(),
            CqlValue::Boolean(b) => vec![u8::from(*b)],
            CqlValue::Uuid(u) => u.to_vec(),
            CqlValue::Inet(IpAddr::V4(a)) => a.octets().to_vec(),
            CqlValue::Inet(IpAddr::V6(a)) => a.octets().to_vec(),
            CqlValue::List(items) => {
                let mut out = len_i32(items.len()).to_be_bytes().to_vec();
                for item in items {
                    put_value(&mut out, &item.encode());
                }
                out
            }
            CqlValue::Map(entries) => {
                let mut out = len_i32(entries.len()).to_be_bytes().to_vec();
                for (k, v) in entries {
                    put_value(&mut out, &k.encode());
                    put_value(&mut out, &v.encode());
                }
                out
            }
        }
    }

    /// Whether this value is of type `ty`.
    pub fn is_of(&self, ty: &CqlType) -> bool {
        matches!(
            (self, ty),
            (CqlValue::Text(_), CqlType::Text)
                | (CqlValue::Int(_), CqlType::Int)
                | (CqlValue::BigInt(_), CqlType::BigInt)
                | (CqlValue::Blob(_), CqlType::Blob)
                | (CqlValue::Boolean(_), CqlType::Boolean)
                | (CqlValue::Uuid(_), CqlType::Uuid)
                | (CqlValue::Inet(_), CqlType::Inet)
                | (CqlValue::List(_), CqlType::List(_) | CqlType::Set(_))
                | (CqlValue::Map(_), CqlType::Map(_, _))
        )
    }

    /// Compares two values of the same column; `None` for values of different types.
    pub fn compare(&self, other: &CqlValue) -> Option<Ordering> {
        if std::mem::discriminant(self) == std::mem::discriminant(other) {
            Some(self.cmp(other))
        } else {
            None
        }
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_value(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&len_i32(bytes.len()).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads `[int]`-prefixed values from collection bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn int(&mut self) -> Option<i32> {
        let (head, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(i32::from_be_bytes(*head))
    }

    fn value(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.int()?).ok()?;
        if self.bytes.len() < n {
            return None;
        }
        let (value, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn collections_round_trip() {
        let list = CqlValue::List(vec![CqlValue::Text("a".into()), CqlValue::Text("".into())]);
        let ty = CqlType::List(Box::new(CqlType::Text));
        assert_eq!(ty.decode(&list.encode()).unwrap(), list);
        let map = CqlValue::Map(vec![(CqlValue::Text("k".into()), CqlValue::Int(7))]);
        let ty = CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Int));
        assert_eq!(ty.decode(&map.encode()).unwrap(), map);
    }

    #[test]
    fn text_orders_by_bytes() {
        let a = CqlValue::Text("Z".into());
        let b = CqlValue::Text("a".into());
        let c = CqlValue::Text("é".into());
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        assert_eq!(b.compare(&c), Some(Ordering::Less));
        assert_eq!(a.compare(&CqlValue::Int(1)), None);
    }

    #[test]
    fn bad_bytes_are_clear_errors() {
        let err = CqlType::Int.decode(&[1, 2]).unwrap_err();
        assert!(err.to_string().contains("int"), "{err}");
        assert!(CqlType::Text.decode(&[0xff]).is_err());
    }
}
