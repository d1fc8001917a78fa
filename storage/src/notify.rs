//! Keyspace notifications: the classes `notify-keyspace-events` turns on, and the events
//! writes produce. A keyspace collects the events of the enabled classes; the core that owns
//! it publishes them to `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// What `A` stands for (key-miss and new-key events are left out, as in Redis).
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Each class's letter, in the order Redis writes them back.
const LETTERS: &[(u32, char)] = &[
    (GENERIC, 'g'),
    (STRING, '$'),
    (LIST, 'l'),
    (SET, 's'),
    (HASH, 'h'),
    (ZSET, 'z'),
    (EXPIRED, 'x'),
    (EVICTED, 'e'),
    (STREAM, 't'),
    (MODULE, 'd'),
    (NEW, 'n'),
    (KEYSPACE, 'K'),
    (KEYEVENT, 'E'),
    (KEY_MISS, 'm'),
];

/// Reads a `notify-keyspace-events` value.
pub fn parse(text: &str) -> Result<u32, &'static str> {
    text.chars().try_fold(0, |flags, c| match c {
        'A' => Ok(flags | ALL),
        c => LETTERS
            .iter()
            .find(|(_, l)| *l == c)
            .map(|(class, _)| flags | class)
            .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
    })
}

/// Writes flags back as Redis 7 does: `A` for all the classes it covers (and then, as in
/// Redis, no `n`), or the classes one by one; then `K`, `E` and `m`.
pub fn format(flags: u32) -> String {
    let mut text = String::new();
    let mut rest = flags;
    if flags & ALL == ALL {
        text.push('A');
        rest &= !(ALL | NEW);
    }
    LETTERS
        .iter()
        .filter(|(class, _)| rest & class != 0)
        .for_each(|(_, letter)| text.push(*letter));
    text
}

/// Whether events of `class` are published under `flags`.
pub fn enabled(flags: u32, class: u32) -> bool {
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

/// One notification: `event` happened to `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub db: usize,
    pub event: &'static str,
    pub key: Box<[u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_write_back_as_redis() {
        assert_eq!(parse("KEA").map(format), Ok("AKE".to_string()));
        assert_eq!(parse("Elg").map(format), Ok("glE".to_string()));
        assert_eq!(parse("KEn").map(format), Ok("nKE".to_string()));
        assert_eq!(parse("KEAn").map(format), Ok("AKE".to_string()));
        assert_eq!(parse("").map(format), Ok(String::new()));
        assert!(parse("KEQ").is_err());
        assert!(enabled(parse("Kl").unwrap(), LIST));
        assert!(!enabled(parse("l").unwrap(), LIST));
        assert!(!enabled(parse("KA").unwrap(), NEW));
    }
}
