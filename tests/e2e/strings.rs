use crate::harness::Server;
use redis::{cmd, Value};

fn query<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn err_text(result: redis::RedisResult<Value>) -> String {
    let e = result.expect_err("expected an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        .trim()
        .to_string()
}

#[test]
fn set_get_and_options() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    assert_eq!(query::<String>(&mut con, &["SET", "k", "v"]).unwrap(), "OK");
    assert_eq!(query::<String>(&mut con, &["GET", "k"]).unwrap(), "v");
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "w", "NX"]).unwrap(),
        None
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "w", "XX", "GET"])
            .unwrap()
            .as_deref(),
        Some("v")
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "missing", "w", "XX"]).unwrap(),
        None
    );
    assert_eq!(
        query::<String>(&mut con, &["SET", "t", "1", "EX", "100"]).unwrap(),
        "OK"
    );
    let ttl: i64 = query(&mut con, &["TTL", "t"]).unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    query::<String>(&mut con, &["SET", "t", "2", "KEEPTTL"]).unwrap();
    assert!(query::<i64>(&mut con, &["TTL", "t"]).unwrap() > 0);
    query::<String>(&mut con, &["SET", "t", "3"]).unwrap();
    assert_eq!(query::<i64>(&mut con, &["TTL", "t"]).unwrap(), -1);
    assert_eq!(
        err_text(query(&mut con, &["SET", "k", "v", "NX", "XX"])),
        "ERR syntax error"
    );
    assert_eq!(
        err_text(query(&mut con, &["SET", "k", "v", "EX", "0"])),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err_text(query(&mut con, &["SET", "k", "v", "EX", "x"])),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err_text(query(&mut con, &["GET"])),
        "ERR wrong number of arguments for 'get' command"
    );
}

#[test]
fn compare_and_set_with_ifeq() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    query::<String>(&mut con, &["SET", "reg", "a"]).unwrap();
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "reg", "b", "IFEQ", "x"]).unwrap(),
        None
    );
    assert_eq!(query::<String>(&mut con, &["GET", "reg"]).unwrap(), "a");
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "reg", "b", "IFEQ", "a"])
            .unwrap()
            .as_deref(),
        Some("OK")
    );
    assert_eq!(query::<String>(&mut con, &["GET", "reg"]).unwrap(), "b");
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "nokey", "b", "IFEQ", "a"]).unwrap(),
        None
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "nokey"]).unwrap(), 0);
    assert_eq!(
        err_text(query(&mut con, &["SET", "reg", "c", "IFEQ", "b", "NX"])),
        "ERR syntax error"
    );
}

#[test]
fn counters_and_their_errors() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    assert_eq!(query::<i64>(&mut con, &["INCR", "n"]).unwrap(), 1);
    assert_eq!(query::<i64>(&mut con, &["INCRBY", "n", "41"]).unwrap(), 42);
    assert_eq!(query::<i64>(&mut con, &["DECRBY", "n", "2"]).unwrap(), 40);
    query::<String>(&mut con, &["SET", "max", "9223372036854775807"]).unwrap();
    assert_eq!(
        err_text(query(&mut con, &["INCR", "max"])),
        "ERR increment or decrement would overflow"
    );
    query::<String>(&mut con, &["SET", "s", "abc"]).unwrap();
    assert_eq!(
        err_text(query(&mut con, &["INCR", "s"])),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        query::<String>(&mut con, &["INCRBYFLOAT", "f", "10.5"]).unwrap(),
        "10.5"
    );
    assert_eq!(
        query::<String>(&mut con, &["INCRBYFLOAT", "f", "0.1"]).unwrap(),
        "10.6"
    );
    assert_eq!(
        err_text(query(&mut con, &["INCRBYFLOAT", "f", "inf"])),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        err_text(query(&mut con, &["INCRBYFLOAT", "f", "abc"])),
        "ERR value is not a valid float"
    );
    assert_eq!(
        query::<String>(&mut con, &["OBJECT", "ENCODING", "n"]).unwrap(),
        "int"
    );
}

#[test]
fn ranges_append_and_lcs() {
    let server = Server::start(2, &[]);
    let mut con = server.conn();
    assert_eq!(
        query::<i64>(&mut con, &["APPEND", "s", "Hello"]).unwrap(),
        5
    );
    assert_eq!(
        query::<i64>(&mut con, &["APPEND", "s", " World"]).unwrap(),
        11
    );
    assert_eq!(
        query::<String>(&mut con, &["GETRANGE", "s", "-5", "-1"]).unwrap(),
        "World"
    );
    assert_eq!(
        query::<i64>(&mut con, &["SETRANGE", "s", "6", "Redis"]).unwrap(),
        11
    );
    assert_eq!(
        query::<String>(&mut con, &["GET", "s"]).unwrap(),
        "Hello Redis"
    );
    assert_eq!(
        query::<i64>(&mut con, &["SETRANGE", "pad", "3", "x"]).unwrap(),
        4
    );
    assert_eq!(
        query::<Vec<u8>>(&mut con, &["GET", "pad"]).unwrap(),
        b"\0\0\0x"
    );
    assert_eq!(
        query::<String>(&mut con, &["OBJECT", "ENCODING", "s"]).unwrap(),
        "raw"
    );
    query::<String>(&mut con, &["MSET", "{l}1", "ohmytext", "{l}2", "mynewtext"]).unwrap();
    assert_eq!(
        query::<String>(&mut con, &["LCS", "{l}1", "{l}2"]).unwrap(),
        "mytext"
    );
    assert_eq!(
        query::<i64>(&mut con, &["LCS", "{l}1", "{l}2", "LEN"]).unwrap(),
        6
    );
    // Keys on different cores take the coordinated path and must agree.
    query::<String>(
        &mut con,
        &["MSET", "lcs-a", "ohmytext", "lcs-b", "mynewtext"],
    )
    .unwrap();
    assert_eq!(
        query::<String>(&mut con, &["LCS", "lcs-a", "lcs-b"]).unwrap(),
        "mytext"
    );
}

#[test]
fn resp3_replies() {
    let server = Server::start(2, &[]);
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let missing: Value = cmd("GET").arg("nope").query(&mut con).unwrap();
    assert_eq!(missing, Value::Nil);
    let hello: Value = cmd("HELLO").arg("3").query(&mut con).unwrap();
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
}
