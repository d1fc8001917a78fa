//! A client connection: its socket, its own input and output buffers, the parser state, the
//! per-connection settings (database, protocol, name) and the replies it is still waiting for
//! from other cores.

use crate::net::socket::{self, Io};
use std::ops::Range;
use tessera_protocol::RequestParser;

/// Initial and minimum spare room for a read.
const READ_CHUNK: usize = 16 * 1024;
/// Input read per turn before the connection's requests are run; bounds one client's share.
const READ_PER_TURN: usize = 1024 * 1024;
/// Output buffers larger than this are released once written, not kept for reuse.
const KEEP_BUFFER: usize = 64 * 1024;

/// Where one reply of a pipeline stands while some replies come from other cores.
#[derive(Debug)]
pub enum Part {
    /// Written locally into the cycle's staging buffer.
    Staged(Range<usize>),
    /// Received from another core: buffer `filled[.0]`, at this range.
    Filled(usize, Range<usize>),
    /// Not here yet.
    Waiting,
}

/// The replies of one run through a connection's input that involved other cores. They are
/// released to the client in request order once all have arrived.
#[derive(Debug)]
pub struct Cycle {
    pub id: u64,
    pub parts: Vec<Part>,
    pub staged: Vec<u8>,
    pub filled: Vec<Vec<u8>>,
    pub waiting: usize,
    /// Whether a write of this cycle was proposed to a Raft group: later reads of the
    /// connection wait for it.
    pub proposed: bool,
    /// Whether a request of this cycle waits for its partition to elect a leader before it
    /// is relayed: every later keyed request of the connection waits for it (none may
    /// overtake it).
    pub held: bool,
}

impl Cycle {
    pub fn new(id: u64) -> Cycle {
        Cycle {
            id,
            parts: Vec::new(),
            staged: Vec::new(),
            filled: Vec::new(),
            waiting: 0,
            proposed: false,
            held: false,
        }
    }

    /// Adds a reply that will arrive later; returns its index.
    pub fn expect(&mut self) -> usize {
        self.parts.push(Part::Waiting);
        self.waiting += 1;
        self.parts.len() - 1
    }

    /// Stores replies that arrived in one buffer for the given parts.
    pub fn fill(&mut self, data: Vec<u8>, parts: impl IntoIterator<Item = (usize, Range<usize>)>) {
        let buf = self.filled.len();
        self.filled.push(data);
        for (part, range) in parts {
            if let Some(slot @ Part::Waiting) = self.parts.get_mut(part) {
                *slot = Part::Filled(buf, range);
                self.waiting -= 1;
            }
        }
    }

    /// Appends every reply, in order, to `out`.
    pub fn drain_into(self, out: &mut Vec<u8>) {
        for part in self.parts {
            match part {
                Part::Staged(r) => out.extend_from_slice(&self.staged[r]),
                Part::Filled(buf, r) => out.extend_from_slice(&self.filled[buf][r]),
                Part::Waiting => {}
            }
        }
    }
}

pub struct Conn {
    pub fd: i32,
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created_ms: u64,
    pub last_active_ms: u64,
    pub rbuf: Vec<u8>,
    pub rpos: usize,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub parser: RequestParser,
    pub db: usize,
    pub resp3: bool,
    pub name: Option<Vec<u8>>,
    /// Authenticated as the default user: by AUTH or HELLO, or by connecting while it
    /// had no password (as in Redis, setting one later does not lock such connections out).
    pub authenticated: bool,
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
    pub cycle: Option<Cycle>,
    /// The socket may have unread input (edge-triggered readiness).
    pub readable: bool,
    /// The socket may accept more output.
    pub writable: bool,
    /// The poller is asked to report when output can continue (after a blocked write).
    pub watching_output: bool,
    pub close_after_reply: bool,
    /// The peer is gone or the connection must be dropped now.
    pub dead: bool,
    pub last_cmd: std::borrow::Cow<'static, str>,
    /// When the output buffer first went over the soft limit.
    pub over_soft_since: Option<u64>,
    /// Commands queued since MULTI.
    pub tx: Option<crate::transaction::Transaction>,
    /// The cores holding this connection's WATCHes, one bit each.
    pub watch_cores: u128,
    /// In a cluster: the slots this connection's WATCHes named, with their write counts.
    pub watched_slots: Vec<(u16, u64)>,
    pub subscriptions: crate::pubsub::Subscriptions,
    /// The database a SELECT inside the running EXEC chose, taken when EXEC's reply arrives.
    pub db_after_exec: Option<usize>,
}

impl Conn {
    pub fn new(
        fd: i32,
        id: u64,
        addr: String,
        now: u64,
        max_bulk_len: usize,
        authenticated: bool,
    ) -> Conn {
        Conn {
            fd,
            id,
            addr,
            laddr: socket::local_name(fd),
            created_ms: now,
            last_active_ms: now,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            parser: RequestParser::new(max_bulk_len),
            db: 0,
            resp3: false,
            name: None,
            authenticated,
            lib_name: None,
            lib_ver: None,
            cycle: None,
            readable: true,
            writable: true,
            watching_output: false,
            close_after_reply: false,
            dead: false,
            last_cmd: "NULL".into(),
            over_soft_since: None,
            tx: None,
            watch_cores: 0,
            watched_slots: Vec::new(),
            subscriptions: Default::default(),
            db_after_exec: None,
        }
    }

    /// Unparsed input.
    pub fn pending_input(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    /// Unsent output.
    pub fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos + self.cycle.as_ref().map_or(0, |c| c.staged.len())
    }

    /// Reads what the socket has, up to one turn's worth. Returns bytes read; marks the
    /// connection dead on EOF or error.
    pub fn fill(&mut self) -> usize {
        if self.rpos > 0 && self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > self.rbuf.len() / 2 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let mut total = 0;
        while self.readable && total < READ_PER_TURN {
            let want = READ_CHUNK.max(self.parser.missing(self.pending_input()).min(READ_PER_TURN));
            self.rbuf.reserve(want);
            let len = self.rbuf.len();
            let spare = self.rbuf.capacity() - len;
            // SAFETY: the spare capacity is written by read() before it becomes part of len.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(self.rbuf.as_mut_ptr().add(len), spare) };
            match socket::read(self.fd, dst) {
                Io::Done(n) => {
                    // SAFETY: read() initialised n bytes of the spare capacity.
                    unsafe { self.rbuf.set_len(len + n) };
                    total += n;
                    if n < spare {
                        self.readable = false;
                    }
                }
                Io::WouldBlock => self.readable = false,
                Io::Closed => {
                    self.readable = false;
                    self.dead = true;
                }
            }
        }
        total
    }

    /// Writes pending output until done or the socket is full. Returns bytes written.
    pub fn flush(&mut self) -> usize {
        let mut total = 0;
        while self.wpos < self.wbuf.len() && self.writable {
            match socket::write(self.fd, &self.wbuf[self.wpos..]) {
                Io::Done(n) => {
                    self.wpos += n;
                    total += n;
                }
                Io::WouldBlock => self.writable = false,
                Io::Closed => {
                    self.dead = true;
                    break;
                }
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wpos = 0;
            if self.wbuf.capacity() > KEEP_BUFFER {
                self.wbuf = Vec::new();
            } else {
                self.wbuf.clear();
            }
        }
        total
    }
}
