//! Deterministic effects: what a write does to one partition, with every relative or random
//! choice already resolved. The node that accepts a write turns it into an `Effect` (absolute
//! deadlines, chosen members); only the effect is applied, so a replica, a log replay and
//! embedded mode applying the same effects at the same timestamp reach the same state.

use tessera_protocol::{Args, Cmd};

/// When a SET-like write leaves the key's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// The new value never expires (plain SET).
    Clear,
    /// The old deadline stays (KEEPTTL).
    Keep,
    /// Expires at this Unix millisecond.
    At(u64),
}

/// The condition a SET-like write needs to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCond<'a> {
    Always,
    /// NX: only when the key does not exist.
    Absent,
    /// XX: only when it does.
    Present,
    /// IFEQ: only when the current string equals this one.
    Equal(&'a [u8]),
}

/// Which reply a SET-like write gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetReply {
    /// `+OK`, or nil when the condition failed.
    Ok,
    /// `:1` / `:0` (SETNX).
    Flag,
    /// The old value or nil (SET ... GET, GETSET).
    Old,
}

/// The condition EXPIRE and friends take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireCond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
    /// XX and LT together: needs a deadline, and an earlier one.
    XxLt,
}

/// What GETEX does to the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryChange {
    Keep,
    Persist,
    /// The new deadline, in Unix ms; may lie in the past, which deletes the key.
    At(i64),
    /// The expiry argument was invalid: the error a present key gets.
    Rejected(&'static str),
}

/// One write, fully resolved. Borrowed arguments point into the request (or, on replay, into
/// the log entry).
#[derive(Clone, Copy, Debug)]
pub enum Effect<'a> {
    Set {
        key: &'a [u8],
        value: &'a [u8],
        expiry: SetExpiry,
        cond: SetCond<'a>,
        reply: SetReply,
    },
    GetDel {
        key: &'a [u8],
    },
    GetEx {
        key: &'a [u8],
        change: ExpiryChange,
    },
    /// MSET: `pairs` alternates keys and values.
    MSet {
        pairs: Args<'a>,
    },
    MSetNx {
        pairs: Args<'a>,
    },
    Append {
        key: &'a [u8],
        value: &'a [u8],
    },
    SetRange {
        key: &'a [u8],
        offset: usize,
        value: &'a [u8],
    },
    IncrBy {
        key: &'a [u8],
        delta: i64,
    },
    /// A write to a hash, list, set or bitmap: the request itself, applied by its family,
    /// which is deterministic given the state, the timestamp and `seed` (SPOP's choices).
    Collection {
        cmd: Cmd,
        args: Args<'a>,
        seed: u64,
    },
    /// Stores `key` with a value `dump::value_bytes` wrote, replacing any value it had: the
    /// receiving half of a cross-core RENAME or COPY.
    Restore {
        key: &'a [u8],
        value: &'a [u8],
        /// Unix ms; 0 for no deadline.
        expire_at: u64,
    },
    IncrByFloat {
        key: &'a [u8],
        /// The increment as the client wrote it: sums are exact decimals where they fit.
        increment: &'a [u8],
    },
    Del {
        keys: Args<'a>,
    },
    /// Sets the deadline to `at` (Unix ms); one in the past deletes the key.
    Expire {
        key: &'a [u8],
        at: i64,
        cond: ExpireCond,
    },
    Persist {
        key: &'a [u8],
    },
    Rename {
        src: &'a [u8],
        dst: &'a [u8],
        only_new: bool,
    },
    Copy {
        src: &'a [u8],
        dst: &'a [u8],
        dst_db: usize,
        replace: bool,
    },
    FlushDb,
    FlushAll,
}
