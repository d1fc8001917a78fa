"""Blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.

Clients block in threads; the tests wait for INFO's blocked_clients to say they are blocked
instead of sleeping, then push from another client. Keys are spread over many names so that
waiters, pushes and moves cross the server's cores."""

import threading
import time

import pytest
import redis


def blocked_clients(client):
    return client.info("clients")["blocked_clients"]


def wait_blocked(client, n):
    deadline = time.time() + 10
    while blocked_clients(client) != n:
        assert time.time() < deadline, f"expected {n} blocked clients, INFO says {blocked_clients(client)}"
        time.sleep(0.01)


class Blocker(threading.Thread):
    """Runs one command on its own connection and keeps the reply (or the error)."""

    def __init__(self, server, *command, **client_kw):
        super().__init__(daemon=True)
        client_kw.setdefault("decode_responses", True)
        self.client = server.client(**client_kw)
        self.client.response_callbacks.clear()
        self.command = command
        self.reply = None
        self.start()

    def run(self):
        try:
            self.reply = self.client.execute_command(*self.command)
        except redis.ResponseError as e:
            self.reply = ("error", str(e))
        except redis.ConnectionError:
            self.reply = ("closed",)

    def result(self):
        self.join(15)
        assert not self.is_alive(), f"{self.command} still blocked"
        self.client.close()
        return self.reply


@pytest.fixture
def c(server):
    client = server.client(decode_responses=True)
    client.flushall()
    wait_blocked(client, 0)
    yield client
    client.close()


def test_timeout_replies_nil_after_waiting(c, server):
    start = time.monotonic()
    assert c.blpop(["nothing"], timeout=0.2) is None
    # It waited rather than answering at once (clocks differ by a millisecond or so).
    assert time.monotonic() - start >= 0.15
    assert c.execute_command("BZPOPMIN", "nothing", "0.05") is None
    assert c.execute_command("BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.05") is None
    assert c.execute_command("BLMPOP", "0.05", "2", "a", "b", "LEFT") is None
    assert not c.exists("dst")
    r3 = server.client(decode_responses=True, protocol=3)
    assert r3.execute_command("BRPOP", "nothing", "0.05") is None
    r3.close()


def test_data_already_there_is_taken_at_once(c):
    c.rpush("l", "a", "b")
    c.zadd("z", {"x": 1, "y": 2})
    assert c.blpop(["empty", "l"], timeout=0) == ("l", "a")
    assert c.brpop(["l"], timeout=0) == ("l", "b")
    assert not c.exists("l")
    assert c.bzpopmax(["z"], timeout=0) == ("z", "y", 2.0)
    assert c.bzpopmin(["z"], timeout=0) == ("z", "x", 1.0)


def test_push_wakes_the_blocked_client(c, server):
    waiter = Blocker(server, "BLPOP", "q", "0")
    wait_blocked(c, 1)
    assert c.rpush("q", "job") == 1
    assert waiter.result() == ["q", "job"]
    assert not c.exists("q")
    wait_blocked(c, 0)


def test_waiters_are_served_oldest_first(c, server):
    waiters = []
    for i in range(4):
        waiters.append(Blocker(server, "BRPOP", "fifo", "0"))
        wait_blocked(c, i + 1)
    for i in range(4):
        c.lpush("fifo", f"item{i}")
        assert waiters[i].result() == ["fifo", f"item{i}"]
    assert c.llen("fifo") == 0


def test_a_waiter_on_many_keys_gets_the_first_pushed(c, server):
    keys = [f"k{i}" for i in range(12)]
    for pushed in (keys[-1], keys[5], keys[0]):
        waiter = Blocker(server, "BLPOP", *keys, "0")
        wait_blocked(c, 1)
        c.rpush(pushed, "v")
        assert waiter.result() == [pushed, "v"]
        wait_blocked(c, 0)
    assert all(not c.exists(k) for k in keys)


def test_blmove_moves_atomically_across_cores(c, server):
    for i in range(10):
        src, dst = f"src{i}", f"dst{i}"
        waiter = Blocker(server, "BLMOVE", src, dst, "LEFT", "RIGHT", "0")
        wait_blocked(c, 1)
        c.rpush(src, "e1", "e2")
        assert waiter.result() == "e1"
        assert c.lrange(src, 0, -1) == ["e2"]
        assert c.lrange(dst, 0, -1) == ["e1"]
    waiter = Blocker(server, "BRPOPLPUSH", "s", "d", "0")
    wait_blocked(c, 1)
    c.rpush("s", "x", "y")
    assert waiter.result() == "y"
    assert c.lrange("d", 0, -1) == ["y"]


def test_sorted_set_waits(c, server):
    waiter = Blocker(server, "BZPOPMIN", "z1", "z2", "0")
    wait_blocked(c, 1)
    c.zadd("z2", {"b": 2, "a": 1})
    assert waiter.result() == ["z2", "a", "1"]
    waiter = Blocker(server, "BZMPOP", "0", "2", "z3", "z2", "MAX", "COUNT", "5")
    assert waiter.result() == ["z2", [["b", "2"]]]
    waiter = Blocker(server, "BLMPOP", "0", "2", "l1", "l2", "RIGHT", "COUNT", "2")
    wait_blocked(c, 1)
    c.rpush("l2", "1", "2", "3")
    assert waiter.result() == ["l2", ["3", "2"]]


def test_a_disconnected_waiter_loses_nothing(c, server):
    gone = server.client()
    gone.response_callbacks.clear()
    thread = threading.Thread(target=lambda: _swallow(gone, "BLPOP", "keep", "0"), daemon=True)
    thread.start()
    wait_blocked(c, 1)
    gone.connection_pool.disconnect()
    wait_blocked(c, 0)
    next_in_line = Blocker(server, "BLPOP", "keep", "0")
    wait_blocked(c, 1)
    c.rpush("keep", "a", "b")
    assert next_in_line.result() == ["keep", "a"]
    assert c.lrange("keep", 0, -1) == ["b"]


def _swallow(client, *command):
    try:
        client.execute_command(*command)
    except (redis.ConnectionError, OSError, ValueError):
        pass


def test_many_consumers_take_every_item_exactly_once(c, server):
    """Twenty consumers loop on BRPOP over two queues while a producer pushes 400 items in
    bursts: every item must be taken exactly once, none left behind, none lost."""
    taken = []
    lock = threading.Lock()

    def consume():
        client = server.client(decode_responses=True)
        while True:
            got = client.brpop(["jobs:a", "jobs:b"], timeout=2)
            if got is None:
                break
            with lock:
                taken.append(got[1])
        client.close()

    consumers = [threading.Thread(target=consume, daemon=True) for _ in range(20)]
    for t in consumers:
        t.start()
    wait_blocked(c, 20)
    items = [f"item{i}" for i in range(400)]
    for burst in range(0, 400, 8):
        queue = "jobs:a" if burst % 16 else "jobs:b"
        c.lpush(queue, *items[burst:burst + 8])
    for t in consumers:
        t.join(30)
    assert sorted(taken) == sorted(items)
    assert c.llen("jobs:a") == 0 and c.llen("jobs:b") == 0


def test_inside_multi_blocking_commands_do_not_wait(c):
    pipe = c.pipeline(transaction=True)
    pipe.blpop(["empty"], timeout=0)
    pipe.rpush("l", "v")
    pipe.blpop(["l"], timeout=0)
    assert pipe.execute() == [None, 1, ("l", "v")]


def test_bad_arguments_get_errors(c):
    c.set("str", "text")
    for command, error in [
        (["BLPOP", "k", "x"], "timeout is not a float or out of range"),
        (["BLPOP", "k", "-1"], "timeout is negative"),
        (["BZPOPMIN", "k", "nan"], "timeout is not a float or out of range"),
        (["BLMPOP", "0", "0", "k", "LEFT"], "numkeys should be greater than 0"),
        (["BLMPOP", "0", "1", "k", "UP"], "syntax error"),
        (["BLPOP", "str", "0"], "WRONGTYPE"),
        (["BLMOVE", "s", "d", "UP", "LEFT", "0"], "syntax error"),
    ]:
        with pytest.raises(redis.ResponseError, match=error):
            c.execute_command(*command)
    wait_blocked(c, 0)


def test_pipelined_requests_after_a_blocking_one_wait_for_it(c, server):
    client = server.client(decode_responses=True)
    pipe = client.pipeline(transaction=False)
    pipe.blpop(["later"], timeout=0)
    pipe.rpush("later", "again")
    result = []
    thread = threading.Thread(target=lambda: result.append(pipe.execute()), daemon=True)
    thread.start()
    wait_blocked(c, 1)
    c.rpush("later", "first")
    thread.join(10)
    assert result == [[("later", "first"), 1]]
    client.close()


def test_replies_match_redis(server, reference):
    """Immediate and timed-out replies, RESP2 and RESP3, byte for byte as redis-server."""
    script = [
        ["RPUSH", "l", "a", "b", "c"], ["ZADD", "z", "1", "m", "2.5", "n"],
        ["BLPOP", "none", "l", "0"], ["BRPOP", "l", "0"], ["BLMPOP", "0", "1", "l", "LEFT", "COUNT", "9"],
        ["BZPOPMAX", "z", "0"], ["BZMPOP", "0", "1", "z", "MIN"], ["BLPOP", "l", "0.01"],
        ["BZPOPMIN", "z", "0.01"], ["BLMOVE", "l", "d", "LEFT", "LEFT", "0.01"],
        ["BZMPOP", "0.01", "1", "z", "MIN"], ["BRPOPLPUSH", "l", "d", "0.01"],
    ]
    for protocol in (2, 3):
        ours = server.client(decode_responses=True, protocol=protocol)
        theirs = reference.client(decode_responses=True, protocol=protocol)
        for client in (ours, theirs):
            client.response_callbacks.clear()
            client.flushall()
        for command in script:
            assert ours.execute_command(*command) == theirs.execute_command(*command), (protocol, command)
        ours.close()
        theirs.close()


def test_shutdown_closes_blocked_clients():
    from conftest import ON_REDIS, start_tessera, stop_and_check
    if ON_REDIS:
        pytest.skip("Tessera's own shutdown")
    srv = start_tessera()
    waiter = Blocker(srv, "BLPOP", "never", "0")
    c = srv.client()
    wait_blocked(c, 1)
    c.close()
    assert stop_and_check(srv) == 0
    assert waiter.result() == ("closed",)


def test_blmove_ring_across_cores_conserves_every_element(c, server):
    """Eight clients keep moving elements round a ring of lists spread over the cores with
    BLMOVE, waiting whenever their list is empty: at the end every element is in exactly one
    list, none lost, none duplicated."""
    ring = [f"ring{i}" for i in range(8)]
    items = [f"e{i}" for i in range(40)]
    c.rpush(ring[0], *items)
    errors = []

    def mover(i):
        client = server.client(decode_responses=True)
        try:
            for _ in range(150):
                client.execute_command("BLMOVE", ring[i], ring[(i + 1) % 8], "LEFT", "RIGHT", "0.05")
        except redis.RedisError as e:
            errors.append(e)
        client.close()

    threads = [threading.Thread(target=mover, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    held = [e for key in ring for e in c.lrange(key, 0, -1)]
    assert sorted(held) == sorted(items)
