//! Commands whose keys live on different cores must behave as on a single-threaded Redis.

use crate::harness::Server;
use redis::{cmd, Commands};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Keys without hash tags: they hash to slots spread over every core.
fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("atom:{i}")).collect()
}

#[test]
fn mset_is_all_or_nothing_to_concurrent_readers() {
    let server = Server::start(2, &[]);
    let names = keys(20);
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let client = server.client();
        let names = names.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut con = client.get_connection().unwrap();
            let mut checked = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for _ in 0..8 {
                    pipe.mget(&names);
                }
                let replies: Vec<Vec<Option<i64>>> = pipe.query(&mut con).unwrap();
                for values in replies {
                    let first = values[0];
                    assert!(values.iter().all(|v| *v == first), "torn MGET: {values:?}");
                    checked += 1;
                }
            }
            checked
        }));
    }
    // Two writers racing each other and the readers; each MSET is pipelined in bursts so
    // the cores see many interleavings.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let client = server.client();
            let names = names.clone();
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
                let mut round = 0;
                while std::time::Instant::now() < deadline {
                    round += 1;
                    let mut pipe = redis::pipe();
                    for burst in 0..4 {
                        let value = (round * 8 + burst * 2 + w) as i64;
                        let pairs: Vec<(String, i64)> =
                            names.iter().map(|k| (k.clone(), value)).collect();
                        pipe.mset(&pairs).ignore();
                    }
                    let _: () = pipe.query(&mut con).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let mut con = server.conn();
    let values: Vec<i64> = con.mget(&names).unwrap();
    assert!(values.iter().all(|v| *v == values[0]));
}

#[test]
fn multi_key_commands_across_cores() {
    let server = Server::start(4, &[]);
    let mut con = server.conn();
    let names = keys(10);
    let pairs: Vec<(String, String)> = names
        .iter()
        .map(|k| (k.clone(), format!("v-{k}")))
        .collect();
    let _: () = con.mset(&pairs).unwrap();
    let mut exists = cmd("EXISTS");
    exists.arg(&names).arg(&names[0]).arg("absent");
    assert_eq!(exists.query::<i64>(&mut con).unwrap(), 11, "repeats count");
    assert_eq!(
        cmd("MSETNX")
            .arg("fresh1")
            .arg(1)
            .arg(&names[3])
            .arg(2)
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        con.get::<_, Option<String>>("fresh1").unwrap(),
        None,
        "MSETNX set nothing"
    );
    assert_eq!(
        cmd("MSETNX")
            .arg("fresh1")
            .arg(1)
            .arg("fresh2")
            .arg(2)
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    let _: () = cmd("PEXPIRE")
        .arg(&names[0])
        .arg(100000)
        .query(&mut con)
        .unwrap();
    let _: () = cmd("RENAME")
        .arg(&names[0])
        .arg("renamed-far-away")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        con.get::<_, String>("renamed-far-away").unwrap(),
        format!("v-{}", names[0])
    );
    assert!(
        cmd("PTTL")
            .arg("renamed-far-away")
            .query::<i64>(&mut con)
            .unwrap()
            > 0,
        "TTL carried"
    );
    let err = cmd("RENAME")
        .arg(&names[0])
        .arg("x")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(err.detail(), Some("no such key"));
    assert_eq!(
        cmd("RENAMENX")
            .arg(&names[1])
            .arg(&names[2])
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        cmd("COPY")
            .arg(&names[1])
            .arg("copy-target")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    assert_eq!(
        cmd("COPY")
            .arg(&names[1])
            .arg("copy-target")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        cmd("COPY")
            .arg(&names[2])
            .arg("copy-target")
            .arg("REPLACE")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    assert_eq!(
        con.get::<_, String>("copy-target").unwrap(),
        format!("v-{}", names[2])
    );
    let mut del = cmd("DEL");
    del.arg(&names[1..]).arg("absent");
    assert_eq!(del.query::<i64>(&mut con).unwrap(), 9);
}

#[test]
fn pipelines_keep_request_order_across_cores() {
    let server = Server::start(4, &[]);
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        let key = format!("p:{}", i % 37);
        pipe.cmd("SET").arg(&key).arg(i);
        pipe.cmd("GET").arg(&key);
        if i % 50 == 0 {
            pipe.cmd("MGET").arg("p:1").arg("p:2").arg("p:3");
            pipe.cmd("PING");
        }
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
    let mut i = 0;
    for n in 0..500 {
        assert_eq!(replies[i], redis::Value::Okay);
        assert_eq!(redis::from_redis_value::<i64>(&replies[i + 1]).unwrap(), n);
        i += 2;
        if n % 50 == 0 {
            assert!(matches!(replies[i], redis::Value::Array(_)));
            i += 2;
        }
    }
}

#[test]
fn errors_found_before_any_core_is_asked_still_reply() {
    // With four cores most of these pairs span two; their errors are decided by the
    // coordinator at once and must still reach the client.
    let server = Server::start(4, &[]);
    let mut con = server.conn();
    for i in 0..20 {
        let err = cmd("COPY")
            .arg(format!("src:{i}"))
            .arg(format!("dst:{i}"))
            .arg("BOGUS")
            .query::<i64>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{err:?}");
        let err = cmd("MSET")
            .arg(format!("src:{i}"))
            .arg(1)
            .arg(format!("dst:{i}"))
            .query::<()>(&mut con)
            .unwrap_err();
        assert!(
            err.to_string().contains("wrong number of arguments"),
            "{err:?}"
        );
    }
    assert_eq!(cmd("PING").query::<String>(&mut con).unwrap(), "PONG");
}
