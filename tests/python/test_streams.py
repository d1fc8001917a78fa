"""Streams against a real redis-server: the same commands with explicit IDs on both servers
must get the same replies, pending lists and group state. Idle times depend on the clock, so
they are compared as "present", not by value. Keys are spread so that multi-key XREADs cross
the server's cores."""

import time

import pytest
import redis

SCRIPT = [
    ["XADD", "s", "1-1", "a", "1"], ["XADD", "s", "1-2", "b", "2", "c", "3"], ["XADD", "s", "2-0", "d", "4"],
    ["XADD", "s", "1-5", "late", "x"], ["XADD", "s", "0-0", "z", "z"], ["XADD", "s", "2-*", "e", "5"],
    ["XADD", "s", "3", "f", "6"], ["XADD", "s", "5-1", "odd"], ["XADD", "s", "bad-id", "f", "v"],
    ["XADD", "nope", "NOMKSTREAM", "9-9", "f", "v"], ["EXISTS", "nope"],
    ["XADD", "s", "MAXLEN", "=", "10", "6-0", "g", "7"], ["XADD", "s", "LIMIT", "5", "7-0", "h", "8"],
    ["XADD", "s", "MAXLEN", "-1", "7-0", "h", "8"],
    ["XLEN", "s"], ["XLEN", "nope"],
    ["XRANGE", "s", "-", "+"], ["XRANGE", "s", "1", "2"], ["XRANGE", "s", "(1-1", "+", "COUNT", "2"],
    ["XRANGE", "s", "-", "+", "COUNT", "0"], ["XRANGE", "s", "5", "1"], ["XRANGE", "s", "(-", "+"],
    ["XREVRANGE", "s", "+", "-"], ["XREVRANGE", "s", "2", "-", "COUNT", "2"], ["XRANGE", "s", "x", "+"],
    ["XDEL", "s", "1-2", "9-9"], ["XDEL", "s", "oops"],
    ["XADD", "t", "1-0", "k", "v"], ["XADD", "t", "2-0", "k", "v"], ["XADD", "t", "3-0", "k", "v"],
    ["XREAD", "STREAMS", "s", "t", "0", "1"], ["XREAD", "COUNT", "1", "STREAMS", "s", "t", "0-0", "0-0"],
    ["XREAD", "STREAMS", "s", "t", "$", "$"], ["XREAD", "STREAMS", "s", "t", "0"], ["XREAD", "STREAMS", "s"],
    ["XREAD", "STREAMS", "nope", "0"], ["XREAD", "STREAMS", "s", ">"],
    ["XGROUP", "CREATE", "s", "g", "0"], ["XGROUP", "CREATE", "s", "g", "0"], ["XGROUP", "CREATE", "nope", "g", "0"],
    ["XGROUP", "CREATE", "nope", "g", "$", "MKSTREAM"], ["XLEN", "nope"], ["XGROUP", "CREATE", "s", "late", "$"],
    ["XINFO", "GROUPS", "s"],
    ["XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
    ["XREADGROUP", "GROUP", "nog", "alice", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "$"],
    ["XPENDING", "s", "g"], ["XPENDING", "s", "g", "-", "+", "10"], ["XPENDING", "s", "g", "-", "+", "10", "bob"],
    ["XPENDING", "s", "nog"], ["XACK", "s", "g", "1-1", "1-1", "9-9"], ["XPENDING", "s", "g"],
    ["XDEL", "s", "2-0"], ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "0"],
    ["XCLAIM", "s", "g", "carol", "0", "2-1", "JUSTID"], ["XCLAIM", "s", "g", "carol", "0", "3-0"],
    ["XCLAIM", "s", "g", "carol", "3600000", "3-0"], ["XPENDING", "s", "g", "-", "+", "10", "carol"],
    ["XAUTOCLAIM", "s", "g", "dave", "0", "0", "COUNT", "2"], ["XAUTOCLAIM", "s", "g", "dave", "0", "0", "JUSTID"],
    ["XREADGROUP", "GROUP", "g", "erin", "NOACK", "STREAMS", "s", "0"],
    ["XADD", "s", "8-0", "i", "9"], ["XREADGROUP", "GROUP", "g", "erin", "NOACK", "STREAMS", "s", ">"],
    ["XPENDING", "s", "g"], ["XINFO", "GROUPS", "s"],
    ["XGROUP", "CREATECONSUMER", "s", "g", "frank"], ["XGROUP", "CREATECONSUMER", "s", "g", "frank"],
    ["XGROUP", "DELCONSUMER", "s", "g", "dave"], ["XGROUP", "SETID", "s", "g", "0"], ["XGROUP", "SETID", "s", "nog", "0"],
    ["XINFO", "GROUPS", "s"], ["XGROUP", "DESTROY", "s", "late"], ["XGROUP", "DESTROY", "s", "late"],
    ["XTRIM", "s", "MAXLEN", "3"], ["XTRIM", "s", "MINID", "6"], ["XTRIM", "s", "MAXLEN", "~", "2", "LIMIT", "1"],
    ["XTRIM", "s", "LIMIT", "1"], ["XTRIM", "s"], ["XLEN", "s"],
    ["XSETID", "t", "2-0"], ["XSETID", "t", "9-0", "ENTRIESADDED", "1"], ["XSETID", "t", "9-0", "ENTRIESADDED", "10"],
    ["XSETID", "nope2", "1-0"], ["XADD", "t", "*-*", "k", "v"],
    ["SET", "str", "v"], ["XADD", "str", "1-1", "f", "v"], ["XRANGE", "str", "-", "+"], ["XLEN", "str"],
    ["TYPE", "s"], ["OBJECT", "ENCODING", "s"],
]

INFO_STREAM_FIELDS = ["length", "last-generated-id", "max-deleted-entry-id", "entries-added",
                      "recorded-first-entry-id", "groups", "first-entry", "last-entry"]


def normalize(command, reply):
    """Blank the clock-dependent numbers (idle times) in replies that carry them."""
    name = command[0].upper()
    if name == "XPENDING" and len(command) > 3 and isinstance(reply, list):
        return [[row[0], row[1], "idle", row[3]] for row in reply]
    return reply


def run(client, command):
    try:
        return normalize(command, client.execute_command(*command))
    except redis.ResponseError as e:
        return ("error", str(e))


def raw(client):
    client.response_callbacks.clear()
    return client


@pytest.mark.parametrize("protocol", [2, 3])
def test_stream_commands_match_redis(server, reference, protocol):
    ours = raw(server.client(decode_responses=True, protocol=protocol))
    theirs = raw(reference.client(decode_responses=True, protocol=protocol))
    for client in (ours, theirs):
        client.flushall()
    for step, command in enumerate(SCRIPT):
        assert run(ours, command) == run(theirs, command), f"step {step}: {command}"
    for key in ("s", "t", "nope"):
        ours_info = ours.execute_command("XINFO", "STREAM", key)
        theirs_info = theirs.execute_command("XINFO", "STREAM", key)
        if protocol == 2:
            ours_info = dict(zip(ours_info[::2], ours_info[1::2]))
            theirs_info = dict(zip(theirs_info[::2], theirs_info[1::2]))
        for field in INFO_STREAM_FIELDS:
            assert ours_info[field] == theirs_info[field], (key, field)
    ours.close()
    theirs.close()


def test_auto_ids_follow_the_clock(r):
    before = int(time.time() * 1000)
    first = r.xadd("clock", {"f": "v"}).decode()
    second = r.xadd("clock", {"f": "v"}).decode()
    ms, seq = map(int, first.split("-"))
    assert before - 1000 <= ms <= before + 60_000 and seq == 0
    assert tuple(map(int, second.split("-"))) > (ms, seq)
    r.xadd("future", {"f": "v"}, id=f"{ms + 10_000_000}-5")
    assert r.xadd("future", {"f": "v"}).decode() == f"{ms + 10_000_000}-6"


def test_a_crashed_consumer_s_messages_are_claimed(r):
    """A consumer reads and dies without acknowledging; another takes its messages over
    with XAUTOCLAIM once they have been idle long enough, and acknowledges them."""
    for i in range(5):
        r.xadd("jobs", {"n": i}, id=f"{i + 1}-0")
    r.xgroup_create("jobs", "workers", id="0")
    got = r.xreadgroup("workers", "crashed", {"jobs": ">"}, count=3)
    assert [e[0] for e in got[0][1]] == [b"1-0", b"2-0", b"3-0"]
    assert r.xautoclaim("jobs", "workers", "rescuer", 60_000, "0-0") == [b"0-0", [], []]
    time.sleep(0.05)
    cursor, claimed, deleted = r.xautoclaim("jobs", "workers", "rescuer", 20, "0-0")
    assert [e[0] for e in claimed] == [b"1-0", b"2-0", b"3-0"] and deleted == []
    pending = r.xpending_range("jobs", "workers", "-", "+", 10)
    assert [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending] == [
        (b"1-0", b"rescuer", 2), (b"2-0", b"rescuer", 2), (b"3-0", b"rescuer", 2)]
    assert r.xack("jobs", "workers", "1-0", "2-0", "3-0") == 3
    rest = r.xreadgroup("workers", "rescuer", {"jobs": ">"})
    assert [e[0] for e in rest[0][1]] == [b"4-0", b"5-0"]
    assert r.xpending("jobs", "workers")["pending"] == 2


def test_streams_move_between_cores_with_their_groups(r):
    r.xadd("src", {"f": "v"}, id="1-0")
    r.xadd("src", {"f": "w"}, id="2-0")
    r.xgroup_create("src", "g", id="0")
    r.xreadgroup("g", "c", {"src": ">"}, count=1)
    for i in range(12):
        r.rename("src" if i == 0 else f"moved{i - 1}", f"moved{i}")
    r.copy("moved11", "copy")
    for key in ("moved11", "copy"):
        assert r.xlen(key) == 2
        assert r.xpending(key, "g")["pending"] == 1
        assert r.xinfo_groups(key)[0]["last-delivered-id"] == b"1-0"
        assert r.xreadgroup("g", "c2", {key: ">"})[0][1][0][0] == b"2-0"


def test_xread_over_many_keys_across_cores(r):
    keys = [f"st{i}" for i in range(12)]
    for i, key in enumerate(keys):
        r.xadd(key, {"i": i}, id=f"{i + 1}-0")
    got = r.xread({key: "0" for key in keys})
    assert [(k.decode(), [e[0] for e in entries]) for k, entries in got] == [
        (key, [f"{i + 1}-0".encode()]) for i, key in enumerate(keys)]
    assert r.xread({key: "$" for key in keys}) == []


def test_xread_block_wakes_every_reader_with_new_entries(server, r):
    from test_blocking import Blocker, wait_blocked
    r.xadd("feed", {"old": "1"}, id="1-0")
    readers = []
    for n in range(3):
        readers.append(Blocker(server, "XREAD", "BLOCK", "0", "STREAMS", "other", "feed", "0", "$"))
        wait_blocked(r, n + 1)
    r.xadd("feed", {"new": "2"}, id="2-0")
    for reader in readers:
        assert reader.result() == [["feed", [["2-0", ["new", "2"]]]]]
    assert r.xread({"feed": "$"}, block=50) == []
    wait_blocked(r, 0)


def test_xreadgroup_block_delivers_to_one_consumer_and_tracks_it(server, r):
    from test_blocking import Blocker, wait_blocked
    r.xgroup_create("q", "g", id="$", mkstream=True)
    waiter = Blocker(server, "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "q", ">")
    wait_blocked(r, 1)
    r.xadd("q", {"job": "1"}, id="1-0")
    assert waiter.result() == [["q", [["1-0", ["job", "1"]]]]]
    assert r.xpending("q", "g")["consumers"] == [{"name": b"alice", "pending": 1}]
    timed_out = Blocker(server, "XREADGROUP", "GROUP", "g", "bob", "BLOCK", "50", "STREAMS", "q", ">")
    assert timed_out.result() is None


def test_xinfo_stream_full_matches_redis(server, reference):
    """The FULL form's structure and values, clock-dependent times aside."""
    replies = []
    for srv in (server, reference):
        client = raw(srv.client(decode_responses=True, protocol=3))
        client.flushall()
        for i in range(1, 13):
            client.execute_command("XADD", "full", f"{i}-0", "n", str(i))
        client.execute_command("XDEL", "full", "3-0")
        client.execute_command("XGROUP", "CREATE", "full", "g", "0")
        client.execute_command("XREADGROUP", "GROUP", "g", "c1", "COUNT", "4", "STREAMS", "full", ">")
        client.execute_command("XREADGROUP", "GROUP", "g", "c2", "COUNT", "2", "STREAMS", "full", ">")
        info = client.execute_command("XINFO", "STREAM", "full", "FULL", "COUNT", "3")
        for key in ("radix-tree-keys", "radix-tree-nodes"):
            info.pop(key)
        for group in info["groups"]:
            group["pending"] = [row[:2] + row[3:] for row in group["pending"]]
            for consumer in group["consumers"]:
                for key in ("seen-time", "active-time"):
                    consumer.pop(key, None)
                consumer["pending"] = [[row[0], row[2]] for row in consumer["pending"]]
        replies.append(info)
        client.close()
    assert replies[0] == replies[1]
