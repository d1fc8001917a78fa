//! The command table: the one place that says what each command is called, how many
//! arguments it takes, what kind of command it is and where its keys are. Dispatch, routing
//! across cores and the `COMMAND` family all read it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// Command flags, named as `COMMAND INFO` names them.
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const FAST: u32 = 1 << 7;
    pub const NO_AUTH: u32 = 1 << 8;
    pub const MOVABLEKEYS: u32 = 1 << 9;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MOVABLEKEYS, "movablekeys"),
    ];
}

/// What the table knows about one command.
#[derive(Debug)]
pub struct CommandSpec {
    pub cmd: Cmd,
    pub name: &'static str,
    /// Redis arity: `n` means exactly `n` arguments including the name, `-n` at least `n`.
    pub arity: i32,
    pub flags: u32,
    /// Position of the first key (0: no keys), of the last (-1: the last argument), and the step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
}

impl CommandSpec {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn is_write(&self) -> bool {
        self.has(flags::WRITE)
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Indexes of the key arguments of a request with `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let argc = argc as i32;
        let (first, step) = (self.first_key, self.step.max(1));
        let last = if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        // A command without keys, or a request too short to hold one, yields nothing.
        let last = if first > 0 && first < argc {
            last
        } else {
            first - 1
        };
        (first..=last).step_by(step as usize).map(|i| i as usize)
    }

    /// Indexes of the key arguments of `args`, including commands that say how many keys
    /// follow (`SINTERCARD numkeys key ...`); a bad count yields no keys, and the command
    /// itself then reports the error.
    pub fn keys_in(&self, args: &crate::Args) -> impl Iterator<Item = usize> {
        // Where the key count is, and whether a destination key comes before it.
        let numkeys_at = match self.cmd {
            Cmd::SInterCard
            | Cmd::LMPop
            | Cmd::ZMPop
            | Cmd::ZUnion
            | Cmd::ZInter
            | Cmd::ZDiff
            | Cmd::ZInterCard => Some((1, false)),
            // A timeout, then the count.
            Cmd::BLMPop | Cmd::BZMPop => Some((2, false)),
            Cmd::ZUnionStore | Cmd::ZInterStore | Cmd::ZDiffStore => Some((2, true)),
            _ => None,
        };
        let range = match numkeys_at {
            // The key, and the destination after STORE.
            // The first half of what follows STREAMS.
            None if matches!(self.cmd, Cmd::XRead | Cmd::XReadGroup) => {
                let streams =
                    (1..args.len()).find(|&i| args.get(i).eq_ignore_ascii_case(b"STREAMS"));
                match streams {
                    Some(at) if (args.len() - at - 1).is_multiple_of(2) => {
                        (at + 1..at + 1 + (args.len() - at - 1) / 2).collect()
                    }
                    _ => Vec::new(),
                }
            }
            None if self.cmd == Cmd::Sort => {
                let mut keys = vec![1];
                let mut i = 2;
                while i + 1 < args.len() {
                    let word = args.get(i);
                    let skip = if word.eq_ignore_ascii_case(b"LIMIT") {
                        2
                    } else if word.eq_ignore_ascii_case(b"STORE") {
                        keys.truncate(1);
                        keys.push(i + 1);
                        1
                    } else if word.eq_ignore_ascii_case(b"GET") || word.eq_ignore_ascii_case(b"BY")
                    {
                        1
                    } else {
                        0
                    };
                    i += 1 + skip;
                }
                keys
            }
            None => self.key_positions(args.len()).collect::<Vec<_>>(),
            Some((at, destination)) => {
                let count = (at < args.len())
                    .then(|| crate::parse::parse_int(args.get(at)))
                    .flatten()
                    .filter(|&n| n > 0 && (n as usize) < args.len() - at)
                    .unwrap_or(0) as usize;
                let first = if destination { 1 } else { at + 1 };
                (first..at).chain(at + 1..at + 1 + count).collect()
            }
        };
        range.into_iter()
    }

    /// ACL categories, as `COMMAND INFO` reports them.
    pub fn acl_categories(&self) -> Vec<String> {
        let group = match self.group {
            "generic" => "keyspace",
            "sorted-set" => "sortedset",
            other => other,
        };
        let mut cats = vec![format!("@{group}")];
        if self.has(flags::WRITE) {
            cats.push("@write".into());
        }
        if self.has(flags::READONLY) {
            cats.push("@read".into());
        }
        if self.has(flags::ADMIN) {
            cats.push("@admin".into());
            cats.push("@dangerous".into());
        }
        cats.push(
            if self.has(flags::FAST) {
                "@fast"
            } else {
                "@slow"
            }
            .into(),
        );
        cats
    }
}

macro_rules! commands {
    ($( $id:ident $name:literal $arity:literal [$($flag:ident)*] $first:literal $last:literal $step:literal $group:literal $since:literal $summary:literal; )*) => {
        /// Every command Tessera knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Cmd { $($id),* }

        /// The table itself, in `COMMAND` order.
        pub static COMMANDS: &[CommandSpec] = &[
            $(CommandSpec {
                cmd: Cmd::$id,
                name: $name,
                arity: $arity,
                flags: 0 $(| flags::$flag)*,
                first_key: $first,
                last_key: $last,
                step: $step,
                group: $group,
                since: $since,
                summary: $summary,
            }),*
        ];
    };
}

commands! {
    // Strings.
    Get "get" 2 [READONLY FAST] 1 1 1 "string" "1.0.0" "Returns the string value of a key.";
    Set "set" -3 [WRITE DENYOOM] 1 1 1 "string" "1.0.0" "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.";
    SetNx "setnx" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Set the string value of a key only when the key doesn't exist.";
    SetEx "setex" 4 [WRITE DENYOOM] 1 1 1 "string" "2.0.0" "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.";
    PSetEx "psetex" 4 [WRITE DENYOOM] 1 1 1 "string" "2.6.0" "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.";
    GetSet "getset" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Returns the previous string value of a key after setting it to a new value.";
    GetDel "getdel" 2 [WRITE FAST] 1 1 1 "string" "6.2.0" "Returns the string value of a key after deleting the key.";
    GetEx "getex" -2 [WRITE FAST] 1 1 1 "string" "6.2.0" "Returns the string value of a key after setting its expiration time.";
    MGet "mget" -2 [READONLY FAST] 1 -1 1 "string" "1.0.0" "Atomically returns the string values of one or more keys.";
    MSet "mset" -3 [WRITE DENYOOM] 1 -1 2 "string" "1.0.1" "Atomically creates or modifies the string values of one or more keys.";
    MSetNx "msetnx" -3 [WRITE DENYOOM] 1 -1 2 "string" "1.0.1" "Atomically modifies the string values of one or more keys only when all keys don't exist.";
    Append "append" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "2.0.0" "Appends a string to the value of a key. Creates the key if it doesn't exist.";
    StrLen "strlen" 2 [READONLY FAST] 1 1 1 "string" "2.2.0" "Returns the length of a string value.";
    GetRange "getrange" 4 [READONLY] 1 1 1 "string" "2.4.0" "Returns a substring of the string stored at a key.";
    SubStr "substr" 4 [READONLY] 1 1 1 "string" "1.0.0" "Returns a substring from a string value.";
    SetRange "setrange" 4 [WRITE DENYOOM] 1 1 1 "string" "2.2.0" "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.";
    Incr "incr" 2 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    Decr "decr" 2 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    IncrBy "incrby" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    DecrBy "decrby" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "1.0.0" "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.";
    IncrByFloat "incrbyfloat" 3 [WRITE DENYOOM FAST] 1 1 1 "string" "2.6.0" "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    Lcs "lcs" -3 [READONLY] 1 2 1 "string" "7.0.0" "Finds the longest common substring.";
    // Bitmaps.
    SetBit "setbit" 4 [WRITE DENYOOM] 1 1 1 "bitmap" "2.2.0" "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.";
    GetBit "getbit" 3 [READONLY FAST] 1 1 1 "bitmap" "2.2.0" "Returns a bit value by offset.";
    BitCount "bitcount" -2 [READONLY] 1 1 1 "bitmap" "2.6.0" "Counts the number of set bits (population counting) in a string.";
    BitPos "bitpos" -3 [READONLY] 1 1 1 "bitmap" "2.8.7" "Finds the first set (1) or clear (0) bit in a string.";
    BitOp "bitop" -4 [WRITE DENYOOM] 2 -1 1 "bitmap" "2.6.0" "Performs bitwise operations on multiple strings, and stores the result.";
    BitField "bitfield" -2 [WRITE DENYOOM] 1 1 1 "bitmap" "3.2.0" "Performs arbitrary bitfield integer operations on strings.";
    BitFieldRo "bitfield_ro" -2 [READONLY FAST] 1 1 1 "bitmap" "6.0.0" "Performs arbitrary read-only bitfield integer operations on strings.";
    // HyperLogLog.
    PfAdd "pfadd" -2 [WRITE DENYOOM FAST] 1 1 1 "hyperloglog" "2.8.9" "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.";
    PfCount "pfcount" -2 [READONLY] 1 -1 1 "hyperloglog" "2.8.9" "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).";
    PfMerge "pfmerge" -2 [WRITE DENYOOM] 1 -1 1 "hyperloglog" "2.8.9" "Merges one or more HyperLogLog values into a single key.";
    // Hashes.
    HSet "hset" -4 [WRITE DENYOOM FAST] 1 1 1 "hash" "2.0.0" "Creates or modifies the value of a field in a hash.";
    HMSet "hmset" -4 [WRITE DENYOOM FAST] 1 1 1 "hash" "2.0.0" "Sets the values of multiple fields.";
    HSetNx "hsetnx" 4 [WRITE DENYOOM FAST] 1 1 1 "hash" "2.0.0" "Sets the value of a field in a hash only when the field doesn't exist.";
    HGet "hget" 3 [READONLY FAST] 1 1 1 "hash" "2.0.0" "Returns the value of a field in a hash.";
    HMGet "hmget" -3 [READONLY FAST] 1 1 1 "hash" "2.0.0" "Returns the values of all fields in a hash.";
    HDel "hdel" -3 [WRITE FAST] 1 1 1 "hash" "2.0.0" "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.";
    HGetAll "hgetall" 2 [READONLY] 1 1 1 "hash" "2.0.0" "Returns all fields and values in a hash.";
    HKeys "hkeys" 2 [READONLY] 1 1 1 "hash" "2.0.0" "Returns all fields in a hash.";
    HVals "hvals" 2 [READONLY] 1 1 1 "hash" "2.0.0" "Returns all values in a hash.";
    HLen "hlen" 2 [READONLY FAST] 1 1 1 "hash" "2.0.0" "Returns the number of fields in a hash.";
    HExists "hexists" 3 [READONLY FAST] 1 1 1 "hash" "2.0.0" "Determines whether a field exists in a hash.";
    HIncrBy "hincrby" 4 [WRITE DENYOOM FAST] 1 1 1 "hash" "2.0.0" "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.";
    HIncrByFloat "hincrbyfloat" 4 [WRITE DENYOOM FAST] 1 1 1 "hash" "2.6.0" "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.";
    HStrLen "hstrlen" 3 [READONLY FAST] 1 1 1 "hash" "3.2.0" "Returns the length of the value of a field.";
    HRandField "hrandfield" -2 [READONLY] 1 1 1 "hash" "6.2.0" "Returns one or more random fields from a hash.";
    HScan "hscan" -3 [READONLY] 1 1 1 "hash" "2.8.0" "Iterates over fields and values of a hash.";
    // Lists.
    LPush "lpush" -3 [WRITE DENYOOM FAST] 1 1 1 "list" "1.0.0" "Prepends one or more elements to a list. Creates the key if it doesn't exist.";
    RPush "rpush" -3 [WRITE DENYOOM FAST] 1 1 1 "list" "1.0.0" "Appends one or more elements to a list. Creates the key if it doesn't exist.";
    LPushX "lpushx" -3 [WRITE DENYOOM FAST] 1 1 1 "list" "2.2.0" "Prepends one or more elements to a list only when the list exists.";
    RPushX "rpushx" -3 [WRITE DENYOOM FAST] 1 1 1 "list" "2.2.0" "Appends an element to a list only when the list exists.";
    LPop "lpop" -2 [WRITE FAST] 1 1 1 "list" "1.0.0" "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.";
    RPop "rpop" -2 [WRITE FAST] 1 1 1 "list" "1.0.0" "Returns and removes the last elements of a list. Deletes the list if the last element was popped.";
    LLen "llen" 2 [READONLY FAST] 1 1 1 "list" "1.0.0" "Returns the length of a list.";
    LRange "lrange" 4 [READONLY] 1 1 1 "list" "1.0.0" "Returns a range of elements from a list.";
    LIndex "lindex" 3 [READONLY] 1 1 1 "list" "1.0.0" "Returns an element from a list by its index.";
    LSet "lset" 4 [WRITE DENYOOM] 1 1 1 "list" "1.0.0" "Sets the value of an element in a list by its index.";
    LInsert "linsert" 5 [WRITE DENYOOM] 1 1 1 "list" "2.2.0" "Inserts an element before or after another element in a list.";
    LRem "lrem" 4 [WRITE] 1 1 1 "list" "1.0.0" "Removes elements from a list. Deletes the list if the last element was removed.";
    LTrim "ltrim" 4 [WRITE] 1 1 1 "list" "1.0.0" "Removes elements from both ends a list. Deletes the list if all elements were trimmed.";
    LPos "lpos" -3 [READONLY] 1 1 1 "list" "6.0.6" "Returns the index of matching elements in a list.";
    LMove "lmove" 5 [WRITE DENYOOM] 1 2 1 "list" "6.2.0" "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.";
    RPopLPush "rpoplpush" 3 [WRITE DENYOOM] 1 2 1 "list" "1.2.0" "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.";
    BLPop "blpop" -3 [WRITE NOSCRIPT] 1 -2 1 "list" "2.0.0" "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    BRPop "brpop" -3 [WRITE NOSCRIPT] 1 -2 1 "list" "2.0.0" "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    BLMove "blmove" 6 [WRITE DENYOOM NOSCRIPT] 1 2 1 "list" "6.2.0" "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.";
    BRPopLPush "brpoplpush" 4 [WRITE DENYOOM NOSCRIPT] 1 2 1 "list" "2.2.0" "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.";
    BLMPop "blmpop" -5 [WRITE MOVABLEKEYS] 0 0 0 "list" "7.0.0" "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.";
    LMPop "lmpop" -4 [WRITE MOVABLEKEYS] 0 0 0 "list" "7.0.0" "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.";
    // Sets.
    SAdd "sadd" -3 [WRITE DENYOOM FAST] 1 1 1 "set" "1.0.0" "Adds one or more members to a set. Creates the key if it doesn't exist.";
    SRem "srem" -3 [WRITE FAST] 1 1 1 "set" "1.0.0" "Removes one or more members from a set. Deletes the set if the last member was removed.";
    SMembers "smembers" 2 [READONLY] 1 1 1 "set" "1.0.0" "Returns all members of a set.";
    SIsMember "sismember" 3 [READONLY FAST] 1 1 1 "set" "1.0.0" "Determines whether a member belongs to a set.";
    SMIsMember "smismember" -3 [READONLY FAST] 1 1 1 "set" "6.2.0" "Determines whether multiple members belong to a set.";
    SCard "scard" 2 [READONLY FAST] 1 1 1 "set" "1.0.0" "Returns the number of members in a set.";
    SPop "spop" -2 [WRITE FAST] 1 1 1 "set" "1.0.0" "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.";
    SRandMember "srandmember" -2 [READONLY] 1 1 1 "set" "1.0.0" "Get one or multiple random members from a set";
    SInter "sinter" -2 [READONLY] 1 -1 1 "set" "1.0.0" "Returns the intersect of multiple sets.";
    SInterStore "sinterstore" -3 [WRITE DENYOOM] 1 -1 1 "set" "1.0.0" "Stores the intersect of multiple sets in a key.";
    SInterCard "sintercard" -3 [READONLY MOVABLEKEYS] 0 0 0 "set" "7.0.0" "Returns the number of members of the intersect of multiple sets.";
    SUnion "sunion" -2 [READONLY] 1 -1 1 "set" "1.0.0" "Returns the union of multiple sets.";
    SUnionStore "sunionstore" -3 [WRITE DENYOOM] 1 -1 1 "set" "1.0.0" "Stores the union of multiple sets in a key.";
    SDiff "sdiff" -2 [READONLY] 1 -1 1 "set" "1.0.0" "Returns the difference of multiple sets.";
    SDiffStore "sdiffstore" -3 [WRITE DENYOOM] 1 -1 1 "set" "1.0.0" "Stores the difference of multiple sets in a key.";
    SMove "smove" 4 [WRITE FAST] 1 2 1 "set" "1.0.0" "Moves a member from one set to another.";
    SScan "sscan" -3 [READONLY] 1 1 1 "set" "2.8.0" "Iterates over members of a set.";
    // Sorted sets.
    ZAdd "zadd" -4 [WRITE DENYOOM FAST] 1 1 1 "sorted-set" "1.2.0" "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.";
    ZIncrBy "zincrby" 4 [WRITE DENYOOM FAST] 1 1 1 "sorted-set" "1.2.0" "Increments the score of a member in a sorted set.";
    ZRem "zrem" -3 [WRITE FAST] 1 1 1 "sorted-set" "1.2.0" "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.";
    ZCard "zcard" 2 [READONLY FAST] 1 1 1 "sorted-set" "1.2.0" "Returns the number of members in a sorted set.";
    ZScore "zscore" 3 [READONLY FAST] 1 1 1 "sorted-set" "1.2.0" "Returns the score of a member in a sorted set.";
    ZMScore "zmscore" -3 [READONLY FAST] 1 1 1 "sorted-set" "6.2.0" "Returns the score of one or more members in a sorted set.";
    ZRank "zrank" -3 [READONLY FAST] 1 1 1 "sorted-set" "2.0.0" "Returns the index of a member in a sorted set ordered by ascending scores.";
    ZRevRank "zrevrank" -3 [READONLY FAST] 1 1 1 "sorted-set" "2.0.0" "Returns the index of a member in a sorted set ordered by descending scores.";
    ZCount "zcount" 4 [READONLY FAST] 1 1 1 "sorted-set" "2.0.0" "Returns the count of members in a sorted set that have scores within a range.";
    ZLexCount "zlexcount" 4 [READONLY FAST] 1 1 1 "sorted-set" "2.8.9" "Returns the number of members in a sorted set within a lexicographical range.";
    ZRange "zrange" -4 [READONLY] 1 1 1 "sorted-set" "1.2.0" "Returns members in a sorted set within a range of indexes.";
    ZRevRange "zrevrange" -4 [READONLY] 1 1 1 "sorted-set" "1.2.0" "Returns members in a sorted set within a range of indexes in reverse order.";
    ZRangeByScore "zrangebyscore" -4 [READONLY] 1 1 1 "sorted-set" "1.0.5" "Returns members in a sorted set within a range of scores.";
    ZRevRangeByScore "zrevrangebyscore" -4 [READONLY] 1 1 1 "sorted-set" "2.2.0" "Returns members in a sorted set within a range of scores in reverse order.";
    ZRangeByLex "zrangebylex" -4 [READONLY] 1 1 1 "sorted-set" "2.8.9" "Returns members in a sorted set within a lexicographical range.";
    ZRevRangeByLex "zrevrangebylex" -4 [READONLY] 1 1 1 "sorted-set" "2.8.9" "Returns members in a sorted set within a lexicographical range in reverse order.";
    ZRangeStore "zrangestore" -5 [WRITE DENYOOM] 1 2 1 "sorted-set" "6.2.0" "Stores a range of members from sorted set in a key.";
    ZRemRangeByRank "zremrangebyrank" 4 [WRITE] 1 1 1 "sorted-set" "2.0.0" "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.";
    ZRemRangeByScore "zremrangebyscore" 4 [WRITE] 1 1 1 "sorted-set" "1.2.0" "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.";
    ZRemRangeByLex "zremrangebylex" 4 [WRITE] 1 1 1 "sorted-set" "2.8.9" "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.";
    ZPopMin "zpopmin" -2 [WRITE FAST] 1 1 1 "sorted-set" "5.0.0" "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.";
    ZPopMax "zpopmax" -2 [WRITE FAST] 1 1 1 "sorted-set" "5.0.0" "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.";
    ZMPop "zmpop" -4 [WRITE MOVABLEKEYS] 0 0 0 "sorted-set" "7.0.0" "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.";
    ZRandMember "zrandmember" -2 [READONLY] 1 1 1 "sorted-set" "6.2.0" "Returns one or more random members from a sorted set.";
    ZScan "zscan" -3 [READONLY] 1 1 1 "sorted-set" "2.8.0" "Iterates over members and scores of a sorted set.";
    ZUnion "zunion" -3 [READONLY MOVABLEKEYS] 0 0 0 "sorted-set" "6.2.0" "Returns the union of multiple sorted sets.";
    ZUnionStore "zunionstore" -4 [WRITE DENYOOM MOVABLEKEYS] 1 1 1 "sorted-set" "2.0.0" "Stores the union of multiple sorted sets in a key.";
    ZInter "zinter" -3 [READONLY MOVABLEKEYS] 0 0 0 "sorted-set" "6.2.0" "Returns the intersect of multiple sorted sets.";
    ZInterStore "zinterstore" -4 [WRITE DENYOOM MOVABLEKEYS] 1 1 1 "sorted-set" "2.0.0" "Stores the intersect of multiple sorted sets in a key.";
    ZInterCard "zintercard" -3 [READONLY MOVABLEKEYS] 0 0 0 "sorted-set" "7.0.0" "Returns the number of members of the intersect of multiple sorted sets.";
    ZDiff "zdiff" -3 [READONLY MOVABLEKEYS] 0 0 0 "sorted-set" "6.2.0" "Returns the difference between multiple sorted sets.";
    BZPopMin "bzpopmin" -3 [WRITE NOSCRIPT FAST] 1 -2 1 "sorted-set" "5.0.0" "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.";
    BZPopMax "bzpopmax" -3 [WRITE NOSCRIPT FAST] 1 -2 1 "sorted-set" "5.0.0" "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.";
    BZMPop "bzmpop" -5 [WRITE MOVABLEKEYS] 0 0 0 "sorted-set" "7.0.0" "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.";
    ZDiffStore "zdiffstore" -4 [WRITE DENYOOM MOVABLEKEYS] 1 1 1 "sorted-set" "6.2.0" "Stores the difference of multiple sorted sets in a key.";
    // Streams.
    XAdd "xadd" -5 [WRITE DENYOOM FAST] 1 1 1 "stream" "5.0.0" "Appends a new message to a stream. Creates the key if it doesn't exist.";
    XLen "xlen" 2 [READONLY FAST] 1 1 1 "stream" "5.0.0" "Return the number of messages in a stream.";
    XRange "xrange" -4 [READONLY] 1 1 1 "stream" "5.0.0" "Returns the messages from a stream within a range of IDs.";
    XRevRange "xrevrange" -4 [READONLY] 1 1 1 "stream" "5.0.0" "Returns the messages from a stream within a range of IDs in reverse order.";
    XDel "xdel" -3 [WRITE FAST] 1 1 1 "stream" "5.0.0" "Returns the number of messages after removing them from a stream.";
    XTrim "xtrim" -4 [WRITE] 1 1 1 "stream" "5.0.0" "Deletes messages from the beginning of a stream.";
    XSetId "xsetid" -3 [WRITE DENYOOM FAST] 1 1 1 "stream" "5.0.0" "An internal command for replicating stream values.";
    XRead "xread" -4 [READONLY MOVABLEKEYS] 0 0 0 "stream" "5.0.0" "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.";
    XReadGroup "xreadgroup" -7 [WRITE MOVABLEKEYS] 0 0 0 "stream" "5.0.0" "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.";
    XGroup "xgroup" -2 [WRITE DENYOOM] 2 2 1 "stream" "5.0.0" "A container for consumer groups commands.";
    XAck "xack" -4 [WRITE FAST] 1 1 1 "stream" "5.0.0" "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.";
    XPending "xpending" -3 [READONLY] 1 1 1 "stream" "5.0.0" "Returns the information and entries from a stream consumer group's pending entries list.";
    XClaim "xclaim" -6 [WRITE FAST] 1 1 1 "stream" "5.0.0" "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.";
    XAutoClaim "xautoclaim" -6 [WRITE FAST] 1 1 1 "stream" "6.2.0" "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.";
    XInfo "xinfo" -2 [READONLY] 2 2 1 "stream" "5.0.0" "A container for stream introspection commands.";
    // Pub/Sub.
    Subscribe "subscribe" -2 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "2.0.0" "Listens for messages published to channels.";
    Unsubscribe "unsubscribe" -1 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "2.0.0" "Stops listening to messages posted to channels.";
    PSubscribe "psubscribe" -2 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "2.0.0" "Listens for messages published to channels that match one or more patterns.";
    PUnsubscribe "punsubscribe" -1 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "2.0.0" "Stops listening to messages published to channels that match one or more patterns.";
    SSubscribe "ssubscribe" -2 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "7.0.0" "Listens for messages published to shard channels.";
    SUnsubscribe "sunsubscribe" -1 [NOSCRIPT LOADING STALE] 0 0 0 "pubsub" "7.0.0" "Stops listening to messages posted to shard channels.";
    Publish "publish" 3 [LOADING STALE FAST] 0 0 0 "pubsub" "2.0.0" "Posts a message to a channel.";
    SPublish "spublish" 3 [LOADING STALE FAST] 0 0 0 "pubsub" "7.0.0" "Post a message to a shard channel";
    PubSub "pubsub" -2 [] 0 0 0 "pubsub" "2.8.0" "A container for Pub/Sub commands.";
    // Transactions.
    Multi "multi" 1 [NOSCRIPT LOADING STALE FAST] 0 0 0 "transactions" "1.2.0" "Starts a transaction.";
    Exec "exec" 1 [NOSCRIPT LOADING STALE] 0 0 0 "transactions" "1.2.0" "Executes all commands in a transaction.";
    Discard "discard" 1 [NOSCRIPT LOADING STALE FAST] 0 0 0 "transactions" "2.0.0" "Discards a transaction.";
    Watch "watch" -2 [NOSCRIPT LOADING STALE FAST] 1 -1 1 "transactions" "2.2.0" "Monitors changes to keys to determine the execution of a transaction.";
    Unwatch "unwatch" 1 [NOSCRIPT LOADING STALE FAST] 0 0 0 "transactions" "2.2.0" "Forgets about watched keys of a transaction.";
    // Keys.
    Del "del" -2 [WRITE] 1 -1 1 "generic" "1.0.0" "Deletes one or more keys.";
    Unlink "unlink" -2 [WRITE FAST] 1 -1 1 "generic" "4.0.0" "Asynchronously deletes one or more keys.";
    Exists "exists" -2 [READONLY FAST] 1 -1 1 "generic" "1.0.0" "Determines whether one or more keys exist.";
    Touch "touch" -2 [READONLY FAST] 1 -1 1 "generic" "3.2.1" "Returns the number of existing keys out of those specified after updating the time they were last accessed.";
    Type "type" 2 [READONLY FAST] 1 1 1 "generic" "1.0.0" "Determines the type of value stored at a key.";
    Sort "sort" -2 [WRITE DENYOOM MOVABLEKEYS] 1 1 1 "generic" "1.0.0" "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.";
    SortRo "sort_ro" -2 [READONLY MOVABLEKEYS] 1 1 1 "generic" "7.0.0" "Returns the sorted elements of a list, a set, or a sorted set.";
    Expire "expire" -3 [WRITE FAST] 1 1 1 "generic" "1.0.0" "Sets the expiration time of a key in seconds.";
    PExpire "pexpire" -3 [WRITE FAST] 1 1 1 "generic" "2.6.0" "Sets the expiration time of a key in milliseconds.";
    ExpireAt "expireat" -3 [WRITE FAST] 1 1 1 "generic" "1.2.0" "Sets the expiration time of a key to a Unix timestamp.";
    PExpireAt "pexpireat" -3 [WRITE FAST] 1 1 1 "generic" "2.6.0" "Sets the expiration time of a key to a Unix milliseconds timestamp.";
    Ttl "ttl" 2 [READONLY FAST] 1 1 1 "generic" "1.0.0" "Returns the expiration time in seconds of a key.";
    PTtl "pttl" 2 [READONLY FAST] 1 1 1 "generic" "2.6.0" "Returns the expiration time in milliseconds of a key.";
    ExpireTime "expiretime" 2 [READONLY FAST] 1 1 1 "generic" "7.0.0" "Returns the expiration time of a key as a Unix timestamp.";
    PExpireTime "pexpiretime" 2 [READONLY FAST] 1 1 1 "generic" "7.0.0" "Returns the expiration time of a key as a Unix milliseconds timestamp.";
    Persist "persist" 2 [WRITE FAST] 1 1 1 "generic" "2.2.0" "Removes the expiration time of a key.";
    Rename "rename" 3 [WRITE] 1 2 1 "generic" "1.0.0" "Renames a key and overwrites the destination.";
    RenameNx "renamenx" 3 [WRITE FAST] 1 2 1 "generic" "1.0.0" "Renames a key only when the target key name doesn't exist.";
    Copy "copy" -3 [WRITE DENYOOM] 1 2 1 "generic" "6.2.0" "Copies the value of a key to a new key.";
    Keys "keys" 2 [READONLY] 0 0 0 "generic" "1.0.0" "Returns all key names that match a pattern.";
    Scan "scan" -2 [READONLY] 0 0 0 "generic" "2.8.0" "Iterates over the key names in the database.";
    RandomKey "randomkey" 1 [READONLY] 0 0 0 "generic" "1.0.0" "Returns a random key name from the database.";
    Object "object" -2 [READONLY] 2 2 1 "generic" "2.2.3" "A container for object introspection commands.";
    // Server.
    DbSize "dbsize" 1 [READONLY FAST] 0 0 0 "server" "1.0.0" "Returns the number of keys in the database.";
    FlushDb "flushdb" -1 [WRITE] 0 0 0 "server" "1.0.0" "Remove all keys from the current database.";
    FlushAll "flushall" -1 [WRITE] 0 0 0 "server" "1.0.0" "Removes all keys from all databases.";
    Info "info" -1 [LOADING STALE] 0 0 0 "server" "1.0.0" "Returns information and statistics about the server.";
    Config "config" -2 [ADMIN NOSCRIPT LOADING STALE] 0 0 0 "server" "2.0.0" "A container for server configuration commands.";
    Time "time" 1 [LOADING STALE FAST] 0 0 0 "server" "2.6.0" "Returns the server time.";
    Command "command" -1 [LOADING STALE] 0 0 0 "server" "2.8.13" "Returns detailed information about all commands.";
    Shutdown "shutdown" -1 [ADMIN NOSCRIPT LOADING STALE] 0 0 0 "server" "1.0.0" "Synchronously saves the database(s) to disk and shuts down the Redis server.";
    Memory "memory" -2 [READONLY] 2 2 1 "server" "4.0.0" "A container for memory diagnostics commands.";
    // Connection.
    Ping "ping" -1 [FAST STALE] 0 0 0 "connection" "1.0.0" "Returns the server's liveliness response.";
    Echo "echo" 2 [FAST] 0 0 0 "connection" "1.0.0" "Returns the given string.";
    Hello "hello" -1 [NO_AUTH FAST NOSCRIPT LOADING STALE] 0 0 0 "connection" "6.0.0" "Handshakes with the Redis server.";
    Auth "auth" -2 [NO_AUTH FAST NOSCRIPT LOADING STALE] 0 0 0 "connection" "1.0.0" "Authenticates the connection.";
    Select "select" 2 [LOADING STALE FAST] 0 0 0 "connection" "1.0.0" "Changes the selected database.";
    Cluster "cluster" -2 [] 0 0 0 "cluster" "3.0.0" "A container for Redis Cluster commands.";
    ReadOnly "readonly" 1 [FAST LOADING STALE] 0 0 0 "cluster" "3.0.0" "Enables read-only queries for a connection to a Redis Cluster replica node.";
    ReadWrite "readwrite" 1 [FAST LOADING STALE] 0 0 0 "cluster" "3.0.0" "Enables read-write queries for a connection to a Redis Cluster replica node.";
    Asking "asking" 1 [FAST] 0 0 0 "cluster" "3.0.0" "Signals that a cluster client is following an -ASK redirect.";
    Quit "quit" -1 [NO_AUTH FAST NOSCRIPT LOADING STALE] 0 0 0 "connection" "1.0.0" "Closes the connection.";
    Reset "reset" 1 [NO_AUTH FAST NOSCRIPT LOADING STALE] 0 0 0 "connection" "6.2.0" "Resets the connection.";
    Client "client" -2 [LOADING STALE] 0 0 0 "connection" "2.4.0" "A container for client connection commands.";
}

/// The byte-string FNV-1a hash: command names are short, so it beats SipHash here.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

type NameIndex = HashMap<&'static [u8], &'static CommandSpec, BuildHasherDefault<Fnv>>;

fn index() -> &'static NameIndex {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        COMMANDS
            .iter()
            .map(|spec| (spec.name.as_bytes(), spec))
            .collect()
    })
}

/// Longest command name in the table, so lookups can lowercase on the stack.
const MAX_NAME: usize = 16;

/// Finds a command by name, ignoring ASCII case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    // Pipelines repeat one command; remembering the last hit skips the hash.
    thread_local!(static LAST: std::cell::Cell<Option<&'static CommandSpec>> = const { std::cell::Cell::new(None) });
    if let Some(last) = LAST.get() {
        if last.name.len() == name.len() && last.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(last);
        }
    }
    let found = lookup_uncached(name);
    if found.is_some() {
        LAST.set(found);
    }
    found
}

fn lookup_uncached(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut lower = [0u8; MAX_NAME];
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    index().get(&lower[..name.len()]).copied()
}

impl Cmd {
    pub fn spec(self) -> &'static CommandSpec {
        &COMMANDS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_matches_the_enum() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.cmd as usize, i, "{}", spec.name);
            assert!(spec.name.len() <= MAX_NAME);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
        }
    }

    #[test]
    fn lookup_ignores_case_and_rejects_unknown_names() {
        assert_eq!(lookup(b"GeT").unwrap().cmd, Cmd::Get);
        assert_eq!(lookup(b"incrbyfloat").unwrap().cmd, Cmd::IncrByFloat);
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"a-name-much-longer-than-any-command").is_none());
    }

    #[test]
    fn every_key_command_is_either_read_or_write() {
        // WATCH names keys without reading or writing them, as in Redis.
        let data_commands = COMMANDS
            .iter()
            .filter(|s| s.first_key > 0 && s.group != "transactions");
        for spec in data_commands {
            assert!(spec.is_write() ^ spec.has(flags::READONLY), "{}", spec.name);
        }
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let keys = |cmd: Cmd, argc| cmd.spec().key_positions(argc).collect::<Vec<_>>();
        assert_eq!(keys(Cmd::Get, 2), vec![1]);
        assert_eq!(keys(Cmd::MGet, 4), vec![1, 2, 3]);
        assert_eq!(keys(Cmd::MSet, 5), vec![1, 3]);
        assert_eq!(keys(Cmd::Rename, 3), vec![1, 2]);
        assert_eq!(keys(Cmd::Lcs, 5), vec![1, 2]);
        assert_eq!(keys(Cmd::Keys, 2), Vec::<usize>::new());
        assert_eq!(keys(Cmd::Object, 2), Vec::<usize>::new());
        assert_eq!(keys(Cmd::Object, 3), vec![2]);
    }

    #[test]
    fn arity_follows_redis_rules() {
        assert!(Cmd::Get.spec().arity_ok(2));
        assert!(!Cmd::Get.spec().arity_ok(3));
        assert!(Cmd::Set.spec().arity_ok(5));
        assert!(!Cmd::Set.spec().arity_ok(2));
    }
}
