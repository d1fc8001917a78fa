//! Pub/Sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs, PUBLISH, SPUBLISH and
//! PUBSUB.
//!
//! A subscription lives on the core of the subscribing connection, so subscribing never
//! crosses cores; PUBLISH visits every core, and each core writes the message straight into
//! its subscribers' output buffers (out of band: a RESP3 push, or the RESP2 message array a
//! subscribed connection expects). A subscriber that does not read is cut off by the
//! `client-output-buffer-limit pubsub` limits, never buffered without bound.

use crate::conn::Conn;
use crate::core::{Core, Work};
use crate::dispatch::{reply, run_multi, Flow};
use crate::multi;
use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use tessera_protocol::{Args, Cmd, ReplyWriter};
use tessera_storage::glob;
use tessera_storage::notify::{self, Event};

/// The three namespaces: channels, patterns, and shard channels (SSUBSCRIBE).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Space {
    Channel,
    Pattern,
    Shard,
}

impl Space {
    fn index(self) -> usize {
        self as usize
    }
}

/// A connection by its table index and id (an index is reused once its connection closes).
type Subscriber = (usize, u64);

/// One core's subscriptions.
#[derive(Default)]
pub struct Registry {
    spaces: [HashMap<Vec<u8>, Vec<Subscriber>>; 3],
}

/// What one connection is subscribed to.
#[derive(Default)]
pub struct Subscriptions {
    names: [BTreeSet<Vec<u8>>; 3],
}

impl Subscriptions {
    /// Whether the connection is in subscribed mode (RESP2 then limits its commands).
    pub fn active(&self) -> bool {
        self.names.iter().any(|n| !n.is_empty())
    }

    /// The count Redis reports in (un)subscribe replies: channels and patterns together,
    /// shard channels on their own.
    fn count(&self, space: Space) -> usize {
        match space {
            Space::Shard => self.names[2].len(),
            _ => self.names[0].len() + self.names[1].len(),
        }
    }
}

impl Registry {
    fn add(&mut self, space: Space, name: &[u8], who: Subscriber) {
        self.spaces[space.index()]
            .entry(name.to_vec())
            .or_default()
            .push(who);
    }

    fn remove(&mut self, space: Space, name: &[u8], who: Subscriber) {
        let map = &mut self.spaces[space.index()];
        if let Some(list) = map.get_mut(name) {
            list.retain(|s| *s != who);
            if list.is_empty() {
                map.remove(name);
            }
        }
    }
}

fn space_of(cmd: Cmd) -> Space {
    match cmd {
        Cmd::PSubscribe | Cmd::PUnsubscribe => Space::Pattern,
        Cmd::SSubscribe | Cmd::SUnsubscribe | Cmd::SPublish => Space::Shard,
        _ => Space::Channel,
    }
}

/// The commands a RESP2 connection in subscribed mode may still send.
pub fn allowed_while_subscribed(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Subscribe
            | Cmd::PSubscribe
            | Cmd::SSubscribe
            | Cmd::Unsubscribe
            | Cmd::PUnsubscribe
            | Cmd::SUnsubscribe
            | Cmd::Ping
            | Cmd::Quit
            | Cmd::Reset
    )
}

/// One (un)subscribe confirmation: `[kind, name, count]` as a push.
fn confirm(conn: &mut Conn, kind: &str, name: Option<&[u8]>, count: usize) {
    reply(conn, |w| {
        w.push(3);
        w.bulk(kind.as_bytes());
        match name {
            Some(n) => w.bulk(n),
            None => w.null(),
        }
        w.int(count as i64);
    });
}

pub fn run(core: &mut Core, conn: &mut Conn, idx: usize, cmd: Cmd, args: Args) -> Flow {
    let space = space_of(cmd);
    let who = (idx, conn.id);
    match cmd {
        Cmd::Subscribe | Cmd::PSubscribe | Cmd::SSubscribe => {
            let kind = match space {
                Space::Channel => "subscribe",
                Space::Pattern => "psubscribe",
                Space::Shard => "ssubscribe",
            };
            for name in args.tail(1).iter() {
                if conn.subscriptions.names[space.index()].insert(name.to_vec()) {
                    core.pubsub.add(space, name, who);
                }
                let count = conn.subscriptions.count(space);
                confirm(conn, kind, Some(name), count);
            }
            Flow::Next
        }
        Cmd::Unsubscribe | Cmd::PUnsubscribe | Cmd::SUnsubscribe => {
            let kind = match space {
                Space::Channel => "unsubscribe",
                Space::Pattern => "punsubscribe",
                Space::Shard => "sunsubscribe",
            };
            let names: Vec<Vec<u8>> = if args.len() > 1 {
                args.tail(1).iter().map(<[u8]>::to_vec).collect()
            } else {
                conn.subscriptions.names[space.index()]
                    .iter()
                    .cloned()
                    .collect()
            };
            if names.is_empty() {
                let count = conn.subscriptions.count(space);
                confirm(conn, kind, None, count);
            }
            for name in names {
                if conn.subscriptions.names[space.index()].remove(&name) {
                    core.pubsub.remove(space, &name, who);
                }
                let count = conn.subscriptions.count(space);
                confirm(conn, kind, Some(&name), count);
            }
            Flow::Next
        }
        Cmd::Publish | Cmd::SPublish => publish(core, conn, idx, space, args),
        _ => introspect(core, conn, idx, args),
    }
}

/// Drops every subscription of a connection (it closes, or RESET).
pub fn forget(core: &mut Core, conn: &mut Conn, idx: usize) {
    let who = (idx, conn.id);
    for space in [Space::Channel, Space::Pattern, Space::Shard] {
        for name in std::mem::take(&mut conn.subscriptions.names[space.index()]) {
            core.pubsub.remove(space, &name, who);
        }
    }
}

fn publish(core: &mut Core, conn: &mut Conn, idx: usize, space: Space, args: Args) -> Flow {
    let (channel, message) = (args.get(1).to_vec(), args.get(2).to_vec());
    let resp3 = conn.resp3;
    run_multi(core, conn, idx, |core| {
        multi::on_every_core(
            core,
            || deliver_on_core(space, channel.clone(), message.clone()),
            move |results| {
                let receivers: i64 = results
                    .into_iter()
                    .map(|r| r.downcast::<i64>().map_or(0, |n| *n))
                    .sum();
                multi::reply_with(resp3, |w| w.int(receivers))
            },
        )
    })
}

/// Publishes keyspace notifications: each event to `__keyspace@<db>__:<key>` and
/// `__keyevent@<db>__:<event>` as the enabled classes say, delivered by every core.
pub fn announce(core: &mut Core, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let flags = core.store.notify_flags();
    for Event { db, event, key } in events {
        let mut messages = Vec::with_capacity(2);
        if flags & notify::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(&key);
            messages.push((channel, event.as_bytes().to_vec()));
        }
        if flags & notify::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}").into_bytes();
            messages.push((channel, key.to_vec()));
        }
        for (channel, message) in messages {
            for to in 0..core.shared.cores {
                let work = deliver_on_core(Space::Channel, channel.clone(), message.clone());
                core.call_and_forget(to, work);
            }
        }
    }
}

/// Writes `message` to every subscriber on this core; yields how many received it.
fn deliver_on_core(space: Space, channel: Vec<u8>, message: Vec<u8>) -> Work {
    Box::new(move |core: &mut Core| {
        let mut targets: Vec<(Subscriber, Option<Vec<u8>>)> = Vec::new();
        let exact = match space {
            Space::Shard => Space::Shard,
            _ => Space::Channel,
        };
        if let Some(list) = core.pubsub.spaces[exact.index()].get(&channel) {
            targets.extend(list.iter().map(|&s| (s, None)));
        }
        if space == Space::Channel {
            for (pattern, list) in &core.pubsub.spaces[Space::Pattern.index()] {
                if glob::matches(pattern, &channel) {
                    targets.extend(list.iter().map(|&s| (s, Some(pattern.clone()))));
                }
            }
        }
        let mut delivered = 0i64;
        for ((idx, id), pattern) in targets {
            let Some(conn) = core.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if conn.id != id {
                continue;
            }
            let mut w = ReplyWriter::new(&mut conn.wbuf, conn.resp3);
            match (&pattern, space) {
                (Some(p), _) => {
                    w.push(4);
                    w.bulk(b"pmessage");
                    w.bulk(p);
                }
                (None, Space::Shard) => {
                    w.push(3);
                    w.bulk(b"smessage");
                }
                (None, _) => {
                    w.push(3);
                    w.bulk(b"message");
                }
            }
            w.bulk(&channel);
            w.bulk(&message);
            delivered += 1;
            core.mark_dirty(idx);
        }
        Box::new(delivered) as Box<dyn Any + Send>
    })
}

/// PUBSUB CHANNELS [pattern], NUMSUB [channel ...], NUMPAT, SHARDCHANNELS [pattern],
/// SHARDNUMSUB [channel ...]: gathered from every core.
fn introspect(core: &mut Core, conn: &mut Conn, idx: usize, args: Args) -> Flow {
    let sub = args.get(1).to_ascii_uppercase();
    let resp3 = conn.resp3;
    let (space, counting) = match sub.as_slice() {
        b"CHANNELS" if args.len() <= 3 => (Space::Channel, false),
        b"SHARDCHANNELS" if args.len() <= 3 => (Space::Shard, false),
        b"NUMSUB" => (Space::Channel, true),
        b"SHARDNUMSUB" => (Space::Shard, true),
        b"NUMPAT" if args.len() == 2 => (Space::Pattern, false),
        b"HELP" => {
            crate::dispatch::reply_lines(
                conn,
                &[
                    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "CHANNELS [<pattern>]",
                    "NUMPAT",
                    "NUMSUB [<channel> ...]",
                    "SHARDCHANNELS [<pattern>]",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "HELP",
                ],
            );
            return Flow::Next;
        }
        _ => {
            let text = tessera_storage::errors::unknown_subcommand(args.get(1), "pubsub");
            reply(conn, |w| w.error(&text));
            return Flow::Next;
        }
    };
    let names: Vec<Vec<u8>> = args.tail(2).iter().map(<[u8]>::to_vec).collect();
    run_multi(core, conn, idx, move |core| {
        let work = move || -> Work {
            Box::new(move |core: &mut Core| {
                let counts: Vec<(Vec<u8>, usize)> = core.pubsub.spaces[space.index()]
                    .iter()
                    .map(|(name, list)| (name.clone(), list.len()))
                    .collect();
                Box::new(counts) as Box<dyn Any + Send>
            })
        };
        multi::on_every_core(core, work, move |results| {
            let mut totals: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in results {
                let counts = r
                    .downcast::<Vec<(Vec<u8>, usize)>>()
                    .map(|c| *c)
                    .unwrap_or_default();
                for (name, n) in counts {
                    *totals.entry(name).or_default() += n;
                }
            }
            multi::reply_with(resp3, |w| {
                if counting {
                    w.array(names.len() * 2);
                    for name in &names {
                        w.bulk(name);
                        w.int(totals.get(name).copied().unwrap_or(0) as i64);
                    }
                } else if space == Space::Pattern {
                    w.int(totals.len() as i64);
                } else {
                    let pattern = names.first();
                    let mut matching: Vec<&Vec<u8>> = totals
                        .keys()
                        .filter(|n| pattern.is_none_or(|p| glob::matches(p, n)))
                        .collect();
                    matching.sort();
                    w.array(matching.len());
                    matching.into_iter().for_each(|n| w.bulk(n));
                }
            })
        })
    })
}
