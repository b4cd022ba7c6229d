//! Errors: the CQL errors the double answers with, and the errors of starting it.

use cassandra_protocol::consistency::Consistency;
use cassandra_protocol::frame::message_error::{
    AlreadyExistsError, ErrorBody, ErrorType, UnpreparedError, WriteTimeoutError, WriteType,
};
use cassandra_protocol::types::CBytesShort;

/// A CQL error sent to the client as an `ERROR` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CqlError {
    /// Which protocol error code this is.
    pub kind: CqlErrorKind,
    /// The human-readable message.
    pub message: String,
}

/// The protocol error codes the double uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CqlErrorKind {
    /// `0x2000` Syntax error: the statement does not parse (or is not one the double supports).
    Syntax,
    /// `0x2200` Invalid: the statement parses but is invalid (unknown table, bad value, ...).
    Invalid,
    /// `0x000A` Protocol error.
    Protocol,
    /// `0x0000` Server error.
    Server,
    /// `0x2400` The keyspace or table already exists.
    AlreadyExists {
        /// The keyspace.
        keyspace: String,
        /// The table, empty for a keyspace.
        table: String,
    },
    /// `0x2500` The prepared statement id is unknown (the client must prepare again).
    Unprepared {
        /// The unknown id.
        id: Vec<u8>,
    },
    /// `0x1100` Write timeout of write type `CAS` (a lightweight transaction whose outcome the
    /// coordinator does not know), at this consistency; injected by tests only.
    CasWriteTimeout {
        /// The consistency the request was sent with.
        consistency: Consistency,
    },
}

impl CqlError {
    /// A syntax error.
    pub fn syntax(message: impl Into<String>) -> Self {
        Self {
            kind: CqlErrorKind::Syntax,
            message: message.into(),
        }
    }

    /// An invalid-request error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: CqlErrorKind::Invalid,
            message: message.into(),
        }
    }

    /// A protocol error.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self {
            kind: CqlErrorKind::Protocol,
            message: message.into(),
        }
    }

    /// A `CAS` write timeout at `consistency`: "the outcome of the lightweight transaction is
    /// unknown".
    pub fn cas_write_timeout(consistency: Consistency) -> Self {
        Self {
            kind: CqlErrorKind::CasWriteTimeout { consistency },
            message: "Operation timed out - received only 0 responses (CAS write timeout \
                      injected by the CQL test double)"
                .to_owned(),
        }
    }

    /// The protocol body of this error.
    pub fn to_body(&self) -> ErrorBody {
        let ty = match &self.kind {
            CqlErrorKind::Syntax => ErrorType::Syntax,
            CqlErrorKind::Invalid => ErrorType::Invalid,
            CqlErrorKind::Protocol => ErrorType::Protocol,
            CqlErrorKind::Server => ErrorType::Server,
            CqlErrorKind::AlreadyExists { keyspace, table } => {
                ErrorType::AlreadyExists(AlreadyExistsError {
                    ks: keyspace.clone(),
                    table: table.clone(),
                })
            }
            CqlErrorKind::Unprepared { id } => ErrorType::Unprepared(UnpreparedError {
                id: CBytesShort::new(id.clone()),
            }),
            CqlErrorKind::CasWriteTimeout { consistency } => {
                ErrorType::WriteTimeout(WriteTimeoutError {
                    cl: *consistency,
                    received: 0,
                    block_for: 1,
                    write_type: WriteType::Cas,
                    // Protocol v4 has no contention count (v5 added it).
                    contentions: None,
                })
            }
        };
        ErrorBody {
            message: self.message.clone(),
            ty,
        }
    }
}
