"""MULTI, EXEC, DISCARD, WATCH and UNWATCH: replies compared with a real redis-server, and
the two promises checked under concurrency: a transaction is atomic across cores, and WATCH
lets exactly one of several racing read-modify-write transactions win."""

import threading
import time

import pytest
import redis


def plain(reply):
    """Errors inside an EXEC reply as comparable values."""
    if isinstance(reply, list):
        return [plain(r) for r in reply]
    if isinstance(reply, redis.ResponseError):
        return ("error", str(reply))
    return reply


def raw(client, *command):
    try:
        return plain(client.execute_command(*command))
    except redis.ResponseError as e:
        return ("error", str(e))


def both(server, reference):
    ours = server.client(decode_responses=True)
    theirs = reference.client(decode_responses=True)
    for c in (ours, theirs):
        c.flushall()
    return ours, theirs


SEQUENCES = [
    [["MULTI"], ["SET", "a", "1"], ["INCR", "a"], ["GET", "a"], ["EXEC"]],
    [["MULTI"], ["EXEC"]],
    [["EXEC"]],
    [["DISCARD"]],
    [["MULTI"], ["MULTI"], ["SET", "a", "1"], ["EXEC"], ["GET", "a"]],
    [["MULTI"], ["SET", "a", "1"], ["DISCARD"], ["GET", "a"], ["EXEC"]],
    [["MULTI"], ["SET", "a"], ["SET", "b", "2"], ["EXEC"], ["GET", "b"]],
    [["MULTI"], ["NOSUCH", "x"], ["SET", "b", "2"], ["EXEC"], ["EXISTS", "b"]],
    [["SET", "s", "text"], ["MULTI"], ["LPUSH", "s", "x"], ["INCR", "n"], ["EXEC"], ["GET", "n"]],
    [["MULTI"], ["WATCH", "a"], ["EXEC"]],
    [["WATCH", "a"], ["SET", "a", "mine"], ["MULTI"], ["SET", "b", "1"], ["EXEC"], ["EXISTS", "b"]],
    [["WATCH", "a"], ["UNWATCH"], ["SET", "a", "mine"], ["MULTI"], ["SET", "b", "1"], ["EXEC"]],
    [["WATCH", "a", "b", "c"], ["MULTI"], ["MSET", "a", "1", "b", "2", "c", "3"], ["MGET", "a", "b", "c"],
     ["DEL", "a", "b"], ["EXEC"]],
    [["MULTI"], ["HSET", "h", "f", "v"], ["SADD", "s1", "a", "b"], ["SADD", "s2", "b"],
     ["SINTERSTORE", "s3", "s1", "s2"], ["SMEMBERS", "s3"], ["RPUSH", "l", "1", "2"], ["LMOVE", "l", "l2", "LEFT", "LEFT"],
     ["EXEC"]],
    [["MULTI"], ["PING"], ["ECHO", "hi"], ["SET", "k", "v"], ["FLUSHALL"], ["EXISTS", "k"], ["EXEC"]],
    [["MULTI"], ["SELECT", "1"], ["SET", "k", "v"], ["EXEC"], ["GET", "k"], ["SELECT", "0"], ["EXISTS", "k"]],
    [["MULTI"], ["SELECT", "99"], ["SELECT", "x"], ["SET", "k", "v"], ["EXEC"], ["EXISTS", "k"]],
    [["SELECT", "3"], ["MULTI"], ["SET", "k", "3"], ["SELECT", "4"], ["SET", "k", "4"], ["SELECT", "3"], ["EXEC"],
     ["GET", "k"], ["SELECT", "4"], ["GET", "k"], ["SELECT", "0"]],
    [["WATCH", "w"], ["SET", "w", "changed"], ["MULTI"], ["SELECT", "2"], ["SET", "k", "v"], ["EXEC"],
     ["EXISTS", "k"], ["SELECT", "2"], ["EXISTS", "k"], ["SELECT", "0"]],
]


@pytest.mark.parametrize("sequence", SEQUENCES, ids=lambda s: " | ".join(" ".join(c) for c in s)[:80])
def test_same_replies_as_redis(server, reference, sequence):
    ours, theirs = both(server, reference)
    for command in sequence:
        assert raw(ours, *command) == raw(theirs, *command), command
    ours.close()
    theirs.close()


def test_a_write_by_another_client_fails_the_transaction(server, reference):
    for target in (server, reference):
        c = target.client(decode_responses=True)
        other = target.client(decode_responses=True)
        c.flushall()
        c.set("balance", 10)
        c.execute_command("WATCH", "balance", "unrelated")
        other.set("balance", 20)
        c.execute_command("MULTI")
        c.execute_command("SET", "balance", 0)
        assert c.execute_command("EXEC") is None
        assert c.get("balance") == "20"
        # The failed EXEC dropped the watches: the next transaction goes through.
        other.set("balance", 30)
        c.execute_command("MULTI")
        c.execute_command("SET", "balance", 0)
        assert c.execute_command("EXEC") == ["OK"]
        c.close()
        other.close()


def test_a_watched_key_that_expires_fails_the_transaction(server, reference):
    for target in (server, reference):
        c = target.client(decode_responses=True)
        c.flushall()
        c.set("lease", "me", px=50)
        c.execute_command("WATCH", "lease")
        time.sleep(0.15)
        c.execute_command("MULTI")
        c.execute_command("SET", "x", 1)
        assert c.execute_command("EXEC") is None, target
        c.close()


def test_watch_lets_exactly_one_racing_update_win(server):
    """Eight clients add 1 to counters on different cores with WATCH/GET/MULTI/SET/EXEC,
    retrying when EXEC fails: no increment may be lost (without WATCH, most would be)."""
    c = server.client()
    c.flushall()
    keys = [f"counter{i}" for i in range(4)]
    per_client = 60

    def work(n):
        client = server.client()
        for i in range(per_client):
            key = keys[(n + i) % len(keys)]
            with client.pipeline() as p:
                while True:
                    try:
                        p.watch(key, keys[(n + i + 1) % len(keys)])
                        value = int(p.get(key) or 0)
                        p.multi()
                        p.set(key, value + 1)
                        p.execute()
                        break
                    except redis.WatchError:
                        continue
        client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(int(c.get(k) or 0) for k in keys) == 8 * per_client
    c.close()


def test_transactions_are_atomic_across_cores(server):
    """A writer sets ten key pairs in one transaction per round; readers MGET each pair and
    must never see the two halves from different rounds."""
    c = server.client(decode_responses=True)
    c.flushall()
    pairs = [(f"left{i}", f"right{i}") for i in range(10)]
    stop = threading.Event()
    torn = []

    def write():
        client = server.client()
        n = 0
        while not stop.is_set():
            n += 1
            with client.pipeline(transaction=True) as p:
                for a, b in pairs:
                    p.set(a, n)
                    p.set(b, n)
                p.execute()
        client.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.time() + 3
        while time.time() < deadline and not torn:
            for a, b in pairs:
                left, right = c.mget(a, b)
                if left != right:
                    torn.append((a, left, right))
    finally:
        stop.set()
        writer.join()
    assert not torn
    assert int(c.get("left0")) > 10
    c.close()


def test_connection_close_drops_its_watches(server):
    """Watches of closed connections must not pile up: many short-lived watchers, then a
    transaction on the same keys still behaves."""
    for _ in range(200):
        client = server.client()
        client.execute_command("WATCH", "shared", "other")
        client.close()
    c = server.client(decode_responses=True)
    c.execute_command("WATCH", "shared")
    c.execute_command("MULTI")
    c.execute_command("SET", "shared", 1)
    assert c.execute_command("EXEC") == ["OK"]
    c.close()
