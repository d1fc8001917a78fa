"""Hostile and heavy clients: protocol garbage, huge announced lengths, clients that never read,
a thousand connections at once, MSET atomicity under concurrent readers, and clean shutdown."""

import resource
import selectors
import signal
import socket
import threading
import time

import pytest

from conftest import ON_REDIS, RawConn, encode, read_until_closed, start_server, wait_for

MB = 1 << 20


def assert_serving(server):
    """Another, well-behaved client still gets answers."""
    c = server.client(socket_timeout=10)
    try:
        assert c.ping()
        c.set("serving-probe", "ok")
        assert c.get("serving-probe") == b"ok"
    finally:
        c.close()


# ---------------------------------------------------------------- protocol garbage

GARBAGE = [
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*2147483648\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n+x\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
    (b"*1\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b"*2\r\n$3\r\nGET\r\n*1\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
]


@pytest.mark.parametrize("junk,expected", GARBAGE, ids=[repr(g[0]) for g in GARBAGE])
def test_protocol_garbage_gets_an_error_and_a_close(server, r, junk, expected):
    s = server.raw()
    s.sendall(junk)
    data, closed = read_until_closed(s)
    assert data == expected
    assert closed, "the offender's connection is closed"
    assert_serving(server)


def test_replies_before_the_garbage_are_sent(server, r):
    s = server.raw()
    s.sendall(encode("SET", "k", "v") + encode("GET", "k") + b"*abc\r\n" + encode("SET", "after", "x"))
    data, closed = read_until_closed(s)
    assert data == b"+OK\r\n$1\r\nv\r\n-ERR Protocol error: invalid multibulk length\r\n" and closed
    assert r.exists("after") == 0


def test_empty_and_null_multibulk_are_ignored(server, r):
    s = server.raw()
    s.sendall(b"*0\r\n*-1\r\n" + encode("PING"))
    assert s.recv(100) == b"+PONG\r\n"
    s.close()


def test_bulk_longer_than_proto_max_bulk_len(server, r):
    s = server.raw()
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
    data, closed = read_until_closed(s)
    assert data == b"-ERR Protocol error: invalid bulk length\r\n" and closed
    s = server.raw()
    s.sendall(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n")
    data, closed = read_until_closed(s)
    assert data == b"-ERR Protocol error: invalid bulk length\r\n" and closed
    assert r.exists("k") == 0
    assert_serving(server)


def test_half_sent_command_then_hang_up(server, r):
    for partial in [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab", b"*3\r\n$3\r\nSET\r\n", b"*", b"SET k"]:
        s = server.raw()
        s.sendall(partial)
        time.sleep(0.05)
        s.close()
    assert_serving(server)
    assert r.exists("k") == 0


def test_command_split_into_single_bytes(server, r):
    s = server.raw()
    for byte in encode("SET", "split", "value"):
        s.send(bytes([byte]))
    assert s.recv(100) == b"+OK\r\n"
    assert r.get("split") == b"value"
    s.close()


def test_deep_pipeline(server, r):
    conn = RawConn(server.raw())
    n = 20000
    conn.sock.sendall(b"".join(encode("INCR", "counter") for _ in range(n)))
    replies = [conn.read() for _ in range(n)]
    assert replies[0] == (":", 1) and replies[-1] == (":", n)
    assert r.get("counter") == str(n).encode()
    conn.close()


def test_large_value_round_trip(r):
    value = bytes(range(256)) * (64 * 1024)  # 16 MiB
    assert r.set("big", value)
    assert r.get("big") == value
    assert r.strlen("big") == len(value)


# ---------------------------------------------------------------- huge announced bulk, never sent

def test_huge_bulk_header_costs_little_memory(server, r):
    before = server.rss()
    offender = server.raw()
    offender.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\n")  # 500 MB announced
    offender.sendall(b"x" * MB)  # and only 1 MB of it sent
    time.sleep(0.5)
    for _ in range(20):
        assert_serving(server)
    grown = server.rss() - before
    assert grown < 50 * MB, f"RSS grew by {grown / MB:.0f} MiB for a 500 MB bulk that never came"
    assert r.exists("k") == 0
    offender.close()
    assert_serving(server)


def test_many_huge_bulk_headers(server, r):
    before = server.rss()
    offenders = []
    for _ in range(10):
        s = server.raw()
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\n")
        offenders.append(s)
    time.sleep(0.5)
    assert_serving(server)
    grown = server.rss() - before
    assert grown < 50 * MB, f"RSS grew by {grown / MB:.0f} MiB for ten 500 MB bulks that never came"
    for s in offenders:
        s.close()


# ---------------------------------------------------------------- a client that never reads

def test_client_that_never_reads(server, r):
    if ON_REDIS:
        # Redis 7.0 puts no limit on a normal client's output buffer by default: it would
        # buffer every reply. Give it a limit so the test describes the wanted behaviour.
        r.config_set("client-output-buffer-limit", "normal 256mb 0 0")
    try:
        r.set("big", b"x" * MB)
        before = server.rss()
        hog = server.raw()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        n = 1500  # 1.5 GB of replies if all were buffered
        hog.sendall(encode("GET", "big") * n)
        peak = 0
        deadline = time.time() + 3
        other = server.client(socket_timeout=10)
        while time.time() < deadline:
            assert other.ping()
            assert len(other.get("big")) == MB
            peak = max(peak, server.rss() - before)
            time.sleep(0.05)
        assert peak < 1024 * MB, f"RSS grew by {peak / MB:.0f} MiB for a client that never reads"
        hog.close()
        other.close()
        assert_serving(server)
    finally:
        if ON_REDIS:
            r.config_set("client-output-buffer-limit", "normal 0 0 0")


# ---------------------------------------------------------------- many connections

def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_thousand_concurrent_connections(server, r):
    n = 1000
    raise_nofile(n + 200)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            socks.append(s)
        sel = selectors.DefaultSelector()
        expected = {}
        for i, s in enumerate(socks):
            key, value = f"conn:{i}", f"value-{i}-" + "v" * (i % 50)
            want = b"+OK\r\n" + b"$%d\r\n%s\r\n" % (len(value), value.encode())
            s.sendall(encode("SET", key, value) + encode("GET", key))
            s.setblocking(False)
            expected[s] = want
            sel.register(s, selectors.EVENT_READ, bytearray())
        pending = set(socks)
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                chunk = key.fileobj.recv(4096)
                assert chunk, "a connection was closed by the server"
                key.data.extend(chunk)
                if len(key.data) >= len(expected[key.fileobj]):
                    assert bytes(key.data) == expected[key.fileobj]
                    sel.unregister(key.fileobj)
                    pending.discard(key.fileobj)
        assert not pending, f"{len(pending)} connections got no complete reply"
        assert r.info("clients")["connected_clients"] >= n
        assert r.dbsize() == n
    finally:
        for s in socks:
            s.close()
    assert wait_for(lambda: r.info("clients")["connected_clients"] < n, timeout=20)
    assert_serving(server)


def test_connections_from_threads(server, r):
    errors = []

    def worker(n):
        try:
            c = server.client()
            for i in range(30):
                c.set(f"t{n}:{i}", i)
                assert c.get(f"t{n}:{i}") == str(i).encode()
            assert c.incrby("shared", 1) > 0
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert r.get("shared") == b"50"
    assert r.dbsize() == 50 * 30 + 1


# ---------------------------------------------------------------- MSET atomicity

def test_mset_is_atomic_for_concurrent_readers(server, r):
    keys = [f"k{i}" for i in range(1, 21)]  # no hash tags: on a sharded server they land on many shards
    rounds = 1500
    done = threading.Event()
    failures = []
    observed = []

    def writer():
        c = server.client()
        try:
            for i in range(1, rounds + 1):
                c.mset({k: i for k in keys})
        except Exception as e:  # noqa: BLE001
            failures.append(f"writer: {e!r}")
        finally:
            done.set()
            c.close()

    def reader():
        c = server.client()
        seen = set()
        try:
            while not done.is_set():
                values = c.mget(keys)
                if len(set(values)) != 1:
                    failures.append(f"torn MGET: {values}")
                    return
                seen.add(values[0])
            values = c.mget(keys)
            if values != [str(rounds).encode()] * len(keys):
                failures.append(f"final MGET: {values}")
        except Exception as e:  # noqa: BLE001
            failures.append(f"reader: {e!r}")
        finally:
            observed.append(len(seen))
            c.close()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    w = threading.Thread(target=writer)
    w.start()
    w.join(120)
    for t in readers:
        t.join(30)
    assert not failures, failures[:3]
    assert max(observed) > 2, "the readers never overlapped the writer; the test proved nothing"


def test_msetnx_is_atomic_across_keys(server, r):
    keys = [f"nx{i}" for i in range(20)]
    results = []

    def contender(n):
        c = server.client()
        results.append((n, c.msetnx({k: n for k in keys})))
        c.close()

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [n for n, ok in results if ok]
    assert len(winners) == 1, results
    assert r.mget(keys) == [str(winners[0]).encode()] * len(keys)


# ---------------------------------------------------------------- shutdown

def test_shutdown_command_exits_zero():
    srv = start_server()
    try:
        bystander = srv.raw()
        s = srv.raw()
        s.sendall(encode("SHUTDOWN"))
        data, closed = read_until_closed(s)
        assert data == b"" and closed, "a successful SHUTDOWN closes the connection without a reply"
        assert srv.proc.wait(timeout=15) == 0
        data, closed = read_until_closed(bystander)
        assert closed
    finally:
        if srv.alive():
            srv.proc.kill()


def test_shutdown_nosave_exits_zero():
    srv = start_server()
    try:
        s = srv.raw()
        s.sendall(encode("SHUTDOWN", "NOSAVE"))
        data, closed = read_until_closed(s)
        assert data == b"" and closed
        assert srv.proc.wait(timeout=15) == 0
    finally:
        if srv.alive():
            srv.proc.kill()


def test_sigterm_exits_zero_with_clients_connected():
    srv = start_server()
    idle = srv.raw()
    busy = RawConn(srv.raw())
    assert busy.call("MSET", *[x for i in range(100) for x in (f"k{i}", str(i))]) == ("+", b"OK")
    assert srv.stop(signal.SIGTERM) == 0
    for s in (idle, busy.sock):
        data, closed = read_until_closed(s)
        assert closed and data == b""
    with pytest.raises(OSError):
        srv.raw()
