//! The checks of the `transport_frame` target: frames from a possibly hostile peer.
//!
//! The input is decoded both as a [`Handshake`] and as a replicator [`Message`]. Neither decoder
//! may panic; what decodes must re-encode to bytes that decode to an equal value. The CRDT
//! values and deltas a message carries go through [`crdt::check_typed`](crate::crdt::check_typed)
//! under the type name the message gives them, as the receiving replicator would decode them.

use dd_core::transport::tcp::Handshake;
use dd_core::transport::{Message, WireEntry, WireState};

use crate::{CheckFailure, Outcome, Target, crdt};

/// Checks one input (see the module docs).
///
/// ```
/// use dd_core::transport::Message;
/// use dd_fuzz_checks::{transport, Outcome};
/// let bytes = Message::WriteAck { request: 7 }.encode().unwrap();
/// assert_eq!(transport::check(&bytes), Ok(Outcome::Accepted));
/// assert_eq!(transport::check(&[0xff; 3]), Ok(Outcome::Rejected));
/// ```
pub fn check(data: &[u8]) -> Result<Outcome, CheckFailure> {
    let fail = |reason: String| CheckFailure::new(Target::TransportFrame, reason);
    let mut outcome = Outcome::Rejected;
    if let Ok(handshake) = Handshake::decode(data) {
        outcome = Outcome::Accepted;
        let bytes = handshake.encode().map_err(|e| {
            fail(format!(
                "decoded handshake {handshake:?} does not encode: {e}"
            ))
        })?;
        let again = Handshake::decode(&bytes).map_err(|e| {
            fail(format!(
                "re-encoded handshake {handshake:?} does not decode: {e}"
            ))
        })?;
        if again != handshake {
            return Err(fail(format!(
                "handshake {handshake:?} decodes as {again:?} after re-encoding"
            )));
        }
    }
    if let Ok(message) = Message::decode(data) {
        outcome = Outcome::Accepted;
        let bytes = message
            .encode()
            .map_err(|e| fail(format!("decoded message {message:?} does not encode: {e}")))?;
        let again = Message::decode(&bytes).map_err(|e| {
            fail(format!(
                "re-encoded message {message:?} does not decode: {e}"
            ))
        })?;
        if again != message {
            return Err(fail(format!(
                "message {message:?} decodes as {again:?} after re-encoding"
            )));
        }
        check_payloads(&message)?;
    }
    Ok(outcome)
}

/// Runs the CRDT checks on every value and delta of `message`.
fn check_payloads(message: &Message) -> Result<(), CheckFailure> {
    let entries: Vec<&WireEntry> = match message {
        Message::Gossip { entries, .. } | Message::StreamBatch { entries, .. } => {
            entries.iter().collect()
        }
        Message::Write { entry, .. } => vec![entry],
        Message::ReadResult {
            entry: Some(entry), ..
        } => vec![entry],
        Message::Deltas { deltas } => {
            for delta in deltas {
                crdt::check_typed(Target::TransportFrame, &delta.type_name, &delta.bytes)?;
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    for entry in entries {
        if let WireState::Data { type_name, bytes } = &entry.state {
            crdt::check_typed(Target::TransportFrame, type_name, bytes)?;
        }
    }
    Ok(())
}
