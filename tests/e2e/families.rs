use crate::harness::Server;
use redis::{Commands, Value};
use std::time::{Duration, Instant};

type StreamEntry = (String, Vec<String>);

fn entry_ids(entries: &[StreamEntry]) -> Vec<&str> {
    entries.iter().map(|(id, _)| id.as_str()).collect()
}

fn publish_until(con: &mut redis::Connection, channel: &str, message: &str, receivers: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: i64 = con.publish(channel, message).unwrap();
        if got == receivers {
            return;
        }
        assert!(Instant::now() < deadline, "PUBLISH reached {got} receivers");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn streams_with_a_consumer_group_and_a_crashed_consumer() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    for i in 1..=5 {
        let id: String = redis::cmd("XADD")
            .arg("s")
            .arg(format!("{i}-0"))
            .arg("n")
            .arg(i)
            .query(&mut con)
            .unwrap();
        assert_eq!(id, format!("{i}-0"));
    }
    let created: String = redis::cmd("XGROUP")
        .arg(&["CREATE", "s", "g", "0"])
        .query(&mut con)
        .unwrap();
    assert_eq!(created, "OK");
    let read: Vec<(String, Vec<StreamEntry>)> = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "crashed", "COUNT", "3", "STREAMS", "s", ">"])
        .query(&mut con)
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, "s");
    assert_eq!(entry_ids(&read[0].1), ["1-0", "2-0", "3-0"]);
    assert_eq!(read[0].1[0].1, ["n", "1"]);

    let claimed: Vec<Value> = redis::cmd("XAUTOCLAIM")
        .arg(&["s", "g", "rescuer", "0", "0-0"])
        .query(&mut con)
        .unwrap();
    assert!(claimed.len() >= 2, "XAUTOCLAIM reply: {claimed:?}");
    assert_eq!(
        redis::from_redis_value::<String>(&claimed[0]).unwrap(),
        "0-0"
    );
    let entries: Vec<StreamEntry> = redis::from_redis_value(&claimed[1]).unwrap();
    assert_eq!(entry_ids(&entries), ["1-0", "2-0", "3-0"]);
    assert_eq!(entries[2].1, ["n", "3"]);

    let pending: Vec<(String, String, i64, i64)> = redis::cmd("XPENDING")
        .arg(&["s", "g", "-", "+", "10"])
        .query(&mut con)
        .unwrap();
    let summary: Vec<(&str, &str, i64)> = pending
        .iter()
        .map(|(id, consumer, _, count)| (id.as_str(), consumer.as_str(), *count))
        .collect();
    assert_eq!(
        summary,
        [
            ("1-0", "rescuer", 2),
            ("2-0", "rescuer", 2),
            ("3-0", "rescuer", 2)
        ]
    );

    let acked: i64 = redis::cmd("XACK")
        .arg(&["s", "g", "1-0", "2-0", "3-0"])
        .query(&mut con)
        .unwrap();
    assert_eq!(acked, 3);
    let pending: Vec<Value> = redis::cmd("XPENDING")
        .arg(&["s", "g", "-", "+", "10"])
        .query(&mut con)
        .unwrap();
    assert!(pending.is_empty());
    let len: i64 = redis::cmd("XLEN").arg("s").query(&mut con).unwrap();
    assert_eq!(len, 5);

    let _: () = con.set("plain", "x").unwrap();
    let err = redis::cmd("XADD")
        .arg(&["plain", "*", "f", "v"])
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
}

#[test]
fn bitmaps_and_hyperloglog() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    for bit in [0, 3, 7, 100, 1000] {
        assert!(!con.setbit::<_, bool>("{b}x", bit, true).unwrap());
    }
    for bit in [3, 100, 500] {
        let _: bool = con.setbit("{b}y", bit, true).unwrap();
    }
    assert!(con.setbit::<_, bool>("{b}x", 7, false).unwrap());
    assert!(con.getbit::<_, bool>("{b}x", 1000).unwrap());
    assert!(!con.getbit::<_, bool>("{b}x", 7).unwrap());
    assert!(!con.getbit::<_, bool>("{b}x", 99_999).unwrap());
    assert_eq!(con.bitcount::<_, i64>("{b}x").unwrap(), 4);
    assert_eq!(con.bitcount_range::<_, i64>("{b}x", 0, 0).unwrap(), 2);
    let len: i64 = con.bit_and("{b}and", &["{b}x", "{b}y"]).unwrap();
    assert_eq!(len, 126);
    assert_eq!(con.bitcount::<_, i64>("{b}and").unwrap(), 2);
    assert!(con.getbit::<_, bool>("{b}and", 100).unwrap());
    assert!(!con.getbit::<_, bool>("{b}and", 500).unwrap());

    let first: Vec<String> = (0..1000).map(|i| format!("e{i}")).collect();
    assert!(con.pfadd::<_, _, bool>("hll1", &first).unwrap());
    let count: i64 = con.pfcount("hll1").unwrap();
    assert!((980..=1020).contains(&count), "PFCOUNT {count}");
    assert!(!con.pfadd::<_, _, bool>("hll1", "e5").unwrap());
    let second: Vec<String> = (500..1500).map(|i| format!("e{i}")).collect();
    let _: bool = con.pfadd("hll2", &second).unwrap();
    let _: () = con.pfmerge("merged", &["hll1", "hll2"]).unwrap();
    let union: i64 = con.pfcount("merged").unwrap();
    assert!((1470..=1530).contains(&union), "merged PFCOUNT {union}");
}

#[test]
fn transactions_are_atomic_and_watch_aborts() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let (a, b, c): (i64, i64, String) = redis::pipe()
        .atomic()
        .set("{a}1", 10)
        .ignore()
        .incr("{a}1", 5)
        .incr("b2", 7)
        .set("c3", "v")
        .ignore()
        .get("c3")
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b, c.as_str()), (15, 7, "v"));
    assert_eq!(con.get::<_, i64>("b2").unwrap(), 7);

    let _: () = con.set("watched", "old").unwrap();
    let _: () = redis::cmd("WATCH").arg("watched").query(&mut con).unwrap();
    let mut other = server.conn();
    let _: () = other.set("watched", "changed").unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let queued: String = redis::cmd("SET")
        .arg(&["watched", "mine"])
        .query(&mut con)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let queued: String = redis::cmd("SET")
        .arg(&["side", "effect"])
        .query(&mut con)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let exec: Value = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(exec, Value::Nil);
    assert_eq!(con.get::<_, String>("watched").unwrap(), "changed");
    assert!(!con.exists::<_, bool>("side").unwrap());
}

#[test]
fn pubsub_delivers_to_pattern_and_channel_subscribers() {
    let server = Server::start(2, &[]);
    let mut sub = server.client().get_connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    pubsub.subscribe("news").unwrap();
    pubsub.psubscribe("n*").unwrap();
    let mut con = server.conn();
    publish_until(&mut con, "news", "hello", 2);
    let mut direct = 0;
    let mut patterned = 0;
    for _ in 0..2 {
        let msg = pubsub.get_message().unwrap();
        assert_eq!(msg.get_channel_name(), "news");
        assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
        if msg.from_pattern() {
            assert_eq!(msg.get_pattern::<String>().unwrap(), "n*");
            patterned += 1;
        } else {
            direct += 1;
        }
    }
    assert_eq!((direct, patterned), (1, 1));
    assert_eq!(con.publish::<_, _, i64>("other", "x").unwrap(), 0);
}

#[test]
fn keyspace_notifications_reach_subscribers() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "KEA"])
        .query(&mut con)
        .unwrap();
    let mut sub = server.client().get_connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    pubsub.psubscribe("__keyevent@0__:*").unwrap();
    publish_until(&mut con, "__keyevent@0__:probe", "x", 1);

    let _: usize = con.rpush("list", "a").unwrap();
    let popped: Option<String> = con.lpop("list", None).unwrap();
    assert_eq!(popped.as_deref(), Some("a"));
    let mut events = Vec::new();
    while events.len() < 3 {
        let msg = pubsub.get_message().unwrap();
        if msg.get_channel_name() == "__keyevent@0__:probe" {
            continue;
        }
        assert_eq!(msg.get_pattern::<String>().unwrap(), "__keyevent@0__:*");
        events.push((
            msg.get_channel_name().to_string(),
            msg.get_payload::<String>().unwrap(),
        ));
    }
    let expected =
        ["rpush", "lpop", "del"].map(|e| (format!("__keyevent@0__:{e}"), "list".to_string()));
    assert_eq!(events, expected);
}
