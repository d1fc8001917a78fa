//! What the checkers share: each key checked on its own, and a whole history's report
//! built from the reports of its keys.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::Operation;
use crate::linearizable::{MalformedOperation, Validity};

/// The check of a whole history, as it will go into results.json.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report<K> {
    /// Invalid if any key is, else unknown if any key is, else valid.
    pub valid: Validity,
    /// Sorted by key.
    pub keys: Vec<K>,
}

/// Groups the operations by key, folding each into its key's `G` with `record`, then
/// checks each key with `check_key`, whose report's verdict `validity` reads. Grouping
/// validates every operation, so a malformed history fails before any check.
pub fn check_by_key<'a, G: Default, K>(
    operations: &'a [Operation],
    mut record: impl FnMut(&mut G, &'a Operation) -> Result<(), MalformedOperation>,
    mut check_key: impl FnMut(Option<&'a str>, G) -> K,
    validity: impl Fn(&K) -> Validity,
) -> Result<Report<K>, MalformedOperation> {
    let mut by_key: BTreeMap<Option<&str>, G> = BTreeMap::new();
    for operation in operations {
        record(
            by_key.entry(operation.key.as_deref()).or_default(),
            operation,
        )?;
    }
    let keys: Vec<K> = by_key
        .into_iter()
        .map(|(key, group)| check_key(key, group))
        .collect();
    let valid = worst(keys.iter().map(validity));
    Ok(Report { valid, keys })
}

/// Invalid if any verdict is, else unknown if any is, else valid (also for none).
pub fn worst(verdicts: impl IntoIterator<Item = Validity>) -> Validity {
    verdicts
        .into_iter()
        .fold(Validity::Valid, |worst, verdict| match (worst, verdict) {
            (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            _ => Validity::Valid,
        })
}
