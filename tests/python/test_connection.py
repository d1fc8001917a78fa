"""Connection and server commands: PING, ECHO, HELLO, QUIT, RESET, CLIENT, COMMAND, CONFIG,
INFO, TIME; RESP3 reply types on the wire; redis-cli and inline commands."""

import shutil
import subprocess
import time

import pytest
import redis

from conftest import RawConn, read_until_closed, wait_for

OK = ("+", b"OK")
NIL2 = ("$", None)
NIL3 = ("_", None)


def err(text):
    return ("-", text.encode())


def bulk(v):
    return ("$", v if isinstance(v, bytes) else str(v).encode())


@pytest.fixture
def wire(r, server):
    conn = RawConn(server.raw())
    yield conn
    conn.close()


def as_dict(reply):
    """HELLO's reply as {name: value}, from a RESP2 flat array or a RESP3 map."""
    kind, items = reply
    if kind == "%":
        return {k[1].decode(): v for k, v in items}
    assert kind == "*", reply
    return {items[i][1].decode(): items[i + 1] for i in range(0, len(items), 2)}


def client_id(conn):
    kind, value = conn.call("CLIENT", "ID")
    assert kind == ":"
    return value


def client_line(info_text):
    """CLIENT INFO / one CLIENT LIST line as {field: value}."""
    fields = {}
    for part in info_text.strip().split(" "):
        name, _, value = part.partition("=")
        fields[name] = value
    return fields


def client_list(r):
    return [client_line(line) for line in r.execute_command("CLIENT", "LIST").decode().splitlines() if line]


# ---------------------------------------------------------------- PING / ECHO / TIME

def test_ping(wire):
    assert wire.call("PING") == ("+", b"PONG")
    assert wire.call("PING", "hello world") == bulk("hello world")
    assert wire.call("PING", "") == bulk("")
    assert wire.call("PING", "a", "b") == err("ERR wrong number of arguments for 'ping' command")


def test_ping_through_redis_py(r, r3):
    assert r.ping() is True
    assert r3.ping() is True


def test_echo(wire):
    assert wire.call("ECHO", "hi") == bulk("hi")
    assert wire.call("ECHO", b"\x00\xff\r\n") == bulk(b"\x00\xff\r\n")
    assert wire.call("ECHO") == err("ERR wrong number of arguments for 'echo' command")
    assert wire.call("ECHO", "a", "b") == err("ERR wrong number of arguments for 'echo' command")


def test_time(wire):
    kind, items = wire.call("TIME")
    assert kind == "*" and len(items) == 2 and all(k == "$" for k, _ in items)
    seconds, micros = int(items[0][1]), int(items[1][1])
    assert abs(seconds - time.time()) < 30
    assert 0 <= micros < 1_000_000
    assert wire.call("TIME", "x") == err("ERR wrong number of arguments for 'time' command")


# ---------------------------------------------------------------- HELLO

@pytest.mark.parametrize("proto", [2, 3])
def test_hello(wire, proto):
    reply = wire.call("HELLO", str(proto))
    assert reply[0] == ("%" if proto == 3 else "*")
    fields = as_dict(reply)
    for name in ("server", "version", "proto", "id", "mode", "role"):
        assert name in fields, name
    assert fields["proto"] == (":", proto)
    assert fields["server"][0] == "$" and fields["version"][0] == "$"
    assert fields["mode"] == bulk("standalone")
    assert fields["role"] == bulk("master")
    assert fields["id"] == (":", client_id(wire))


def test_hello_without_version_keeps_the_protocol(wire):
    assert as_dict(wire.call("HELLO"))["proto"] == (":", 2)
    wire.call("HELLO", "3")
    reply = wire.call("HELLO")
    assert reply[0] == "%" and as_dict(reply)["proto"] == (":", 3)


def test_hello_switches_the_protocol_both_ways(wire):
    assert wire.call("GET", "nope") == NIL2
    wire.call("HELLO", "3")
    assert wire.call("GET", "nope") == NIL3
    wire.call("HELLO", "2")
    assert wire.call("GET", "nope") == NIL2


@pytest.mark.parametrize("version", ["4", "1", "0", "-1", "100"])
def test_hello_unsupported_version(wire, version):
    assert wire.call("HELLO", version) == err("NOPROTO unsupported protocol version")
    assert wire.call("GET", "nope") == NIL2, "the connection keeps RESP2"


def test_hello_errors(wire):
    assert wire.call("HELLO", "x") == err("ERR Protocol version is not an integer or out of range")
    assert wire.call("HELLO", "3", "FOO") == err("ERR Syntax error in HELLO option 'FOO'")
    assert wire.call("HELLO", "3", "SETNAME") == err("ERR Syntax error in HELLO option 'SETNAME'")
    assert wire.call("HELLO", "3", "SETNAME", "a b") == err(
        "ERR Client names cannot contain spaces, newlines or special characters.")
    assert wire.call("GET", "nope") == NIL2, "a failed HELLO changes nothing"


def test_hello_noproto_through_redis_py(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("HELLO", "4")
    assert "NOPROTO" in str(e.value) and "unsupported protocol version" in str(e.value)


def test_hello_setname(wire):
    reply = wire.call("HELLO", "3", "SETNAME", "svc-1")
    assert reply[0] == "%"
    assert wire.call("CLIENT", "GETNAME") == bulk("svc-1")
    reply = wire.call("HELLO", "2", "SETNAME", "svc-2")
    assert reply[0] == "*"
    assert wire.call("CLIENT", "GETNAME") == bulk("svc-2")


# ---------------------------------------------------------------- RESP3 types on the wire

def test_resp3_reply_types(r, wire):
    wire.call("HELLO", "3")
    assert wire.call("GET", "nope") == NIL3
    assert wire.call("MGET", "nope", "nope2") == ("*", [NIL3, NIL3])
    assert wire.call("SET", "a", "1") == OK
    assert wire.call("SET", "a", "2", "NX") == NIL3
    assert wire.call("SET", "b", "1", "GET") == NIL3
    assert wire.call("GETDEL", "nope") == NIL3
    assert wire.call("GETEX", "nope") == NIL3
    assert wire.call("CLIENT", "GETNAME") == NIL3
    assert wire.call("OBJECT", "ENCODING", "nope") == NIL3
    assert wire.call("MEMORY", "USAGE", "nope") == NIL3
    assert wire.call("EXISTS", "a") == (":", 1)
    assert wire.call("INCRBYFLOAT", "f", "1.5") == bulk("1.5")
    assert wire.call("CONFIG", "GET", "databases") == ("%", [(bulk("databases"), bulk("16"))])
    r.mset({"x": "ohmytext", "y": "mynewtext"})
    assert wire.call("LCS", "x", "y", "IDX", "MINMATCHLEN", "4") == ("%", [
        (bulk("matches"), ("*", [("*", [("*", [(":", 4), (":", 7)]), ("*", [(":", 5), (":", 8)])])])),
        (bulk("len"), (":", 6))])
    assert wire.call("FLUSHDB") == OK
    assert wire.call("RANDOMKEY") == NIL3


def test_resp3_through_redis_py(r3):
    assert r3.execute_command("HELLO", "3")[b"proto"] == 3
    assert r3.set("k", "v") is True
    assert r3.get("k") == b"v"
    assert r3.get("missing") is None
    assert r3.config_get("databases") == {"databases": "16"}
    assert r3.info("keyspace")["db0"]["keys"] == 1


# ---------------------------------------------------------------- QUIT / RESET

def test_quit_replies_ok_and_closes(server, r):
    s = server.raw()
    s.sendall(b"*1\r\n$4\r\nQUIT\r\n")
    data, closed = read_until_closed(s)
    assert data == b"+OK\r\n" and closed
    assert r.ping()


def test_quit_discards_pipelined_commands_after_it(server, r):
    s = server.raw()
    s.sendall(b"SET before 1\r\nQUIT\r\nSET after 1\r\n")
    data, closed = read_until_closed(s)
    assert data == b"+OK\r\n+OK\r\n" and closed
    assert r.get("before") == b"1" and r.exists("after") == 0


def test_reset(wire, r):
    wire.call("HELLO", "3", "SETNAME", "before-reset")
    assert wire.call("SELECT", "5") == OK
    assert wire.call("SET", "in5", "v") == OK
    assert wire.call("RESET") == ("+", b"RESET")
    assert wire.call("CLIENT", "GETNAME") == NIL2, "RESET clears the name and goes back to RESP2"
    assert wire.call("GET", "in5") == NIL2, "RESET goes back to database 0"
    assert wire.call("RESET", "x") == err("ERR wrong number of arguments for 'reset' command")


# ---------------------------------------------------------------- CLIENT

def test_client_id_is_unique_and_matches_client_info(server, wire):
    other = RawConn(server.raw())
    a, b = client_id(wire), client_id(other)
    assert a > 0 and b > 0 and a != b
    info = client_line(wire.call("CLIENT", "INFO")[1].decode())
    assert info["id"] == str(a)
    other.close()


def test_client_setname_getname(wire):
    assert wire.call("CLIENT", "GETNAME") == NIL2
    assert wire.call("CLIENT", "SETNAME", "worker-1") == OK
    assert wire.call("CLIENT", "GETNAME") == bulk("worker-1")
    assert client_line(wire.call("CLIENT", "INFO")[1].decode())["name"] == "worker-1"
    assert wire.call("CLIENT", "SETNAME", "") == OK
    assert wire.call("CLIENT", "GETNAME") == NIL2


@pytest.mark.parametrize("name", ["a b", "a\nb", "tab\there"])
def test_client_setname_rejects_special_characters(wire, name):
    wire.call("CLIENT", "SETNAME", "keep")
    assert wire.call("CLIENT", "SETNAME", name) == err(
        "ERR Client names cannot contain spaces, newlines or special characters.")
    assert wire.call("CLIENT", "GETNAME") == bulk("keep")


def test_client_info_fields(server, wire):
    wire.call("SELECT", "3")
    text = wire.call("CLIENT", "INFO")
    assert text[0] == "$" and text[1].endswith(b"\n")
    info = client_line(text[1].decode())
    for field in ("id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "cmd", "resp"):
        assert field in info, field
    assert info["db"] == "3"
    assert info["laddr"].endswith(f":{server.port}")
    assert info["addr"].startswith("127.0.0.1:")
    assert info["cmd"] == "client|info"
    assert info["resp"] == "2"


def test_client_list_shows_every_connection(server, r):
    conns = [RawConn(server.raw()) for _ in range(3)]
    for i, c in enumerate(conns):
        assert c.call("CLIENT", "SETNAME", f"lister-{i}") == OK
    ids = {str(client_id(c)) for c in conns}
    entries = client_list(r)
    names = {e["name"] for e in entries}
    assert {"lister-0", "lister-1", "lister-2"} <= names
    assert ids <= {e["id"] for e in entries}
    own = r.execute_command("CLIENT", "LIST", "ID", *ids).decode().splitlines()
    assert {client_line(line)["id"] for line in own} == ids
    assert client_line(r.execute_command("CLIENT", "LIST", "TYPE", "normal").decode().splitlines()[0])
    for c in conns:
        c.close()


def test_client_list_errors(wire):
    assert wire.call("CLIENT", "LIST", "ID", "x") == err("ERR Invalid client ID")
    assert wire.call("CLIENT", "LIST", "TYPE", "foo") == err("ERR Unknown client type 'foo'")
    assert wire.call("CLIENT", "LIST", "FOO") == err("ERR syntax error")


def test_client_kill_by_id(server, r):
    victim = RawConn(server.raw())
    vid = client_id(victim)
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 1
    _, closed = read_until_closed(victim.sock)
    assert closed
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 0
    assert str(vid) not in {e["id"] for e in client_list(r)}


def test_client_kill_by_addr(server, r):
    victim = RawConn(server.raw())
    addr = client_line(victim.call("CLIENT", "INFO")[1].decode())["addr"]
    assert r.execute_command("CLIENT", "KILL", "ADDR", addr) == 1
    _, closed = read_until_closed(victim.sock)
    assert closed
    victim2 = RawConn(server.raw())
    addr2 = client_line(victim2.call("CLIENT", "INFO")[1].decode())["addr"]
    wire = RawConn(server.raw())
    assert wire.call("CLIENT", "KILL", addr2) == OK, "the old form replies +OK"
    _, closed = read_until_closed(victim2.sock)
    assert closed
    wire.close()


def test_client_kill_errors(server, r, wire):
    assert wire.call("CLIENT", "KILL", "1.2.3.4:5") == err("ERR No such client")
    assert wire.call("CLIENT", "KILL", "ADDR", "1.2.3.4:5") == (":", 0)
    assert wire.call("CLIENT", "KILL", "ID", "99999999") == (":", 0)
    assert wire.call("CLIENT", "KILL", "ID", "x") == err("ERR client-id should be greater than 0")
    assert wire.call("CLIENT", "KILL", "ID", "0") == err("ERR client-id should be greater than 0")
    assert wire.call("CLIENT", "KILL", "FOO", "bar") == err("ERR syntax error")
    assert wire.call("CLIENT", "KILL") == err("ERR wrong number of arguments for 'client|kill' command")
    assert wire.call("PING") == ("+", b"PONG")


def test_client_kill_skipme(server, wire):
    me = client_id(wire)
    assert wire.call("CLIENT", "KILL", "ID", str(me), "SKIPME", "yes") == (":", 0)
    assert wire.call("PING") == ("+", b"PONG")


def test_client_unknown_subcommand(wire):
    kind, text = wire.call("CLIENT", "FOO")
    assert kind == "-" and text.startswith(b"ERR unknown subcommand 'FOO'")


@pytest.mark.not_on_redis
def test_client_setinfo(server, wire):
    assert wire.call("CLIENT", "SETINFO", "LIB-NAME", "mylib") == OK
    assert wire.call("CLIENT", "SETINFO", "lib-ver", "1.2.3") == OK
    info = client_line(wire.call("CLIENT", "INFO")[1].decode())
    assert info["lib-name"] == "mylib" and info["lib-ver"] == "1.2.3"
    kind, _ = wire.call("CLIENT", "SETINFO", "NOSUCH", "x")
    assert kind == "-"
    kind, _ = wire.call("CLIENT", "SETINFO", "LIB-NAME", "has space")
    assert kind == "-"
    info = client_line(wire.call("CLIENT", "INFO")[1].decode())
    assert info["lib-name"] == "mylib"


# ---------------------------------------------------------------- SELECT / DBSIZE

def test_select_and_dbsize(wire):
    assert wire.call("DBSIZE") == (":", 0)
    wire.call("SET", "a", "1")
    assert wire.call("SELECT", "1") == OK
    assert wire.call("DBSIZE") == (":", 0)
    assert wire.call("SELECT", "16") == err("ERR DB index is out of range")
    assert wire.call("SELECT", "0") == OK
    assert wire.call("DBSIZE") == (":", 1)


# ---------------------------------------------------------------- COMMAND

def test_command_count(wire):
    kind, count = wire.call("COMMAND", "COUNT")
    assert kind == ":" and count > 50


def test_command_info_get(wire):
    kind, entries = wire.call("COMMAND", "INFO", "get")
    assert kind == "*" and len(entries) == 1
    kind, entry = entries[0]
    assert kind == "*" and len(entry) >= 6
    assert entry[0] == bulk("get")
    assert entry[1] == (":", 2)
    flags = {v for _, v in entry[2][1]}
    assert b"readonly" in flags
    assert entry[3:6] == [(":", 1), (":", 1), (":", 1)], "first key, last key, step"


def test_command_info_several_and_unknown(wire):
    kind, entries = wire.call("COMMAND", "INFO", "set", "nosuchcommand", "mset")
    assert kind == "*" and len(entries) == 3
    assert entries[0][1][0] == bulk("set") and entries[0][1][1] == (":", -3)
    assert entries[1] == NIL2
    assert entries[2][1][0] == bulk("mset") and entries[2][1][1] == (":", -3)
    assert b"write" in {v for _, v in entries[2][1][2][1]}


def test_command_docs_get(wire):
    kind, items = wire.call("COMMAND", "DOCS", "get")
    assert kind == "*" and len(items) == 2 and items[0] == bulk("get")
    kind, doc = items[1]
    assert kind == "*"
    fields = {doc[i][1]: doc[i + 1] for i in range(0, len(doc), 2)}
    assert fields[b"group"] == bulk("string")
    assert fields[b"summary"][0] == "$" and fields[b"summary"][1]
    assert fields[b"since"] == bulk("1.0.0")
    assert wire.call("COMMAND", "DOCS", "nosuchcommand") == ("*", [])


def test_command_getkeys(wire):
    assert wire.call("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == ("*", [bulk("a"), bulk("b")])
    assert wire.call("COMMAND", "GETKEYS", "GET", "k") == ("*", [bulk("k")])
    assert wire.call("COMMAND", "GETKEYS", "nosuch", "a") == err("ERR Invalid command specified")


# ---------------------------------------------------------------- CONFIG

def test_config_get_port(server, wire, r):
    assert wire.call("CONFIG", "GET", "port") == ("*", [bulk("port"), bulk(str(server.port))])
    assert r.config_get("port") == {"port": str(server.port)}


def test_config_get_star(server, r):
    everything = r.config_get("*")
    assert len(everything) > 10
    assert everything["port"] == str(server.port)
    assert everything["databases"] == "16"
    assert "timeout" in everything and "maxclients" in everything


def test_config_get_glob_and_unknown(r, wire):
    assert r.config_get("databa*") == {"databases": "16"}
    assert wire.call("CONFIG", "GET", "nosuchparameter") == ("*", [])
    assert wire.call("CONFIG", "GET") == err("ERR wrong number of arguments for 'config|get' command")


def test_config_set_timeout(r, wire):
    try:
        assert wire.call("CONFIG", "SET", "timeout", "300") == OK
        assert r.config_get("timeout") == {"timeout": "300"}
        assert wire.call("CONFIG", "SET", "timeout", "x") == err(
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument couldn't be parsed into an "
            "integer")
        assert wire.call("CONFIG", "SET", "timeout", "-1") == err(
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and "
            "2147483647 inclusive")
        assert r.config_get("timeout") == {"timeout": "300"}
    finally:
        r.config_set("timeout", 0)
    assert r.config_get("timeout") == {"timeout": "0"}


def test_config_errors(wire):
    assert wire.call("CONFIG", "SET", "nonsense", "1") == err(
        "ERR Unknown option or number of arguments for CONFIG SET - 'nonsense'")
    assert wire.call("CONFIG", "SET", "timeout") == err("ERR wrong number of arguments for 'config|set' command")
    assert wire.call("CONFIG", "FOO") == err("ERR unknown subcommand 'FOO'. Try CONFIG HELP.")


# ---------------------------------------------------------------- INFO

def info_text(wire, *sections):
    kind, text = wire.call("INFO", *sections)
    assert kind == "$"
    return text.decode()


def test_info_server(server, r, wire):
    info = r.info("server")
    assert info["process_id"] == server.pid
    assert info["tcp_port"] == server.port
    assert "redis_version" in info and "uptime_in_seconds" in info
    text = info_text(wire, "server")
    assert text.startswith("# Server\r\n")
    assert f"\r\ntcp_port:{server.port}\r\n" in text


def test_info_keyspace(r, wire):
    assert "db0:" not in info_text(wire, "keyspace")
    r.mset({"a": 1, "b": 2, "c": 3})
    r.expire("a", 100)
    text = info_text(wire, "keyspace")
    assert text.startswith("# Keyspace\r\n")
    assert "\r\ndb0:keys=3,expires=1," in text
    r.execute_command("SELECT", 2)
    r.set("x", 1)
    assert r.info("keyspace")["db2"]["keys"] == 1
    r.execute_command("SELECT", 0)
    assert r.info("keyspace")["db0"] == {"keys": 3, "expires": 1, "avg_ttl": r.info("keyspace")["db0"]["avg_ttl"]}


def test_info_default_and_sections(r, wire):
    default = info_text(wire)
    for header in ("# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"):
        assert header in default, header
    assert "connected_clients" in r.info("clients")
    assert r.info("clients")["connected_clients"] >= 1
    both = info_text(wire, "server", "clients")
    assert "# Server" in both and "# Clients" in both and "# Keyspace" not in both
    assert info_text(wire, "nosuchsection") == ""


def test_info_counts_commands(r):
    before = r.info("stats")["total_commands_processed"]
    for _ in range(10):
        r.ping()
    assert r.info("stats")["total_commands_processed"] >= before + 10


# ---------------------------------------------------------------- redis-cli and inline commands

def cli(server, *args):
    out = subprocess.run(["redis-cli", "-p", str(server.port), *args], capture_output=True, text=True, timeout=30)
    return out.stdout


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli(server, r):
    assert cli(server, "set", "a", "b") == "OK\n"
    assert cli(server, "get", "a") == "b\n"
    assert cli(server, "get", "missing") == "\n"
    assert cli(server, "incr", "counter") == "1\n"
    assert cli(server, "mget", "a", "missing") == "b\n\n"
    assert cli(server, "-n", "1", "set", "a", "one") == "OK\n"
    assert r.get("a") == b"b"
    assert "wrong number of arguments" in cli(server, "get")


def test_inline_ping(server, r):
    s = server.raw()
    s.sendall(b"PING\r\n")
    assert s.recv(100) == b"+PONG\r\n"
    s.sendall(b"ping hello\r\n")
    data = b""
    while not data.endswith(b"hello\r\n"):
        data += s.recv(100)
    assert data == b"$5\r\nhello\r\n"
    s.close()


def test_inline_set_with_quotes(server, r):
    conn = RawConn(server.raw())
    conn.sock.sendall(b'SET k "a b"\r\n')
    assert conn.read() == OK
    assert r.get("k") == b"a b"
    conn.sock.sendall(b"SET k2 'single quoted'\r\nGET k2\r\n")
    assert conn.read() == OK
    assert conn.read() == bulk("single quoted")
    conn.sock.sendall(b'SET k3 "\\x41\\tB"\r\n')
    assert conn.read() == OK
    assert r.get("k3") == b"A\tB"
    conn.sock.sendall(b"   \r\n\r\nGET k\n")
    assert conn.read() == bulk("a b"), "blank lines are skipped, a bare LF ends a line"
    conn.close()


@pytest.mark.parametrize("line", [b'SET k "a b\r\n', b"SET k 'a b\r\n", b'SET k "a"b\r\n'])
def test_inline_unbalanced_quotes(server, r, line):
    s = server.raw()
    s.sendall(line)
    data, closed = read_until_closed(s)
    assert data == b"-ERR Protocol error: unbalanced quotes in request\r\n"
    assert closed
    assert r.exists("k") == 0 and r.ping()


def test_unknown_command(wire):
    assert wire.call("NOSUCHCOMMAND", "a", "b") == err(
        "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'a' 'b' ")
    assert wire.call("NOSUCHCOMMAND") == err("ERR unknown command 'NOSUCHCOMMAND', with args beginning with: ")
    assert wire.call("PING") == ("+", b"PONG")


def test_many_clients_counted_in_info(server, r):
    conns = [server.raw() for _ in range(20)]
    for c in conns:
        c.sendall(b"PING\r\n")
        assert c.recv(7) == b"+PONG\r\n"
    assert r.info("clients")["connected_clients"] >= 21
    for c in conns:
        c.close()
    assert wait_for(lambda: r.info("clients")["connected_clients"] < 21, timeout=10)
