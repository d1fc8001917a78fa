//! The write-ahead log of one core: the Raft log entries, votes and commit points of every
//! partition the core owns, in one sequence of segment files. One thread writes it: each
//! time it wakes it takes every record queued meanwhile, writes them together and covers them
//! with one `fdatasync` (group commit), then reports each one durable.
//!
//! A segment starts with `SEGMENT_HEADER` (magic and format version); a record on disk is
//! `[length u32][crc32 u32][bincode]`. Recovery replays the segments in order and stops at
//! the first record that is incomplete or fails its checksum (a write torn by a crash). A
//! record that passes its checksum but does not decode, or a segment of another format, is
//! not a torn write: the node refuses to start rather than drop acknowledged writes. The writer keeps the live state of its partitions (what a replay would
//! rebuild); when the current segment has grown to twice what that state takes, it starts a
//! new segment with the state alone and deletes the old ones, so the files stay about the
//! size of the unsnapshotted log.

use crate::group::Partition;
use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;

type NodeId = u64;

/// When a write counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Replicated in memory only: nothing is written (caches).
    Memory,
    /// Written to the operating system: survives the process, not the machine.
    Os,
    /// On disk (`fdatasync`) before it is acknowledged.
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Durability, String> {
        match text.to_ascii_lowercase().as_str() {
            "memory" => Ok(Durability::Memory),
            "os" => Ok(Durability::Os),
            "fsync" => Ok(Durability::Fsync),
            _ => Err(format!("'{text}' is not one of fsync, os, memory")),
        }
    }
}

/// One change to a partition's log state.
#[derive(Clone, Serialize, Deserialize)]
pub enum Record {
    Entries(u32, Vec<Entry<Partition>>),
    Vote(u32, Vote<NodeId>),
    Committed(u32, Option<LogId<NodeId>>),
    /// Entries from this index on are gone.
    Truncate(u32, u64),
    /// Entries up to and including this one are gone (a snapshot covers them).
    Purge(u32, LogId<NodeId>),
    /// The partition left this node: its log and vote are gone.
    Forget(u32),
}

/// A partition's log state, as a replay rebuilds it.
#[derive(Clone, Default)]
pub struct PartitionLog {
    pub entries: BTreeMap<u64, Entry<Partition>>,
    pub vote: Option<Vote<NodeId>>,
    pub committed: Option<LogId<NodeId>>,
    pub purged: Option<LogId<NodeId>>,
}

impl PartitionLog {
    pub(crate) fn apply(&mut self, record: Record) {
        match record {
            Record::Entries(_, entries) => {
                for entry in entries {
                    self.entries.insert(entry.log_id.index, entry);
                }
            }
            Record::Vote(_, vote) => self.vote = Some(vote),
            Record::Committed(_, committed) => self.committed = committed,
            Record::Truncate(_, index) => {
                self.entries.split_off(&index);
            }
            Record::Purge(_, log_id) => {
                self.purged = Some(log_id);
                self.entries = self.entries.split_off(&(log_id.index + 1));
            }
            Record::Forget(_) => *self = PartitionLog::default(),
        }
    }

    /// Records that rebuild this state.
    fn records(&self, partition: u32) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(vote) = self.vote {
            out.push(Record::Vote(partition, vote));
        }
        if let Some(purged) = self.purged {
            out.push(Record::Purge(partition, purged));
        }
        if !self.entries.is_empty() {
            out.push(Record::Entries(
                partition,
                self.entries.values().cloned().collect(),
            ));
        }
        out.push(Record::Committed(partition, self.committed));
        out
    }
}

fn partition_of(record: &Record) -> u32 {
    match record {
        Record::Entries(p, _)
        | Record::Vote(p, _)
        | Record::Committed(p, _)
        | Record::Truncate(p, _)
        | Record::Purge(p, _)
        | Record::Forget(p) => *p,
    }
}

/// Adds a record to the partitions' states; a forgotten partition has none.
fn replay(state: &mut HashMap<u32, PartitionLog>, record: Record) {
    match record {
        Record::Forget(partition) => _ = state.remove(&partition),
        record => state
            .entry(partition_of(&record))
            .or_default()
            .apply(record),
    }
}

/// Called once the record is durable (or could not be written).
pub type Written = Box<dyn FnOnce(std::io::Result<()>) + Send>;

struct Request {
    record: Record,
    done: Option<Written>,
}

/// A core's log, open for writing.
pub struct Wal {
    requests: Mutex<mpsc::Sender<Request>>,
}

/// Segments are `wal-<core>-<sequence>.log`.
fn segment_path(dir: &Path, core: usize, sequence: u64) -> PathBuf {
    dir.join(format!("wal-{core}-{sequence:010}.log"))
}

fn segments(dir: &Path, core: usize) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let prefix = format!("wal-{core}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(sequence) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((sequence, path));
        }
    }
    found.sort();
    Ok(found)
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let body = bincode::serialize(record).expect("log records serialize");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

/// What every segment starts with; the last byte is the format's version, raised whenever
/// records are encoded differently.
const SEGMENT_HEADER: &[u8; 8] = b"TSRWAL\x00\x02";

/// The records of one segment up to its first torn one.
fn read_segment(path: &Path) -> std::io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let invalid = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("log segment {}: {why}", path.display()),
        )
    };
    // A segment cut before its header was written holds nothing yet (its predecessors were
    // removed only after it was complete).
    if bytes.len() < SEGMENT_HEADER.len() {
        return Ok(Vec::new());
    }
    if bytes[..SEGMENT_HEADER.len()] != SEGMENT_HEADER[..] {
        return Err(invalid(format!(
            "not in this build's log format (version {}): written by another version of \
             Tessera, or not a Tessera log",
            SEGMENT_HEADER[7]
        )));
    }
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER.len();
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let record = bincode::deserialize(body)
            .map_err(|e| invalid(format!("a record at byte {pos} that does not decode: {e}")))?;
        records.push(record);
        pos += 8 + len;
    }
    if pos < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            dropped = bytes.len() - pos,
            "the log ends in a torn or damaged record; replay stops before it"
        );
    }
    Ok(records)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The writer's side: the open segment and the live state it compacts to.
struct Writer {
    dir: PathBuf,
    core: usize,
    durability: Durability,
    file: File,
    sequence: u64,
    written: u64,
    /// Bytes the live state took when last written out whole.
    compacted: u64,
    state: HashMap<u32, PartitionLog>,
    /// Set by the first failed write or sync: the file may end in a torn record, so nothing
    /// more is written (a replay would stop at the tear and lose it) and every later record
    /// fails.
    failed: Option<String>,
}

impl Writer {
    /// Starts segment `sequence` holding the live state, then removes the older ones.
    fn start_segment(&mut self, sequence: u64) -> std::io::Result<()> {
        let path = segment_path(&self.dir, self.core, sequence);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let mut out = SEGMENT_HEADER.to_vec();
        let mut partitions: Vec<&u32> = self.state.keys().collect();
        partitions.sort();
        for &p in partitions {
            for record in self.state[&p].records(p) {
                encode(&record, &mut out);
            }
        }
        file.write_all(&out)?;
        if self.durability == Durability::Fsync {
            file.sync_data()?;
            sync_dir(&self.dir)?;
        }
        for (old, path) in segments(&self.dir, self.core)? {
            if old < sequence {
                std::fs::remove_file(path)?;
            }
        }
        self.file = file;
        self.sequence = sequence;
        self.written = out.len() as u64;
        self.compacted = out.len() as u64;
        Ok(())
    }

    /// Writes a group of records with one sync; the state follows only what was written.
    fn write(&mut self, group: &[Request]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for request in group {
            encode(&request.record, &mut out);
        }
        self.file.write_all(&out)?;
        if self.durability == Durability::Fsync {
            self.file.sync_data()?;
        }
        self.written += out.len() as u64;
        Ok(())
    }

    fn run(mut self, requests: mpsc::Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut group = vec![first];
            while let Ok(more) = requests.try_recv() {
                group.push(more);
            }
            let outcome = match &self.failed {
                Some(why) => Err(std::io::Error::other(why.clone())),
                None => self.write(&group),
            };
            if let (Err(e), None) = (&outcome, &self.failed) {
                tracing::error!(core = self.core, "cannot write the log, so it stops: {e}");
                self.failed = Some(format!("the log stopped after a failed write: {e}"));
            }
            for request in group {
                if outcome.is_ok() {
                    replay(&mut self.state, request.record);
                }
                if let Some(done) = request.done {
                    done(match &outcome {
                        Ok(()) => Ok(()),
                        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
            if self.failed.is_none() && self.written > (2 * self.compacted).max(64 << 20) {
                if let Err(e) = self.start_segment(self.sequence + 1) {
                    tracing::error!(core = self.core, "cannot compact the log: {e}");
                }
            }
        }
    }
}

impl Wal {
    /// Replays core `core`'s log in `dir`, then opens it for writing (starting a fresh
    /// segment with the recovered state). Returns the log and each partition's state.
    pub fn open(
        dir: &Path,
        core: usize,
        durability: Durability,
    ) -> std::io::Result<(Wal, HashMap<u32, PartitionLog>)> {
        std::fs::create_dir_all(dir)?;
        let mut state: HashMap<u32, PartitionLog> = HashMap::new();
        let existing = segments(dir, core)?;
        for (_, path) in &existing {
            for record in read_segment(path)? {
                replay(&mut state, record);
            }
        }
        let next = existing.last().map_or(0, |(sequence, _)| sequence + 1);
        let placeholder = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, core, next))?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            core,
            durability,
            file: placeholder,
            sequence: next,
            written: 0,
            compacted: 0,
            state: state.clone(),
            failed: None,
        };
        writer.start_segment(next)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("tessera-wal-{core}"))
            .spawn(move || writer.run(rx))?;
        Ok((
            Wal {
                requests: Mutex::new(tx),
            },
            state,
        ))
    }

    /// Queues a record; `done` runs once it is durable. Records are written in the order
    /// they are queued.
    pub fn write(&self, record: Record, done: Option<Written>) {
        let sent = self
            .requests
            .lock()
            .expect("no holder panics")
            .send(Request { record, done });
        if let Err(mpsc::SendError(request)) = sent {
            if let Some(done) = request.done {
                done(Err(std::io::Error::other("the log writer stopped")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{Batch, Header};
    use openraft::{CommittedLeaderId, EntryPayload};
    use std::sync::Arc;

    fn entry(term: u64, index: u64) -> Entry<Partition> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Arc::new(Batch::of(
                Header::new(0, index),
                &[b"SET", b"k", format!("{index}").as_bytes()],
            ))),
        }
    }

    fn written(wal: &Wal, record: Record) {
        let (tx, rx) = mpsc::channel();
        wal.write(record, Some(Box::new(move |r| tx.send(r).unwrap())));
        rx.recv().unwrap().unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_reopened_log_holds_what_was_written_and_a_torn_tail_is_dropped() {
        let dir = scratch("reopen");
        {
            let (wal, state) = Wal::open(&dir, 0, Durability::Fsync).unwrap();
            assert!(state.is_empty());
            written(&wal, Record::Vote(3, Vote::new_committed(2, 1)));
            written(
                &wal,
                Record::Entries(3, (1..=10).map(|i| entry(2, i)).collect()),
            );
            written(&wal, Record::Truncate(3, 8));
            written(&wal, Record::Entries(3, vec![entry(3, 8)]));
            written(&wal, Record::Purge(3, entry(2, 2).log_id));
            written(&wal, Record::Entries(5, vec![entry(1, 1)]));
            written(&wal, Record::Committed(3, Some(entry(3, 8).log_id)));
            written(&wal, Record::Entries(6, vec![entry(1, 1)]));
            written(&wal, Record::Forget(6));
        }
        let (_, path) = segments(&dir, 0).unwrap().pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        let (wal, state) = Wal::open(&dir, 0, Durability::Fsync).unwrap();
        let p = &state[&3];
        assert_eq!(p.vote, Some(Vote::new_committed(2, 1)));
        assert_eq!(
            p.entries.keys().copied().collect::<Vec<_>>(),
            [3, 4, 5, 6, 7, 8]
        );
        assert_eq!(p.entries[&8].log_id, entry(3, 8).log_id);
        assert_eq!(p.purged, Some(entry(2, 2).log_id));
        assert_eq!(p.committed, Some(entry(3, 8).log_id));
        assert_eq!(state[&5].entries.len(), 1);
        assert!(
            !state.contains_key(&6),
            "a forgotten partition has no state"
        );
        assert_eq!(segments(&dir, 0).unwrap().len(), 1, "reopening compacts");
        written(&wal, Record::Entries(3, vec![entry(3, 9)]));
        drop(wal);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (_, state) = Wal::open(&dir, 0, Durability::Os).unwrap();
        assert_eq!(state[&3].entries.len(), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_of_another_format_or_with_a_record_that_does_not_decode_is_refused() {
        let dir = scratch("refused");
        {
            let (wal, _) = Wal::open(&dir, 0, Durability::Fsync).unwrap();
            written(&wal, Record::Entries(3, vec![entry(1, 1)]));
        }
        let (_, path) = segments(&dir, 0).unwrap().pop().unwrap();
        let good = std::fs::read(&path).unwrap();

        let mut older = good.clone();
        older[7] -= 1;
        std::fs::write(&path, &older).unwrap();
        let refused = Wal::open(&dir, 0, Durability::Fsync).err().unwrap();
        assert!(refused.to_string().contains("log format"), "{refused}");

        let body = [0xff; 5];
        let mut undecodable = good.clone();
        undecodable.extend_from_slice(&(body.len() as u32).to_le_bytes());
        undecodable.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        undecodable.extend_from_slice(&body);
        std::fs::write(&path, &undecodable).unwrap();
        let refused = Wal::open(&dir, 0, Durability::Fsync).err().unwrap();
        assert!(refused.to_string().contains("does not decode"), "{refused}");

        std::fs::write(&path, &good).unwrap();
        let (_, state) = Wal::open(&dir, 0, Durability::Fsync).unwrap();
        assert_eq!(state[&3].entries.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
