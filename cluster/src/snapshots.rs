//! Partition snapshots on disk: one file per partition, replaced atomically (written to a
//! temporary name, synced, renamed). A file is `[magic][meta length u32][crc32 u32][meta]
//! [image]`: the Raft metadata (last log id, membership) in bincode and the partition's keys as
//! the rkyv image `replica::snapshot` makes.

use crate::wal::Durability;
use openraft::{BasicNode, SnapshotMeta};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

type Meta = SnapshotMeta<u64, BasicNode>;

const MAGIC: &[u8; 8] = b"TSNAP001";

pub struct SnapshotFiles {
    dir: PathBuf,
    durability: Durability,
    /// Makes each save's temporary file its own.
    saves: AtomicU64,
}

impl SnapshotFiles {
    pub fn new(dir: PathBuf, durability: Durability) -> SnapshotFiles {
        SnapshotFiles {
            dir,
            durability,
            saves: AtomicU64::new(0),
        }
    }

    fn path(&self, partition: u32) -> PathBuf {
        self.dir.join(format!("snapshot-{partition}.bin"))
    }

    /// Replaces the partition's snapshot; returns once it is as durable as configured.
    pub async fn save(&self, partition: u32, meta: &Meta, image: &[u8]) -> std::io::Result<()> {
        let meta = bincode::serialize(meta).map_err(std::io::Error::other)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&meta);
        crc.update(image);
        let mut bytes = Vec::with_capacity(16 + meta.len() + image.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc.finalize().to_le_bytes());
        bytes.extend_from_slice(&meta);
        bytes.extend_from_slice(image);
        let (path, dir) = (self.path(partition), self.dir.clone());
        let sync = self.durability == Durability::Fsync;
        let save = self.saves.fetch_add(1, Ordering::Relaxed);
        // Off the runtime's threads: a large file's sync would hold up heartbeats.
        tokio::task::spawn_blocking(move || {
            let temporary = path.with_extension(format!("tmp{save}"));
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            if sync {
                file.sync_data()?;
            }
            std::fs::rename(&temporary, &path)?;
            if sync {
                std::fs::File::open(&dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    pub fn has(&self, partition: u32) -> bool {
        self.path(partition).exists()
    }

    /// Deletes the partition's snapshot, if it has one.
    pub fn remove(&self, partition: u32) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(partition)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The partition's snapshot, if it has one.
    pub fn load(&self, partition: u32) -> std::io::Result<Option<(Meta, Vec<u8>)>> {
        let bytes = match std::fs::read(self.path(partition)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let damaged = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("snapshot of partition {partition} is damaged"),
            )
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(damaged());
        }
        let meta_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let body = &bytes[16..];
        if body.len() < meta_len || crc32fast::hash(body) != crc {
            return Err(damaged());
        }
        let meta: Meta = bincode::deserialize(&body[..meta_len]).map_err(|_| damaged())?;
        Ok(Some((meta, body[meta_len..].to_vec())))
    }
}
