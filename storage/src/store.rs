//! A core's share of the data: its databases, and the one entry point that runs a command
//! against them. Writes are planned into an `Effect` and then applied; nothing writes around
//! that path.

use crate::effect::Effect;
use crate::errors::Error;
use crate::keyspace::lru_clock;
use crate::keyspace::Keyspace;
use crate::notify::{self, Event};
use crate::object::{EncodingLimits, ObjectRef};
use crate::{bits, dump, hashes, hll, keys, lists, rng, sets, sort, streams, strings, zsets};
use tessera_protocol::{Args, Cmd, CommandSpec, ReplyWriter};

/// Keys above which a flushed keyspace is freed off the core's thread (Redis's
/// `LAZYFREE_THRESHOLD` plays the same role).
const LAZY_FREE_THRESHOLD: usize = 64 * 1024;

/// One command as the storage layer sees it.
pub struct Request<'a> {
    pub spec: &'static CommandSpec,
    /// All arguments, the command name first.
    pub args: Args<'a>,
    pub db: usize,
    /// The command's timestamp, Unix milliseconds: deadlines are computed and checked at it.
    pub now: u64,
}

/// Hit and miss counters of key lookups by read commands.
#[derive(Debug, Default, Clone, Copy)]
pub struct LookupStats {
    pub hits: u64,
    pub misses: u64,
}

/// The databases a core owns (each holding only the slots of that core's partitions).
pub struct Store {
    dbs: Vec<Option<Box<Keyspace>>>,
    /// `proto-max-bulk-len`: the longest string a write may produce.
    pub max_bulk_len: usize,
    /// When compact collections convert to their large forms.
    pub limits: EncodingLimits,
    pub stats: LookupStats,
    /// The `notify-keyspace-events` classes on.
    notify_flags: u32,
    /// See `Keyspace::set_keeps_expired`.
    keeps_expired: bool,
}

impl Store {
    pub fn new(databases: usize) -> Self {
        Store {
            dbs: (0..databases).map(|_| None).collect(),
            max_bulk_len: tessera_protocol::parse::DEFAULT_MAX_BULK_LEN,
            limits: EncodingLimits::default(),
            stats: LookupStats::default(),
            notify_flags: 0,
            keeps_expired: false,
        }
    }

    /// Whether lookups leave expired keys in place (see `Keyspace::set_keeps_expired`).
    pub fn keeps_expired(&self) -> bool {
        self.keeps_expired
    }

    pub fn set_keeps_expired(&mut self, keep: bool) {
        self.keeps_expired = keep;
        for ks in self.dbs.iter_mut().flatten() {
            ks.set_keeps_expired(keep);
        }
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Database `db`, created on first use.
    pub fn db(&mut self, db: usize) -> &mut Keyspace {
        let (flags, keep) = (self.notify_flags, self.keeps_expired);
        self.dbs[db].get_or_insert_with(|| new_keyspace(flags, keep))
    }

    pub(crate) fn db_and_stats(&mut self, db: usize) -> (&mut Keyspace, &mut LookupStats) {
        let (flags, keep) = (self.notify_flags, self.keeps_expired);
        (
            self.dbs[db].get_or_insert_with(|| new_keyspace(flags, keep)),
            &mut self.stats,
        )
    }

    pub fn notify_flags(&self) -> u32 {
        self.notify_flags
    }

    /// Turns keyspace notification classes on or off (`notify-keyspace-events`).
    pub fn set_notify_flags(&mut self, flags: u32) {
        self.notify_flags = flags;
        for ks in self.dbs.iter_mut().flatten() {
            ks.set_notify_flags(flags);
        }
    }

    /// Records `event` on `key` in database `db` if its class is on.
    pub fn notify(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        if notify::enabled(self.notify_flags, class) {
            self.db(db).notify(class, event, key);
        }
    }

    /// The events recorded since the last call, database by database (none while
    /// notifications are off, which keeps the event loop's per-turn check to one test).
    pub fn take_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.notify_flags == 0 {
            return events;
        }
        for (db, ks) in self.dbs.iter_mut().enumerate() {
            if let Some(ks) = ks {
                events.extend(ks.take_events().into_iter().map(|(event, key)| Event {
                    db,
                    event,
                    key,
                }));
            }
        }
        events
    }

    /// Database `db` if it was ever written.
    pub fn keyspace(&self, db: usize) -> Option<&Keyspace> {
        self.dbs.get(db)?.as_deref()
    }

    /// The awaited keys written since the last call, with their databases.
    pub fn take_ready(&mut self) -> Vec<(usize, Box<[u8]>)> {
        let mut ready = Vec::new();
        for (db, ks) in self.dbs.iter_mut().enumerate() {
            if let Some(ks) = ks {
                ready.extend(ks.take_ready().into_iter().map(|key| (db, key)));
            }
        }
        ready
    }

    /// How many waiters on `key` to wake now: a list's or sorted set's length, every waiter
    /// of a stream, 0 for a missing key and 1 for another type (whose waiter then gets its
    /// error).
    pub fn available(&mut self, db: usize, key: &[u8], now: u64) -> usize {
        match self.db(db).get(key, now) {
            None => 0,
            Some(entry) => match entry.object() {
                Some(o @ ObjectRef::ListPack(_)) | Some(o @ ObjectRef::ListQuick(_)) => {
                    lists::len(o)
                }
                Some(o @ ObjectRef::ZSetPack(_)) | Some(o @ ObjectRef::ZSetTree(_)) => {
                    zsets::len(o)
                }
                // Stream readers take nothing away: every waiter gets its chance.
                Some(ObjectRef::Stream(_)) => usize::MAX,
                _ => 1,
            },
        }
    }

    /// Starts watching `key` for a transaction: its version now, and whether it is live.
    pub fn watch(&mut self, db: usize, key: &[u8], now: u64) -> (u64, bool) {
        let ks = self.db(db);
        let live = ks.get(key, now).is_some();
        (ks.watch(key), live)
    }

    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        self.db(db).unwatch(key);
    }

    /// Whether a watched key is as it was: no write since, and not expired since (as Redis,
    /// a key that expires while watched fails the transaction).
    pub fn watch_intact(
        &mut self,
        db: usize,
        key: &[u8],
        version: u64,
        was_live: bool,
        now: u64,
    ) -> bool {
        let ks = self.db(db);
        let live = ks.get(key, now).is_some();
        ks.watch_version(key) == Some(version) && (live || !was_live)
    }

    /// Runs a key command whose keys all live on this core and writes its reply.
    pub fn execute(&mut self, req: &Request, out: &mut ReplyWriter) {
        self.execute_seeded(req, None, out);
    }

    /// `execute`, with the seed of a random write (SPOP) fixed by the caller: a replicated
    /// write carries the seed its proposer drew, so every replica picks the same members.
    pub fn execute_seeded(&mut self, req: &Request, seed: Option<u64>, out: &mut ReplyWriter) {
        if req.spec.is_write() {
            match (plan(req, self.dbs.len()), seed) {
                (Ok(Effect::Collection { cmd, args, .. }), Some(seed)) => {
                    let effect = Effect::Collection { cmd, args, seed };
                    self.apply(req.db, req.now, &effect, out)
                }
                (Ok(effect), _) => self.apply(req.db, req.now, &effect, out),
                (Err(e), _) => out.error(&e),
            }
            return;
        }
        match req.spec.cmd {
            Cmd::Get => strings::get(self, req, out),
            Cmd::MGet => strings::mget(self, req, out),
            Cmd::StrLen => strings::strlen(self, req, out),
            Cmd::GetRange | Cmd::SubStr => strings::getrange(self, req, out),
            Cmd::Lcs => strings::lcs(self, req, out),
            Cmd::Exists | Cmd::Touch => keys::exists(self, req, out),
            Cmd::Type => keys::type_of(self, req, out),
            Cmd::Ttl => keys::ttl(self, req, false, false, out),
            Cmd::PTtl => keys::ttl(self, req, true, false, out),
            Cmd::ExpireTime => keys::ttl(self, req, false, true, out),
            Cmd::PExpireTime => keys::ttl(self, req, true, true, out),
            Cmd::Object => keys::object(self, req, out),
            Cmd::Memory => keys::memory_usage(self, req, out),
            Cmd::SortRo => sort::run(self, req.db, req.now, Cmd::SortRo, req.args, out),
            _ if req.spec.group == "hash" => hashes::read(self, req, out),
            _ if req.spec.group == "set" => sets::read(self, req, out),
            _ if req.spec.group == "list" => lists::read(self, req, out),
            _ if req.spec.group == "bitmap" => bits::read(self, req, out),
            _ if req.spec.group == "hyperloglog" => hll::read(self, req, out),
            _ if req.spec.group == "sorted-set" => zsets::read(self, req, out),
            Cmd::XPending => streams::pending(self, req, out),
            _ if req.spec.group == "stream" => streams::read(self, req, out),
            other => out.error(&format!("ERR '{}' is not a key command", other.spec().name)),
        }
    }

    /// Applies one effect at timestamp `now` and writes the reply it produces.
    pub fn apply(&mut self, db: usize, now: u64, effect: &Effect, out: &mut ReplyWriter) {
        match *effect {
            Effect::Set {
                key,
                value,
                expiry,
                cond,
                reply,
            } => strings::apply_set(
                self,
                db,
                now,
                strings::SetArgs {
                    key,
                    value,
                    expiry,
                    cond,
                    reply,
                },
                out,
            ),
            Effect::GetDel { key } => strings::apply_getdel(self, db, now, key, out),
            Effect::GetEx { key, change } => strings::apply_getex(self, db, now, key, change, out),
            Effect::MSet { pairs } => strings::apply_mset(self, db, now, pairs, false, out),
            Effect::MSetNx { pairs } => strings::apply_mset(self, db, now, pairs, true, out),
            Effect::Append { key, value } => strings::apply_append(self, db, now, key, value, out),
            Effect::SetRange { key, offset, value } => {
                strings::apply_setrange(self, db, now, key, offset, value, out)
            }
            Effect::IncrBy { key, delta } => strings::apply_incrby(self, db, now, key, delta, out),
            Effect::IncrByFloat { key, increment } => {
                strings::apply_incrbyfloat(self, db, now, key, increment, out)
            }
            Effect::Collection {
                cmd: Cmd::Sort,
                args,
                ..
            } => sort::run(self, db, now, Cmd::Sort, args, out),
            Effect::Collection { cmd, args, seed } => match cmd.spec().group {
                "hash" => hashes::apply(self, db, now, cmd, args, out),
                "list" => lists::apply(self, db, now, cmd, args, out),
                "bitmap" => bits::apply(self, db, now, cmd, args, out),
                "hyperloglog" => hll::apply(self, db, now, cmd, args, out),
                "sorted-set" => zsets::apply(self, db, now, cmd, args, out),
                "stream" => streams::apply(self, db, now, cmd, args, out),
                _ => sets::apply(self, db, now, cmd, args, seed, out),
            },
            Effect::Restore {
                key,
                value,
                expire_at,
            } => {
                let limits = self.limits;
                match dump::entry_from(key, value, expire_at, lru_clock(now), &limits) {
                    Some(entry) => {
                        self.db(db).insert_quietly(entry);
                        out.ok();
                    }
                    None => out.error("ERR DUMP payload version or checksum are wrong"),
                }
            }
            Effect::Del { keys } => keys::apply_del(self, db, now, keys, out),
            Effect::Expire { key, at, cond } => {
                keys::apply_expire(self, db, now, key, at, cond, out)
            }
            Effect::Persist { key } => keys::apply_persist(self, db, now, key, out),
            Effect::Rename { src, dst, only_new } => {
                keys::apply_rename(self, db, now, src, dst, only_new, out)
            }
            Effect::Copy {
                src,
                dst,
                dst_db,
                replace,
            } => keys::apply_copy(self, now, (db, src), (dst_db, dst), replace, out),
            Effect::FlushDb => {
                self.flush(db);
                out.ok();
            }
            Effect::FlushAll => {
                (0..self.dbs.len()).for_each(|db| self.flush(db));
                out.ok();
            }
        }
    }

    /// Empties database `db`. A large keyspace is freed on a helper thread so that the core
    /// keeps serving; the keys are gone for every client either way.
    pub fn flush(&mut self, db: usize) {
        let Some(old) = self.dbs[db].as_mut().map(|ks| ks.take_all()) else {
            return;
        };
        if old.len() > LAZY_FREE_THRESHOLD {
            std::thread::spawn(move || drop(old));
        }
    }
}

fn new_keyspace(notify_flags: u32, keeps_expired: bool) -> Box<Keyspace> {
    let mut ks = Box::<Keyspace>::default();
    ks.set_notify_flags(notify_flags);
    ks.set_keeps_expired(keeps_expired);
    ks
}

/// Turns a write command into its effect, or the error it must get.
pub fn plan<'a>(req: &Request<'a>, databases: usize) -> Result<Effect<'a>, Error> {
    let args = req.args;
    Ok(match req.spec.cmd {
        Cmd::Set => return strings::plan_set(req),
        Cmd::SetNx => return strings::plan_setnx(req),
        Cmd::SetEx => return strings::plan_setex(req, 1000),
        Cmd::PSetEx => return strings::plan_setex(req, 1),
        Cmd::GetSet => return strings::plan_getset(req),
        Cmd::GetDel => Effect::GetDel { key: args.get(1) },
        Cmd::GetEx => return strings::plan_getex(req),
        Cmd::MSet => return strings::plan_mset(req, false),
        Cmd::MSetNx => return strings::plan_mset(req, true),
        Cmd::Append => Effect::Append {
            key: args.get(1),
            value: args.get(2),
        },
        Cmd::SetRange => return strings::plan_setrange(req),
        Cmd::Incr => return strings::plan_incrby(req, 1, false),
        Cmd::Decr => return strings::plan_incrby(req, -1, false),
        Cmd::IncrBy => return strings::plan_incrby(req, 1, true),
        Cmd::DecrBy => return strings::plan_incrby(req, -1, true),
        Cmd::IncrByFloat => return strings::plan_incrbyfloat(req),
        Cmd::Del | Cmd::Unlink => Effect::Del { keys: args.tail(1) },
        Cmd::Expire => return keys::plan_expire(req, 1000, false),
        Cmd::PExpire => return keys::plan_expire(req, 1, false),
        Cmd::ExpireAt => return keys::plan_expire(req, 1000, true),
        Cmd::PExpireAt => return keys::plan_expire(req, 1, true),
        Cmd::Persist => Effect::Persist { key: args.get(1) },
        Cmd::Rename => Effect::Rename {
            src: args.get(1),
            dst: args.get(2),
            only_new: false,
        },
        Cmd::RenameNx => Effect::Rename {
            src: args.get(1),
            dst: args.get(2),
            only_new: true,
        },
        Cmd::Copy => return keys::plan_copy(req, databases),
        Cmd::Sort => Effect::Collection {
            cmd: Cmd::Sort,
            args,
            seed: 0,
        },
        Cmd::FlushDb | Cmd::FlushAll => {
            let mode_ok = match args.len() {
                1 => true,
                2 => {
                    args.get(1).eq_ignore_ascii_case(b"ASYNC")
                        || args.get(1).eq_ignore_ascii_case(b"SYNC")
                }
                _ => false,
            };
            if !mode_ok {
                return Err(crate::errors::SYNTAX.into());
            }
            if req.spec.cmd == Cmd::FlushDb {
                Effect::FlushDb
            } else {
                Effect::FlushAll
            }
        }
        cmd if matches!(
            req.spec.group,
            "hash" | "list" | "set" | "bitmap" | "hyperloglog" | "sorted-set" | "stream"
        ) =>
        {
            Effect::Collection {
                cmd,
                args,
                seed: if cmd == Cmd::SPop { rng::seed() } else { 0 },
            }
        }
        other => return Err(format!("ERR '{}' is not a write command", other.spec().name).into()),
    })
}
