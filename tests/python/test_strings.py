"""String commands: values, options, option conflicts, and the exact error texts Redis 7 sends.

Error texts are checked on the wire (`wire` fixture: a raw RESP connection), so the "ERR "
prefix and the reply type are part of what is asserted."""

import socket
import time

import pytest
import redis

from conftest import RawConn

OK = ("+", b"OK")
NIL = ("$", None)
SYNTAX = ("-", b"ERR syntax error")
NOT_INT = ("-", b"ERR value is not an integer or out of range")
NOT_FLOAT = ("-", b"ERR value is not a valid float")
OVERFLOW = ("-", b"ERR increment or decrement would overflow")
I64_MAX = 9223372036854775807
I64_MIN = -9223372036854775808


def bulk(v):
    return ("$", v if isinstance(v, bytes) else str(v).encode())


def integer(n):
    return (":", n)


def err(text):
    return ("-", text.encode())


def bad_expire(cmd):
    return err(f"ERR invalid expire time in '{cmd}' command")


@pytest.fixture
def wire(r, server):
    """A raw RESP2 connection to the (flushed) server under test."""
    conn = RawConn(server.raw())
    yield conn
    conn.close()


# ---------------------------------------------------------------- GET / SET

def test_get_missing_is_nil(r, wire):
    assert r.get("nope") is None
    assert wire.call("GET", "nope") == NIL


def test_set_get_round_trip_is_binary_safe(r):
    for key, value in [(b"k", b"v"), (b"\x00key\xff", b"\x00\r\n\xff"), (b"e", b""), (b"big", b"x" * (1 << 20)),
                       (b"sp ace", b"line\nbreak")]:
        assert r.set(key, value) is True
        assert r.get(key) == value
    assert r.dbsize() == 5


def test_set_overwrites_and_replies_ok_as_status(r, wire):
    assert wire.call("SET", "k", "1") == OK
    assert wire.call("SET", "k", "2") == OK
    assert r.get("k") == b"2"


def test_set_options_are_case_insensitive(r, wire):
    assert wire.call("set", "k", "v", "ex", "100", "nx") == OK
    assert 0 < r.ttl("k") <= 100
    assert wire.call("SeT", "k", "w", "xX", "kEePtTl") == OK
    assert r.get("k") == b"w" and 0 < r.ttl("k") <= 100


def test_set_ex_px_set_a_ttl(r):
    assert r.set("a", "1", ex=100)
    assert 90 <= r.ttl("a") <= 100
    assert r.set("b", "1", px=100000)
    assert 90000 <= r.pttl("b") <= 100000


def test_set_exat_pxat_set_an_absolute_expiry(r):
    at = int(time.time()) + 100
    assert r.set("a", "1", exat=at)
    assert r.expiretime("a") == at
    assert r.set("b", "1", pxat=at * 1000 + 123)
    assert r.execute_command("PEXPIRETIME", "b") == at * 1000 + 123


def test_set_exat_in_the_past_deletes(r, wire):
    assert wire.call("SET", "a", "1", "EXAT", "1") == OK
    assert r.get("a") is None and r.exists("a") == 0
    assert wire.call("SET", "b", "1", "PXAT", "1") == OK
    assert r.exists("b") == 0
    assert r.dbsize() == 0


def test_set_nx(r, wire):
    assert wire.call("SET", "k", "1", "NX") == OK
    assert wire.call("SET", "k", "2", "NX") == NIL
    assert r.get("k") == b"1"


def test_set_xx(r, wire):
    assert wire.call("SET", "k", "1", "XX") == NIL
    assert r.exists("k") == 0
    r.set("k", "1")
    assert wire.call("SET", "k", "2", "XX") == OK
    assert r.get("k") == b"2"


def test_plain_set_clears_ttl_and_keepttl_keeps_it(r, wire):
    r.set("k", "1", ex=100)
    assert wire.call("SET", "k", "2", "KEEPTTL") == OK
    assert r.get("k") == b"2" and 90 <= r.ttl("k") <= 100
    assert wire.call("SET", "k", "3") == OK
    assert r.ttl("k") == -1


def test_set_get_returns_old_value(r, wire):
    assert wire.call("SET", "k", "1", "GET") == NIL
    assert wire.call("SET", "k", "2", "GET") == bulk("1")
    assert r.get("k") == b"2"
    # NX and GET together (allowed since 7.0): the old value comes back, nothing is written.
    assert wire.call("SET", "k", "3", "NX", "GET") == bulk("2")
    assert r.get("k") == b"2"
    assert wire.call("SET", "new", "3", "NX", "GET") == NIL
    assert r.get("new") == b"3"
    assert wire.call("SET", "k", "4", "XX", "GET") == bulk("2")
    assert wire.call("SET", "absent", "4", "XX", "GET") == NIL
    assert r.exists("absent") == 0


def test_set_get_with_expiry(r, wire):
    r.set("k", "old")
    assert wire.call("SET", "k", "new", "GET", "EX", "100") == bulk("old")
    assert 90 <= r.ttl("k") <= 100


@pytest.mark.parametrize("opts", [
    ["NX", "XX"], ["XX", "NX"], ["EX", "10", "PX", "100"], ["PX", "100", "EX", "10"], ["EX", "10", "KEEPTTL"],
    ["KEEPTTL", "EX", "10"], ["KEEPTTL", "PX", "5"], ["EXAT", "99999999999", "PXAT", "99999999999000"],
    ["EX", "10", "EXAT", "99999999999"], ["PXAT", "99999999999000", "KEEPTTL"], ["EX"], ["PX"], ["EXAT"],
    ["PXAT"], ["FOO"], ["EX", "10", "BAR"], ["GETX"],
], ids=" ".join)
def test_set_invalid_option_combinations_are_syntax_errors(r, wire, opts):
    assert wire.call("SET", "k", "v", *opts) == SYNTAX
    assert r.exists("k") == 0


@pytest.mark.parametrize("opts", [
    ["EX", "0"], ["EX", "-1"], ["PX", "0"], ["PX", "-100"], ["EXAT", "0"], ["PXAT", "-1"],
    ["EX", "9223372036854775807"], ["PX", "9223372036854775807"], ["EX", "9223372036854775"],
], ids=" ".join)
def test_set_invalid_expire_time(r, wire, opts):
    assert wire.call("SET", "k", "v", *opts) == bad_expire("set")
    assert r.exists("k") == 0


@pytest.mark.parametrize("value", ["abc", "1.5", "", " 10", "10 ", "9223372036854775808"])
def test_set_non_integer_expire(r, wire, value):
    assert wire.call("SET", "k", "v", "EX", value) == NOT_INT
    assert wire.call("SET", "k", "v", "PX", value) == NOT_INT
    assert r.exists("k") == 0


def test_set_nx_fails_with_expiry_and_leaves_ttl_alone(r, wire):
    r.set("k", "1")
    assert wire.call("SET", "k", "2", "NX", "EX", "100") == NIL
    assert r.ttl("k") == -1


# ---------------------------------------------------------------- SET ... IFEQ (Valkey 8.1)

@pytest.mark.not_on_redis
class TestSetIfeq:
    def test_sets_when_equal(self, r, wire):
        r.set("k", "v1")
        assert wire.call("SET", "k", "v2", "IFEQ", "v1") == OK
        assert r.get("k") == b"v2"

    def test_nil_when_different(self, r, wire):
        r.set("k", "v1")
        assert wire.call("SET", "k", "v2", "IFEQ", "nope") == NIL
        assert r.get("k") == b"v1"

    def test_nil_when_missing_and_key_not_created(self, r, wire):
        assert wire.call("SET", "k", "v", "IFEQ", "v") == NIL
        assert wire.call("SET", "k", "v", "IFEQ", "") == NIL
        assert r.exists("k") == 0

    def test_compares_whole_binary_values(self, r, wire):
        r.set("k", b"a\x00b")
        assert wire.call("SET", "k", "x", "IFEQ", "a") == NIL
        assert wire.call("SET", "k", "x", "IFEQ", b"a\x00b") == OK
        r.set("e", "")
        assert wire.call("SET", "e", "y", "IFEQ", "") == OK
        assert r.get("e") == b"y"

    def test_compares_integer_encoded_values_as_strings(self, r, wire):
        r.set("n", "123")
        r.incr("n")
        assert wire.call("SET", "n", "0", "IFEQ", "0124") == NIL
        assert wire.call("SET", "n", "0", "IFEQ", "124") == OK
        assert r.get("n") == b"0"

    def test_with_get_returns_old_value(self, r, wire):
        r.set("k", "old")
        assert wire.call("SET", "k", "new", "IFEQ", "old", "GET") == bulk("old")
        assert r.get("k") == b"new"
        # No match: the current value comes back and nothing is written.
        assert wire.call("SET", "k", "newer", "IFEQ", "old", "GET") == bulk("new")
        assert r.get("k") == b"new"
        assert wire.call("SET", "missing", "v", "IFEQ", "x", "GET") == NIL
        assert r.exists("missing") == 0

    def test_expiry_options_apply_only_when_set(self, r, wire):
        r.set("k", "a")
        assert wire.call("SET", "k", "b", "IFEQ", "zzz", "EX", "100") == NIL
        assert r.ttl("k") == -1
        assert wire.call("SET", "k", "b", "IFEQ", "a", "EX", "100") == OK
        assert 90 <= r.ttl("k") <= 100
        assert wire.call("SET", "k", "c", "IFEQ", "b", "KEEPTTL") == OK
        assert 90 <= r.ttl("k") <= 100
        assert wire.call("SET", "k", "d", "IFEQ", "c") == OK
        assert r.ttl("k") == -1

    @pytest.mark.parametrize("opts", [["IFEQ", "a", "NX"], ["NX", "IFEQ", "a"], ["IFEQ", "a", "XX"],
                                      ["XX", "IFEQ", "a"], ["IFEQ"], ["IFEQ", "a", "IFEQ", "a"]], ids=" ".join)
    def test_conflicts_are_syntax_errors(self, r, wire, opts):
        r.set("k", "a")
        assert wire.call("SET", "k", "b", *opts) == SYNTAX
        assert r.get("k") == b"a"

    def test_wrongtype_on_non_strings(self, r, wire):
        try:
            r.execute_command("RPUSH", "list", "a")
        except redis.ResponseError as e:
            pytest.skip(f"the server has no non-string type to test with: {e}")
        assert wire.call("SET", "list", "b", "IFEQ", "a") == err(
            "WRONGTYPE Operation against a key holding the wrong kind of value")
        assert r.type("list") == b"list"


# ---------------------------------------------------------------- SETNX / SETEX / PSETEX / GETSET / GETDEL

def test_setnx(r, wire):
    assert wire.call("SETNX", "k", "1") == integer(1)
    assert wire.call("SETNX", "k", "2") == integer(0)
    assert r.get("k") == b"1"


def test_setex_psetex(r, wire):
    assert wire.call("SETEX", "a", "100", "v") == OK
    assert r.get("a") == b"v" and 90 <= r.ttl("a") <= 100
    assert wire.call("PSETEX", "b", "100000", "w") == OK
    assert r.get("b") == b"w" and 90000 <= r.pttl("b") <= 100000


@pytest.mark.parametrize("cmd,ttl,expected", [
    ("SETEX", "0", bad_expire("setex")), ("SETEX", "-1", bad_expire("setex")), ("SETEX", "abc", NOT_INT),
    ("SETEX", "1.5", NOT_INT), ("SETEX", "9223372036854775807", bad_expire("setex")),
    ("PSETEX", "0", bad_expire("psetex")), ("PSETEX", "-5", bad_expire("psetex")), ("PSETEX", "x", NOT_INT),
])
def test_setex_errors(r, wire, cmd, ttl, expected):
    assert wire.call(cmd, "k", ttl, "v") == expected
    assert r.exists("k") == 0


def test_getset_returns_old_and_clears_ttl(r, wire):
    assert wire.call("GETSET", "k", "1") == NIL
    r.expire("k", 100)
    assert wire.call("GETSET", "k", "2") == bulk("1")
    assert r.get("k") == b"2" and r.ttl("k") == -1


def test_getdel(r, wire):
    assert wire.call("GETDEL", "k") == NIL
    r.set("k", "v", ex=100)
    assert wire.call("GETDEL", "k") == bulk("v")
    assert r.exists("k") == 0
    assert wire.call("GETDEL", "k") == NIL


# ---------------------------------------------------------------- GETEX

def test_getex_without_options_leaves_ttl(r, wire):
    r.set("k", "v", ex=100)
    assert wire.call("GETEX", "k") == bulk("v")
    assert 90 <= r.ttl("k") <= 100
    assert wire.call("GETEX", "missing") == NIL


def test_getex_sets_expiry(r, wire):
    r.set("k", "v")
    assert wire.call("GETEX", "k", "EX", "100") == bulk("v")
    assert 90 <= r.ttl("k") <= 100
    assert wire.call("GETEX", "k", "PX", "50000") == bulk("v")
    assert 40000 <= r.pttl("k") <= 50000
    at = int(time.time()) + 1000
    assert wire.call("GETEX", "k", "EXAT", str(at)) == bulk("v")
    assert r.expiretime("k") == at
    assert wire.call("GETEX", "k", "PXAT", str(at * 1000 + 7)) == bulk("v")
    assert r.execute_command("PEXPIRETIME", "k") == at * 1000 + 7


def test_getex_persist(r, wire):
    r.set("k", "v", ex=100)
    assert wire.call("GETEX", "k", "PERSIST") == bulk("v")
    assert r.ttl("k") == -1


def test_getex_past_time_deletes(r, wire):
    r.set("k", "v")
    assert wire.call("GETEX", "k", "PXAT", "1") == bulk("v")
    assert r.exists("k") == 0


@pytest.mark.parametrize("opts,expected", [
    (["PERSIST", "EX", "10"], SYNTAX), (["EX", "10", "PERSIST"], SYNTAX), (["EX", "10", "PX", "10"], SYNTAX),
    (["EXAT", "99999999999", "PXAT", "99999999999000"], SYNTAX), (["EX"], SYNTAX), (["FOO"], SYNTAX),
    (["KEEPTTL"], SYNTAX), (["EX", "0"], bad_expire("getex")), (["EX", "-1"], bad_expire("getex")),
    (["PX", "0"], bad_expire("getex")), (["EXAT", "0"], bad_expire("getex")),
    (["EX", "9223372036854775807"], bad_expire("getex")), (["EX", "abc"], NOT_INT), (["PX", "1.5"], NOT_INT),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_getex_errors_on_an_existing_key(r, wire, opts, expected):
    r.set("k", "v", ex=100)
    assert wire.call("GETEX", "k", *opts) == expected
    assert r.get("k") == b"v" and 90 <= r.ttl("k") <= 100


# ---------------------------------------------------------------- MGET / MSET / MSETNX

def test_mget_mset(r, wire):
    assert wire.call("MSET", "a", "1", "b", "2", "c", "") == OK
    assert wire.call("MGET", "a", "nope", "b", "c", "a") == (
        "*", [bulk("1"), NIL, bulk("2"), bulk(""), bulk("1")])


def test_mset_last_duplicate_wins_and_clears_ttl(r):
    r.set("a", "0", ex=100)
    r.execute_command("MSET", "a", "1", "a", "2")
    assert r.get("a") == b"2" and r.ttl("a") == -1


def test_msetnx_is_all_or_nothing(r, wire):
    assert wire.call("MSETNX", "a", "1", "b", "2") == integer(1)
    assert wire.call("MSETNX", "b", "3", "c", "4") == integer(0)
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert wire.call("MSETNX", "x", "1", "x", "2") == integer(1)
    assert r.get("x") == b"2"


@pytest.mark.parametrize("cmd", [["MSET"], ["MSET", "a"], ["MSET", "a", "1", "b"], ["MSETNX", "a"],
                                 ["MSETNX", "a", "1", "b"], ["MGET"]], ids=" ".join)
def test_mset_odd_arguments(r, wire, cmd):
    assert wire.call(*cmd) == err(f"ERR wrong number of arguments for '{cmd[0].lower()}' command")
    assert r.dbsize() == 0


# ---------------------------------------------------------------- APPEND / STRLEN / GETRANGE / SETRANGE

def test_append_and_strlen(r, wire):
    assert wire.call("STRLEN", "k") == integer(0)
    assert wire.call("APPEND", "k", "hello") == integer(5)
    assert wire.call("APPEND", "k", " world") == integer(11)
    assert wire.call("APPEND", "k", "") == integer(11)
    assert r.get("k") == b"hello world"
    assert wire.call("STRLEN", "k") == integer(11)


def test_append_to_integer_and_keeps_ttl(r):
    r.set("n", 12, ex=100)
    assert r.append("n", "3") == 3
    assert r.get("n") == b"123" and 90 <= r.ttl("n") <= 100
    assert r.incr("n") == 124


def test_strlen_of_integer_encoded_value(r):
    r.set("n", "-12345")
    assert r.strlen("n") == 6


@pytest.mark.parametrize("start,end,expected", [
    (0, -1, b"Hello, World"), (0, 4, b"Hello"), (-5, -1, b"World"), (-1, -1, b"d"), (7, 100, b"World"),
    (100, 200, b""), (5, 2, b""), (-100, 2, b"Hel"), (-100, -100, b"H"), (-1, -5, b""), (3, 3, b"l"),
    (0, 0, b"H"), (I64_MAX, I64_MAX, b""), (I64_MIN, I64_MIN, b"H"), (-3, 100, b"rld"),
])
def test_getrange(r, start, end, expected):
    r.set("k", "Hello, World")
    assert r.getrange("k", start, end) == expected


def test_getrange_missing_and_errors(r, wire):
    assert wire.call("GETRANGE", "nope", "0", "-1") == bulk("")
    r.set("k", "abc")
    assert wire.call("GETRANGE", "k", "a", "1") == NOT_INT
    assert wire.call("GETRANGE", "k", "0", "1.5") == NOT_INT
    assert wire.call("SUBSTR", "k", "1", "-1") == bulk("bc")


def test_getrange_of_integer_encoded_value(r):
    r.set("n", 1234567)
    assert r.getrange("n", 2, -2) == b"3456"


def test_setrange_overwrites_and_pads_with_zero_bytes(r, wire):
    r.set("k", "Hello World")
    assert wire.call("SETRANGE", "k", "6", "Redis") == integer(11)
    assert r.get("k") == b"Hello Redis"
    assert wire.call("SETRANGE", "k", "9", "xyz") == integer(12)
    assert r.get("k") == b"Hello Redxyz"
    assert wire.call("SETRANGE", "pad", "5", "ab") == integer(7)
    assert r.get("pad") == b"\x00\x00\x00\x00\x00ab"
    assert wire.call("SETRANGE", "k", "20", "!") == integer(21)
    assert r.get("k") == b"Hello Redxyz" + b"\x00" * 8 + b"!"


def test_setrange_with_empty_value(r, wire):
    assert wire.call("SETRANGE", "nope", "10", "") == integer(0)
    assert r.exists("nope") == 0
    r.set("k", "abc")
    assert wire.call("SETRANGE", "k", "10", "") == integer(3)
    assert r.get("k") == b"abc"


def test_setrange_on_integer_and_keeps_ttl(r):
    r.set("n", 1234, ex=100)
    assert r.setrange("n", 1, "x") == 4
    assert r.get("n") == b"1x34" and 90 <= r.ttl("n") <= 100


def test_setrange_offset_errors(r, wire):
    assert wire.call("SETRANGE", "k", "-1", "x") == err("ERR offset is out of range")
    assert wire.call("SETRANGE", "k", "abc", "x") == NOT_INT
    too_big = err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    assert wire.call("SETRANGE", "k", "536870912", "x") == too_big
    assert wire.call("SETRANGE", "k", "536870911", "xx") == too_big
    assert wire.call("SETRANGE", "k", str(I64_MAX), "x") == too_big
    assert r.exists("k") == 0


# ---------------------------------------------------------------- counters

def test_incr_family(r, wire):
    assert wire.call("INCR", "n") == integer(1)
    assert wire.call("INCRBY", "n", "10") == integer(11)
    assert wire.call("DECR", "n") == integer(10)
    assert wire.call("DECRBY", "n", "15") == integer(-5)
    assert wire.call("INCRBY", "n", "-5") == integer(-10)
    assert wire.call("DECRBY", "n", "-10") == integer(0)
    assert wire.call("DECR", "m") == integer(-1)
    assert r.get("n") == b"0"


def test_incr_keeps_ttl(r):
    r.set("n", 5, ex=100)
    assert r.incr("n") == 6
    assert 90 <= r.ttl("n") <= 100


def test_incr_at_the_limits(r, wire):
    r.set("n", I64_MAX - 1)
    assert wire.call("INCR", "n") == integer(I64_MAX)
    assert wire.call("INCR", "n") == OVERFLOW
    assert wire.call("INCRBY", "n", "1") == OVERFLOW
    assert wire.call("DECRBY", "n", "-1") == OVERFLOW
    assert wire.call("INCRBY", "n", "0") == integer(I64_MAX)
    r.set("m", I64_MIN + 1)
    assert wire.call("DECR", "m") == integer(I64_MIN)
    assert wire.call("DECR", "m") == OVERFLOW
    assert wire.call("INCRBY", "m", str(I64_MIN)) == OVERFLOW
    assert r.get("n") == str(I64_MAX).encode() and r.get("m") == str(I64_MIN).encode()


def test_decrby_of_i64_min_has_its_own_error(r, wire):
    assert wire.call("DECRBY", "n", str(I64_MIN)) == err("ERR decrement would overflow")
    assert r.exists("n") == 0


@pytest.mark.parametrize("value", ["abc", "1.5", "", " 1", "1 ", "0x10", "+5", "-0", "007",
                                   "9223372036854775808", "-9223372036854775809", "1e3"])
def test_incr_on_non_integer_value(r, wire, value):
    r.set("k", value)
    assert wire.call("INCR", "k") == NOT_INT
    assert wire.call("DECRBY", "k", "1") == NOT_INT
    assert r.get("k") == value.encode()


@pytest.mark.parametrize("incr", ["abc", "1.0", "", " 1", "9223372036854775808", "-9223372036854775809"])
def test_incrby_non_integer_increment(r, wire, incr):
    assert wire.call("INCRBY", "k", incr) == NOT_INT
    assert wire.call("DECRBY", "k", incr) == NOT_INT
    assert r.exists("k") == 0


def test_incrbyfloat(r, wire):
    assert wire.call("INCRBYFLOAT", "f", "10.5") == bulk("10.5")
    assert wire.call("INCRBYFLOAT", "f", "0.1") == bulk("10.6")
    assert wire.call("INCRBYFLOAT", "f", "-5") == bulk("5.6")
    assert r.get("f") == b"5.6"
    r.set("g", "5.0e3")
    assert wire.call("INCRBYFLOAT", "g", "2.0e2") == bulk("5200")
    r.set("h", 3)
    assert wire.call("INCRBYFLOAT", "h", "-3") == bulk("0")
    assert wire.call("INCRBYFLOAT", "i", "1.5") == bulk("1.5")
    assert wire.call("INCRBYFLOAT", "i", "1.5") == bulk("3")
    assert wire.call("INCRBYFLOAT", "j", "0.1") == bulk("0.1")
    assert wire.call("INCRBYFLOAT", "j", "0.2") == bulk("0.3")
    assert wire.call("INCRBYFLOAT", "l", "1e17") == bulk("100000000000000000")
    assert wire.call("INCRBYFLOAT", "m", "1.10") == bulk("1.1")
    assert wire.call("INCRBYFLOAT", "o", ".5") == bulk("0.5")
    assert wire.call("INCRBYFLOAT", "p", "-0.0") == bulk("0")


def test_incrbyfloat_keeps_ttl(r):
    r.set("f", "1.5", ex=100)
    assert r.incrbyfloat("f", 1) == 2.5
    assert 90 <= r.ttl("f") <= 100


@pytest.mark.parametrize("incr", ["inf", "-inf", "+inf", "INF", "infinity"])
def test_incrbyfloat_infinity_is_refused(r, wire, incr):
    assert wire.call("INCRBYFLOAT", "f", incr) == err("ERR increment would produce NaN or Infinity")
    assert r.exists("f") == 0


@pytest.mark.parametrize("incr", ["nan", "NaN", "abc", "", " 1", "1 ", "1.5x", "--1"])
def test_incrbyfloat_bad_increment(r, wire, incr):
    assert wire.call("INCRBYFLOAT", "f", incr) == NOT_FLOAT
    assert r.exists("f") == 0


@pytest.mark.parametrize("value", ["abc", "", "1.5.5", " 2", "nan"])
def test_incrbyfloat_on_non_float_value(r, wire, value):
    r.set("f", value)
    assert wire.call("INCRBYFLOAT", "f", "1") == NOT_FLOAT
    assert r.get("f") == value.encode()


# ---------------------------------------------------------------- LCS

def test_lcs(r, wire):
    r.mset({"a": "ohmytext", "b": "mynewtext"})
    assert wire.call("LCS", "a", "b") == bulk("mytext")
    assert wire.call("LCS", "a", "b", "LEN") == integer(6)
    assert wire.call("LCS", "a", "missing") == bulk("")
    assert wire.call("LCS", "x", "y", "LEN") == integer(0)
    assert wire.call("LCS", "a", "a") == bulk("ohmytext")


def pair(a, b):
    return ("*", [("*", [integer(a[0]), integer(a[1])]), ("*", [integer(b[0]), integer(b[1])])])


def test_lcs_idx(r, wire):
    r.mset({"a": "ohmytext", "b": "mynewtext"})
    assert wire.call("LCS", "a", "b", "IDX") == ("*", [
        bulk("matches"), ("*", [pair((4, 7), (5, 8)), pair((2, 3), (0, 1))]), bulk("len"), integer(6)])
    assert wire.call("LCS", "a", "b", "IDX", "MINMATCHLEN", "4") == ("*", [
        bulk("matches"), ("*", [pair((4, 7), (5, 8))]), bulk("len"), integer(6)])
    with_len = ("*", [("*", [integer(4), integer(7)]), ("*", [integer(5), integer(8)]), integer(4)])
    assert wire.call("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN") == ("*", [
        bulk("matches"), ("*", [with_len]), bulk("len"), integer(6)])
    assert wire.call("LCS", "x", "y", "IDX") == ("*", [bulk("matches"), ("*", []), bulk("len"), integer(0)])


def test_lcs_idx_through_redis_py(r):
    r.mset({"a": "ohmytext", "b": "mynewtext"})
    reply = r.execute_command("LCS", "a", "b", "IDX", "WITHMATCHLEN")
    assert reply == [b"matches", [[[4, 7], [5, 8], 4], [[2, 3], [0, 1], 2]], b"len", 6]


def test_lcs_errors(r, wire):
    r.mset({"a": "abc", "b": "abd"})
    assert wire.call("LCS", "a", "b", "LEN", "IDX") == err(
        "ERR If you want both the length and indexes, please just use IDX.")
    assert wire.call("LCS", "a", "b", "FOO") == SYNTAX
    assert wire.call("LCS", "a", "b", "MINMATCHLEN") == SYNTAX
    assert wire.call("LCS", "a", "b", "MINMATCHLEN", "x") == NOT_INT
    assert wire.call("LCS", "a") == err("ERR wrong number of arguments for 'lcs' command")


def test_lcs_of_integers_and_binary(r):
    r.set("a", 12345)
    r.set("b", "x1y3z5")
    assert r.execute_command("LCS", "a", "b") == b"135"
    r.set("c", b"\x00\xff\x00")
    r.set("d", b"\xff\x00\x01")
    assert r.execute_command("LCS", "c", "d") == b"\xff\x00"


# ---------------------------------------------------------------- OBJECT ENCODING

@pytest.mark.parametrize("value,encoding", [
    ("0", b"int"), ("12345", b"int"), ("-1", b"int"), (str(I64_MAX), b"int"), (str(I64_MIN), b"int"),
    ("9223372036854775808", b"embstr"), ("+1", b"embstr"), ("01", b"embstr"), ("-0", b"embstr"), ("1.5", b"embstr"),
    ("", b"embstr"), ("abc", b"embstr"), ("x" * 44, b"embstr"), ("x" * 45, b"raw"), ("x" * 1000, b"raw"),
])
def test_object_encoding(r, value, encoding):
    r.set("k", value)
    assert r.object("encoding", "k") == encoding


def test_object_encoding_after_modification(r):
    r.set("a", "abc")
    r.append("a", "d")
    assert r.object("encoding", "a") == b"raw"
    r.set("b", "abc")
    r.setrange("b", 0, "x")
    assert r.object("encoding", "b") == b"raw"
    r.incr("c")
    assert r.object("encoding", "c") == b"int"
    r.set("d", "10")
    r.incrbyfloat("d", 1.5)
    assert r.object("encoding", "d") == b"embstr"


def test_object_encoding_missing_and_errors(r, wire):
    assert wire.call("OBJECT", "ENCODING", "nope") == NIL
    assert wire.call("OBJECT", "ENCODING") == err("ERR wrong number of arguments for 'object|encoding' command")
    assert wire.call("OBJECT") == err("ERR wrong number of arguments for 'object' command")


# ---------------------------------------------------------------- arity

ARITY = [
    ["GET"], ["GET", "a", "b"], ["SET"], ["SET", "a"], ["SETNX", "a"], ["SETNX", "a", "b", "c"], ["SETEX", "a", "1"],
    ["PSETEX", "a", "1"], ["GETSET", "a"], ["GETDEL"], ["GETDEL", "a", "b"], ["GETEX"], ["MGET"], ["APPEND", "a"],
    ["STRLEN"], ["STRLEN", "a", "b"], ["GETRANGE", "a", "0"], ["GETRANGE", "a", "0", "1", "2"], ["SUBSTR", "a"],
    ["SETRANGE", "a", "1"], ["INCR"], ["INCR", "a", "b"], ["DECR"], ["INCRBY", "a"], ["INCRBY", "a", "1", "2"],
    ["DECRBY", "a"], ["INCRBYFLOAT", "a"], ["LCS", "a"],
]


@pytest.mark.parametrize("cmd", ARITY, ids=" ".join)
def test_wrong_arity(r, wire, cmd):
    assert wire.call(*cmd) == err(f"ERR wrong number of arguments for '{cmd[0].lower()}' command")
    assert r.dbsize() == 0


def test_arity_error_names_the_command_in_lower_case(r, wire):
    assert wire.call("gEt") == err("ERR wrong number of arguments for 'get' command")


def test_resp3_client_sees_the_same_string_replies(r3):
    assert r3.set("k", "v") is True
    assert r3.get("k") == b"v"
    assert r3.get("missing") is None
    assert r3.incr("n") == 1
    assert r3.incrbyfloat("f", "1.5") == 1.5
    assert r3.mget("k", "missing") == [b"v", None]
