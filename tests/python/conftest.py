"""Fixtures: the server under test (Tessera, or redis-server with TESSERA_TARGET=redis) and a
real redis-server as a reference, each on a free loopback port.

    python3 -m pytest -q tests/python                        # against target/release/tessera
    TESSERA_BIN=/path/to/tessera python3 -m pytest ...       # another build
    TESSERA_TARGET=redis python3 -m pytest -q tests/python   # the suite itself, against Redis

Markers:
    not_on_redis  a feature redis-server 7.0 lacks (SET IFEQ, CLIENT SETINFO): skipped when the
                  target is redis.
    tessera_only  Tessera's own flags or limits (--config, --threads): skipped when the target
                  is redis.
"""

import os
import resource
import signal
import socket
import subprocess
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, "target", "release", "tessera"))
TARGET = os.environ.get("TESSERA_TARGET", "tessera").lower()
REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", "redis-server")
if TARGET not in ("tessera", "redis"):
    raise SystemExit(f"TESSERA_TARGET must be 'tessera' or 'redis', not {TARGET!r}")
ON_REDIS = TARGET == "redis"


def _raise_nofile():
    """Servers started from here inherit the limit, so 1000+ connections fit on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile()


def pytest_configure(config):
    config.addinivalue_line("markers", "not_on_redis: a feature redis-server 7.0 lacks; skipped on TESSERA_TARGET=redis")
    config.addinivalue_line("markers", "tessera_only: Tessera's own flags or limits; skipped on TESSERA_TARGET=redis")


def pytest_collection_modifyitems(config, items):
    if not ON_REDIS:
        return
    lacking = pytest.mark.skip(reason="redis-server 7.0 lacks this feature")
    tessera = pytest.mark.skip(reason="Tessera-specific")
    for item in items:
        if "not_on_redis" in item.keywords:
            item.add_marker(lacking)
        if "tessera_only" in item.keywords:
            item.add_marker(tessera)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server process on a loopback port; the constructor returns once it answers PING."""

    def __init__(self, argv, port, kind="tessera"):
        self.port = port
        self.kind = kind
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{argv} exited with {self.proc.returncode}: "
                                     + self.proc.stderr.read().decode(errors="replace"))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(7) == b"+PONG\r\n":
                        return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"{argv[0]} did not start")

    @property
    def pid(self):
        return self.proc.pid

    def client(self, **kw):
        kw.setdefault("socket_timeout", 20)  # a missing reply fails the test instead of hanging it
        kw.setdefault("protocol", 2)  # redis-py 8 would otherwise say HELLO 3
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def raw(self, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(timeout)
        return s

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` and returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def start_tessera(*extra, threads=2):
    """Tessera itself, whatever the target (tests using it are tessera_only)."""
    port = free_port()
    argv = [TESSERA, "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads), "--loglevel", "warning"]
    return Process(argv + list(extra), port, "tessera")


def start_redis(*extra):
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Process(argv + list(extra), port, "redis")


def start_server(*extra, threads=2, databases=None):
    """The server under test: Tessera, or redis-server when TESSERA_TARGET=redis. `extra` are
    flags both understand (--maxclients N, --timeout N)."""
    extra = list(extra) + ([] if databases is None else ["--databases", str(databases)])
    if ON_REDIS:
        return start_redis(*extra)
    return start_tessera(*extra, threads=threads)


def stop_and_check(server):
    """SIGTERM; Tessera must exit 0 (redis-server is not held to that)."""
    code = server.stop()
    if server.kind == "tessera":
        assert code == 0, f"tessera exited with {code} on SIGTERM"
    return code


@pytest.fixture(scope="session")
def server():
    srv = start_server()
    yield srv
    stop_and_check(srv)


@pytest.fixture(scope="session")
def tessera(server):
    """The server under test, by its older name."""
    return server


@pytest.fixture(scope="session")
def reference():
    """A real redis-server for differential comparisons, started once per session."""
    srv = start_redis()
    yield srv
    srv.stop()


@pytest.fixture
def r(server):
    """A RESP2 client with bytes replies, on an empty server."""
    client = server.client(decode_responses=False)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def r3(server):
    """A RESP3 client (HELLO 3) with bytes replies, on an empty server."""
    client = server.client(decode_responses=False, protocol=3)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def ref(reference):
    """A RESP2 client of the reference redis-server, on an empty server."""
    client = reference.client(decode_responses=False)
    client.flushall()
    yield client
    client.close()


def read_until_closed(sock):
    """Reads until the peer closes (True) or the socket's timeout passes first (False)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except socket.timeout:
            return data, False
        if not chunk:
            return data, True
        data += chunk


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def recv_line(sock, buf=b""):
    """Reads one CRLF-terminated line; returns (line without CRLF, the bytes after it)."""
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {buf!r}")
        buf += chunk
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


class RawConn:
    """A RESP reader over a plain socket that keeps every byte's meaning: replies come back as
    ("+", b"OK"), ("-", b"ERR ..."), (":", 5), ("$", b"..." or None), ("*", [...] or None),
    and the RESP3 types (",", "#", "_", "%", "~", "|", ">", "=", "(", "!")."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, *args):
        self.sock.sendall(encode(*args))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _line(self):
        line, self.buf = recv_line(self.sock, self.buf)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-reply")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1].decode(), line[1:]
        if kind in "+-":
            return kind, rest
        if kind == ":":
            return kind, int(rest)
        if kind in ",(":
            return kind, rest
        if kind == "#":
            return kind, rest == b"t"
        if kind == "_":
            return kind, None
        if kind in "$!=":
            n = int(rest)
            if n < 0:
                return kind, None
            data = self._exactly(n + 2)
            return kind, data[:-2]
        if kind in "*~>":
            n = int(rest)
            if n < 0:
                return kind, None
            return kind, [self.read() for _ in range(n)]
        if kind == "%" or kind == "|":
            n = int(rest)
            items = [(self.read(), self.read()) for _ in range(n)]
            return kind, items
        raise AssertionError(f"unknown RESP type in {line!r}")

    def close(self):
        self.sock.close()


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Polls until predicate() is truthy; returns its last value."""
    deadline = time.time() + timeout
    value = predicate()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
