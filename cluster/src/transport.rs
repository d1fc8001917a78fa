//! Raft traffic between nodes. Every partition's RPCs between two nodes share one TCP
//! connection, dialled by the node with the lower id, carrying requests and responses both
//! ways. Frames queued while the socket is busy go out in one write. Anything that does not
//! parse — a stranger on the port, a corrupt frame — is logged and its connection closed; the
//! node carries on.

use crate::group::Partition;
use crate::handshake;
use crate::placement::NodeId;
use crate::routing::{Led, Routing};
use bincode::Options;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Largest frame sent or accepted: room for one request as large as a client may send (512
/// MiB) and its log entry's other requests; entries are otherwise kept to a few MiB.
const MAX_FRAME: u32 = 1 << 30;
/// How many times a link's sender lets other tasks run before it writes what they queued.
const SENDER_YIELDS: usize = 1;
/// Pause between attempts to reach a node that is down.
const REDIAL_PAUSE: Duration = Duration::from_millis(100);
/// Pause before dialling again a node whose cluster secret is not ours.
const WRONG_SECRET_PAUSE: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
enum Body {
    Append(AppendEntriesRequest<Partition>),
    Vote(VoteRequest<NodeId>),
    Install(InstallSnapshotRequest<Partition>),
    Appended(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Voted(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Installed(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The groups the sender leads, with their voters (no answer): nodes that hold a
    /// partition learn its leader from Raft, the others from this.
    Led(Vec<Led>),
}

#[derive(Serialize, Deserialize)]
struct Frame {
    /// Pairs a response with its request.
    id: u64,
    partition: u32,
    body: Body,
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(u64::from(MAX_FRAME))
}

/// The frame as bytes, or why it cannot be sent (larger than `MAX_FRAME`).
fn encode(frame: &Frame) -> Result<Vec<u8>, String> {
    // Sized first (cheap: a batch's bytes count as their length) so the frame is written
    // without the copies of a growing buffer.
    let size = codec().serialized_size(frame).unwrap_or(0);
    let mut out = Vec::with_capacity(4 + size as usize);
    out.extend_from_slice(&[0; 4]);
    codec()
        .serialize_into(&mut out, frame)
        .map_err(|e| format!("a raft message that cannot be sent: {e}"))?;
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// One other node: the current connection to it, if any, and the requests awaiting replies.
struct Peer {
    id: NodeId,
    address: String,
    /// The task dialling it, when this node is the one that dials.
    dialler: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Signalled when it leaves the cluster, to close its connection.
    departed: tokio::sync::Notify,
    link: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Body>>>,
    next_id: AtomicU64,
}

/// This node's end of the Raft traffic: its peers and the groups it hosts.
pub struct Transport {
    me: NodeId,
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    groups: RwLock<HashMap<u32, Raft<Partition>>>,
    routing: Arc<Routing>,
    /// What peers prove they know when they connect (`handshake`).
    secret: Vec<u8>,
}

/// Why a request got no answer.
struct NoAnswer;

impl Transport {
    pub fn new(me: NodeId, routing: Arc<Routing>, secret: &[u8]) -> Arc<Transport> {
        Arc::new(Transport {
            me,
            peers: RwLock::default(),
            groups: RwLock::new(HashMap::new()),
            routing,
            secret: secret.to_vec(),
        })
    }

    fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.peers
            .read()
            .expect("no holder panics")
            .get(&id)
            .cloned()
    }

    /// Makes the peers the nodes of `members` (ids and Raft addresses) other than this one:
    /// new ones are dialled (if their id is higher), departed ones no longer.
    pub fn set_peers(self: &Arc<Self>, members: &[(NodeId, String)]) {
        let mut peers = self.peers.write().expect("no holder panics");
        peers.retain(|id, peer| {
            let kept = members.contains(&(*id, peer.address.clone()));
            if !kept {
                if let Some(dialler) = peer.dialler.lock().expect("no holder panics").take() {
                    dialler.abort();
                }
                // Its connection too, whoever dialled: a node added back gets a fresh one.
                peer.departed.notify_waiters();
            }
            kept
        });
        for (id, address) in members {
            if *id == self.me || peers.contains_key(id) {
                continue;
            }
            let peer = Arc::new(Peer {
                id: *id,
                address: address.clone(),
                dialler: Mutex::new(None),
                departed: tokio::sync::Notify::new(),
                link: Mutex::new(None),
                waiting: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            });
            if *id > self.me {
                let (me, dialled) = (self.clone(), peer.clone());
                let dialler = tokio::spawn(async move { me.dial_loop(dialled).await });
                *peer.dialler.lock().expect("no holder panics") = Some(dialler);
            }
            peers.insert(*id, peer);
        }
    }

    /// Tells every connected peer about the groups this node leads.
    pub fn announce(&self, led: Vec<Led>) {
        let frame = Frame {
            id: 0,
            partition: 0,
            body: Body::Led(led),
        };
        let Ok(bytes) = encode(&frame) else {
            return;
        };
        for peer in self.peers.read().expect("no holder panics").values() {
            if let Some(link) = peer.link.lock().expect("no holder panics").as_ref() {
                let _ = link.send(bytes.clone());
            }
        }
    }

    /// Makes `group` reachable by its peers.
    pub fn host(&self, partition: u32, group: Raft<Partition>) {
        self.groups
            .write()
            .expect("no holder panics")
            .insert(partition, group);
    }

    /// Stops routing the group's traffic here.
    pub fn unhost(&self, partition: u32) {
        self.groups
            .write()
            .expect("no holder panics")
            .remove(&partition);
    }

    fn group(&self, partition: u32) -> Option<Raft<Partition>> {
        let groups = self.groups.read().expect("no holder panics");
        groups.get(&partition).cloned()
    }

    /// Accepts connections from lower-numbered nodes (higher-numbered ones are dialled as
    /// they become peers). Runs until the runtime stops.
    pub fn start(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        tokio::spawn(async move { me.accept_loop(listener).await });
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(REDIAL_PAUSE).await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                match me.greeted(stream).await {
                    Ok((peer, stream)) => me.serve_link(peer, stream).await,
                    Err(why) => {
                        tracing::warn!(%from, "refused a connection on the raft port: {why}")
                    }
                }
            });
        }
    }

    /// Runs the handshake with a dialling node; returns the peer it proved to be.
    async fn greeted(&self, mut stream: TcpStream) -> Result<(Arc<Peer>, TcpStream), String> {
        let admits = |id: NodeId| match self.peer(id) {
            Some(peer) if id < self.me => Ok(peer),
            _ => Err(format!("node {id} is not a member that dials this node")),
        };
        let peer = handshake::accept(&mut stream, &self.secret, self.me, admits).await?;
        let id = peer.id;
        // One connection per peer: a second while the first works is an impostor or a
        // mistake, and must not take the link over. A peer that restarted finds its old
        // connection closed (or closing) on this side.
        let live = peer.link.lock().expect("no holder panics");
        if live.as_ref().is_some_and(|link| !link.is_closed()) {
            return Err(format!("node {id} is already connected"));
        }
        drop(live);
        Ok((peer, stream))
    }

    async fn dial_loop(self: Arc<Self>, peer: Arc<Peer>) {
        loop {
            if let Ok(mut stream) = TcpStream::connect(&peer.address).await {
                match handshake::dial(&mut stream, &self.secret, self.me, peer.id).await {
                    Ok(()) => self.serve_link(peer.clone(), stream).await,
                    Err(failure) => {
                        tracing::warn!(peer = peer.id, "raft handshake failed: {failure}");
                        // A wrong secret does not right itself soon: retry slowly.
                        if let handshake::DialFailure::WrongSecret(_) = failure {
                            tokio::time::sleep(WRONG_SECRET_PAUSE).await;
                        }
                    }
                }
            }
            tokio::time::sleep(REDIAL_PAUSE).await;
        }
    }

    /// Carries traffic with `peer` over `stream` until the connection fails.
    async fn serve_link(self: &Arc<Self>, peer: Arc<Peer>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        *peer.link.lock().expect("no holder panics") = Some(tx.clone());
        let sender = tokio::spawn(async move {
            let mut writer = BufWriter::with_capacity(64 << 10, writer);
            while let Some(frame) = rx.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
                // Whatever queued meanwhile goes out in the same write, and so does what
                // the tasks ready now queue: each write to a loopback or LAN socket costs
                // about as much as the frames it carries take to make.
                for _ in 0..SENDER_YIELDS {
                    while let Ok(frame) = rx.try_recv() {
                        if writer.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                if writer.flush().await.is_err() {
                    return;
                }
            }
        });
        let read = tokio::select! {
            read = self.read_frames(&peer, reader, &tx) => read,
            () = peer.departed.notified() => Err("the node left the cluster".into()),
        };
        if let Err(why) = read {
            tracing::warn!(peer = peer.id, "closing the raft connection: {why}");
        }
        sender.abort();
        let mut link = peer.link.lock().expect("no holder panics");
        if link.as_ref().is_some_and(|l| l.same_channel(&tx)) {
            *link = None;
        }
        drop(link);
        // Requests sent over this connection will never be answered.
        peer.waiting.lock().expect("no holder panics").clear();
    }

    async fn read_frames(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        reader: OwnedReadHalf,
        tx: &mpsc::UnboundedSender<Vec<u8>>,
    ) -> Result<(), String> {
        let mut reader = tokio::io::BufReader::with_capacity(64 << 10, reader);
        let mut buf = Vec::new();
        loop {
            let len = match reader.read_u32_le().await {
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            if len > MAX_FRAME {
                return Err(format!("a frame of {len} bytes"));
            }
            buf.resize(len as usize, 0);
            reader
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            let frame: Frame = codec()
                .deserialize(&buf)
                .map_err(|e| format!("a frame that does not parse: {e}"))?;
            match frame.body {
                Body::Append(_) | Body::Vote(_) | Body::Install(_) => {
                    let (me, tx) = (self.clone(), tx.clone());
                    tokio::spawn(async move { me.answer(frame, tx).await });
                }
                Body::Led(led) => self.routing.learn(&led),
                answer => {
                    let waiter = peer
                        .waiting
                        .lock()
                        .expect("no holder panics")
                        .remove(&frame.id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(answer);
                    }
                }
            }
        }
    }

    /// Runs a peer's request on the group it names and sends the response back.
    async fn answer(&self, frame: Frame, tx: mpsc::UnboundedSender<Vec<u8>>) {
        let Some(group) = self.group(frame.partition) else {
            tracing::debug!(
                partition = frame.partition,
                "request for a group not hosted here"
            );
            return;
        };
        let body = match frame.body {
            Body::Append(rpc) => Body::Appended(group.append_entries(rpc).await),
            Body::Vote(rpc) => Body::Voted(group.vote(rpc).await),
            Body::Install(rpc) => Body::Installed(group.install_snapshot(rpc).await),
            _ => return,
        };
        let answer = Frame {
            id: frame.id,
            partition: frame.partition,
            body,
        };
        match encode(&answer) {
            Ok(bytes) => _ = tx.send(bytes),
            Err(e) => tracing::error!(partition = frame.partition, "{e}"),
        }
    }

    /// Sends a request to `target` and waits up to `ttl` for the answer.
    async fn call(
        &self,
        target: NodeId,
        partition: u32,
        body: Body,
        ttl: Duration,
    ) -> Result<Body, NoAnswer> {
        let peer = self.peer(target).ok_or(NoAnswer)?;
        let link = peer.link.lock().expect("no holder panics").clone();
        let link = link.ok_or(NoAnswer)?;
        let id = peer.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        peer.waiting
            .lock()
            .expect("no holder panics")
            .insert(id, tx);
        let frame = Frame {
            id,
            partition,
            body,
        };
        let bytes = encode(&frame).map_err(|e| {
            tracing::error!(partition, "{e}");
            NoAnswer
        });
        if link.send(bytes?).is_err() {
            peer.waiting.lock().expect("no holder panics").remove(&id);
            return Err(NoAnswer);
        }
        match tokio::time::timeout(ttl, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                peer.waiting.lock().expect("no holder panics").remove(&id);
                Err(NoAnswer)
            }
        }
    }
}

/// The network of one partition's group: its RPCs travel over the shared connections.
#[derive(Clone)]
pub struct GroupNetwork {
    pub transport: Arc<Transport>,
    pub partition: u32,
}

pub struct Link {
    network: GroupNetwork,
    target: NodeId,
}

fn unreachable<E: std::error::Error>(target: NodeId) -> RPCError<NodeId, BasicNode, E> {
    let why = std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("node {target} did not answer"),
    );
    RPCError::Unreachable(Unreachable::new(&why))
}

impl RaftNetworkFactory<Partition> for GroupNetwork {
    type Network = Link;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Link {
        Link {
            network: self.clone(),
            target,
        }
    }
}

impl Link {
    /// An error the peer answered, marked as the peer's.
    fn remote<E: std::error::Error>(
        &self,
        error: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }

    async fn call(&self, body: Body, option: &RPCOption) -> Option<Body> {
        let network = &self.network;
        let ttl = option.hard_ttl();
        let answer = network
            .transport
            .call(self.target, network.partition, body, ttl);
        answer.await.ok()
    }
}

type RaftResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<Partition> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Partition>,
        option: RPCOption,
    ) -> RaftResult<AppendEntriesResponse<NodeId>> {
        match self.call(Body::Append(rpc), &option).await {
            Some(Body::Appended(answer)) => answer.map_err(|e| self.remote(e)),
            _ => Err(unreachable(self.target)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Partition>,
        option: RPCOption,
    ) -> RaftResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(Body::Install(rpc), &option).await {
            Some(Body::Installed(answer)) => answer.map_err(|e| self.remote(e)),
            _ => Err(unreachable(self.target)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RaftResult<VoteResponse<NodeId>> {
        match self.call(Body::Vote(rpc), &option).await {
            Some(Body::Voted(answer)) => answer.map_err(|e| self.remote(e)),
            _ => Err(unreachable(self.target)),
        }
    }
}
