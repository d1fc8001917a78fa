use crate::harness::Server;
use redis::{Commands, Direction};
use std::collections::{HashMap, HashSet};

#[test]
fn hashes_through_the_typed_client() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = con
        .hset_multiple("user:1", &[("name", "ann"), ("age", "41")])
        .unwrap();
    let age: i64 = con.hincr("user:1", "age", 1).unwrap();
    assert_eq!(age, 42);
    let all: HashMap<String, String> = con.hgetall("user:1").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["name"], "ann");
    assert_eq!(all["age"], "42");
    let many: Vec<(String, String)> = (0..300)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    let _: () = con.hset_multiple("big", &many).unwrap();
    assert_eq!(con.hlen::<_, usize>("big").unwrap(), 300);
    let removed: usize = con.hdel("big", &["f1", "f2", "nope"]).unwrap();
    assert_eq!(removed, 2);
    let got: Option<String> = con.hget("big", "f299").unwrap();
    assert_eq!(got.as_deref(), Some("v299"));
    let err = con.get::<_, String>("big").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
}

#[test]
fn lists_and_sets_through_the_typed_client() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    let len: usize = con.rpush("queue", &["a", "b", "c"]).unwrap();
    assert_eq!(len, 3);
    let _: usize = con.lpush("queue", "z").unwrap();
    let all: Vec<String> = con.lrange("queue", 0, -1).unwrap();
    assert_eq!(all, ["z", "a", "b", "c"]);
    let moved: String = con
        .lmove("queue", "done", Direction::Left, Direction::Right)
        .unwrap();
    assert_eq!(moved, "z");
    let popped: Vec<String> = con.rpop("queue", std::num::NonZeroUsize::new(2)).unwrap();
    assert_eq!(popped, ["c", "b"]);
    let added: usize = con.sadd("tags", &["x", "y", "1", "2"]).unwrap();
    assert_eq!(added, 4);
    let members: HashSet<String> = con.smembers("tags").unwrap();
    assert_eq!(members.len(), 4);
    let _: usize = con.sadd("other", &["y", "q"]).unwrap();
    let both: HashSet<String> = con.sinter(&["tags", "other"]).unwrap();
    assert_eq!(both, HashSet::from(["y".to_string()]));
    let err = con.lpush::<_, _, usize>("tags", "v").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
}

/// SMOVE between two sets while readers take SUNION of the pair: with both cores reserved
/// for each command, the member is never seen in neither set. Ten pairs make sure some pairs
/// sit on different cores; a thousand other members per set make each write-back slow
/// enough that a missing reservation shows (this test fails without it).
#[test]
fn smove_across_cores_is_atomic_to_readers() {
    let server = Server::start(2, &[]);
    let mut setup = server.conn();
    for i in 0..10 {
        let filler: Vec<String> = (0..1000).map(|n| format!("filler{n}")).collect();
        let _: usize = setup.sadd(format!("left{i}"), &filler).unwrap();
        let _: usize = setup.sadd(format!("right{i}"), &filler).unwrap();
        let _: usize = setup.sadd(format!("left{i}"), "m").unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let client = server.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut con = client.get_connection().unwrap();
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..10 {
                    let (a, b) = (format!("left{i}"), format!("right{i}"));
                    let (src, dst) = if rounds % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    let moved: i64 = con.smove(src, dst, "m").unwrap();
                    assert_eq!(moved, 1);
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut reader = server.conn();
    for _ in 0..300 {
        for i in 0..10 {
            let union: HashSet<String> = reader
                .sunion(&[format!("left{i}"), format!("right{i}")])
                .unwrap();
            assert!(union.contains("m"), "pair {i} lost its member mid-move");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(mover.join().unwrap() > 0);
}
