"""requirepass: AUTH, HELLO AUTH, NOAUTH for everything else, RESET, and connections opened
before the password was set. Run against redis-server too, so every reply is Redis's."""

import subprocess

import pytest
import redis

from conftest import RawConn, read_until_closed

PASSWORD = "s3cret pass"
NOAUTH = ("-", b"NOAUTH Authentication required.")
WRONGPASS = ("-", b"WRONGPASS invalid username-password pair or user is disabled.")


@pytest.fixture
def locked(r, server):
    """The server with a password; `r` connected before it was set."""
    assert r.config_set("requirepass", PASSWORD)
    yield server
    assert r.config_set("requirepass", "")


@pytest.fixture
def wire(locked):
    conn = RawConn(locked.raw())
    yield conn
    conn.close()


def test_commands_wait_for_auth_and_run_nothing_before(locked, wire, r):
    assert wire.call("PING") == NOAUTH
    assert wire.call("SET", "k", "v") == NOAUTH
    assert wire.call("MULTI") == NOAUTH
    assert wire.call("SUBSCRIBE", "ch") == NOAUTH
    assert wire.call("CONFIG", "SET", "requirepass", "") == NOAUTH
    # Unknown commands and wrong arities are told first, as in Redis.
    assert wire.call("NOSUCH", "x")[1].startswith(b"ERR unknown command 'NOSUCH'")
    assert wire.call("GET") == ("-", b"ERR wrong number of arguments for 'get' command")
    assert r.get("k") is None, "a refused write did not run"
    assert r.ping(), "a connection opened before the password was set stays authenticated"


def test_auth_with_the_password(wire):
    assert wire.call("AUTH", "wrong") == WRONGPASS
    assert wire.call("AUTH", "someone", PASSWORD) == WRONGPASS
    assert wire.call("AUTH", "a", "b", "c") == ("-", b"ERR syntax error")
    assert wire.call("PING") == NOAUTH
    assert wire.call("AUTH", PASSWORD) == ("+", b"OK")
    assert wire.call("PING") == ("+", b"PONG")
    assert wire.call("AUTH", "wrong") == WRONGPASS
    assert wire.call("PING") == ("+", b"PONG"), "a failed AUTH does not undo an earlier one"


def test_auth_as_the_default_user(wire):
    assert wire.call("AUTH", "default", PASSWORD + "x") == WRONGPASS
    assert wire.call("AUTH", "default", PASSWORD[:-1]) == WRONGPASS
    assert wire.call("AUTH", "default", PASSWORD) == ("+", b"OK")
    assert wire.call("SET", "k", "v") == ("+", b"OK")


def test_hello_must_authenticate_or_carry_auth(wire):
    kind, text = wire.call("HELLO", "3")
    assert kind == "-" and text.startswith(b"NOAUTH HELLO must be called with the client already authenticated")
    assert wire.call("HELLO", "3", "AUTH", "default", "wrong") == WRONGPASS
    assert wire.call("PING") == NOAUTH
    kind, fields = wire.call("HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "me")
    assert kind == "%"
    assert dict((k[1], v) for k, v in fields)[b"proto"] == (":", 3)
    assert wire.call("CLIENT", "GETNAME") == ("$", b"me")
    assert wire.call("HELLO", "2")[0] == "*", "HELLO without AUTH once authenticated"


def test_reset_forgets_the_authentication(wire):
    assert wire.call("AUTH", PASSWORD) == ("+", b"OK")
    assert wire.call("RESET") == ("+", b"RESET")
    assert wire.call("PING") == NOAUTH
    assert wire.call("QUIT") == ("+", b"OK")


def test_clients_give_the_password(locked):
    with pytest.raises(redis.AuthenticationError):
        locked.client(password="wrong").ping()
    client = locked.client(password=PASSWORD)
    assert client.set("k", "1") and client.incr("k") == 2
    client.close()
    out = subprocess.run(["redis-cli", "-p", str(locked.port), "--no-auth-warning", "-a", PASSWORD, "GET", "k"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "2", out


def test_config_get_shows_the_password_and_removing_it_unlocks(locked, wire, r):
    assert r.config_get("requirepass") == {"requirepass": PASSWORD}
    assert r.config_set("requirepass", "")
    assert wire.call("PING") == ("+", b"PONG"), "no password: every connection may run commands"
    assert wire.call("AUTH", "x")[1].startswith(b"ERR AUTH <password> called without any password configured")
    assert wire.call("AUTH", "default", "anything") == ("+", b"OK")


def test_before_auth_requests_are_held_to_small_sizes(locked):
    def send(payload):
        with locked.raw() as s:
            s.sendall(payload)
            return read_until_closed(s)

    eleven = b"*11\r\n" + b"$1\r\na\r\n" * 11
    assert send(eleven) == (b"-ERR Protocol error: unauthenticated multibulk length\r\n", True)
    big = b"*2\r\n$3\r\nSET\r\n$16385\r\n" + b"x" * 16385 + b"\r\n"
    assert send(big) == (b"-ERR Protocol error: unauthenticated bulk length\r\n", True)
    conn = RawConn(locked.raw())
    assert conn.call("GET", "x" * 16384) == NOAUTH, "16 KiB is still allowed"
    assert conn.call("AUTH", PASSWORD) == ("+", b"OK")
    assert conn.call("SET", "big", "x" * 100_000) == ("+", b"OK")
    assert conn.call("DEL", *[f"k{i}" for i in range(20)]) == (":", 0)
    conn.close()
