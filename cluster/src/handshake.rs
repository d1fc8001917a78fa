//! The Raft port's handshake. A dialling node names itself, then each side proves to the
//! other that it knows the cluster secret: an HMAC-SHA256 over its role, both node ids and a
//! fresh nonce from each side, so a proof cannot be replayed on another connection or
//! reflected back. It keeps strangers and misconfigured nodes out of the Raft groups; it does
//! not encrypt the traffic that follows. With no secret configured (empty) on both sides it
//! still runs, and proves nothing.

use crate::placement::NodeId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a dialling node sends first, then its id and its nonce. The last byte is the
/// handshake's version: a node of another one is refused as not a peer.
const MAGIC: &[u8; 8] = b"TESSRAF2";
const NONCE: usize = 16;
const PROOF: usize = 32;
/// How long the other side has for each of its steps.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a dialled handshake failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DialFailure {
    /// The node's proof did not check out: its secret is not ours.
    WrongSecret(NodeId),
    /// The connection failed, timed out or was refused.
    Broken(String),
}

impl std::fmt::Display for DialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialFailure::WrongSecret(peer) => {
                write!(f, "node {peer} does not know the cluster secret")
            }
            DialFailure::Broken(why) => f.write_str(why),
        }
    }
}

/// Greets the node `peer` as node `me` over a fresh connection; Ok once both sides proved
/// they know `secret`.
pub async fn dial(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    secret: &[u8],
    me: NodeId,
    peer: NodeId,
) -> Result<(), DialFailure> {
    let broken = |why: String| DialFailure::Broken(why);
    let nonce = fresh_nonce().map_err(broken)?;
    let mut greeting = MAGIC.to_vec();
    greeting.extend_from_slice(&me.to_le_bytes());
    greeting.extend_from_slice(&nonce);
    stream
        .write_all(&greeting)
        .await
        .map_err(|e| broken(e.to_string()))?;
    let mut answer = [0u8; NONCE + PROOF];
    read_step(stream, &mut answer).await.map_err(broken)?;
    let (their_nonce, their_proof) = answer.split_at(NONCE);
    proof(secret, b"accept", me, peer, &nonce, their_nonce)
        .verify_slice(their_proof)
        .map_err(|_| DialFailure::WrongSecret(peer))?;
    let mine = proof(secret, b"dial", me, peer, &nonce, their_nonce);
    stream
        .write_all(&mine.finalize().into_bytes())
        .await
        .map_err(|e| broken(e.to_string()))
}

/// Answers a dialling node as node `me`: returns what `admits(id)` made of the id it gave,
/// once it also proved it knows `secret`.
pub async fn accept<T>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    secret: &[u8],
    me: NodeId,
    admits: impl FnOnce(NodeId) -> Result<T, String>,
) -> Result<T, String> {
    let mut magic = [0u8; MAGIC.len()];
    read_step(stream, &mut magic).await?;
    if &magic != MAGIC {
        return Err("not a Tessera node of this version".into());
    }
    let mut greeting = [0u8; 8 + NONCE];
    read_step(stream, &mut greeting).await?;
    let (id, their_nonce) = greeting.split_at(8);
    let id = NodeId::from_le_bytes(id.try_into().expect("8 bytes"));
    let admitted = admits(id)?;
    let nonce = fresh_nonce()?;
    let mut answer = nonce.to_vec();
    answer.extend_from_slice(
        &proof(secret, b"accept", id, me, their_nonce, &nonce)
            .finalize()
            .into_bytes(),
    );
    stream.write_all(&answer).await.map_err(|e| e.to_string())?;
    let mut their_proof = [0u8; PROOF];
    read_step(stream, &mut their_proof).await?;
    proof(secret, b"dial", id, me, their_nonce, &nonce)
        .verify_slice(&their_proof)
        .map_err(|_| format!("node {id} does not know the cluster secret"))?;
    Ok(admitted)
}

async fn read_step(stream: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Result<(), String> {
    tokio::time::timeout(STEP_TIMEOUT, stream.read_exact(buf))
        .await
        .map_err(|_| "the handshake timed out".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn fresh_nonce() -> Result<[u8; NONCE], String> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    Ok(nonce)
}

/// One side's proof, not yet finalized (verification compares in constant time).
fn proof(
    secret: &[u8],
    role: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    dial_nonce: &[u8],
    accept_nonce: &[u8],
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [
        role,
        &dialer.to_le_bytes(),
        &acceptor.to_le_bytes(),
        dial_nonce,
        accept_nonce,
    ] {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a dial from node 1 and an accept by node 2 over an in-memory connection.
    async fn handshake(
        dialer: &[u8],
        acceptor: &[u8],
    ) -> (Result<(), DialFailure>, Result<NodeId, String>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (dialer, acceptor) = (dialer.to_vec(), acceptor.to_vec());
        // A side that fails drops its end, which ends the other's wait.
        let dialled = tokio::spawn(async move { dial(&mut a, &dialer, 1, 2).await });
        let accepted = tokio::spawn(async move { accept(&mut b, &acceptor, 2, Ok).await });
        let (dialled, accepted) = (dialled.await.unwrap(), accepted.await.unwrap());
        (dialled, accepted)
    }

    #[tokio::test]
    async fn nodes_sharing_the_secret_meet() {
        let (dialled, accepted) = handshake(b"secret", b"secret").await;
        assert_eq!(dialled, Ok(()));
        assert_eq!(accepted, Ok(1));
        let (dialled, accepted) = handshake(b"", b"").await;
        assert!(
            dialled.is_ok() && accepted == Ok(1),
            "no secret on either side"
        );
    }

    #[tokio::test]
    async fn a_node_with_another_secret_is_refused_by_both_sides() {
        let (dialled, accepted) = handshake(b"secret", b"other").await;
        assert_eq!(dialled, Err(DialFailure::WrongSecret(2)));
        assert!(accepted.is_err());
        let (dialled, accepted) = handshake(b"", b"secret").await;
        assert!(dialled.is_err() && accepted.is_err());
    }

    #[tokio::test]
    async fn a_proof_from_another_connection_does_not_pass() {
        // A stranger replays what a real dialer sent, including its proof for another nonce.
        let (mut a, mut b) = tokio::io::duplex(1024);
        let acceptor = tokio::spawn(async move { accept(&mut b, b"secret", 2, Ok).await });
        let mut greeting = MAGIC.to_vec();
        greeting.extend_from_slice(&1u64.to_le_bytes());
        greeting.extend_from_slice(&[7; NONCE]);
        a.write_all(&greeting).await.unwrap();
        let mut answer = [0u8; NONCE + PROOF];
        a.read_exact(&mut answer).await.unwrap();
        let stale = proof(b"secret", b"dial", 1, 2, &[7; NONCE], &[9; NONCE]);
        a.write_all(&stale.finalize().into_bytes()).await.unwrap();
        assert!(acceptor.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn strangers_and_unwanted_ids_are_refused_before_any_proof() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxx")
            .await
            .unwrap();
        assert!(accept(&mut b, b"", 2, Ok).await.is_err());
        let (mut a, mut b) = tokio::io::duplex(1024);
        let acceptor = tokio::spawn(async move {
            accept(&mut b, b"", 2, |id| -> Result<NodeId, String> {
                Err(format!("node {id} is not a member"))
            })
            .await
        });
        assert!(dial(&mut a, b"", 9, 2).await.is_err());
        assert_eq!(
            acceptor.await.unwrap(),
            Err("node 9 is not a member".into())
        );
    }
}
