//! The connection handshake: protocol version, cluster name and, when a [`Secret`] is
//! configured, a mutual HMAC-SHA256 challenge/response.
//!
//! With a secret (every message is one length-delimited postcard [`Handshake`] frame):
//!
//! 1. dialler → listener: [`Handshake::Hello`] with a fresh random nonce;
//! 2. listener → dialler: [`Handshake::Challenge`] with its own fresh nonce and its proof;
//! 3. dialler → listener: [`Handshake::Proof`] (after checking the listener's proof);
//! 4. listener → dialler: [`Handshake::Welcome`] (or [`Handshake::Rejected`]).
//!
//! A proof is `HMAC-SHA256(secret, transcript)` where the [`Transcript`] holds the role, the
//! protocol version, the cluster name, both nonces and both replica ids; each side's nonce is
//! fresh per connection, so a recorded proof never verifies again (no replay), and the role in
//! the transcript stops a listener proof from being reflected back as a dialler proof. Without
//! a secret the handshake is `Hello` → `Welcome`.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::PROTOCOL_VERSION;
use crate::replica::UniqueReplicaId;
use crate::secret::Secret;

/// A random per-connection nonce.
pub type Nonce = [u8; 32];

/// An HMAC-SHA256 proof of knowledge of the cluster secret.
pub type Proof = [u8; 32];

/// The largest handshake frame accepted: before a peer is authenticated it cannot make this
/// replica buffer more than this.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// The frames of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// Sent by the dialler.
    Hello {
        /// [`PROTOCOL_VERSION`] of the dialler.
        protocol: u32,
        /// The dialler's cluster name.
        cluster: String,
        /// The dialler's incarnation.
        from: UniqueReplicaId,
        /// The dialler's fresh nonce; present exactly when the dialler has a cluster secret.
        nonce: Option<Nonce>,
    },
    /// The listener (which has a secret) proves itself and challenges the dialler.
    Challenge {
        /// The listener's incarnation.
        from: UniqueReplicaId,
        /// The listener's fresh nonce.
        nonce: Nonce,
        /// [`proof`] with [`Role::Listener`].
        proof: Proof,
    },
    /// The dialler's answer to a [`Handshake::Challenge`].
    Proof {
        /// [`proof`] with [`Role::Dialler`].
        proof: Proof,
    },
    /// The listener accepted.
    Welcome {
        /// The listener's incarnation.
        from: UniqueReplicaId,
    },
    /// The handshake is refused, with the reason.
    Rejected {
        /// Why.
        reason: String,
    },
}

impl Handshake {
    /// Encodes as a frame payload.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// Decodes a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// Which side of a connection a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// The side that connected.
    Dialler,
    /// The side that accepted.
    Listener,
}

/// Everything a proof covers.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript<'a> {
    /// Whose proof this is.
    pub role: Role,
    /// The protocol version both sides speak.
    pub protocol: u32,
    /// The cluster name.
    pub cluster: &'a str,
    /// The dialler's nonce.
    pub dialler_nonce: &'a Nonce,
    /// The listener's nonce.
    pub listener_nonce: &'a Nonce,
    /// The dialler's incarnation.
    pub dialler: &'a UniqueReplicaId,
    /// The listener's incarnation.
    pub listener: &'a UniqueReplicaId,
}

fn mac(secret: &Secret, transcript: &Transcript<'_>) -> Option<hmac::Hmac<Sha256>> {
    let bytes = postcard::to_stdvec(transcript).ok()?;
    let mut mac = secret.mac(b"durable-dd handshake\0")?;
    mac.update(&bytes);
    Some(mac)
}

/// The proof of knowledge of `secret` for `transcript`.
pub fn proof(secret: &Secret, transcript: &Transcript<'_>) -> Proof {
    let mut out = [0u8; 32];
    if let Some(mac) = mac(secret, transcript) {
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Whether `candidate` is the proof for `transcript` (constant-time comparison).
pub fn verify(secret: &Secret, transcript: &Transcript<'_>, candidate: &Proof) -> bool {
    mac(secret, transcript).is_some_and(|mac| mac.verify_slice(candidate).is_ok())
}

/// A fresh random nonce.
pub(crate) fn nonce() -> Nonce {
    rand::random()
}

/// The connection type of the handshake.
pub(crate) type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused by a check of this side or of the peer (counted and logged as a warning).
    Refused(String),
    /// The connection failed or the peer spoke nonsense.
    Broken(String),
}

async fn send(conn: &mut Conn, frame: &Handshake) -> Result<(), Failure> {
    let bytes = frame
        .encode()
        .map_err(|e| Failure::Broken(format!("encode handshake: {e}")))?;
    conn.send(Bytes::from(bytes))
        .await
        .map_err(|e| Failure::Broken(format!("send handshake: {e}")))
}

async fn receive(conn: &mut Conn) -> Result<Handshake, Failure> {
    match conn.next().await {
        Some(Ok(frame)) => Handshake::decode(&frame)
            .map_err(|e| Failure::Broken(format!("malformed handshake frame: {e}"))),
        Some(Err(e)) => Err(Failure::Broken(format!("bad handshake frame: {e}"))),
        None => Err(Failure::Broken("closed during the handshake".into())),
    }
}

/// Tells the peer why, then returns the refusal.
async fn refuse(conn: &mut Conn, reason: String) -> Failure {
    let _ = send(
        conn,
        &Handshake::Rejected {
            reason: reason.clone(),
        },
    )
    .await;
    Failure::Refused(reason)
}

/// The listener's side: returns the authenticated dialler.
pub(crate) async fn accept(
    conn: &mut Conn,
    me: &UniqueReplicaId,
    cluster_name: &str,
    secret: Option<&Secret>,
) -> Result<UniqueReplicaId, Failure> {
    let (protocol, cluster, from, dialler_nonce) = match receive(conn).await? {
        Handshake::Hello {
            protocol,
            cluster,
            from,
            nonce,
        } => (protocol, cluster, from, nonce),
        other => {
            return Err(Failure::Broken(format!(
                "expected a Hello handshake, got {other:?}"
            )));
        }
    };
    if protocol != PROTOCOL_VERSION {
        return Err(refuse(conn, format!(
            "protocol version {protocol} is not supported (replica {me} speaks {PROTOCOL_VERSION})"
        ))
        .await);
    }
    if cluster != cluster_name {
        return Err(refuse(
            conn,
            format!(
                "cluster name '{cluster}' does not match cluster '{cluster_name}' of replica {me}"
            ),
        )
        .await);
    }
    let (secret, dialler_nonce) = match (secret, dialler_nonce) {
        (None, None) => {
            send(conn, &Handshake::Welcome { from: me.clone() }).await?;
            return Ok(from);
        }
        (Some(_), None) => {
            return Err(refuse(
                conn,
                format!("replica {from} presented no cluster secret; replica {me} requires one"),
            )
            .await);
        }
        (None, Some(_)) => {
            return Err(refuse(
                conn,
                format!("replica {from} uses a cluster secret; replica {me} has none configured"),
            )
            .await);
        }
        (Some(secret), Some(n)) => (secret, n),
    };
    let listener_nonce = nonce();
    let transcript = |role| Transcript {
        role,
        protocol,
        cluster: cluster_name,
        dialler_nonce: &dialler_nonce,
        listener_nonce: &listener_nonce,
        dialler: &from,
        listener: me,
    };
    let challenge = Handshake::Challenge {
        from: me.clone(),
        nonce: listener_nonce,
        proof: proof(secret, &transcript(Role::Listener)),
    };
    send(conn, &challenge).await?;
    match receive(conn).await? {
        Handshake::Proof { proof } if verify(secret, &transcript(Role::Dialler), &proof) => {
            send(conn, &Handshake::Welcome { from: me.clone() }).await?;
            Ok(from)
        }
        Handshake::Proof { .. } => Err(refuse(
            conn,
            format!("replica {from} failed to prove the cluster secret (wrong secret or replayed handshake)"),
        )
        .await),
        Handshake::Rejected { reason } => Err(Failure::Refused(format!("the dialler refused: {reason}"))),
        other => Err(Failure::Broken(format!(
            "expected a Proof handshake, got {other:?}"
        ))),
    }
}

/// The dialler's side: returns the authenticated listener.
pub(crate) async fn dial(
    conn: &mut Conn,
    me: &UniqueReplicaId,
    cluster_name: &str,
    secret: Option<&Secret>,
) -> Result<UniqueReplicaId, Failure> {
    let dialler_nonce = secret.map(|_| nonce());
    let hello = Handshake::Hello {
        protocol: PROTOCOL_VERSION,
        cluster: cluster_name.to_owned(),
        from: me.clone(),
        nonce: dialler_nonce,
    };
    send(conn, &hello).await?;
    let reply = receive(conn).await?;
    match (secret, dialler_nonce, reply) {
        (_, _, Handshake::Rejected { reason }) => {
            return Err(Failure::Refused(format!("the listener refused: {reason}")));
        }
        (None, _, Handshake::Welcome { from }) => return Ok(from),
        (Some(_), _, Handshake::Welcome { from }) => {
            return Err(refuse(
                conn,
                format!("replica {from} accepted without proving the cluster secret"),
            )
            .await);
        }
        (Some(secret), Some(n), Handshake::Challenge { from, nonce, proof }) => {
            let transcript = |role| Transcript {
                role,
                protocol: PROTOCOL_VERSION,
                cluster: cluster_name,
                dialler_nonce: &n,
                listener_nonce: &nonce,
                dialler: me,
                listener: &from,
            };
            if !verify(secret, &transcript(Role::Listener), &proof) {
                return Err(refuse(
                    conn,
                    format!("replica {from} failed to prove the cluster secret"),
                )
                .await);
            }
            let mine = self::proof(secret, &transcript(Role::Dialler));
            send(conn, &Handshake::Proof { proof: mine }).await?;
        }
        (_, _, other) => {
            return Err(Failure::Broken(format!(
                "unexpected handshake reply {other:?}"
            )));
        }
    }
    match receive(conn).await? {
        Handshake::Welcome { from } => Ok(from),
        Handshake::Rejected { reason } => {
            Err(Failure::Refused(format!("the listener refused: {reason}")))
        }
        other => Err(Failure::Broken(format!(
            "unexpected handshake reply {other:?}"
        ))),
    }
}
