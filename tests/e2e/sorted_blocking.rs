use crate::harness::Server;
use redis::Commands;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn wait_for_blocked_clients(con: &mut redis::Connection, expected: usize) {
    let wanted = format!("blocked_clients:{expected}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        if info.lines().any(|line| line.trim() == wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {wanted} in:\n{info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sorted_sets_through_the_typed_client() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    assert_eq!(con.zadd::<_, _, _, usize>("z", "a", 1).unwrap(), 1);
    let added: usize = con
        .zadd_multiple("z", &[(2, "b"), (3, "c"), (4, "d")])
        .unwrap();
    assert_eq!(added, 3);
    assert_eq!(con.zincr::<_, _, _, f64>("z", "a", 10).unwrap(), 11.0);
    assert_eq!(
        con.zscore::<_, _, Option<f64>>("z", "a").unwrap(),
        Some(11.0)
    );
    assert_eq!(con.zscore::<_, _, Option<f64>>("z", "nope").unwrap(), None);
    assert_eq!(con.zrank::<_, _, Option<usize>>("z", "b").unwrap(), Some(0));
    assert_eq!(
        con.zrevrank::<_, _, Option<usize>>("z", "b").unwrap(),
        Some(3)
    );
    assert_eq!(con.zrank::<_, _, Option<usize>>("z", "nope").unwrap(), None);
    let all: Vec<(String, f64)> = con.zrange_withscores("z", 0, -1).unwrap();
    let expected = [("b", 2.0), ("c", 3.0), ("d", 4.0), ("a", 11.0)];
    assert_eq!(all, expected.map(|(m, s)| (m.to_string(), s)));
    let page: Vec<String> = con.zrangebyscore_limit("z", 2, "+inf", 1, 2).unwrap();
    assert_eq!(page, ["c", "d"]);
    assert_eq!(con.zcount::<_, _, _, usize>("z", "(2", 4).unwrap(), 2);
    assert_eq!(con.zrem::<_, _, usize>("z", &["c", "nope"]).unwrap(), 1);
    let popped: Vec<(String, f64)> = con.zpopmin("z", 1).unwrap();
    assert_eq!(popped, [("b".to_string(), 2.0)]);
    assert_eq!(con.zcard::<_, usize>("z").unwrap(), 2);

    let many: Vec<(i64, String)> = (0..300).map(|i| (300 - i, format!("m{i}"))).collect();
    assert_eq!(
        con.zadd_multiple::<_, _, _, usize>("big", &many).unwrap(),
        300
    );
    assert_eq!(con.zcard::<_, usize>("big").unwrap(), 300);
    for i in [0, 1, 127, 128, 150, 298, 299] {
        let member = format!("m{i}");
        let rank: Option<usize> = con.zrank("big", &member).unwrap();
        assert_eq!(rank, Some(299 - i), "rank of {member}");
        let revrank: Option<usize> = con.zrevrank("big", &member).unwrap();
        assert_eq!(revrank, Some(i), "revrank of {member}");
    }
    let middle: Vec<(String, f64)> = con.zrange_withscores("big", 149, 150).unwrap();
    let expected = [("m150", 150.0), ("m149", 151.0)];
    assert_eq!(middle, expected.map(|(m, s)| (m.to_string(), s)));

    let _: () = con.set("plain", "x").unwrap();
    let err = con.zadd::<_, _, _, usize>("plain", "m", 1).unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
}

#[test]
fn zunionstore_and_zinterstore_across_cores() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    for i in 0..20i64 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let only_a = format!("s{i}");
        let _: usize = con
            .zadd_multiple(&a, &[(1, "x"), (2, "y"), (i, only_a.as_str())])
            .unwrap();
        let _: usize = con.zadd_multiple(&b, &[(10, "y"), (5, "z")]).unwrap();

        let weighted = |con: &mut redis::Connection, command: &str, dst: String| -> usize {
            redis::cmd(command)
                .arg(dst)
                .arg(2)
                .arg(&a)
                .arg(&b)
                .arg("WEIGHTS")
                .arg(2)
                .arg(3)
                .query(con)
                .unwrap()
        };
        let stored = weighted(&mut con, "ZUNIONSTORE", format!("u{i}"));
        assert_eq!(stored, 4, "union size for pair {i}");
        let mut expected = vec![
            (only_a.clone(), 2.0 * i as f64),
            ("x".to_string(), 2.0),
            ("z".to_string(), 15.0),
            ("y".to_string(), 34.0),
        ];
        expected.sort_by(|l, r| l.1.total_cmp(&r.1).then_with(|| l.0.cmp(&r.0)));
        let union: Vec<(String, f64)> = con.zrange_withscores(format!("u{i}"), 0, -1).unwrap();
        assert_eq!(union, expected, "union for pair {i}");

        let stored = weighted(&mut con, "ZINTERSTORE", format!("n{i}"));
        assert_eq!(stored, 1, "intersection size for pair {i}");
        let inter: Vec<(String, f64)> = con.zrange_withscores(format!("n{i}"), 0, -1).unwrap();
        assert_eq!(
            inter,
            [("y".to_string(), 34.0)],
            "intersection for pair {i}"
        );
    }
}

#[test]
fn blpop_is_woken_by_a_push_from_another_connection() {
    let server = Server::start(2, &[]);
    let waiter = {
        let mut con = server.conn();
        std::thread::spawn(move || {
            redis::cmd("BLPOP")
                .arg(&["q1", "q2", "q3"])
                .arg(0)
                .query::<Option<(String, String)>>(&mut con)
                .unwrap()
        })
    };
    let mut con = server.conn();
    wait_for_blocked_clients(&mut con, 1);
    let _: usize = con.rpush("q2", "job").unwrap();
    let popped = waiter.join().unwrap();
    assert_eq!(popped, Some(("q2".to_string(), "job".to_string())));
    assert!(!con.exists::<_, bool>("q2").unwrap());
    wait_for_blocked_clients(&mut con, 0);
}

#[test]
fn brpop_consumers_receive_each_element_once() {
    let server = Server::start(2, &[]);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.conn();
            std::thread::spawn(move || {
                let mut taken = Vec::new();
                loop {
                    let (_, item): (String, String) = redis::cmd("BRPOP")
                        .arg("work")
                        .arg(0)
                        .query(&mut con)
                        .unwrap();
                    if item == "stop" {
                        return taken;
                    }
                    taken.push(item);
                }
            })
        })
        .collect();
    let mut con = server.conn();
    wait_for_blocked_clients(&mut con, 4);
    let items: Vec<String> = (0..200).map(|n| format!("item{n}")).collect();
    for burst in items.chunks(10) {
        let _: usize = con.lpush("work", burst).unwrap();
    }
    let _: usize = con.lpush("work", &["stop"; 4]).unwrap();

    let mut seen = HashSet::new();
    for consumer in consumers {
        for item in consumer.join().unwrap() {
            assert!(seen.insert(item.clone()), "{item} delivered twice");
        }
    }
    assert_eq!(seen, items.into_iter().collect::<HashSet<_>>());
    assert!(!con.exists::<_, bool>("work").unwrap());
}
