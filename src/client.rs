//! CLIENT: identity, names and library tags of the calling connection, and listing and
//! killing connections on every core.

use crate::admin::{valid_client_text, work};
use crate::conn::Conn;
use crate::core::Core;
use crate::dispatch::{reply, reply_lines, run_multi, Flow};
use crate::multi::{on_every_core, reply_with};
use tessera_protocol::Args;
use tessera_storage::errors;

/// Which connections a CLIENT LIST or CLIENT KILL means.
#[derive(Clone, Default)]
struct Filter {
    ids: Vec<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<String>,
    max_age: Option<u64>,
    /// The caller itself, unless SKIPME no.
    skip: Option<u64>,
    type_normal: Option<bool>,
}

impl Filter {
    fn matches(&self, conn: &Conn, now: u64) -> bool {
        (self.ids.is_empty() || self.ids.contains(&conn.id))
            && self.addr.as_ref().is_none_or(|a| *a == conn.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == conn.laddr)
            && self.user.as_ref().is_none_or(|u| u == "default")
            && self
                .max_age
                .is_none_or(|age| now.saturating_sub(conn.created_ms) / 1000 >= age)
            && self.skip != Some(conn.id)
            && self.type_normal != Some(false)
    }
}

/// One CLIENT LIST line, with Redis's field names.
pub fn describe(conn: &Conn, now: u64) -> String {
    let text = |v: &Option<Vec<u8>>| {
        v.as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        conn.id,
        conn.addr,
        conn.laddr,
        conn.fd,
        text(&conn.name),
        now.saturating_sub(conn.created_ms) / 1000,
        now.saturating_sub(conn.last_active_ms) / 1000,
        conn.db,
        conn.pending_input(),
        conn.rbuf.capacity() - conn.rbuf.len(),
        conn.rbuf.capacity(),
        conn.wbuf.len(),
        conn.pending_output(),
        conn.rbuf.capacity() + conn.wbuf.capacity(),
        conn.last_cmd,
        if conn.resp3 { 3 } else { 2 },
        text(&conn.lib_name),
        text(&conn.lib_ver),
    )
}

fn parse_filter(
    args: Args,
    from: usize,
    caller: u64,
    for_kill: bool,
) -> Result<Filter, errors::Error> {
    let mut filter = Filter {
        skip: for_kill.then_some(caller),
        ..Filter::default()
    };
    let mut i = from;
    while i < args.len() {
        let opt = args.get(i).to_ascii_uppercase();
        let Some(value) = (i + 1 < args.len()).then(|| args.get(i + 1)) else {
            return Err(errors::SYNTAX.into());
        };
        let text = String::from_utf8_lossy(value).into_owned();
        match opt.as_slice() {
            b"ID" if !for_kill => {
                for id in args.tail(i + 1).iter() {
                    let n = errors::int_arg(id)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("ERR Invalid client ID")?;
                    filter.ids.push(n as u64);
                }
                return Ok(filter);
            }
            b"ID" => filter.ids.push(
                errors::int_arg(value)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("ERR client-id should be greater than 0")? as u64,
            ),
            b"TYPE" => {
                filter.type_normal = match text.to_ascii_lowercase().as_str() {
                    "normal" => Some(true),
                    "master" | "replica" | "slave" | "pubsub" => Some(false),
                    _ => return Err(format!("ERR Unknown client type '{text}'").into()),
                }
            }
            b"ADDR" if for_kill => filter.addr = Some(text),
            b"LADDR" if for_kill => filter.laddr = Some(text),
            b"USER" if for_kill => filter.user = Some(text),
            b"MAXAGE" if for_kill => filter.max_age = Some(errors::int_arg(value)?.max(0) as u64),
            b"SKIPME" if for_kill => match text.to_ascii_lowercase().as_str() {
                "yes" => filter.skip = Some(caller),
                "no" => filter.skip = None,
                _ => return Err(errors::SYNTAX.into()),
            },
            _ => return Err(errors::SYNTAX.into()),
        }
        i += 2;
    }
    Ok(filter)
}

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME, TYPE, MAXAGE.",
    "LIST [options ...]",
    "    Return information about client connections. Options: TYPE, ID.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "NO-EVICT (ON|OFF)",
    "    Protect the current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Print this help.",
];

pub fn run(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let sub = args.get(1).to_ascii_uppercase();
    let argc = args.len();
    let arity_ok = match sub.as_slice() {
        b"ID" | b"GETNAME" | b"INFO" | b"HELP" => argc == 2,
        b"SETNAME" | b"NO-EVICT" | b"NO-TOUCH" => argc == 3,
        b"SETINFO" => argc == 4,
        b"KILL" => argc >= 3,
        b"LIST" => argc >= 2,
        _ => {
            reply(conn, |w| {
                w.error(&errors::unknown_subcommand(args.get(1), "client"))
            });
            return Flow::Next;
        }
    };
    if !arity_ok {
        let name = format!(
            "client|{}",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        );
        reply(conn, |w| w.error(&errors::wrong_arity(&name)));
        return Flow::Next;
    }
    match sub.as_slice() {
        b"ID" => {
            let id = conn.id as i64;
            reply(conn, |w| w.int(id));
        }
        b"GETNAME" => {
            let name = conn.name.clone();
            reply(conn, |w| match &name {
                Some(n) => w.bulk(n),
                None => w.null(),
            });
        }
        b"SETNAME" => {
            let name = args.get(2);
            if !valid_client_text(name) {
                reply(conn, |w| {
                    w.error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    )
                });
            } else {
                conn.name = (!name.is_empty()).then(|| name.to_vec());
                reply(conn, |w| w.ok());
            }
        }
        b"SETINFO" => {
            let attr = args.get(2).to_ascii_uppercase();
            let value = args.get(3);
            let field = match attr.as_slice() {
                b"LIB-NAME" => "lib-name",
                b"LIB-VER" => "lib-ver",
                _ => {
                    let text = format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(args.get(2))
                    );
                    reply(conn, |w| w.error(&text));
                    return Flow::Next;
                }
            };
            if !valid_client_text(value) {
                let text =
                    format!("ERR {field} cannot contain spaces, newlines or special characters.");
                reply(conn, |w| w.error(&text));
                return Flow::Next;
            }
            let stored = (!value.is_empty()).then(|| value.to_vec());
            if field == "lib-name" {
                conn.lib_name = stored;
            } else {
                conn.lib_ver = stored;
            }
            reply(conn, |w| w.ok());
        }
        b"NO-EVICT" | b"NO-TOUCH" => {
            let mode = args.get(2);
            if mode.eq_ignore_ascii_case(b"ON") || mode.eq_ignore_ascii_case(b"OFF") {
                reply(conn, |w| w.ok());
            } else {
                reply(conn, |w| w.error(errors::SYNTAX));
            }
        }
        b"INFO" => {
            let line = describe(conn, core.now);
            reply(conn, |w| w.verbatim(line.as_bytes()));
        }
        b"HELP" => reply_lines(conn, HELP),
        b"LIST" => {
            let filter = match parse_filter(args, 2, conn.id, false) {
                Ok(f) => f,
                Err(e) => {
                    reply(conn, |w| w.error(&e));
                    return Flow::Next;
                }
            };
            return list(core, conn, idx, filter);
        }
        _ => return kill(core, conn, idx, args),
    }
    Flow::Next
}

fn list(core: &mut Core, conn: &mut Conn, idx: usize, filter: Filter) -> Flow {
    let resp3 = conn.resp3;
    run_multi(core, conn, idx, move |core| {
        on_every_core(
            core,
            || {
                let filter = filter.clone();
                work(move |core| {
                    let now = core.now;
                    core.conns
                        .iter()
                        .flatten()
                        .filter(|c| filter.matches(c, now))
                        .map(|c| (c.id, describe(c, now)))
                        .collect::<Vec<_>>()
                })
            },
            move |results| {
                let mut lines: Vec<(u64, String)> = results
                    .into_iter()
                    .filter_map(|r| r.downcast::<Vec<(u64, String)>>().ok())
                    .flat_map(|v| *v)
                    .collect();
                lines.sort_by_key(|(id, _)| *id);
                let text: String = lines.into_iter().map(|(_, l)| l).collect();
                reply_with(resp3, |w| w.verbatim(text.as_bytes()))
            },
        )
    })
}

fn kill(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let legacy = args.len() == 3;
    let filter = if legacy {
        Filter {
            addr: Some(String::from_utf8_lossy(args.get(2)).into_owned()),
            ..Filter::default()
        }
    } else {
        match parse_filter(args, 2, conn.id, true) {
            Ok(f) => f,
            Err(e) => {
                reply(conn, |w| w.error(&e));
                return Flow::Next;
            }
        }
    };
    let (caller, resp3) = (conn.id, conn.resp3);
    run_multi(core, conn, idx, move |core| {
        on_every_core(
            core,
            || {
                let filter = filter.clone();
                work(move |core| {
                    let now = core.now;
                    let matched: Vec<(usize, u64)> = core
                        .conns
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| {
                            c.as_ref()
                                .filter(|c| filter.matches(c, now))
                                .map(|c| (i, c.id))
                        })
                        .collect();
                    for &(i, id) in &matched {
                        if id == caller {
                            // The caller gets its reply first, then goes.
                            if let Some(c) = core.conns[i].as_mut() {
                                c.close_after_reply = true;
                            }
                        } else {
                            core.close_connection(i);
                        }
                    }
                    matched.len()
                })
            },
            move |results| {
                let killed: usize = results
                    .into_iter()
                    .filter_map(|r| r.downcast::<usize>().ok())
                    .map(|n| *n)
                    .sum();
                if legacy {
                    reply_with(resp3, |w| {
                        if killed > 0 {
                            w.ok()
                        } else {
                            w.error("ERR No such client")
                        }
                    })
                } else {
                    reply_with(resp3, |w| w.int(killed as i64))
                }
            },
        )
    })
}
