//! The one dispatch path: look the command up in the table, check its arity, then send it
//! where its keys live — this core's store, another core's, or a coordinated multi-core run —
//! or to the connection/server commands in `admin`.

use crate::admin;
use crate::conn::Conn;
use crate::core::Core;
use crate::multi;
use crate::pubsub;
use crate::transaction;
use std::borrow::Cow;
use tessera_protocol::command::lookup;
use tessera_protocol::{key_slot, Args, Cmd, CommandSpec, ReplyWriter};

/// What the connection's request loop does after a request.
pub enum Flow {
    /// Go on with the next request.
    Next,
    /// The request is under way on other cores; stop until its reply arrives.
    Wait,
    /// The request was not run (it must wait for earlier replies); run it again later.
    Retry,
}

/// Writes one reply into the connection's current output.
pub fn reply(conn: &mut Conn, write: impl FnOnce(&mut ReplyWriter)) {
    let start = conn.out_len();
    let resp3 = conn.resp3;
    write(&mut ReplyWriter::new(conn.out(), resp3));
    conn.commit(start);
}

/// A HELP reply: one simple string per line.
pub fn reply_lines(conn: &mut Conn, lines: &[&str]) {
    reply(conn, |w| {
        w.array(lines.len());
        lines.iter().for_each(|l| w.simple(l));
    });
}

fn unknown_command(args: Args) -> String {
    let mut listed = String::new();
    for arg in args.tail(1).iter() {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(arg);
        let shown: String = text.chars().take(room).collect();
        listed.push_str(&format!("'{shown}' "));
    }
    let name = String::from_utf8_lossy(args.get(0));
    let name: String = name.chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {listed}")
}

/// The name CLIENT LIST shows: a container command with its subcommand, as `client|info`.
fn full_name(spec: &'static CommandSpec, args: &Args) -> Cow<'static, str> {
    let container = matches!(
        spec.cmd,
        Cmd::Client | Cmd::Config | Cmd::Command | Cmd::Memory | Cmd::Object | Cmd::PubSub
    );
    let sub = if args.len() > 1 { args.get(1) } else { &[] };
    if container && !sub.is_empty() && sub.len() <= 32 && sub.iter().all(u8::is_ascii_alphabetic) {
        let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
        Cow::Owned(format!("{}|{sub}", spec.name))
    } else {
        Cow::Borrowed(spec.name)
    }
}

/// Whether the storage layer runs this command (it reads or writes keys).
fn is_storage_command(spec: &CommandSpec, args: &Args) -> bool {
    match spec.cmd {
        Cmd::Keys | Cmd::Scan | Cmd::RandomKey | Cmd::DbSize | Cmd::FlushDb | Cmd::FlushAll => {
            false
        }
        Cmd::Memory => args.get(1).eq_ignore_ascii_case(b"USAGE"),
        _ => matches!(
            spec.group,
            "string"
                | "generic"
                | "hash"
                | "list"
                | "set"
                | "bitmap"
                | "hyperloglog"
                | "sorted-set"
                | "stream"
        ),
    }
}

pub fn dispatch(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let Some(spec) = lookup(args.get(0)) else {
        transaction::abort(conn);
        reply(conn, |w| w.error(&unknown_command(args)));
        return Flow::Next;
    };
    if !spec.arity_ok(args.len()) {
        transaction::abort(conn);
        reply(conn, |w| {
            w.error(&format!(
                "ERR wrong number of arguments for '{}' command",
                spec.name
            ))
        });
        return Flow::Next;
    }
    if !conn.authenticated
        && !core.config.requirepass.is_empty()
        && !matches!(spec.cmd, Cmd::Auth | Cmd::Hello | Cmd::Quit | Cmd::Reset)
    {
        reply(conn, |w| w.error("NOAUTH Authentication required."));
        return Flow::Next;
    }
    conn.last_cmd = full_name(spec, &args);
    core.stats.commands += 1;
    let storage = is_storage_command(spec, &args);
    let controls_transaction = matches!(
        spec.cmd,
        Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit | Cmd::Reset
    );
    if !conn.resp3 && conn.subscriptions.active() && !pubsub::allowed_while_subscribed(spec.cmd) {
        reply(conn, |w| {
            w.error(&format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", spec.name))
        });
        return Flow::Next;
    }
    if conn.tx.is_some() && !controls_transaction {
        return transaction::queue(conn, spec, args, storage);
    }
    if let Some(flow) = crate::cluster::route(core, conn, idx, spec, args) {
        return flow;
    }
    if !storage {
        return admin::run(core, conn, idx, spec, args);
    }
    if crate::blocking::is_blocking(spec, args) {
        return crate::blocking::start(core, conn, idx, spec, args);
    }
    if multi::sorts_by_patterns(core, spec, args) {
        let (db, resp3) = (conn.db, conn.resp3);
        return run_multi(core, conn, idx, |core| {
            multi::sort_by_patterns(core, db, resp3, spec, args)
        });
    }
    let mut owner = None;
    let mut spans_cores = false;
    for pos in spec.keys_in(&args) {
        let o = core.shared.owner(key_slot(args.get(pos)));
        match owner {
            None => owner = Some(o),
            Some(first) if first != o => spans_cores = true,
            _ => {}
        }
    }
    if spans_cores {
        if conn.cycle.is_some() {
            return Flow::Retry;
        }
        let op = multi::for_keys(core, conn.db, conn.resp3, spec, args);
        core.start_multi(conn, idx, op);
        return Flow::Wait;
    }
    match owner {
        Some(o) if o != core.id => core.execute_remote(conn, idx, o, spec, args),
        _ => core.execute_local(conn, spec, args),
    }
    Flow::Next
}

/// Starts a multi-core admin command, unless earlier replies are still outstanding.
pub fn run_multi(
    core: &mut Core,
    conn: &mut Conn,
    idx: usize,
    op: impl FnOnce(&Core) -> multi::MultiOp,
) -> Flow {
    if conn.cycle.is_some() {
        return Flow::Retry;
    }
    let op = op(core);
    core.start_multi(conn, idx, op);
    Flow::Wait
}
