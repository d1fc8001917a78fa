"""Fixtures: the real tessera binary and a real redis-server, each on a free loopback port."""

import os
import signal
import socket
import subprocess
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, "target", "release", "tessera"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, argv, port):
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(7) == b"+PONG\r\n":
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{argv[0]} did not start")

    @property
    def pid(self):
        return self.proc.pid

    def client(self, **kw):
        kw.setdefault("socket_timeout", 20)  # a missing reply fails the test instead of hanging it
        return redis.Redis(port=self.port, **kw)

    def raw(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(10)
        return s

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def start_tessera(*extra, threads=2):
    port = free_port()
    argv = [TESSERA, "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads), "--loglevel", "warning"]
    return Process(argv + list(extra), port)


def start_redis():
    port = free_port()
    return Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                   port)


@pytest.fixture(scope="session")
def tessera():
    server = start_tessera()
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="session")
def reference():
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def r(tessera):
    client = tessera.client()
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
