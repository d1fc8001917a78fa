"""Keyspace notifications against a real redis-server: the same commands on both servers
must publish the same events. Each key's `__keyspace@0__:<key>` messages must come in the
same order; `__keyevent@0__:<event>` messages are compared as multisets, since events on keys
owned by different cores may interleave differently (each key's own order is kept)."""

import time
from collections import Counter, defaultdict

import pytest

SCRIPT = [
    ["SET", "s", "1"], ["SET", "s", "2", "EX", "100"], ["SET", "s", "3", "NX"], ["SETEX", "s2", "100", "v"],
    ["MSET", "m1", "a", "m2", "b"], ["APPEND", "s", "x"], ["INCR", "n"], ["INCRBYFLOAT", "n", "1.5"],
    ["SETRANGE", "s", "1", "yy"], ["SETRANGE", "s", "0", ""], ["GETDEL", "m1"], ["GETEX", "m2", "EX", "50"],
    ["GETEX", "m2", "PERSIST"], ["DEL", "m2", "nosuch"], ["EXPIRE", "s2", "500"], ["PERSIST", "s2"],
    ["EXPIRE", "s2", "-1"], ["RENAME", "s", "renamed"], ["COPY", "renamed", "copied"],
    ["HSET", "h", "f", "1", "g", "2"], ["HSETNX", "h", "f", "x"], ["HSETNX", "h", "new", "x"],
    ["HINCRBY", "h", "f", "3"], ["HINCRBYFLOAT", "h", "f", "0.5"], ["HDEL", "h", "f", "g", "new"],
    ["HDEL", "h", "nope"],
    ["LPUSH", "l", "a", "b"], ["RPUSH", "l", "c"], ["LPUSHX", "nol", "a"], ["LSET", "l", "0", "z"],
    ["LINSERT", "l", "BEFORE", "c", "q"], ["LINSERT", "l", "BEFORE", "nope", "q"], ["LREM", "l", "0", "q"],
    ["LTRIM", "l", "0", "5"], ["LMOVE", "l", "l2", "LEFT", "RIGHT"], ["RPOPLPUSH", "l", "l2"],
    ["LMPOP", "2", "nol", "l", "LEFT", "COUNT", "5"], ["LPOP", "l2"], ["RPOP", "l2", "9"],
    ["SADD", "st", "a", "b", "c"], ["SADD", "st", "a"], ["SREM", "st", "a"], ["SMOVE", "st", "st2", "b"],
    ["SPOP", "st", "5"], ["SADD", "x1", "1", "2"], ["SADD", "x2", "2", "3"],
    ["SINTERSTORE", "xi", "x1", "x2"], ["SUNIONSTORE", "xu", "x1", "x2"], ["SDIFFSTORE", "xu", "x1", "x1"],
    ["ZADD", "z", "1", "a", "2", "b", "3", "c"], ["ZADD", "z", "1", "a"], ["ZADD", "z", "INCR", "5", "a"],
    ["ZINCRBY", "z", "1", "b"], ["ZREM", "z", "nope"], ["ZREM", "z", "c"], ["ZREMRANGEBYSCORE", "z", "0", "3"],
    ["ZADD", "z2", "1", "p", "2", "q"], ["ZPOPMIN", "z2"], ["ZUNIONSTORE", "zu", "2", "z", "z2"],
    ["ZRANGESTORE", "zr", "zu", "0", "0"], ["ZPOPMAX", "zu", "10"], ["ZINTERSTORE", "zr", "2", "z", "nosuch"],
    ["SETBIT", "bits", "7", "1"], ["BITOP", "NOT", "bits2", "bits"], ["BITFIELD", "bits", "SET", "u8", "0", "255"],
    ["PFADD", "hll", "a", "b"], ["PFADD", "hll", "a"], ["PFMERGE", "hll2", "hll"],
    ["FLUSHALL"],
]


def collect(pubsub):
    """Messages until the channel has been quiet for a moment, grouped by channel."""
    by_channel = defaultdict(list)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.5:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "pmessage":
            by_channel[message["channel"]].append(message["data"])
            quiet_since = time.monotonic()
    return by_channel


def subscribe(pubsub, pattern):
    """PSUBSCRIBE and wait for its confirmation, so no event published after it is missed."""
    pubsub.psubscribe(pattern)
    while True:
        message = pubsub.get_message(timeout=5)
        assert message is not None, "no PSUBSCRIBE confirmation"
        if message["type"] == "psubscribe":
            return


def run_script(server, flags, script):
    client = server.client(decode_responses=True)
    client.flushall()
    client.config_set("notify-keyspace-events", flags)
    pubsub = server.client(decode_responses=True).pubsub()
    try:
        subscribe(pubsub, "__key*@0__:*")
        for command in script:
            try:
                client.execute_command(*command)
            except Exception as e:  # an error reply publishes nothing; keep going
                assert "ERR" in str(e) or "WRONGTYPE" in str(e), e
        return collect(pubsub)
    finally:
        client.config_set("notify-keyspace-events", "")
        pubsub.close()
        client.close()


def split(by_channel):
    keyspace = {c: m for c, m in by_channel.items() if c.startswith("__keyspace")}
    keyevent = {c: Counter(m) for c, m in by_channel.items() if c.startswith("__keyevent")}
    return keyspace, keyevent


@pytest.mark.parametrize("flags", ["KEA", "Kl", "E$g", "KEAn"])
def test_events_match_redis(server, reference, flags):
    ours = split(run_script(server, flags, SCRIPT))
    theirs = split(run_script(reference, flags, SCRIPT))
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert ours != ({}, {}) or flags == "", "the script published nothing"


def test_expired_keys_are_announced(server, reference):
    script = [["SET", "brief", "v", "PX", "30"], ["SET", "lazy", "v", "PX", "30"]]
    for srv in (server, reference):
        client = srv.client(decode_responses=True)
        client.flushall()
        client.config_set("notify-keyspace-events", "Ex")
        pubsub = srv.client(decode_responses=True).pubsub()
        try:
            subscribe(pubsub, "__keyevent@0__:expired")
            for command in script:
                client.execute_command(*command)
            time.sleep(0.1)
            assert client.get("lazy") is None
            deadline = time.monotonic() + 5
            seen = []
            while sorted(seen) != ["brief", "lazy"] and time.monotonic() < deadline:
                message = pubsub.get_message(timeout=0.2)
                if message and message["type"] == "pmessage":
                    seen.append(message["data"])
            assert sorted(seen) == ["brief", "lazy"], srv.kind
        finally:
            client.config_set("notify-keyspace-events", "")
            pubsub.close()
            client.close()


def test_flags_read_back_as_redis(server, reference):
    for flags in ["KEA", "AKE", "KEn", "KEAn", "Elg", "gx$K", ""]:
        got = []
        for srv in (server, reference):
            client = srv.client(decode_responses=True)
            client.config_set("notify-keyspace-events", flags)
            got.append(client.config_get("notify-keyspace-events"))
            client.config_set("notify-keyspace-events", "")
            client.close()
        assert got[0] == got[1], flags
    client = server.client(decode_responses=True)
    with pytest.raises(Exception, match="Invalid event class character"):
        client.config_set("notify-keyspace-events", "KEQ")
    client.close()
