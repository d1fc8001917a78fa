//! Server-side forwarding: a node relays requests for partitions led elsewhere to the leader
//! over ordinary client connections and hands the replies back, so an application that knows
//! nothing of clusters can use any node. One connection per (leader, protocol) carries every
//! forwarded request, pipelined: requests of one client reach the leader in the order they
//! were sent, and replies come back in that order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_protocol::frame::{reply_length, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long reaching a leader may take before its requests fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the oldest request on a connection may wait for its reply before the connection
/// is given up (a leader paused or wedged keeps its connections open): twice the time a
/// leader takes to answer a write it cannot commit.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a forwarded request has no reply.
#[derive(Clone, Debug)]
pub struct Unrelayed {
    pub why: String,
    /// Whether the request may have reached the leader; false when it was never written,
    /// so the leader cannot have run it.
    pub sent: bool,
}

impl Unrelayed {
    fn unsent(why: &str) -> Unrelayed {
        Unrelayed {
            why: why.to_string(),
            sent: false,
        }
    }

    fn sent(why: &str) -> Unrelayed {
        Unrelayed {
            why: why.to_string(),
            sent: true,
        }
    }
}

/// What becomes of a forwarded request: the leader's reply bytes, or why there is none.
pub type Relayed = Box<dyn FnOnce(Result<Vec<u8>, Unrelayed>) + Send>;

/// One request to relay: RESP bytes and where its reply goes.
pub struct Job {
    pub request: Vec<u8>,
    pub done: Relayed,
}

pub struct Forwarder {
    links: Mutex<HashMap<(String, bool), mpsc::UnboundedSender<Job>>>,
    reply_timeout: Duration,
    /// The password new connections give the leader (the cluster's requirepass; empty: none).
    password: Mutex<String>,
}

impl Default for Forwarder {
    fn default() -> Forwarder {
        Forwarder::with_reply_timeout(REPLY_TIMEOUT)
    }
}

impl Forwarder {
    fn with_reply_timeout(reply_timeout: Duration) -> Forwarder {
        Forwarder {
            links: Mutex::default(),
            reply_timeout,
            password: Mutex::default(),
        }
    }

    /// The password connections opened from now on authenticate with.
    pub fn set_password(&self, password: &str) {
        *self.password.lock().expect("no holder panics") = password.to_string();
    }

    /// Relays `job` to the node at `address`, speaking RESP3 when `resp3`.
    pub fn send(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        address: &str,
        resp3: bool,
        job: Job,
    ) {
        let key = (address.to_string(), resp3);
        let mut links = self.links.lock().expect("no holder panics");
        let job = match links.get(&key) {
            Some(link) => match link.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        links.insert(key.clone(), tx);
        let me = self.clone();
        let password = self.password.lock().expect("no holder panics").clone();
        runtime.spawn(async move {
            let why = relay(&key.0, key.1, &password, me.reply_timeout, rx).await;
            me.forget(&key);
            tracing::warn!(leader = %key.0, "forwarding connection closed: {why}");
        });
    }

    fn forget(&self, key: &(String, bool)) {
        let mut links = self.links.lock().expect("no holder panics");
        if links.get(key).is_some_and(|l| l.is_closed()) {
            links.remove(key);
        }
    }
}

/// Carries jobs to `address` until the connection fails; every job not answered then (and
/// every one queued after) fails with the reason.
async fn relay(
    address: &str,
    resp3: bool,
    password: &str,
    reply_timeout: Duration,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) -> String {
    let why = match connect(address).await {
        Ok(mut stream) => match within(reply_timeout, set_up(&mut stream, resp3, password)).await {
            Ok(()) => pipeline(stream, reply_timeout, &mut jobs).await,
            Err(e) => e,
        },
        Err(e) => e,
    };
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        (job.done)(Err(Unrelayed::unsent(&why)));
    }
    why
}

async fn connect(address: &str) -> Result<TcpStream, String> {
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address));
    let stream = connecting
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Runs `step` on the connection, failing it when the leader takes longer than `limit` (a
/// paused leader accepts connections and bytes, and answers nothing).
async fn within<T>(
    limit: Duration,
    step: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
        Err(format!(
            "the leader did not answer within {} s",
            limit.as_secs_f64()
        ))
    })
}

/// Sets a new connection up: RESP3 when `resp3`, authenticated when there is a password.
async fn set_up(stream: &mut TcpStream, resp3: bool, password: &str) -> Result<(), String> {
    let setup: Vec<&[u8]> = match (resp3, password.is_empty()) {
        (false, true) => return Ok(()),
        (true, true) => vec![b"HELLO", b"3"],
        (true, false) => vec![b"HELLO", b"3", b"AUTH", b"default", password.as_bytes()],
        (false, false) => vec![b"AUTH", password.as_bytes()],
    };
    stream
        .write_all(&request(&setup))
        .await
        .map_err(|e| e.to_string())?;
    let reply = read_reply(stream, &mut Vec::new()).await?;
    if reply.starts_with(b"-") {
        let text = String::from_utf8_lossy(&reply);
        return Err(format!(
            "the leader refused the connection: {}",
            text.trim_end()
        ));
    }
    Ok(())
}

/// Reads until `buf` starts with a whole reply; removes and returns it.
async fn read_reply(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    loop {
        match reply_length(buf) {
            Ok(Some(n)) => return Ok(buf.drain(..n).collect()),
            Ok(None) => {}
            Err(_) => return Err("the leader sent a malformed reply".into()),
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the leader closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn pipeline(
    stream: TcpStream,
    reply_timeout: Duration,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
) -> String {
    let (mut reader, writer) = stream.into_split();
    // Written requests hand their reply slots to the reader, in order.
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Relayed>();
    let mut receiving = tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(done) = sent_rx.recv().await {
            match within(reply_timeout, read_reply(&mut reader, &mut buf)).await {
                Ok(reply) => done(Ok(reply)),
                Err(why) => {
                    done(Err(Unrelayed::sent(&why)));
                    sent_rx.close();
                    while let Ok(done) = sent_rx.try_recv() {
                        done(Err(Unrelayed::sent(&why)));
                    }
                    return why;
                }
            }
        }
        "stopped".to_string()
    });
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let why = loop {
        // The reader stops when the connection fails or a reply is overdue: requests still
        // queued then were never sent, and `relay` fails them so.
        let job = tokio::select! {
            job = jobs.recv() => job,
            stopped = &mut receiving => {
                return stopped.unwrap_or_else(|_| "the reply reader stopped".to_string());
            }
        };
        let Some(job) = job else {
            break "stopped".to_string();
        };
        let mut batch = vec![job];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        let mut failed = None;
        for job in batch {
            if failed.is_some() {
                (job.done)(Err(Unrelayed::unsent(
                    "the connection to the leader failed",
                )));
                continue;
            }
            // A failed write may still have flushed part or all of the request.
            let written = async {
                writer
                    .write_all(&job.request)
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = within(reply_timeout, written).await {
                (job.done)(Err(Unrelayed::sent(&e)));
                failed = Some(e);
                continue;
            }
            if let Err(mpsc::error::SendError(done)) = sent_tx.send(job.done) {
                done(Err(Unrelayed::sent("the connection to the leader failed")));
                failed = Some("the reply reader stopped".into());
            }
        }
        if let Some(why) = failed {
            break why;
        }
        let flushed = async { writer.flush().await.map_err(|e| e.to_string()) };
        if let Err(e) = within(reply_timeout, flushed).await {
            break e;
        }
        if receiving.is_finished() {
            break "the reply reader stopped".to_string();
        }
    };
    drop(sent_tx);
    match receiving.await {
        Ok(reader_why) if why == "stopped" => reader_why,
        _ => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    const REQUEST: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";

    /// Relays one SET to `address` and waits for what becomes of it.
    async fn relay_one(address: &str, password: &str) -> Result<Vec<u8>, Unrelayed> {
        let forwarder = Arc::new(Forwarder::with_reply_timeout(Duration::from_millis(300)));
        forwarder.set_password(password);
        let (tx, rx) = oneshot::channel();
        let job = Job {
            request: REQUEST.to_vec(),
            done: Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        };
        forwarder.send(&tokio::runtime::Handle::current(), address, false, job);
        rx.await.expect("every job is answered")
    }

    /// A leader that reads a request's worth of bytes, then answers, hangs up without
    /// answering, or keeps the connection open without answering.
    #[derive(Clone, Copy)]
    enum Leader {
        Answers,
        HangsUp,
        Stalls,
    }

    async fn leader(behaviour: Leader) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; REQUEST.len()];
            if stream.read_exact(&mut request).await.is_err() {
                return;
            }
            match behaviour {
                Leader::Answers => stream.write_all(b"+OK\r\n").await.unwrap(),
                Leader::HangsUp => return,
                Leader::Stalls => {}
            }
            let _ = stream.read(&mut request).await;
        });
        address
    }

    #[tokio::test]
    async fn a_request_is_known_unsent_only_when_it_never_left() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nobody = closed.local_addr().unwrap().to_string();
        drop(closed);
        let refused = relay_one(&nobody, "").await.unwrap_err();
        assert!(!refused.sent, "{refused:?}");

        // A leader that reads the request and hangs up before answering may have run it.
        let hung_up = relay_one(&leader(Leader::HangsUp).await, "")
            .await
            .unwrap_err();
        assert!(hung_up.sent, "{hung_up:?}");

        // A leader that never answers (paused, wedged) is given up after the reply timeout.
        let stalled = relay_one(&leader(Leader::Stalls).await, "")
            .await
            .unwrap_err();
        assert!(
            stalled.sent && stalled.why.contains("did not answer"),
            "{stalled:?}"
        );

        let address = leader(Leader::Answers).await;
        assert_eq!(relay_one(&address, "").await.unwrap(), b"+OK\r\n");

        // One that stalls on the password: the connection is never set up, so the request
        // was never sent.
        let stalled = relay_one(&leader(Leader::Stalls).await, "pw")
            .await
            .unwrap_err();
        assert!(
            !stalled.sent && stalled.why.contains("did not answer"),
            "{stalled:?}"
        );
    }
}
