"""Keyspace commands: deletion, existence, expiry, renaming, copying, patterns, SCAN, databases."""

import time

import pytest
import redis

from conftest import RawConn, start_server, stop_and_check, wait_for

OK = ("+", b"OK")
NIL = ("$", None)
SYNTAX = ("-", b"ERR syntax error")
NOT_INT = ("-", b"ERR value is not an integer or out of range")
NX_XX_GT_LT = ("-", b"ERR NX and XX, GT or LT options at the same time are not compatible")
GT_LT = ("-", b"ERR GT and LT options at the same time are not compatible")
EXPIRE_CMDS = ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]


def integer(n):
    return (":", n)


def err(text):
    return ("-", text.encode())


@pytest.fixture
def wire(r, server):
    conn = RawConn(server.raw())
    yield conn
    conn.close()


def far_future(cmd, seconds=1000):
    """An argument for `cmd` meaning `seconds` from now."""
    now = time.time()
    return {"EXPIRE": seconds, "PEXPIRE": seconds * 1000, "EXPIREAT": int(now) + seconds,
            "PEXPIREAT": int(now * 1000) + seconds * 1000}[cmd]


# ---------------------------------------------------------------- DEL / UNLINK / EXISTS / TOUCH / TYPE

@pytest.mark.parametrize("cmd", ["DEL", "UNLINK"])
def test_del_counts_each_removed_key_once(r, wire, cmd):
    r.mset({"a": 1, "b": 2, "c": 3})
    assert wire.call(cmd, "a", "b", "a", "nope") == integer(2)
    assert r.exists("a", "b") == 0 and r.get("c") == b"3"
    assert wire.call(cmd, "a") == integer(0)


def test_exists_counts_duplicates(r, wire):
    r.mset({"a": 1, "b": 2})
    assert wire.call("EXISTS", "a") == integer(1)
    assert wire.call("EXISTS", "a", "a", "a") == integer(3)
    assert wire.call("EXISTS", "a", "b", "c", "a") == integer(3)
    assert wire.call("EXISTS", "nope") == integer(0)


def test_touch_counts_existing_keys(r, wire):
    r.mset({"a": 1, "b": 2})
    assert wire.call("TOUCH", "a", "b", "c") == integer(2)
    assert wire.call("TOUCH", "a", "a") == integer(2)
    assert wire.call("TOUCH", "c") == integer(0)


def test_type(r, wire):
    r.set("s", "v")
    r.set("n", 5)
    assert wire.call("TYPE", "s") == ("+", b"string")
    assert wire.call("TYPE", "n") == ("+", b"string")
    assert wire.call("TYPE", "nope") == ("+", b"none")


# ---------------------------------------------------------------- EXPIRE family

@pytest.mark.parametrize("cmd", EXPIRE_CMDS)
def test_expire_sets_a_ttl(r, wire, cmd):
    r.set("k", "v")
    assert wire.call(cmd, "k", far_future(cmd)) == integer(1)
    assert 990 <= r.ttl("k") <= 1000
    assert wire.call(cmd, "nope", far_future(cmd)) == integer(0)
    assert r.exists("nope") == 0


@pytest.mark.parametrize("cmd", EXPIRE_CMDS)
def test_expire_nx_xx_gt_lt(r, wire, cmd):
    r.set("k", "v")
    short, mid, long = far_future(cmd, 100), far_future(cmd, 200), far_future(cmd, 300)
    # No TTL yet: XX and GT refuse (no TTL counts as infinite), NX and LT accept.
    assert wire.call(cmd, "k", mid, "XX") == integer(0)
    assert wire.call(cmd, "k", mid, "GT") == integer(0)
    assert r.ttl("k") == -1
    assert wire.call(cmd, "k", mid, "NX") == integer(1)
    assert 190 <= r.ttl("k") <= 200
    assert wire.call(cmd, "k", long, "NX") == integer(0)
    assert wire.call(cmd, "k", short, "GT") == integer(0)
    assert 190 <= r.ttl("k") <= 200
    assert wire.call(cmd, "k", long, "GT") == integer(1)
    assert 290 <= r.ttl("k") <= 300
    assert wire.call(cmd, "k", long, "LT") == integer(0)
    assert wire.call(cmd, "k", short, "LT") == integer(1)
    assert 90 <= r.ttl("k") <= 100
    assert wire.call(cmd, "k", mid, "XX") == integer(1)
    assert 190 <= r.ttl("k") <= 200
    assert wire.call(cmd, "k", long, "xx", "gt") == integer(1)
    assert 290 <= r.ttl("k") <= 300
    r.persist("k")
    assert wire.call(cmd, "k", short, "LT") == integer(1)
    assert 90 <= r.ttl("k") <= 100


@pytest.mark.parametrize("cmd", EXPIRE_CMDS)
@pytest.mark.parametrize("opts,expected", [
    (["NX", "XX"], NX_XX_GT_LT), (["XX", "NX"], NX_XX_GT_LT), (["NX", "GT"], NX_XX_GT_LT),
    (["LT", "NX"], NX_XX_GT_LT), (["GT", "LT"], GT_LT), (["LT", "GT"], GT_LT),
    (["FOO"], err("ERR Unsupported option FOO")), (["NX", "bar"], err("ERR Unsupported option bar")),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_expire_option_errors(r, wire, cmd, opts, expected):
    r.set("k", "v")
    assert wire.call(cmd, "k", far_future(cmd), *opts) == expected
    assert r.ttl("k") == -1


@pytest.mark.parametrize("cmd", EXPIRE_CMDS)
@pytest.mark.parametrize("value", ["abc", "1.5", "", " 10"])
def test_expire_non_integer(r, wire, cmd, value):
    r.set("k", "v")
    assert wire.call(cmd, "k", value) == NOT_INT
    assert r.ttl("k") == -1


@pytest.mark.parametrize("cmd,value", [
    ("EXPIRE", "9223372036854775807"), ("EXPIRE", "9223372036854775"), ("EXPIRE", "-9223372036854775808"),
    ("PEXPIRE", "9223372036854775807"), ("EXPIREAT", "9223372036854775807"),
])
def test_expire_overflow(r, wire, cmd, value):
    r.set("k", "v")
    assert wire.call(cmd, "k", value) == err(f"ERR invalid expire time in '{cmd.lower()}' command")
    assert r.get("k") == b"v" and r.ttl("k") == -1


@pytest.mark.parametrize("cmd,value", [("EXPIRE", "-1"), ("EXPIRE", "0"), ("PEXPIRE", "-100"), ("PEXPIRE", "0"),
                                       ("EXPIREAT", "1"), ("EXPIREAT", "0"), ("PEXPIREAT", "1"),
                                       ("EXPIRE", "-9223372036854775")])
def test_expire_in_the_past_deletes(r, wire, cmd, value):
    r.set("k", "v")
    r.set("other", "v")
    assert wire.call(cmd, "k", value) == integer(1)
    assert r.exists("k") == 0 and r.get("k") is None
    assert r.ttl("k") == -2
    assert r.dbsize() == 1


def test_expire_in_the_past_with_a_failing_condition_keeps_the_key(r, wire):
    r.set("k", "v", ex=100)
    assert wire.call("EXPIRE", "k", "-1", "NX") == integer(0)
    assert r.exists("k") == 1


def test_ttl_pttl(r, wire):
    assert wire.call("TTL", "nope") == integer(-2)
    assert wire.call("PTTL", "nope") == integer(-2)
    r.set("k", "v")
    assert wire.call("TTL", "k") == integer(-1)
    assert wire.call("PTTL", "k") == integer(-1)
    r.pexpire("k", 100500)
    assert 99 <= r.ttl("k") <= 101
    assert 99000 <= r.pttl("k") <= 100500


def test_expiretime_pexpiretime(r, wire):
    assert wire.call("EXPIRETIME", "nope") == integer(-2)
    assert wire.call("PEXPIRETIME", "nope") == integer(-2)
    r.set("k", "v")
    assert wire.call("EXPIRETIME", "k") == integer(-1)
    assert wire.call("PEXPIRETIME", "k") == integer(-1)
    assert wire.call("PEXPIREAT", "k", "99999999999123") == integer(1)
    assert wire.call("PEXPIRETIME", "k") == integer(99999999999123)
    assert wire.call("EXPIRETIME", "k") == integer(99999999999)
    at = int(time.time()) + 500
    r.expire("k", 500)
    assert at - 2 <= r.expiretime("k") <= at + 2


def test_persist(r, wire):
    assert wire.call("PERSIST", "nope") == integer(0)
    r.set("k", "v")
    assert wire.call("PERSIST", "k") == integer(0)
    r.expire("k", 100)
    assert wire.call("PERSIST", "k") == integer(1)
    assert r.ttl("k") == -1
    assert wire.call("PERSIST", "k") == integer(0)


# ---------------------------------------------------------------- RENAME / RENAMENX / COPY

def test_rename(r, wire):
    r.set("a", "1")
    assert wire.call("RENAME", "a", "b") == OK
    assert r.exists("a") == 0 and r.get("b") == b"1"
    r.set("c", "3", ex=100)
    assert wire.call("RENAME", "b", "c") == OK, "RENAME overwrites"
    assert r.get("c") == b"1" and r.ttl("c") == -1, "the destination takes the source's (absent) TTL"
    assert wire.call("RENAME", "c", "c") == OK
    assert r.get("c") == b"1"


def test_rename_carries_ttl(r, wire):
    r.set("a", "1", px=100000)
    assert wire.call("RENAME", "a", "b") == OK
    assert 90000 <= r.pttl("b") <= 100000
    assert wire.call("RENAMENX", "b", "c") == integer(1)
    assert 90000 <= r.pttl("c") <= 100000


def test_renamenx(r, wire):
    r.mset({"a": "1", "b": "2"})
    assert wire.call("RENAMENX", "a", "b") == integer(0)
    assert r.mget("a", "b") == [b"1", b"2"]
    assert wire.call("RENAMENX", "a", "c") == integer(1)
    assert r.mget("a", "c") == [None, b"1"]
    assert wire.call("RENAMENX", "c", "c") == integer(0)


@pytest.mark.parametrize("cmd", ["RENAME", "RENAMENX"])
def test_rename_missing_key(r, wire, cmd):
    assert wire.call(cmd, "nope", "x") == err("ERR no such key")
    assert wire.call(cmd, "nope", "nope") == err("ERR no such key")
    assert r.dbsize() == 0


def test_rename_of_expired_key_is_missing(r, wire):
    r.set("a", "1", px=30)
    time.sleep(0.2)
    assert wire.call("RENAME", "a", "b") == err("ERR no such key")
    assert r.exists("b") == 0


def test_copy(r, wire):
    r.set("a", "1", ex=100)
    assert wire.call("COPY", "a", "b") == integer(1)
    assert r.get("b") == b"1" and 90 <= r.ttl("b") <= 100, "COPY carries the TTL"
    r.set("a", "2")
    assert r.get("b") == b"1", "the copy is independent"
    assert wire.call("COPY", "a", "b") == integer(0)
    assert r.get("b") == b"1"
    assert wire.call("COPY", "a", "b", "REPLACE") == integer(1)
    assert r.get("b") == b"2" and r.ttl("b") == -1
    assert wire.call("COPY", "nope", "c") == integer(0)
    assert r.exists("c") == 0


def test_copy_to_another_db(r, wire):
    r.set("a", "1")
    assert wire.call("COPY", "a", "a", "DB", "1") == integer(1)
    assert wire.call("COPY", "a", "a", "DB", "1") == integer(0)
    r.set("a", "2")
    assert wire.call("COPY", "a", "a", "DB", "1", "REPLACE") == integer(1)
    assert wire.call("SELECT", "1") == OK
    assert wire.call("GET", "a") == ("$", b"2")
    assert wire.call("DBSIZE") == integer(1)
    assert wire.call("SELECT", "0") == OK


def test_copy_errors(r, wire):
    r.set("a", "1")
    assert wire.call("COPY", "a", "a") == err("ERR source and destination objects are the same")
    assert wire.call("COPY", "a", "a", "DB", "0") == err("ERR source and destination objects are the same")
    assert wire.call("COPY", "a", "b", "DB", "16") == err("ERR DB index is out of range")
    assert wire.call("COPY", "a", "b", "DB", "-1") == err("ERR DB index is out of range")
    assert wire.call("COPY", "a", "b", "DB", "x") == NOT_INT
    assert wire.call("COPY", "a", "b", "DB") == SYNTAX
    assert wire.call("COPY", "a", "b", "FOO") == SYNTAX
    assert r.exists("b") == 0


# ---------------------------------------------------------------- KEYS

PATTERN_KEYS = ["hello", "hallo", "hxllo", "hllo", "heeello", "h*llo", "h?llo", "h[a]llo", "h\\llo", "h-llo",
                "a", "b", "c", "d", "Hello"]


@pytest.mark.parametrize("pattern,expected", [
    ("*", PATTERN_KEYS),
    ("h?llo", ["hello", "hallo", "hxllo", "h*llo", "h?llo", "h\\llo", "h-llo"]),
    ("h*llo", ["hello", "hallo", "hxllo", "hllo", "heeello", "h*llo", "h?llo", "h[a]llo", "h\\llo", "h-llo"]),
    ("h[ae]llo", ["hello", "hallo"]),
    ("h[^e]llo", ["hallo", "hxllo", "h*llo", "h?llo", "h\\llo", "h-llo"]),
    ("h[a-x]llo", ["hello", "hallo", "hxllo"]),
    ("h[x-a]llo", ["hello", "hallo", "hxllo"]),
    ("h[^a-x]llo", ["h*llo", "h?llo", "h\\llo", "h-llo"]),
    ("[a-c]", ["a", "b", "c"]),
    ("[^a]", ["b", "c", "d"]),
    ("?", ["a", "b", "c", "d"]),
    ("h\\*llo", ["h*llo"]),
    ("h\\?llo", ["h?llo"]),
    ("h\\[a\\]llo", ["h[a]llo"]),
    ("h\\\\llo", ["h\\llo"]),
    ("h[\\-]llo", ["h-llo"]),
    ("H*", ["Hello"]),
    ("*l*o", ["hello", "hallo", "hxllo", "hllo", "heeello", "h*llo", "h?llo", "h[a]llo", "h\\llo", "h-llo", "Hello"]),
    ("nomatch*", []),
    ("h[", []),
    ("", []),
], ids=lambda v: v if isinstance(v, str) else "")
def test_keys_patterns(r, pattern, expected):
    r.mset({k: "v" for k in PATTERN_KEYS})
    assert sorted(r.keys(pattern)) == sorted(k.encode() for k in expected)


def test_keys_binary_and_expired(r):
    r.set(b"bin\x00key", "v")
    r.set("gone", "v", px=20)
    time.sleep(0.2)
    assert r.keys("*") == [b"bin\x00key"]
    assert r.keys("bin?key") == [b"bin\x00key"]


# ---------------------------------------------------------------- SCAN

def scan_all(r, **kw):
    seen = []
    cursor = 0
    for _ in range(100000):
        cursor, keys = r.scan(cursor, **kw)
        seen.extend(keys)
        if cursor == 0:
            return seen
    raise AssertionError("SCAN never returned cursor 0")


def test_scan_full_iteration_returns_every_key(r):
    keys = {f"key:{i}".encode() for i in range(1500)}
    r.mset({k: "v" for k in keys})
    for count in (None, 7, 100, 5000):
        seen = scan_all(r, count=count)
        assert set(seen) == keys, f"COUNT {count}: missing {len(keys - set(seen))}, extra {set(seen) - keys}"


def test_scan_survives_deletes_during_iteration(r):
    keys = [f"k{i}" for i in range(600)]
    r.mset({k: "v" for k in keys})
    stable = {k.encode() for k in keys[::2]}
    seen = set()
    cursor = 0
    step = 0
    while True:
        cursor, batch = r.scan(cursor, count=20)
        seen.update(batch)
        if step < 300:
            r.delete(keys[2 * step + 1])  # only odd keys go away
        step += 1
        if cursor == 0:
            break
    assert stable <= seen, "SCAN lost keys that existed for the whole iteration"


def test_scan_of_keys_sharing_a_hash_tag_stays_in_small_steps(r):
    # One hash tag puts every key in one slot; a step of SCAN still looks at about COUNT keys,
    # and keys present throughout come back while others come and go and, once, the slot
    # doubles under the scan.
    def fill(prefix, n):
        for chunk in range(0, n, 2000):
            r.mset({f"{{t}}:{prefix}:{i}": "v" for i in range(chunk, min(n, chunk + 2000))})

    fill("stay", 20000)
    seen, cursor, calls = set(), 0, 0
    while True:
        cursor, batch = r.scan(cursor, count=10)
        calls += 1
        assert len(batch) <= 100, f"step {calls} returned {len(batch)} keys"
        seen.update(batch)
        pipe = r.pipeline(transaction=False)
        pipe.mset({f"{{t}}:new:{i}": "v" for i in range(calls * 10, calls * 10 + 10)})
        pipe.delete(*(f"{{t}}:new:{i}" for i in range(calls * 10 - 10, calls * 10)))
        pipe.execute()
        if calls == 500:
            fill("burst", 25000)
        if cursor == 0:
            break
    assert calls >= 2000
    stable = {f"{{t}}:stay:{i}".encode() for i in range(20000)}
    assert stable <= seen, f"{len(stable - seen)} keys present throughout were not returned"


def test_scan_match(r):
    r.mset({f"user:{i}": "v" for i in range(300)})
    r.mset({f"item:{i}": "v" for i in range(300)})
    seen = scan_all(r, match="user:1*", count=50)
    assert set(seen) == {f"user:{i}".encode() for i in range(300) if str(i).startswith("1")}
    # COUNT bounds the keys looked at, matched or not: a pattern matching nothing does not
    # scan the whole keyspace in one call.
    cursor, keys = r.scan(0, match="nothing:*", count=10)
    assert cursor != 0 and keys == []


def test_scan_type(r):
    r.mset({f"s{i}": "v" for i in range(50)})
    assert set(scan_all(r, _type="string")) == {f"s{i}".encode() for i in range(50)}
    assert set(scan_all(r, _type="STRING")) == {f"s{i}".encode() for i in range(50)}
    assert scan_all(r, _type="list") == []
    assert scan_all(r, _type="hash", match="s*") == []


def test_scan_empty_db(r, wire):
    assert wire.call("SCAN", "0") == ("*", [("$", b"0"), ("*", [])])


def test_scan_does_not_return_expired_keys(r):
    r.set("live", "v")
    r.set("dead", "v", px=20)
    time.sleep(0.2)
    assert scan_all(r) == [b"live"]


@pytest.mark.parametrize("args,expected", [
    (["abc"], err("ERR invalid cursor")), (["1.5"], err("ERR invalid cursor")),
    (["18446744073709551616"], err("ERR invalid cursor")), (["0x10"], err("ERR invalid cursor")),
    (["0", "COUNT", "0"], SYNTAX), (["0", "COUNT", "-1"], SYNTAX), (["0", "COUNT", "x"], NOT_INT),
    (["0", "COUNT"], SYNTAX), (["0", "MATCH"], SYNTAX), (["0", "TYPE"], SYNTAX), (["0", "FOO", "bar"], SYNTAX),
    ([], err("ERR wrong number of arguments for 'scan' command")),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_scan_errors(r, wire, args, expected):
    r.set("k", "v")
    assert wire.call("SCAN", *args) == expected


# ---------------------------------------------------------------- RANDOMKEY / DBSIZE / FLUSH

def test_randomkey(r, wire):
    assert wire.call("RANDOMKEY") == NIL
    keys = {b"a", b"b", b"c"}
    r.mset({k: "v" for k in keys})
    seen = {r.randomkey() for _ in range(200)}
    assert seen <= keys and len(seen) >= 2


def test_randomkey_skips_expired(r):
    r.set("live", "v")
    r.mset({f"dead{i}": "v" for i in range(50)})
    for i in range(50):
        r.pexpire(f"dead{i}", 20)
    time.sleep(0.2)
    assert {r.randomkey() for _ in range(20)} == {b"live"}


def test_dbsize(r, wire):
    assert wire.call("DBSIZE") == integer(0)
    r.mset({f"k{i}": i for i in range(100)})
    assert wire.call("DBSIZE") == integer(100)
    r.delete("k0")
    assert wire.call("DBSIZE") == integer(99)


@pytest.mark.parametrize("mode", [[], ["ASYNC"], ["SYNC"], ["async"]], ids=lambda m: " ".join(m) or "plain")
def test_flushdb_only_current_db(r, wire, mode):
    r.mset({"a": 1, "b": 2})
    wire.call("SELECT", "1")
    wire.call("SET", "c", "3")
    assert wire.call("FLUSHDB", *mode) == OK
    assert wire.call("DBSIZE") == integer(0)
    assert wire.call("SELECT", "0") == OK
    assert r.dbsize() == 2


@pytest.mark.parametrize("mode", [[], ["ASYNC"], ["SYNC"]], ids=lambda m: " ".join(m) or "plain")
def test_flushall_every_db(r, wire, mode):
    r.mset({"a": 1, "b": 2})
    wire.call("SELECT", "5")
    wire.call("SET", "c", "3")
    assert wire.call("FLUSHALL", *mode) == OK
    assert wire.call("DBSIZE") == integer(0)
    assert r.dbsize() == 0
    assert r.get("a") is None


@pytest.mark.parametrize("cmd", [["FLUSHDB", "FOO"], ["FLUSHALL", "FOO"], ["FLUSHDB", "ASYNC", "SYNC"],
                                 ["FLUSHALL", "SYNC", "SYNC"]], ids=" ".join)
def test_flush_syntax_errors(r, wire, cmd):
    r.set("a", "1")
    assert wire.call(*cmd) == SYNTAX
    assert r.dbsize() == 1


# ---------------------------------------------------------------- SELECT

def test_select_isolates_databases(r, wire):
    r.set("k", "db0")
    assert wire.call("SELECT", "15") == OK
    assert wire.call("GET", "k") == NIL
    assert wire.call("SET", "k", "db15") == OK
    assert wire.call("DBSIZE") == integer(1)
    assert wire.call("SELECT", "0") == OK
    assert wire.call("GET", "k") == ("$", b"db0")
    assert r.get("k") == b"db0", "another connection stays on db 0"


@pytest.mark.parametrize("index,expected", [
    ("16", err("ERR DB index is out of range")), ("-1", err("ERR DB index is out of range")),
    ("x", NOT_INT), ("1.0", NOT_INT), ("9999999999999999999", NOT_INT),
])
def test_select_errors(r, wire, index, expected):
    assert wire.call("SELECT", index) == expected
    assert wire.call("SET", "k", "v") == OK
    assert r.get("k") == b"v", "a failed SELECT leaves the connection on its database"


def test_databases_flag():
    server = start_server(databases=4)
    try:
        conn = RawConn(server.raw())
        assert conn.call("SELECT", "3") == OK
        assert conn.call("SELECT", "4") == err("ERR DB index is out of range")
        assert conn.call("CONFIG", "GET", "databases") == ("*", [("$", b"databases"), ("$", b"4")])
        conn.close()
    finally:
        stop_and_check(server)


# ---------------------------------------------------------------- MEMORY USAGE

def test_memory_usage(r, wire):
    r.set("small", "v")
    r.set("big", "x" * 100000)
    small = r.memory_usage("small")
    big = r.memory_usage("big")
    assert isinstance(small, int) and small > 0
    assert big >= 100000 > small
    assert r.memory_usage("nope") is None
    assert wire.call("MEMORY", "USAGE", "nope") == NIL
    assert wire.call("MEMORY", "USAGE", "small", "SAMPLES", "5")[0] == ":"
    assert wire.call("MEMORY", "USAGE") == err("ERR wrong number of arguments for 'memory|usage' command")


# ---------------------------------------------------------------- expiry, passive and active

def test_passive_expiry(r):
    r.set("k", "v", px=50)
    r.set("keep", "v")
    assert r.get("k") == b"v"
    time.sleep(0.2)
    assert r.get("k") is None
    assert r.exists("k") == 0
    assert r.ttl("k") == -2
    assert r.mget("k", "keep") == [None, b"v"]
    assert r.set("k", "new", nx=True), "an expired key counts as absent for NX"
    assert r.get("k") == b"new" and r.ttl("k") == -1


def test_expired_key_is_not_counted_by_exists_and_incr_restarts(r):
    r.set("n", 41, px=30)
    time.sleep(0.2)
    assert r.exists("n") == 0
    assert r.incr("n") == 1
    assert r.ttl("n") == -1


def test_active_expiry_removes_untouched_keys(r):
    n = 500
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"short:{i}", "v", px=100)
    pipe.execute()
    r.set("persistent", "v")
    before = r.info("stats").get("expired_keys")
    assert r.dbsize() in range(1, n + 2)
    # Only DBSIZE from here on: it must not touch (and so lazily expire) any key.
    assert wait_for(lambda: r.dbsize() == 1, timeout=10, interval=0.1), f"DBSIZE still {r.dbsize()}"
    after = r.info("stats").get("expired_keys")
    if before is not None and after is not None:
        assert after - before >= n - 1
    assert r.get("persistent") == b"v"
