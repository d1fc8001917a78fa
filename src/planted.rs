//! Bugs planted on purpose, to prove the Jepsen tests catch a server that breaks its
//! guarantees. They exist only in builds with the `planted-bugs` feature, which release
//! builds never enable, and even there only the one named by `TESSERA_PLANTED_BUG` is on.

/// A planted bug, by the name `TESSERA_PLANTED_BUG` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Writes are answered +OK when proposed, before their Raft commit.
    AckBeforeCommit,
    /// A follower serves reads from its own copy, without a read index or lease.
    StaleFollowerRead,
}

#[cfg(feature = "planted-bugs")]
fn chosen() -> Option<Bug> {
    static CHOSEN: std::sync::OnceLock<Option<Bug>> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let bug = match std::env::var("TESSERA_PLANTED_BUG").as_deref() {
            Ok("ack-before-commit") => Some(Bug::AckBeforeCommit),
            Ok("stale-follower-read") => Some(Bug::StaleFollowerRead),
            _ => None,
        };
        if let Some(bug) = bug {
            tracing::warn!("planted bug {bug:?} is ON: this server breaks its guarantees");
        }
        bug
    })
}

/// Whether `bug` is switched on in this process.
#[cfg(feature = "planted-bugs")]
pub fn active(bug: Bug) -> bool {
    chosen() == Some(bug)
}

/// Without the feature no bug is ever on, and the checks compile away.
#[cfg(not(feature = "planted-bugs"))]
pub const fn active(_bug: Bug) -> bool {
    false
}
