//! COMMAND: the command table as Redis 7 describes it (COUNT, INFO, DOCS, LIST, GETKEYS),
//! straight from `tessera_protocol::command`.

use crate::conn::Conn;
use crate::dispatch::{reply, reply_lines};
use tessera_protocol::command::{flags, lookup, COMMANDS};
use tessera_protocol::{Args, CommandSpec, ReplyWriter};
use tessera_storage::errors;

fn write_info(w: &mut ReplyWriter, spec: &CommandSpec) {
    w.array(10);
    w.bulk(spec.name.as_bytes());
    w.int(spec.arity as i64);
    let names: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, n)| *n)
        .collect();
    w.set(names.len());
    names.iter().for_each(|n| w.simple(n));
    w.int(spec.first_key as i64);
    w.int(spec.last_key as i64);
    w.int(spec.step as i64);
    let categories = spec.acl_categories();
    w.set(categories.len());
    categories.iter().for_each(|c| w.simple(c));
    w.array(0);
    w.array(0);
    w.array(0);
}

fn write_docs(w: &mut ReplyWriter, spec: &CommandSpec) {
    w.bulk(spec.name.as_bytes());
    w.map(3);
    w.bulk(b"summary");
    w.bulk(spec.summary.as_bytes());
    w.bulk(b"since");
    w.bulk(spec.since.as_bytes());
    w.bulk(b"group");
    w.bulk(spec.group.as_bytes());
}

pub fn command(conn: &mut Conn, args: Args) {
    if args.len() == 1 {
        return reply(conn, |w| {
            w.array(COMMANDS.len());
            COMMANDS.iter().for_each(|spec| write_info(w, spec));
        });
    }
    let sub = args.get(1).to_ascii_uppercase();
    match sub.as_slice() {
        b"COUNT" if args.len() == 2 => reply(conn, |w| w.int(COMMANDS.len() as i64)),
        b"LIST" => reply(conn, |w| {
            w.array(COMMANDS.len());
            COMMANDS
                .iter()
                .for_each(|spec| w.bulk(spec.name.as_bytes()));
        }),
        b"INFO" => reply(conn, |w| {
            if args.len() == 2 {
                w.array(COMMANDS.len());
                COMMANDS.iter().for_each(|spec| write_info(w, spec));
                return;
            }
            w.array(args.len() - 2);
            for name in args.tail(2).iter() {
                match lookup(name) {
                    Some(spec) => write_info(w, spec),
                    None => w.null(),
                }
            }
        }),
        b"DOCS" => reply(conn, |w| {
            let specs: Vec<&CommandSpec> = if args.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                args.tail(2).iter().filter_map(lookup).collect()
            };
            w.map(specs.len());
            specs.into_iter().for_each(|spec| write_docs(w, spec));
        }),
        b"GETKEYS" if args.len() >= 4 => {
            let inner = args.tail(2);
            let result = match lookup(inner.get(0)) {
                None => Err("ERR Invalid command specified".to_string()),
                Some(spec) if !spec.arity_ok(inner.len()) => {
                    Err("ERR Invalid number of arguments specified for command".into())
                }
                Some(spec) => {
                    let keys: Vec<&[u8]> = spec.keys_in(&inner).map(|p| inner.get(p)).collect();
                    if keys.is_empty() {
                        Err("ERR The command has no key arguments".into())
                    } else {
                        Ok(keys)
                    }
                }
            };
            reply(conn, |w| match result {
                Ok(keys) => {
                    w.array(keys.len());
                    keys.iter().for_each(|k| w.bulk(k));
                }
                Err(e) => w.error(&e),
            });
        }
        b"HELP" if args.len() == 2 => {
            let lines = [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
                "HELP",
                "    Print this help.",
            ];
            reply_lines(conn, &lines);
        }
        b"COUNT" | b"GETKEYS" | b"HELP" => {
            let name = format!(
                "command|{}",
                String::from_utf8_lossy(&sub).to_ascii_lowercase()
            );
            reply(conn, |w| w.error(&errors::wrong_arity(&name)));
        }
        _ => reply(conn, |w| {
            w.error(&errors::unknown_subcommand(args.get(1), "command"))
        }),
    }
}
