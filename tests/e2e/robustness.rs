use crate::harness::{closed_by_peer, read_reply, rss, Server};
use redis::Commands;
use std::io::Write;

#[test]
fn protocol_errors_close_only_the_offender() {
    let server = Server::start(2, &[]);
    let mut good = server.conn();
    let cases: &[(&[u8], &str)] = &[
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+x\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET k \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut raw = server.raw();
        raw.write_all(input).unwrap();
        let reply = read_reply(&mut raw, expected.len());
        assert_eq!(String::from_utf8_lossy(&reply), *expected);
        assert!(closed_by_peer(&mut raw), "offender is disconnected");
        let _: () = good.set("still", "fine").unwrap();
    }
}

#[test]
fn inline_commands_work_like_telnet() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.write_all(b"SET greeting \"hello world\"\r\nGET greeting\r\nPING\n")
        .unwrap();
    let expected = "+OK\r\n$11\r\nhello world\r\n+PONG\r\n";
    assert_eq!(
        String::from_utf8_lossy(&read_reply(&mut raw, expected.len())),
        expected
    );
}

#[test]
fn a_huge_declared_bulk_costs_nothing_until_it_arrives() {
    let server = Server::start(2, &[]);
    let before = rss(server.pid());
    let mut raw = server.raw();
    raw.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut good = server.conn();
    let _: () = good.set("other", "client").unwrap();
    let grown = rss(server.pid()).saturating_sub(before);
    assert!(grown < 50 << 20, "RSS grew by {grown} bytes");
}

#[test]
fn a_thousand_concurrent_connections() {
    let server = Server::start(2, &[]);
    let client = server.client();
    let mut conns: Vec<redis::Connection> = (0..1000)
        .map(|_| client.get_connection().unwrap())
        .collect();
    for (i, con) in conns.iter_mut().enumerate() {
        let _: () = con.set(format!("c:{i}"), i).unwrap();
    }
    for (i, con) in conns.iter_mut().enumerate().rev() {
        assert_eq!(
            con.get::<_, usize>(format!("c:{}", (i + 1) % 1000))
                .unwrap(),
            (i + 1) % 1000
        );
    }
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut conns[0])
        .unwrap();
    assert!(info.contains("connected_clients:1000"), "{info}");
}

#[test]
fn sigterm_and_shutdown_exit_cleanly() {
    let mut server = Server::start(2, &[]);
    let mut con = server.conn();
    let _: () = con.set("k", "v").unwrap();
    assert_eq!(server.terminate(), Some(0));

    let mut server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.write_all(b"SHUTDOWN\r\n").unwrap();
    assert!(closed_by_peer(&mut raw));
    assert_eq!(server.wait_exit(), Some(0));
}
