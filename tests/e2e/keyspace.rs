use crate::harness::Server;
use redis::{cmd, Commands};
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[test]
fn expiry_passive_and_active() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(50)
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let gone: Option<String> = con.get("short").unwrap();
    assert_eq!(gone, None, "passive expiry on access");
    for i in 0..2000 {
        let _: () = cmd("SET")
            .arg(format!("vol:{i}"))
            .arg("v")
            .arg("PX")
            .arg(100)
            .query(&mut con)
            .unwrap();
    }
    let _: () = con.set("keep", "v").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size: usize = cmd("DBSIZE").query(&mut con).unwrap();
        if size == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "active expiry left {size} keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info: String = cmd("INFO").arg("stats").query(&mut con).unwrap();
    let expired: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(expired >= 2001, "{expired}");
}

#[test]
fn expire_conditions_and_ttls() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = con.set("k", "v").unwrap();
    assert_eq!(cmd("TTL").arg("k").query::<i64>(&mut con).unwrap(), -1);
    assert_eq!(cmd("TTL").arg("none").query::<i64>(&mut con).unwrap(), -2);
    assert_eq!(
        cmd("EXPIRE")
            .arg("k")
            .arg(100)
            .arg("XX")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        cmd("EXPIRE")
            .arg("k")
            .arg(100)
            .arg("NX")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    assert_eq!(
        cmd("EXPIRE")
            .arg("k")
            .arg(50)
            .arg("GT")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        cmd("EXPIRE")
            .arg("k")
            .arg(50)
            .arg("LT")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    let at: i64 = cmd("EXPIRETIME").arg("k").query(&mut con).unwrap();
    let pat: i64 = cmd("PEXPIRETIME").arg("k").query(&mut con).unwrap();
    assert_eq!(at, (pat + 500) / 1000, "EXPIRETIME rounds as Redis does");
    assert_eq!(cmd("PERSIST").arg("k").query::<i64>(&mut con).unwrap(), 1);
    let err = cmd("EXPIRE")
        .arg("k")
        .arg(1)
        .arg("NX")
        .arg("XX")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert_eq!(
        err.detail(),
        Some("NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        cmd("EXPIRE")
            .arg("k")
            .arg(-1)
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    assert_eq!(
        cmd("EXISTS").arg("k").query::<i64>(&mut con).unwrap(),
        0,
        "negative TTL deletes"
    );
}

#[test]
fn databases_are_separate() {
    let server = Server::start(2, &["--databases", "4"]);
    let mut con = server.conn();
    let _: () = con.set("k", "zero").unwrap();
    let _: () = cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
    let err = cmd("SELECT").arg(4).query::<()>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("DB index is out of range"));
    let _: () = cmd("SELECT").arg(0).query(&mut con).unwrap();
    assert_eq!(
        cmd("COPY")
            .arg("k")
            .arg("k")
            .arg("DB")
            .arg(3)
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    let _: () = cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "zero");
}

#[test]
fn scan_visits_every_key_across_cores() {
    let server = Server::start(3, &[]);
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    let mut calls = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query(&mut con)
            .unwrap();
        seen.extend(keys);
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 3000);
    assert!(calls > 10, "COUNT bounds each call's work: {calls} calls");
    let (_, matched): (u64, Vec<String>) = cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("key:1?")
        .arg("COUNT")
        .arg(100000)
        .query(&mut con)
        .unwrap();
    assert_eq!(matched.len(), 10);
    let keys: Vec<String> = cmd("KEYS").arg("key:2??").query(&mut con).unwrap();
    assert_eq!(keys.len(), 100);
    assert_eq!(cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 3000);
    let random: String = cmd("RANDOMKEY").query(&mut con).unwrap();
    assert!(random.starts_with("key:"));
    let _: () = cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    assert_eq!(cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
    assert_eq!(
        cmd("RANDOMKEY").query::<Option<String>>(&mut con).unwrap(),
        None
    );
}

#[test]
fn info_config_and_client_commands() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = con.set("a", "1").unwrap();
    let info: String = cmd("INFO").query(&mut con).unwrap();
    assert!(info.contains(&format!("tcp_port:{}", server.port)));
    assert!(info.contains(&format!("process_id:{}", server.pid())));
    assert!(info.contains("db0:keys=1,expires=0"));
    let cfg: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut con)
        .unwrap();
    assert_eq!(cfg, vec!["maxclients".to_string(), "10000".into()]);
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("timeout")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let cfg: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("timeout")
        .query(&mut con)
        .unwrap();
    assert_eq!(cfg[1], "100");
    let _: () = cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query(&mut con)
        .unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.contains("name=tester"), "{list}");
    let count: i64 = cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    assert!(count > 50);
    let mut other = server.conn();
    let other_id: i64 = cmd("CLIENT").arg("ID").query(&mut other).unwrap();
    let killed: i64 = cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(other_id)
        .query(&mut con)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(
        cmd("PING").query::<String>(&mut other).is_err(),
        "killed connection is closed"
    );
}
