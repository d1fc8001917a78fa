"""Behaviour seen through real clients: redis-cli, redis-py (RESP2 and RESP3), raw sockets."""

import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import redis

from conftest import read_until_closed, start_server, start_tessera


def cli(server, *args):
    out = subprocess.run(["redis-cli", "-p", str(server.port), *args], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_redis_cli_round_trip(tessera, r):
    assert cli(tessera, "set", "greeting", "hello world") == "OK"
    assert cli(tessera, "get", "greeting") == "hello world"
    assert cli(tessera, "incr", "n") == "1"
    assert cli(tessera, "exists", "greeting", "n", "none") == "2"
    assert "unknown command" in cli(tessera, "nosuchcommand")


def test_redis_cli_pipe_mode_loads_keys(tessera, r):
    payload = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'p:{i}')}\r\np:{i}\r\n$1\r\nv\r\n" for i in range(5000))
    out = subprocess.run(["redis-cli", "-p", str(tessera.port), "--pipe"], input=payload, capture_output=True, text=True)
    assert "errors: 0, replies: 5000" in out.stdout
    assert r.dbsize() == 5000


def test_resp3_types(tessera, r):
    r3 = tessera.client(protocol=3)
    assert r3.get("missing") is None
    hello = r3.execute_command("HELLO", "3")
    assert hello[b"proto"] == 3 and hello[b"server"] == b"redis"
    assert r3.set("k", "v") is True
    assert r3.info("keyspace")["db0"]["keys"] == 1
    r3.close()


def test_hello_setname_and_reset(tessera, r):
    c = tessera.client(decode_responses=True)
    reply = c.execute_command("HELLO", "2", "SETNAME", "svc")
    assert "proto" in reply
    assert c.client_getname() == "svc"
    assert c.execute_command("RESET") == "RESET"
    assert c.client_getname() is None
    c.close()


@pytest.mark.not_on_redis  # CLIENT SETINFO came with Redis 7.2
def test_client_list_kill_and_setinfo(tessera, r):
    victim = tessera.raw()
    victim.sendall(b"CLIENT SETNAME victim\r\nCLIENT SETINFO LIB-NAME mylib\r\n")
    assert victim.recv(10) == b"+OK\r\n+OK\r\n"
    me = tessera.client(decode_responses=True)
    listing = me.execute_command("CLIENT", "LIST")
    line = next(l for l in listing.splitlines() if "name=victim" in l)
    assert "lib-name=mylib" in line
    addr = line.split("addr=")[1].split()[0]
    assert me.execute_command("CLIENT", "KILL", addr) in (True, "OK")
    _, closed = read_until_closed(victim)
    assert closed
    with pytest.raises(redis.ResponseError, match="No such client"):
        me.execute_command("CLIENT", "KILL", "1.2.3.4:5")
    me.close()


def test_inline_commands_and_quoting(tessera, r):
    s = tessera.raw()
    s.sendall(b'SET k "a\\x41 b"\r\nGET k\r\nECHO \'it\\\'s\'\r\n')
    expected = b"+OK\r\n$4\r\naA b\r\n$4\r\nit's\r\n"
    data = b""
    while len(data) < len(expected):
        data += s.recv(1024)
    assert data == expected
    s.sendall(b'SET k "unterminated\r\n')
    data, closed = read_until_closed(s)
    assert data == b"-ERR Protocol error: unbalanced quotes in request\r\n" and closed


def test_garbage_closes_only_the_offender(tessera, r):
    for junk, expected in [
        (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+x\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$999999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"a" * 70000, b"-ERR Protocol error: too big inline request\r\n"),
    ]:
        s = tessera.raw()
        s.sendall(junk)
        data, closed = read_until_closed(s)
        assert data == expected and closed
        assert r.ping()


@pytest.mark.tessera_only  # Redis 7.0 buffers a normal client's replies without limit by default
def test_a_client_that_never_reads_costs_bounded_memory(tessera, r):
    r.set("big", b"x" * (1 << 20))
    before = tessera.rss()
    s = tessera.raw()
    s.setblocking(False)
    request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
    sent = 0
    deadline = time.time() + 3
    while time.time() < deadline and sent < 5000:
        try:
            s.send(request)
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.5)
    assert r.ping()
    grown = tessera.rss() - before
    assert sent > 100, "the server stopped reading once replies piled up"
    assert grown < 256 << 20, f"RSS grew by {grown >> 20} MiB for {sent} unread 1 MiB replies"
    s.close()


def test_output_buffer_hard_limit_disconnects(tessera, r):
    r.config_set("client-output-buffer-limit", "normal 256kb 0 0")
    try:
        time.sleep(0.3)  # cores pick the new limit up on their next tick
        r.set("big", b"x" * (1 << 20))
        s = tessera.raw()
        # Named first, and only then flooded: CLIENT LIST must show the hog before the wait
        # for it to disappear can mean anything.
        s.sendall(b"CLIENT SETNAME hog\r\n")
        assert s.recv(5) == b"+OK\r\n"
        # Enough replies to fill the kernel's socket buffers, so the rest waits in Tessera's.
        s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 40)
        deadline = time.time() + 10
        while time.time() < deadline and "name=hog" in r.execute_command("CLIENT", "LIST").decode():
            time.sleep(0.05)
        assert "name=hog" not in r.execute_command("CLIENT", "LIST").decode(), "the hog was not disconnected"
        assert r.ping()
        s.close()
    finally:
        r.config_set("client-output-buffer-limit", "normal 0 0 0")


def test_a_paused_client_that_disconnects_is_reaped(tessera, r):
    r.set("big", b"x" * (1 << 20))
    s = tessera.raw()
    s.sendall(b"CLIENT SETNAME paused\r\n" + b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 20)
    time.sleep(0.5)
    assert "name=paused" in r.execute_command("CLIENT", "LIST").decode()
    s.close()  # with unread data: the kernel resets the connection
    deadline = time.time() + 10
    while time.time() < deadline and "name=paused" in r.execute_command("CLIENT", "LIST").decode():
        time.sleep(0.05)
    assert "name=paused" not in r.execute_command("CLIENT", "LIST").decode()


def test_query_buffer_limit_disconnects(tessera, r):
    r.config_set("client-query-buffer-limit", "1mb")
    try:
        time.sleep(0.3)
        s = tessera.raw()
        try:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\n" + b"x" * (2 << 20))
            _, closed = read_until_closed(s)
        except (ConnectionResetError, BrokenPipeError):
            closed = True  # cut off while still sending
        assert closed
        assert r.ping()
    finally:
        r.config_set("client-query-buffer-limit", "1gb")


def test_idle_timeout_closes_connections(tessera, r):
    r.config_set("timeout", "1")
    try:
        s = tessera.raw()
        s.sendall(b"PING\r\n")
        assert s.recv(7) == b"+PONG\r\n"
        start = time.time()
        _, closed = read_until_closed(s)
        assert closed and time.time() - start < 8
    finally:
        r.config_set("timeout", "0")


def test_maxclients_rejects_extra_connections():
    server = start_server("--maxclients", "2")
    try:
        time.sleep(0.5)  # the start-up probe's connection must be gone first
        a, b = server.raw(), server.raw()
        a.sendall(b"PING\r\n"), b.sendall(b"PING\r\n")
        assert a.recv(7) == b"+PONG\r\n" and b.recv(7) == b"+PONG\r\n"
        c = server.raw()
        data, closed = read_until_closed(c)
        assert data == b"-ERR max number of clients reached\r\n" and closed
    finally:
        assert server.stop() == 0


@pytest.mark.tessera_only
def test_config_file_and_flags():
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# a redis.conf-style file\ndatabases 4\nmaxclients 77\nsave \"\"\n")
    try:
        server = start_tessera("--config", f.name, "--maxclients", "88")
        c = server.client(decode_responses=True)
        assert c.config_get("databases") == {"databases": "4"}
        assert c.config_get("maxclients") == {"maxclients": "88"}, "flags override the file"
        with pytest.raises(redis.ResponseError, match="out of range"):
            c.execute_command("SELECT", "4")
        c.close()
        assert server.stop() == 0
    finally:
        os.unlink(f.name)


@pytest.mark.tessera_only
def test_bad_config_file_refuses_to_start(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("no-such-directive 1\n")
    out = subprocess.run([os.environ.get("TESSERA_BIN", "target/release/tessera"), "--config", str(bad)],
                         capture_output=True, text=True, timeout=10,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode != 0 and "no-such-directive" in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly_while_clients_work(sig):
    server = start_server()
    stop = threading.Event()
    errors = []

    def hammer():
        c = server.client()
        while not stop.is_set():
            try:
                c.mset({f"k{i}": i for i in range(10)})
            except redis.ConnectionError:
                return
            except Exception as e:  # any other failure is a bug
                errors.append(e)
                return

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    assert server.stop(sig) == 0
    stop.set()
    for w in workers:
        w.join()
    assert not errors


def test_shutdown_command_exits_zero():
    server = start_server()
    s = server.raw()
    s.sendall(b"SHUTDOWN NOSAVE\r\n")
    _, closed = read_until_closed(s)
    assert closed
    assert server.proc.wait(timeout=15) == 0


def test_info_fields_tools_parse(tessera, r):
    r.set("a", 1)
    info = r.info()
    for field in ("redis_version", "process_id", "tcp_port", "uptime_in_seconds", "connected_clients",
                  "used_memory", "used_memory_rss", "total_commands_processed", "used_cpu_sys", "keyspace_hits"):
        assert field in info, field
    assert info["tcp_port"] == tessera.port and info["process_id"] == tessera.pid
    assert info["db0"]["keys"] == 1
    r.config_resetstat()
    assert r.info("stats")["keyspace_hits"] == 0


def test_many_connections_from_threads(tessera, r):
    def worker(n):
        c = tessera.client()
        for i in range(50):
            c.set(f"w{n}:{i}", i)
            assert int(c.get(f"w{n}:{i}")) == i
        c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.dbsize() == 2000
