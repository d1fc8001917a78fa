//! Connection and server commands: the ones that do not address keys (or address all of
//! them). Those that need every core's data run as multi-core operations.

use crate::client;
use crate::conn::Conn;
use crate::core::{Core, Work};
use crate::dispatch::{reply, reply_lines, run_multi, Flow};
use crate::info;
use crate::introspect;
use crate::multi::{self, bulk_array, on_every_core, on_every_core_atomically, reply_with, Step};
use sha2::{Digest, Sha256};
use std::any::Any;
use std::sync::atomic::Ordering;
use tessera_protocol::{Args, Cmd, CommandSpec, ReplyWriter, SLOT_COUNT};
use tessera_storage::errors::{self, int_arg};
use tessera_storage::keys::{self, ScanCursor, ScanOptions};
use tessera_storage::{Effect, Request};

/// The Redis version Tessera answers to in HELLO and INFO, for client feature detection.
pub const REDIS_VERSION: &str = "7.2.0";

pub fn run(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Flow {
    match spec.cmd {
        // A RESP2 subscriber gets PING's answer in the shape of a message.
        Cmd::Ping if !conn.resp3 && conn.subscriptions.active() => reply(conn, |w| {
            w.array(2);
            w.bulk(b"pong");
            w.bulk(if args.len() > 1 { args.get(1) } else { b"" });
        }),
        Cmd::Ping => match args.len() {
            1 => reply(conn, |w| w.simple("PONG")),
            2 => reply(conn, |w| w.bulk(args.get(1))),
            _ => reply(conn, |w| w.error(&errors::wrong_arity("ping"))),
        },
        Cmd::Echo => reply(conn, |w| w.bulk(args.get(1))),
        Cmd::Select => select(core, conn, args),
        Cmd::Cluster | Cmd::ReadOnly | Cmd::ReadWrite | Cmd::Asking => {
            return crate::cluster::run_command(core, conn, idx, spec, args)
        }
        Cmd::Quit => {
            reply(conn, |w| w.ok());
            conn.close_after_reply = true;
        }
        _ if spec.group == "pubsub" => return crate::pubsub::run(core, conn, idx, spec.cmd, args),
        Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Watch | Cmd::Unwatch => {
            return crate::transaction::run(core, conn, idx, spec, args)
        }
        Cmd::Reset => {
            crate::pubsub::forget(core, conn, idx);
            conn.tx = None;
            crate::transaction::forget_watches(core, conn);
            conn.db = 0;
            conn.resp3 = false;
            conn.name = None;
            conn.authenticated = core.config.requirepass.is_empty();
            reply(conn, |w| w.simple("RESET"));
        }
        Cmd::Auth => auth(core, conn, args),
        Cmd::Hello => hello(core, conn, args),
        Cmd::Time => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            reply(conn, |w| {
                w.array(2);
                w.bulk(now.as_secs().to_string().as_bytes());
                w.bulk(now.subsec_micros().to_string().as_bytes());
            });
        }
        Cmd::Shutdown => return shutdown(core, conn, args),
        Cmd::Config => return config(core, conn, idx, args),
        Cmd::Command => introspect::command(conn, args),
        Cmd::Client => return client::run(core, conn, idx, args),
        Cmd::Info => return info::run(core, conn, idx, args),
        Cmd::Memory => memory(core, conn, args),
        Cmd::DbSize => {
            let db = conn.db;
            let resp3 = conn.resp3;
            return run_multi(core, conn, idx, |core| {
                on_every_core(
                    core,
                    || work(move |core| core.store.keyspace(db).map_or(0, |ks| ks.len())),
                    move |results| {
                        let total: usize = results
                            .into_iter()
                            .filter_map(|r| r.downcast::<usize>().ok())
                            .map(|n| *n)
                            .sum();
                        reply_with(resp3, |w| w.int(total as i64))
                    },
                )
            });
        }
        Cmd::FlushDb | Cmd::FlushAll => return flush(core, conn, idx, spec, args),
        Cmd::Keys => {
            let (db, resp3, pattern) = (conn.db, conn.resp3, args.get(1).to_vec());
            return run_multi(core, conn, idx, |core| {
                on_every_core(
                    core,
                    || {
                        let pattern = pattern.clone();
                        work(move |core| {
                            let mut found = Vec::new();
                            let owned = owned_slots(core);
                            keys::collect_keys(
                                &mut core.store,
                                db,
                                owned.into_iter(),
                                &pattern,
                                core.now,
                                &mut found,
                            );
                            found
                        })
                    },
                    move |results| {
                        let all: Vec<Vec<u8>> = results
                            .into_iter()
                            .filter_map(|r| r.downcast::<Vec<Vec<u8>>>().ok())
                            .flat_map(|v| *v)
                            .collect();
                        bulk_array(resp3, &all)
                    },
                )
            });
        }
        Cmd::Scan => return scan(core, conn, idx, args),
        Cmd::RandomKey => {
            let (db, resp3) = (conn.db, conn.resp3);
            return run_multi(core, conn, idx, |core| {
                let seed = core.now.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                on_every_core(
                    core,
                    || {
                        work(move |core| {
                            let seed = core.random();
                            let owner = core.id;
                            let shared = core.shared.clone();
                            let now = core.now;
                            let ks = core.store.db(db);
                            (
                                ks.len(),
                                ks.random_key(seed, now, |slot| shared.owner(slot) == owner)
                                    .map(<[u8]>::to_vec),
                            )
                        })
                    },
                    move |results| {
                        let picks: Vec<(usize, Option<Vec<u8>>)> = results
                            .into_iter()
                            .filter_map(|r| r.downcast::<(usize, Option<Vec<u8>>)>().ok())
                            .map(|b| *b)
                            .collect();
                        let total: usize =
                            picks.iter().filter(|p| p.1.is_some()).map(|p| p.0).sum();
                        if total == 0 {
                            return reply_with(resp3, |w| w.null());
                        }
                        let mut ticket = (seed % total as u64) as usize;
                        for (len, key) in picks.into_iter().filter(|p| p.1.is_some()) {
                            if ticket < len {
                                return reply_with(resp3, |w| w.bulk(&key.unwrap_or_default()));
                            }
                            ticket -= len;
                        }
                        reply_with(resp3, |w| w.null())
                    },
                )
            });
        }
        other => reply(conn, |w| {
            w.error(&format!(
                "ERR '{}' is not available here",
                other.spec().name
            ))
        }),
    }
    Flow::Next
}

/// Wraps a closure as cross-core work.
pub fn work<T: Any + Send>(f: impl FnOnce(&mut Core) -> T + Send + 'static) -> Work {
    Box::new(move |core: &mut Core| Box::new(f(core)) as Box<dyn Any + Send>)
}

/// The slots this core owns, ascending.
fn owned_slots(core: &Core) -> Vec<u16> {
    (0..SLOT_COUNT as u16)
        .filter(|&s| core.shared.owner(s) == core.id)
        .collect()
}

fn select(core: &Core, conn: &mut Conn, args: Args) {
    match crate::transaction::selected_db(args, core.store.databases()) {
        Ok(n) => {
            conn.db = n;
            reply(conn, |w| w.ok());
        }
        Err(e) => reply(conn, |w| w.error(&e)),
    }
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Whether `user` and `password` name the default user: with no requirepass it takes any
/// password. Their SHA-256 digests are compared without an early exit, so the time taken
/// tells nothing of where, or in which length, a guess differs.
fn credentials_ok(core: &Core, user: &[u8], password: &[u8]) -> bool {
    let expected = core.config.requirepass.as_bytes();
    if user != b"default" {
        return false;
    }
    if expected.is_empty() {
        return true;
    }
    let (given, expected) = (Sha256::digest(password), Sha256::digest(expected));
    given
        .iter()
        .zip(&expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn auth(core: &Core, conn: &mut Conn, args: Args) {
    let (user, password) = match args.len() {
        2 if core.config.requirepass.is_empty() => {
            return reply(conn, |w| {
                w.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
            })
        }
        2 => (&b"default"[..], args.get(1)),
        3 => (args.get(1), args.get(2)),
        _ => return reply(conn, |w| w.error(errors::SYNTAX)),
    };
    if credentials_ok(core, user, password) {
        conn.authenticated = true;
        reply(conn, |w| w.ok());
    } else {
        reply(conn, |w| w.error(WRONGPASS));
    }
}

/// Whether a client name or library tag is printable without spaces, as Redis requires.
pub fn valid_client_text(text: &[u8]) -> bool {
    text.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn hello(core: &Core, conn: &mut Conn, args: Args) {
    let mut proto = if conn.resp3 { 3 } else { 2 };
    let mut i = 1;
    if args.len() > 1 {
        match int_arg(args.get(1)) {
            Ok(v @ (2 | 3)) => proto = v,
            Ok(_) => return reply(conn, |w| w.error("NOPROTO unsupported protocol version")),
            Err(_) => {
                return reply(conn, |w| {
                    w.error("ERR Protocol version is not an integer or out of range")
                })
            }
        }
        i = 2;
    }
    let mut name = None;
    let mut authenticates = false;
    while i < args.len() {
        let opt = args.get(i);
        let left = args.len() - i - 1;
        if opt.eq_ignore_ascii_case(b"AUTH") && left >= 2 {
            if !credentials_ok(core, args.get(i + 1), args.get(i + 2)) {
                return reply(conn, |w| w.error(WRONGPASS));
            }
            authenticates = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && left >= 1 {
            let candidate = args.get(i + 1);
            if !valid_client_text(candidate) {
                return reply(conn, |w| {
                    w.error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    )
                });
            }
            name = Some(candidate.to_vec());
            i += 2;
        } else {
            let text = format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            );
            return reply(conn, |w| w.error(&text));
        }
    }
    if !authenticates && !conn.authenticated && !core.config.requirepass.is_empty() {
        return reply(conn, |w| {
            w.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
        });
    }
    conn.authenticated |= authenticates;
    if let Some(name) = name {
        conn.name = (!name.is_empty()).then_some(name);
    }
    conn.resp3 = proto == 3;
    let id = conn.id;
    reply(conn, |w| {
        w.map(7);
        w.bulk(b"server");
        w.bulk(b"redis");
        w.bulk(b"version");
        w.bulk(REDIS_VERSION.as_bytes());
        w.bulk(b"proto");
        w.int(proto);
        w.bulk(b"id");
        w.int(id as i64);
        w.bulk(b"mode");
        w.bulk(b"standalone");
        w.bulk(b"role");
        w.bulk(b"master");
        w.bulk(b"modules");
        w.array(0);
    });
}

fn shutdown(core: &mut Core, conn: &mut Conn, args: Args) -> Flow {
    for opt in args.tail(1).iter() {
        let known = [&b"NOSAVE"[..], b"SAVE", b"NOW", b"FORCE"];
        if opt.eq_ignore_ascii_case(b"ABORT") {
            reply(conn, |w| w.error("ERR No shutdown in progress."));
            return Flow::Next;
        }
        if !known.iter().any(|k| opt.eq_ignore_ascii_case(k)) {
            reply(conn, |w| w.error(errors::SYNTAX));
            return Flow::Next;
        }
    }
    tracing::info!(client = conn.id, "SHUTDOWN requested by a client");
    core.shared.begin_shutdown();
    conn.dead = true;
    Flow::Next
}

fn config(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"GET") && args.len() >= 3 {
        let entries = core
            .shared
            .config
            .read()
            .map(|c| c.entries())
            .unwrap_or_default();
        let mut matched: Vec<(&str, String)> = Vec::new();
        for pattern in args.tail(2).iter() {
            let pattern = pattern.to_ascii_lowercase();
            for (name, value) in &entries {
                let hit = tessera_storage::glob::matches(&pattern, name.as_bytes())
                    || (name == &"io-threads" && pattern == b"threads");
                if hit && !matched.iter().any(|(n, _)| n == name) {
                    matched.push((name, value.clone()));
                }
            }
        }
        reply(conn, |w| {
            w.map(matched.len());
            for (name, value) in &matched {
                w.bulk(name.as_bytes());
                w.bulk(value.as_bytes());
            }
        });
    } else if sub.eq_ignore_ascii_case(b"SET") && args.len() >= 4 && args.len().is_multiple_of(2) {
        let result = core.shared.config.write().map_err(|_| "ERR configuration is unavailable".to_string()).and_then(|mut cfg| {
            let mut updated = cfg.clone();
            for pair in 0..(args.len() - 2) / 2 {
                let name = String::from_utf8_lossy(args.get(2 + pair * 2)).into_owned();
                let value = String::from_utf8_lossy(args.get(3 + pair * 2)).into_owned();
                updated.set(&name, &value, false).map_err(|e| {
                    if e.starts_with("Unknown option") || e.starts_with("Unsupported") {
                        format!("ERR {e}")
                    } else {
                        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}")
                    }
                })?;
            }
            *cfg = updated;
            Ok(())
        });
        match result {
            Ok(()) => {
                core.shared.config_epoch.fetch_add(1, Ordering::SeqCst);
                if let Ok(cfg) = core.shared.config.read() {
                    core.config = cfg.clone();
                }
                if let Some(node) = core.shared.cluster.get() {
                    node.set_client_password(&core.config.requirepass);
                }
                reply(conn, |w| w.ok());
            }
            Err(e) => reply(conn, |w| w.error(&e)),
        }
    } else if sub.eq_ignore_ascii_case(b"RESETSTAT") && args.len() == 2 {
        let resp3 = conn.resp3;
        return run_multi(core, conn, idx, |core| {
            on_every_core(
                core,
                || {
                    work(|core| {
                        core.stats = Default::default();
                        core.store.stats = Default::default();
                    })
                },
                move |_| reply_with(resp3, |w| w.ok()),
            )
        });
    } else if sub.eq_ignore_ascii_case(b"REWRITE") && args.len() == 2 {
        reply(conn, |w| {
            w.error("ERR Rewriting config file is not supported by Tessera")
        });
    } else if sub.eq_ignore_ascii_case(b"HELP") && args.len() == 2 {
        let lines = [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "HELP",
            "    Print this help.",
        ];
        reply_lines(conn, &lines);
    } else {
        let known = [&b"GET"[..], b"SET", b"RESETSTAT", b"REWRITE", b"HELP"];
        let text = if known.iter().any(|k| sub.eq_ignore_ascii_case(k)) {
            errors::wrong_arity(&format!(
                "config|{}",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            ))
        } else {
            errors::unknown_subcommand(sub, "config")
        };
        reply(conn, |w| w.error(&text));
    }
    Flow::Next
}

fn memory(core: &Core, conn: &mut Conn, args: Args) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"HELP") {
        let lines = [
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
        ];
        reply_lines(conn, &lines);
    } else if sub.eq_ignore_ascii_case(b"DOCTOR") {
        reply(conn, |w| {
            w.verbatim(b"No memory problems detected by Tessera.")
        });
    } else if sub.eq_ignore_ascii_case(b"PURGE") {
        reply(conn, |w| w.ok());
    } else if sub.eq_ignore_ascii_case(b"STATS") {
        let rss = info::rss_bytes();
        let started = core.shared.started.elapsed().as_secs();
        reply(conn, |w| {
            w.map(3);
            w.bulk(b"rss.bytes");
            w.int(rss as i64);
            w.bulk(b"uptime.seconds");
            w.int(started as i64);
            w.bulk(b"allocator");
            w.bulk(b"jemalloc");
        });
    } else {
        reply(conn, |w| {
            w.error(&errors::unknown_subcommand(sub, "memory"))
        });
    }
}

fn flush(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    spec: &'static CommandSpec,
    args: Args,
) -> Flow {
    let (db, resp3) = (conn.db, conn.resp3);
    let req = Request {
        spec,
        args,
        db,
        now: core.now,
    };
    let all = match tessera_storage::plan(&req, core.store.databases()) {
        Ok(Effect::FlushAll) => true,
        Ok(_) => false,
        Err(e) => {
            reply(conn, |w| w.error(&e));
            return Flow::Next;
        }
    };
    run_multi(core, conn, idx, |core| {
        on_every_core_atomically(
            core,
            || {
                work(move |core| {
                    let effect = if all {
                        Effect::FlushAll
                    } else {
                        Effect::FlushDb
                    };
                    let now = core.now;
                    core.store.apply(
                        db,
                        now,
                        &effect,
                        &mut ReplyWriter::new(&mut Vec::new(), false),
                    );
                })
            },
            move |_| reply_with(resp3, |w| w.ok()),
        )
    })
}

/// SCAN: the cursor names a hash slot and a bucket of its table (`keys::ScanCursor`). Each
/// step scans slots on the core that owns them and moves on to the next owner until COUNT keys
/// were looked at or the slots end.
fn scan(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let opts = match keys::parse_scan(args) {
        Ok(opts) => opts,
        Err(e) => {
            reply(conn, |w| w.error(&e));
            return Flow::Next;
        }
    };
    let (db, resp3) = (conn.db, conn.resp3);
    let from = ScanCursor::from(opts.cursor);
    run_multi(core, conn, idx, |core| multi::MultiOp {
        reserve: Vec::new(),
        step: scan_step(
            core.shared.clone(),
            db,
            resp3,
            opts,
            Some(from),
            0,
            Vec::new(),
        ),
    })
}

/// One step of SCAN from `next` (`None`: the slots are done), `looked_at` keys into COUNT.
fn scan_step(
    shared: std::sync::Arc<crate::server::Shared>,
    db: usize,
    resp3: bool,
    opts: ScanOptions,
    next: Option<ScanCursor>,
    looked_at: usize,
    mut found: Vec<Vec<u8>>,
) -> Step {
    let from = match next {
        Some(from) if looked_at < opts.count => from,
        _ => {
            let cursor = next.map_or(0, u64::from);
            return reply_with(resp3, |w| {
                w.array(2);
                w.bulk(cursor.to_string().as_bytes());
                w.array(found.len());
                found.iter().for_each(|k| w.bulk(k));
            });
        }
    };
    let owner = shared.owner(from.slot);
    let call_opts = ScanOptions {
        cursor: opts.cursor,
        pattern: opts.pattern.clone(),
        count: opts.count - looked_at,
        type_name: opts.type_name.clone(),
    };
    let call = work(move |core: &mut Core| {
        let shared = core.shared.clone();
        let slots = (from.slot..SLOT_COUNT as u16).take_while(|&s| shared.owner(s) == owner);
        let mut keys = Vec::new();
        let now = core.now;
        let (next, seen) =
            keys::scan_slots(&mut core.store, db, slots, from, &call_opts, now, &mut keys);
        (next, seen, keys)
    });
    Step::Calls(
        vec![(owner, call)],
        Box::new(move |mut results| {
            let (next, seen, keys) = results
                .pop()
                .and_then(|r| {
                    r.downcast::<(Option<ScanCursor>, usize, Vec<Vec<u8>>)>()
                        .ok()
                })
                .map(|b| *b)
                .unwrap_or((None, 0, Vec::new()));
            found.extend(keys);
            let next = next.or_else(|| {
                (from.slot..SLOT_COUNT as u16)
                    .find(|&s| shared.owner(s) != owner)
                    .map(ScanCursor::slot_start)
            });
            scan_step(shared, db, resp3, opts, next, looked_at + seen, found)
        }),
    )
}
