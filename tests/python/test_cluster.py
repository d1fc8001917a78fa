"""A replicated cluster of real processes on loopback, used through cluster-aware clients
(redis-cli -c, redis-py's RedisCluster, redis-benchmark --cluster): redirects, the CLUSTER
commands, CROSSSLOT, failover without losing an acknowledged write, a node's restart and
catch-up, garbage on the Raft port, and `tessera cluster dev`."""

import hashlib
import hmac
import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster

from conftest import TESSERA

pytestmark = pytest.mark.tessera_only

RAFT_OFFSET = 10000


def port_pair_free(port):
    for p in (port, port + RAFT_OFFSET):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def free_base_port(count):
    """`count` consecutive client ports whose Raft ports (+10000) are free too."""
    for _ in range(200):
        base = random.randrange(20000, 30000)
        if all(port_pair_free(base + i) for i in range(count)):
            return base
    raise AssertionError("no free ports")


def command(port, *args, timeout=5, password=None):
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, protocol=2, password=password)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def settled(read, done, timeout=10):
    """Calls read() until done(value) holds or `timeout` seconds pass; returns the last value.
    A leader acknowledges a write once a majority has it, so the last replica may apply it a
    moment later: what every replica holds is read this way."""
    deadline = time.time() + timeout
    value = read()
    while not done(value) and time.time() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def all_same(values):
    return all(v == values[0] for v in values)


def cluster_ok(port, password=None):
    try:
        info = command(port, "CLUSTER", "INFO", timeout=1, password=password)
    except (redis.RedisError, OSError):
        return False
    return b"cluster_state:ok" in info


class Node:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.port = cluster.base + node_id - 1
        self.log = os.path.join(cluster.dir, f"node-{node_id}.log")
        self.proc = None

    def start(self, bootstrap):
        argv = [TESSERA, "--port", str(self.port), "--threads", "2", "--node-id", str(self.id),
                "--members", self.cluster.members, "--dir", os.path.join(self.cluster.dir, f"node-{self.id}")]
        if bootstrap:
            argv.append("--bootstrap")
        argv += self.cluster.extra
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait_listening(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"node {self.id} exited with {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"node {self.id} does not listen on {self.port}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def local_keys(self):
        """The keys this node holds, whichever partitions it leads (SCAN is node-local)."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, protocol=2)
        try:
            return set(client.scan_iter(count=1000))
        finally:
            client.close()


class Cluster:
    def __init__(self, tmp_path, nodes=3, extra=(), password=None):
        self.dir = str(tmp_path)
        self.password = password
        self.extra = list(extra) + (["--requirepass", password] if password else [])
        self.base = free_base_port(nodes)
        self.members = ",".join(f"{i}@127.0.0.1:{self.base + i - 1}" for i in range(1, nodes + 1))
        self.nodes = [Node(self, i) for i in range(1, nodes + 1)]
        for node in self.nodes:
            node.start(bootstrap=True)
        self.wait_ok(self.nodes)

    def wait_ok(self, nodes, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(cluster_ok(n.port, self.password) for n in nodes):
                return
            time.sleep(0.1)
        logs = "".join(open(n.log, errors="replace").read()[-2000:] for n in nodes)
        raise AssertionError(f"the cluster did not become ready:\n{logs}")

    def client(self, **kw):
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("password", self.password)
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, **kw)

    def stop(self):
        return [node.stop() for node in self.nodes]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    assert c.stop() == [0, 0, 0], "every node exits 0 on SIGTERM"


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster for a test that kills or restarts nodes."""
    c = Cluster(tmp_path)
    yield c
    c.stop()


def key_slot(key):
    """Redis Cluster's slot: CRC16 (XMODEM) of the key or its {hash tag}, mod 16384."""
    key = key.encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in key:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def slot_map(port, password=None):
    """slot -> (leader port) from CLUSTER SLOTS."""
    owners = {}
    for start, end, leader, *_ in command(port, "CLUSTER", "SLOTS", password=password):
        for slot in range(start, end + 1):
            assert slot not in owners, f"slot {slot} listed twice"
            owners[slot] = leader[1]
    return owners


def test_redis_cli_follows_redirects_and_plain_redis_cli_sees_moved(cluster):
    port = cluster.nodes[0].port
    for i in range(20):
        out = subprocess.run(["redis-cli", "-c", "-p", str(port), "SET", f"cli:{i}", f"v{i}"],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout.strip() == "OK", out
    for i in range(20):
        out = subprocess.run(["redis-cli", "-c", "-p", str(cluster.nodes[1].port), "GET", f"cli:{i}"],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout.strip() == f"v{i}"
    owners = slot_map(port)
    slot = command(port, "CLUSTER", "KEYSLOT", "cli:0")
    elsewhere = next(n for n in cluster.nodes if n.port != owners[slot])
    out = subprocess.run(["redis-cli", "-p", str(elsewhere.port), "GET", "cli:0"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == f"MOVED {slot} 127.0.0.1:{owners[slot]}"


def test_cluster_commands_describe_the_cluster(cluster):
    port = cluster.nodes[0].port
    assert command(port, "CLUSTER", "MYID") == b"%040x" % 1
    assert command(port, "CLUSTER", "KEYSLOT", "foo") == 12182
    assert command(port, "CLUSTER", "KEYSLOT", "{user1}:a") == command(port, "CLUSTER", "KEYSLOT", "user1")
    info = command(port, "CLUSTER", "INFO").decode()
    fields = dict(line.split(":", 1) for line in info.split("\r\n") if line)
    assert fields["cluster_state"] == "ok"
    assert fields["cluster_slots_ok"] == "16384"
    assert fields["cluster_known_nodes"] == "3"
    owners = slot_map(port)
    assert len(owners) == 16384
    assert set(owners.values()) == {n.port for n in cluster.nodes}, "leadership is spread"
    # Every node agrees on who leads what, and the leader serves its slots without redirects.
    for node in cluster.nodes[1:]:
        assert slot_map(node.port) == owners
    for slot in (0, 5000, 16383):
        key = next(k for k in (f"k{i}" for i in range(1000000)) if key_slot(k) == slot)
        assert command(port, "CLUSTER", "KEYSLOT", key) == slot
        assert command(owners[slot], "SET", key, "x") is True
    nodes = command(port, "CLUSTER", "NODES").decode().splitlines()
    assert len(nodes) == 3
    mine = next(line for line in nodes if "myself" in line).split()
    assert mine[0] == "%040x" % 1 and mine[1] == f"127.0.0.1:{port}@{port + RAFT_OFFSET}"
    covered = 0
    for line in nodes:
        for r in line.split()[8:]:
            lo, _, hi = r.partition("-")
            covered += int(hi or lo) - int(lo) + 1
    assert covered == 16384
    shards = command(port, "CLUSTER", "SHARDS")
    assert len(shards) == 64
    for shard in shards:
        shard = dict(zip(shard[::2], shard[1::2]))
        assert len(shard[b"nodes"]) == 3
        roles = [dict(zip(n[::2], n[1::2]))[b"role"] for n in shard[b"nodes"]]
        assert sorted(roles) == [b"master", b"replica", b"replica"]
    rc = cluster.client()
    for i in range(30):
        rc.set(f"{{tag}}:{i}", i)
    slot = rc.cluster_keyslot("{tag}")
    leader = owners[slot]
    assert command(leader, "CLUSTER", "COUNTKEYSINSLOT", slot) == 30
    keys = command(leader, "CLUSTER", "GETKEYSINSLOT", slot, 10)
    assert len(keys) == 10 and all(k.startswith(b"{tag}:") for k in keys)
    with pytest.raises(redis.ResponseError, match="Invalid slot"):
        command(port, "CLUSTER", "COUNTKEYSINSLOT", 16384)
    with pytest.raises(redis.ResponseError, match="unknown subcommand"):
        command(port, "CLUSTER", "FROBNICATE")
    assert command(port, "READONLY") is True and command(port, "READWRITE") is True
    rc.close()


def test_multi_key_commands_across_slots_are_refused(cluster):
    owners = slot_map(cluster.nodes[0].port)
    slot = command(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", "{a}x")
    port = owners[slot]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        s.sendall(b"MSET {a}x 1 {b}y 2\r\nSUNIONSTORE {a}x {b}y\r\n")
        expected = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n" * 2
        got = b""
        while len(got) < len(expected):
            got += s.recv(4096)
        assert got == expected
    assert command(port, "MSET", "{a}x", "1", "{a}y", "2") is True
    assert command(port, "MGET", "{a}x", "{a}y") == [b"1", b"2"]
    with pytest.raises(redis.ResponseError, match="SELECT is not allowed in cluster mode"):
        command(port, "SELECT", "1")
    with pytest.raises(redis.ResponseError, match="not supported in cluster mode"):
        command(port, "SORT", "{a}list", "BY", "weight_*")


def test_transactions_on_one_slot_run_atomically_on_its_leader(cluster):
    owners = slot_map(cluster.nodes[0].port)
    leader = owners[key_slot("{t}")]
    client = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=10, protocol=2)
    pipe = client.pipeline(transaction=True)
    pipe.incr("{t}a").lpush("{t}b", "x").get("{t}a").incrby("{t}a", 10)
    assert pipe.execute() == [1, 1, b"1", 11]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.pipeline(transaction=True).lpush("{t}a", "y").incr("{t}b").execute()
    assert client.get("{t}a") == b"11" and client.lrange("{t}b", 0, -1) == [b"x"]
    with socket.create_connection(("127.0.0.1", leader)) as s:
        s.settimeout(10)
        s.sendall(b"MULTI\r\nSET {t}x 1\r\nSET {u}y 2\r\nEXEC\r\nGET {t}x\r\n")
        expected = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n$-1\r\n"
        got = b""
        while len(got) < len(expected):
            got += s.recv(4096)
        assert got == expected
    assert client.pipeline(transaction=True).set("{t}one", 1).execute() == [True]
    # Eight clients incrementing one counter in transactions lose nothing.
    def bump():
        c = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=10, protocol=2)
        for _ in range(50):
            c.pipeline(transaction=True).incr("{t}n").incr("{t}n").execute()
        c.close()
    threads = [threading.Thread(target=bump) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert client.get("{t}n") == b"800"
    client.close()


def test_watch_makes_a_transaction_conditional_on_its_slot_on_every_replica(cluster):
    owners = slot_map(cluster.nodes[0].port)
    leader = owners[key_slot("{w}")]
    client = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=10, protocol=2)
    other = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=10, protocol=2)
    client.set("{w}k", 1)
    with client.pipeline(transaction=True) as pipe:
        pipe.watch("{w}k")
        assert pipe.get("{w}k") == b"1"
        pipe.multi()
        pipe.set("{w}k", 2)
        assert pipe.execute() == [True]
    with client.pipeline(transaction=True) as pipe:
        pipe.watch("{w}k")
        other.set("{w}k", 3)  # a write after WATCH fails the transaction
        pipe.multi()
        pipe.set("{w}k", 4)
        pipe.set("{w}ghost", 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert client.get("{w}k") == b"3" and client.get("{w}ghost") is None
    # Every replica skipped it too: they hold the same keys of the slot as the leader.
    client.set("{w}after", 1)
    slot = key_slot("{w}")
    counts = settled(lambda: [command(n.port, "CLUSTER", "COUNTKEYSINSLOT", slot) for n in cluster.nodes],
                     lambda counts: counts == [2] * len(cluster.nodes))
    assert counts == [2] * len(cluster.nodes), counts
    # UNWATCH forgets the watch.
    client.execute_command("WATCH", "{w}k")
    other.set("{w}k", 5)
    client.execute_command("UNWATCH")
    assert client.pipeline(transaction=True).set("{w}k", 6).execute() == [True]
    # WATCH of keys elsewhere is refused: on another node, or another partition.
    slot_elsewhere, elsewhere = next((s, p) for s, p in owners.items() if p != leader)
    key_elsewhere = next(f"k{i}" for i in range(100000) if key_slot(f"k{i}") == slot_elsewhere)
    with pytest.raises(redis.exceptions.MovedError) as moved:
        client.execute_command("WATCH", key_elsewhere)
    assert str(moved.value).endswith(f":{elsewhere}")
    here = [s for s, p in owners.items() if p == leader and s // 256 != key_slot("{w}") // 256]
    key_here = next(f"k{i}" for i in range(100000) if key_slot(f"k{i}") == here[0])
    client.execute_command("WATCH", key_here)
    with pytest.raises(redis.ResponseError, match="WATCH named keys of another partition"):
        client.pipeline(transaction=True).set("{w}k", 7).execute()
    client.execute_command("UNWATCH")
    # Optimistic increments by four clients, retried on conflicts, lose none and add none.
    client.set("{w}n", 0)

    def add(times):
        c = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=10, protocol=2)
        for _ in range(times):
            while True:
                with c.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch("{w}n")
                        n = int(pipe.get("{w}n"))
                        pipe.multi()
                        pipe.set("{w}n", n + 1)
                        pipe.execute()
                        break
                    except redis.WatchError:
                        continue
        c.close()
    threads = [threading.Thread(target=add, args=(25,)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert client.get("{w}n") == b"100"
    client.close()
    other.close()


def test_blocking_pops_wait_for_a_write_and_replicate_the_pop(cluster):
    owners = slot_map(cluster.nodes[0].port)
    leader = owners[key_slot("{q}")]
    waiter = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=20, protocol=2)
    got = {}

    def wait(name, *args):
        got[name] = waiter.execute_command(*args)

    for name, args, push in [
        ("blpop", ("BLPOP", "{q}jobs", "10"), ("RPUSH", "{q}jobs", "j1")),
        ("blmove", ("BLMOVE", "{q}in", "{q}out", "LEFT", "RIGHT", "10"), ("LPUSH", "{q}in", "m1")),
        ("bzpopmin", ("BZPOPMIN", "{q}z", "10"), ("ZADD", "{q}z", "5", "low")),
    ]:
        thread = threading.Thread(target=wait, args=(name, *args))
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive(), f"{name} waits for a write"
        command(leader, *push)
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert list(got["blpop"]) == [b"{q}jobs", b"j1"]
    assert got["blmove"] == b"m1"
    assert list(got["bzpopmin"]) == [b"{q}z", b"low", 5.0]
    assert waiter.execute_command("BLPOP", "{q}none", "0.2") is None
    assert command(leader, "LRANGE", "{q}out", "0", "-1") == [b"m1"]
    # The pops are replicated writes: every replica holds the same keys.
    held = settled(lambda: [{k for k in n.local_keys() if k.startswith(b"{q}")} for n in cluster.nodes],
                   lambda held: held == [{b"{q}out"}] * 3)
    assert held[0] == held[1] == held[2] == {b"{q}out"}
    waiter.close()


def test_redis_py_cluster_client_reads_its_writes_of_every_type(cluster):
    rc = cluster.client()
    for i in range(500):
        rc.set(f"user:{i}", i)
    assert [int(rc.get(f"user:{i}")) for i in range(500)] == list(range(500))
    assert rc.incr("pyc:counter") == 1 and rc.incrby("pyc:counter", 41) == 42
    assert rc.rpush("pyc:list", "a", "b", "c") == 3 and rc.lrange("pyc:list", 0, -1) == [b"a", b"b", b"c"]
    assert rc.hset("pyc:hash", mapping={"f": "v", "g": "w"}) == 2 and rc.hgetall("pyc:hash") == {b"f": b"v", b"g": b"w"}
    assert rc.sadd("pyc:set", "x", "y") == 2 and rc.smembers("pyc:set") == {b"x", b"y"}
    assert rc.zadd("pyc:zset", {"m": 1.5}) == 1 and rc.zscore("pyc:zset", "m") == 1.5
    assert rc.xadd("pyc:stream", {"f": "v"}, id="1-1") == b"1-1" and rc.xlen("pyc:stream") == 1
    assert rc.set("pyc:ttl", "v", px=100000) and 0 < rc.pttl("pyc:ttl") <= 100000
    pipe = rc.pipeline()
    for i in range(100):
        pipe.set(f"pipe:{i}", i)
        pipe.get(f"pipe:{i}")
    replies = pipe.execute()
    assert replies[1::2] == [str(i).encode() for i in range(100)], "a pipeline reads its own writes"
    rc.close()


def test_a_pipeline_on_one_connection_reads_its_own_writes_in_order(cluster):
    owners = slot_map(cluster.nodes[0].port)
    slot = command(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", "{p}")
    with socket.create_connection(("127.0.0.1", owners[slot])) as s:
        s.settimeout(10)
        request = b""
        for i in range(50):
            request += b"*3\r\n$3\r\nSET\r\n$4\r\n{p}k\r\n$%d\r\n%d\r\n*2\r\n$3\r\nGET\r\n$4\r\n{p}k\r\n" % (len(str(i)), i)
        s.sendall(request)
        expected = b"".join(b"+OK\r\n$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(50))
        got = b""
        while len(got) < len(expected):
            got += s.recv(65536)
        assert got == expected


def test_a_cluster_with_a_password_asks_every_client_for_it(tmp_path):
    c = Cluster(tmp_path, extra=["--cluster-forwarding"], password="cluster pw")
    try:
        for node in c.nodes:
            with pytest.raises(redis.AuthenticationError):
                command(node.port, "CLUSTER", "INFO")
        rc = c.client()
        keys = [f"pw:{i}" for i in range(100)]
        for i, k in enumerate(keys):
            assert rc.set(k, i)
        rc.close()
        # A plain client of one node: its requests for partitions led elsewhere are relayed
        # over connections that authenticate with the cluster's password.
        node = c.nodes[0]
        owners = slot_map(node.port, c.password)
        assert any(owners[key_slot(k)] != node.port for k in keys)
        plain = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=10, protocol=2, password=c.password)
        assert [int(plain.get(k)) for k in keys] == list(range(100))
        plain.close()
        # The command-line tools read the password where redis-cli does.
        seed = ["status", "--seed", f"127.0.0.1:{node.port}"]
        refused = cluster_cli(*seed, env={k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"})
        assert refused.returncode != 0 and "NOAUTH" in refused.stdout + refused.stderr
        allowed = cluster_cli(*seed, env={**os.environ, "REDISCLI_AUTH": c.password})
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    finally:
        c.stop()


def test_plain_clients_use_any_node_through_forwarding(tmp_path):
    c = Cluster(tmp_path, extra=["--cluster-forwarding"])
    try:
        node = c.nodes[0]
        owners = slot_map(node.port)
        plain = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=10, protocol=2)
        keys = [f"fwd:{i}" for i in range(300)]
        assert any(owners[key_slot(k)] != node.port for k in keys), "some keys are led elsewhere"
        for i, k in enumerate(keys):
            assert plain.set(k, i) is True
        assert [int(plain.get(k)) for k in keys] == list(range(300))
        pipe = plain.pipeline(transaction=False)
        for i, k in enumerate(keys):
            pipe.incr(k)
            pipe.get(k)
        replies = pipe.execute()
        assert replies[1::2] == [str(i + 1).encode() for i in range(300)], "forwarded pipelines keep order"
        resp3 = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=10, protocol=3)
        elsewhere = next(k for k in keys if owners[key_slot(k)] != node.port)
        resp3.hset(elsewhere + ":h", mapping={"a": "1"})
        assert resp3.hgetall(elsewhere + ":h") == {b"a": b"1"}
        out = subprocess.run(["redis-cli", "-p", str(node.port), "GET", elsewhere],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout.strip() == str(keys.index(elsewhere) + 1)
        # A watch belongs to the client's own connection: never relayed.
        with pytest.raises(redis.exceptions.MovedError):
            plain.execute_command("WATCH", elsewhere)
        # A node leaves, and the partitions it led elect new leaders: a plain client's
        # requests for them wait for the election rather than fail.
        leaving = c.nodes[2]
        led_by_leaving = {s for s, p in owners.items() if p == leaving.port}
        outcomes, stop = [], threading.Event()

        def write():
            i = 0
            while not stop.is_set():
                key = f"fwd:w{i}"
                try:
                    outcomes.append((key, plain.set(key, i)))
                except redis.RedisError as e:
                    outcomes.append((key, str(e)))
                i += 1
        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(0.5)
            out = subprocess.run([TESSERA, "cluster", "remove-node", "--seed", f"127.0.0.1:{node.port}",
                                  str(leaving.id), "--wait"], capture_output=True, text=True, timeout=150)
            assert out.returncode == 0, out.stdout + out.stderr
            time.sleep(0.5)
        finally:
            stop.set()
            writer.join()
        # A write in flight on the leaving leader as it stepped down may be of unknown outcome.
        failed = [(k, r) for k, r in outcomes if r is not True and "UNCERTAIN" not in str(r)]
        assert not failed, failed[:5]
        written = [k for k, r in outcomes if r is True and key_slot(k) in led_by_leaving]
        assert len(written) > 20, len(written)
        assert command(node.port, "GET", written[-1]) is not None
        plain.close()
        resp3.close()
    finally:
        c.stop()


def test_flushall_empties_every_node_through_the_logs(tmp_path):
    c = Cluster(tmp_path)
    try:
        rc = c.client()
        for i in range(300):
            rc.set(f"gone:{i}", i)
        held = settled(lambda: [len(n.local_keys()) for n in c.nodes], lambda held: held == [300] * 3)
        assert held == [300] * 3, held
        with pytest.raises(redis.ResponseError, match="syntax error"):
            command(c.nodes[0].port, "FLUSHALL", "SOMETIMES")
        rc.flushall()  # redis-py sends it to every node, as to every master of Redis Cluster
        held = settled(lambda: [n.local_keys() for n in c.nodes], lambda held: not any(held))
        assert held == [set(), set(), set()], "every replica emptied"
        assert rc.set("after", "1") and rc.get("after") == b"1"
        rc.close()
    finally:
        c.stop()


def test_expired_keys_leave_every_replica_through_the_log(tmp_path):
    c = Cluster(tmp_path)
    try:
        rc = c.client()
        pipe = rc.pipeline()
        for i in range(200):
            pipe.set(f"short:{i}", i, px=4000)
        for i in range(50):
            pipe.set(f"long:{i}", i)
        pipe.execute()
        written = time.time()

        def sizes():
            return [int(command(n.port, "DBSIZE")) for n in c.nodes]

        assert settled(sizes, lambda held: held == [250] * 3, timeout=3) == [250] * 3, "every replica has them"
        time.sleep(max(0.0, written + 4.1 - time.time()))
        assert rc.get("short:7") is None and rc.get("long:7") == b"7"
        assert settled(sizes, lambda held: held == [50] * 3) == [50] * 3, "the leaders' removals reach every replica"
        rc.close()
    finally:
        c.stop()


def test_with_more_nodes_than_replicas_each_key_lives_on_three(tmp_path):
    c = Cluster(tmp_path, nodes=4)
    try:
        # Every node knows every partition's leader, held or not: all slots are served.
        for node in c.nodes:
            assert len(slot_map(node.port)) == 16384
        rc = c.client()
        for i in range(400):
            rc.set(f"four:{i}", i)
        assert [int(rc.get(f"four:{i}")) for i in range(400)] == list(range(400))
        rc.close()
        held = settled(lambda: [n.local_keys() for n in c.nodes], lambda held: sum(map(len, held)) == 3 * 400)
        assert sum(len(h) for h in held) == 3 * 400, "three replicas of each key"
        assert all(0 < len(h) < 400 for h in held), "no node holds everything"
        # A node that does not hold a key's partition redirects to its leader.
        key = next(f"four:{i}" for i in range(400) if f"four:{i}".encode() not in held[3])
        out = subprocess.run(["redis-cli", "-p", str(c.nodes[3].port), "GET", key],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout.startswith("MOVED"), out.stdout
    finally:
        c.stop()


def test_redis_benchmark_cluster_mode_runs(cluster):
    out = subprocess.run(["redis-benchmark", "--cluster", "-p", str(cluster.nodes[0].port), "-t", "set,get",
                          "-n", "20000", "-c", "10", "-P", "16", "-r", "1000", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "SET:" in out.stdout and "GET:" in out.stdout, out.stdout
    assert any(k.startswith(b"key:") for k in cluster.nodes[0].local_keys())


def raft_greeting(node, claimed_id, secret):
    """Greets `node`'s Raft port as node `claimed_id`, proving `secret` (bytes) the way a node
    does (`cluster/src/handshake.rs`); returns the socket and whether the node's own proof
    checked out with that secret."""
    s = socket.create_connection(("127.0.0.1", node.port + RAFT_OFFSET))
    s.settimeout(5)
    nonce = os.urandom(16)
    s.sendall(b"TESSRAF2" + claimed_id.to_bytes(8, "little") + nonce)
    answer = b""
    while len(answer) < 48:
        chunk = s.recv(48 - len(answer))
        assert chunk, "the node closed the connection before answering"
        answer += chunk
    their_nonce, their_proof = answer[:16], answer[16:]
    ids = claimed_id.to_bytes(8, "little") + node.id.to_bytes(8, "little")
    expected = hmac.new(secret, b"accept" + ids + nonce + their_nonce, hashlib.sha256).digest()
    s.sendall(hmac.new(secret, b"dial" + ids + nonce + their_nonce, hashlib.sha256).digest())
    return s, hmac.compare_digest(expected, their_proof)


def closed_by_peer(s):
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    finally:
        s.close()


def test_garbage_on_the_raft_port_is_logged_and_the_node_carries_on(cluster):
    node = cluster.nodes[1]
    for payload in (b"GET / HTTP/1.1\r\n\r\n", os.urandom(4096),
                    b"TESSRAFT" + (1).to_bytes(8, "little") + b"\xff\xff\x00\x00" + os.urandom(64),
                    b"TESSRAF2" + (99).to_bytes(8, "little") + os.urandom(16)):
        with socket.create_connection(("127.0.0.1", node.port + RAFT_OFFSET)) as s:
            s.sendall(payload)
            s.settimeout(2)
            assert closed_by_peer(s), "the node closes the connection"
    # Without a cluster secret anyone can complete the handshake, but not take over the link
    # of a member that is connected.
    s, node_proved = raft_greeting(node, 1, b"")
    assert node_proved and closed_by_peer(s)
    assert cluster_ok(node.port)
    rc = cluster.client()
    for i in range(100):
        rc.set(f"after-garbage:{i}", i)
    assert rc.get("after-garbage:99") == b"99"
    rc.close()
    log = open(node.log, errors="replace").read()
    assert "refused a connection on the raft port" in log
    assert "node 99 is not a member" in log
    assert "node 1 is already connected" in log, "an impostor does not take over a live link"


def test_with_a_cluster_secret_only_nodes_that_know_it_get_in(tmp_path):
    c = Cluster(tmp_path, extra=["--cluster-secret", "raft secret"])
    try:
        rc = c.client()
        for i in range(100):
            assert rc.set(f"secret:{i}", i)
        assert rc.get("secret:99") == b"99"
        rc.close()
        node = c.nodes[1]
        # A stranger claiming to be node 1 learns nothing it could reuse and is refused; the
        # node's own proof is checkable by whoever knows the secret.
        s, node_proved = raft_greeting(node, 1, b"a guess")
        assert not node_proved and closed_by_peer(s)
        s, node_proved = raft_greeting(node, 1, b"raft secret")
        assert node_proved and closed_by_peer(s), "a live link is not taken over even so"
        assert cluster_ok(node.port)
        log = open(node.log, errors="replace").read()
        assert "node 1 does not know the cluster secret" in log
    finally:
        c.stop()


def test_a_leader_cut_off_from_its_majority_answers_writes_instead_of_hanging(own_cluster):
    c = own_cluster
    rc = c.client()
    assert rc.set("{cut}before", "1")
    rc.close()
    leader_port = slot_map(c.nodes[0].port)[key_slot("{cut}")]
    leader = next(n for n in c.nodes if n.port == leader_port)
    followers = [n for n in c.nodes if n is not leader]
    client = redis.Redis(host="127.0.0.1", port=leader.port, socket_timeout=30, protocol=2)
    for node in followers:
        node.proc.send_signal(signal.SIGSTOP)
    try:
        # Proposed while the leader still counted on its majority: it waits a while, then
        # says that the outcome is unknown.
        with pytest.raises(redis.ResponseError, match="^UNCERTAIN"):
            client.set("{cut}pending", "1")
        # No majority has answered for seconds: a write is refused without being run, and
        # reads are refused too (the leader's lease ran out).
        with pytest.raises(redis.exceptions.ClusterDownError, match="majority"):
            client.set("{cut}refused", "1")
        with pytest.raises(redis.exceptions.TryAgainError, match="lease"):
            client.get("{cut}before")
    finally:
        for node in followers:
            node.proc.send_signal(signal.SIGCONT)
        client.close()
    c.wait_ok(c.nodes)
    rc = c.client()
    assert rc.get("{cut}refused") is None, "a refused write never runs"
    assert rc.get("{cut}before") == b"1"
    assert rc.set("{cut}after", "1") and rc.get("{cut}after") == b"1"
    rc.close()


def test_a_killed_node_loses_no_acknowledged_write_and_catches_up_on_restart(own_cluster):
    c = own_cluster
    acked = {}
    stop = threading.Event()

    def writer():
        rc = RedisCluster(host="127.0.0.1", port=c.nodes[1].port, socket_timeout=5)
        i = 0
        while not stop.is_set():
            key = f"w:{i}"
            try:
                if rc.set(key, i):
                    acked[key] = i
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
                # Not acknowledged (the client also gives up while the nodes disagree on who
                # leads what, during the election).
                time.sleep(0.05)
            i += 1
        rc.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.5)
    victim = c.nodes[0]
    victim.kill()
    before_kill = len(acked)
    time.sleep(5)
    stop.set()
    thread.join(timeout=60)
    assert before_kill > 100 and len(acked) > before_kill + 100, (before_kill, len(acked))
    survivors = c.nodes[1:]
    deadline = time.time() + 20
    while not all(cluster_ok(n.port) for n in survivors) and time.time() < deadline:
        time.sleep(0.1)
    rc = RedisCluster(host="127.0.0.1", port=survivors[0].port, socket_timeout=10)
    keys = list(acked)
    values = []
    for chunk in range(0, len(keys), 500):
        values += rc.mget_nonatomic(keys[chunk:chunk + 500])
    lost = [k for k, v in zip(keys, values) if v is None or int(v) != acked[k]]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    rc.close()
    # The killed node comes back (a member restarting: no --bootstrap) and catches up.
    victim.start(bootstrap=False)
    c.wait_ok(c.nodes)
    held = settled(lambda: [n.local_keys() for n in c.nodes], all_same, timeout=30)
    assert held[0] == held[1] == held[2], [len(h) for h in held]
    assert {k.decode() for k in held[0]} >= set(acked), "every replica holds every acknowledged write"


def test_a_cluster_restarted_from_disk_keeps_every_acknowledged_write(own_cluster):
    c = own_cluster
    rc = c.client()
    expected = {f"disk:{i}": str(i) for i in range(2000)}
    for key, value in expected.items():
        assert rc.set(key, value)
    assert rc.rpush("disk:list", *range(100)) == 100
    rc.close()
    # Enough data in one partition per node to pass the log size that triggers snapshots, so
    # the restart reads snapshots and the log after them.
    out = subprocess.run(["redis-benchmark", "--cluster", "-p", str(c.nodes[0].port), "-t", "set", "-n", "40000",
                          "-d", "1000", "-r", "5000", "-P", "16", "-c", "8", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert any(name.startswith("snapshot-") for name in os.listdir(os.path.join(c.dir, "node-1")))
    before = settled(lambda: [n.local_keys() for n in c.nodes], all_same)
    assert before[0] == before[1] == before[2]
    for node in c.nodes:
        node.kill()
    for node in c.nodes:
        node.start(bootstrap=False)
    c.wait_ok(c.nodes)
    after = settled(lambda: [n.local_keys() for n in c.nodes], lambda after: after == before)
    assert after[0] == before[0] and after[1] == before[1] and after[2] == before[2]
    rc = c.client()
    keys = list(expected)
    got = []
    for chunk in range(0, len(keys), 500):
        got += rc.mget_nonatomic(keys[chunk:chunk + 500])
    assert [v.decode() for v in got] == [expected[k] for k in keys]
    assert rc.lrange("disk:list", 0, -1) == [str(i).encode() for i in range(100)]
    assert rc.set("disk:after", "1") and rc.get("disk:after") == b"1"
    rc.close()


def test_a_single_node_with_a_data_directory_keeps_its_data(tmp_path):
    port = free_base_port(1)
    argv = [TESSERA, "--port", str(port), "--threads", "2", "--dir", str(tmp_path), "--durability", "fsync"]

    def start():
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not cluster_ok(port):
            assert time.time() < deadline and proc.poll() is None, "the node did not start"
            time.sleep(0.05)
        return proc

    proc = start()
    try:
        plain = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=2)
        for i in range(500):
            assert plain.set(f"single:{i}", i) is True
        assert plain.hset("single:h", mapping={"a": "1"}) == 1
        plain.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start()
        plain = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=2)
        assert [int(plain.get(f"single:{i}")) for i in range(500)] == list(range(500))
        assert plain.hgetall("single:h") == {b"a": b"1"}
        plain.close()
    finally:
        proc.kill()
        proc.wait()


def test_cluster_dev_starts_a_ready_cluster_and_stops_it_on_ctrl_c(tmp_path):
    base = free_base_port(3)
    proc = subprocess.Popen([TESSERA, "cluster", "dev", "--nodes", "3", "--base-port", str(base),
                             "--dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "cluster ready" in line or not line:
                break
        assert "cluster ready" in lines[-1], lines
        for port in (base, base + 1, base + 2):
            assert cluster_ok(port)
        rc = RedisCluster(host="127.0.0.1", port=base + 2, socket_timeout=10)
        rc.set("dev", "ok")
        assert rc.get("dev") == b"ok"
        rc.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        for port in (base, base + 1, base + 2):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert sorted(os.listdir(tmp_path)) == ["node-1", "node-1.log", "node-2", "node-2.log", "node-3", "node-3.log"]
        assert any(name.startswith("wal-") for name in os.listdir(tmp_path / "node-1")), "durability fsync by default"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class JoiningNode(Node):
    """A node started with --join: it learns the members from the seed and holds nothing until
    `tessera cluster add-node` adds it. Its client port follows the cluster's when free."""

    def __init__(self, cluster, node_id, seed_port):
        super().__init__(cluster, node_id)
        self.seed_port = seed_port
        if not port_pair_free(self.port):
            self.port = free_base_port(1)

    def start(self, bootstrap=False):
        argv = [TESSERA, "--port", str(self.port), "--threads", "2", "--node-id", str(self.id),
                "--join", f"127.0.0.1:{self.seed_port}", "--dir", os.path.join(self.cluster.dir, f"node-{self.id}")]
        argv += self.cluster.extra
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)


def logs_tail(nodes, chars=3000):
    out = []
    for n in nodes:
        try:
            out.append(f"--- node {n.id} ---\n" + open(n.log, errors="replace").read()[-chars:])
        except OSError:
            pass
    return "\n".join(out)


def cluster_cli(*args, timeout=150, env=None):
    return subprocess.run([TESSERA, "cluster", *args], capture_output=True, text=True, timeout=timeout, env=env)


def parse_roster(text):
    """CLUSTER ROSTER's text: {"partitions", "replicas", "moving", "members": {id: (client, raft,
    state)}, "partition": {p: (leader or None, voters, target)}} with voters and targets as sets."""
    def ids(field):
        return set() if field in ("", "-") else {int(i) for i in field.split(",")}

    roster = {"members": {}, "partition": {}}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("partitions", "replicas", "moving"):
            roster[words[0]] = int(words[1])
        elif words[0] == "member":
            roster["members"][int(words[1])] = (words[2], words[3], words[4])
        elif words[0] == "roster":
            roster["roster_leader"] = None if words[2] == "-" else int(words[2])
        elif words[0] == "partition":
            fields = dict(zip(words[2::2], words[3::2]))
            leader = None if fields["leader"] == "-" else int(fields["leader"])
            roster["partition"][int(words[1])] = (leader, ids(fields["voters"]), ids(fields["target"]))
    return roster


def settled_roster(seed_port, problems_of, timeout=10):
    """`tessera cluster status` from the seed, polled until `problems_of(roster)` lists none (a
    node's view of the roster may trail the one `--wait` watched by a moment)."""
    deadline = time.time() + timeout
    while True:
        out = cluster_cli("status", "--seed", f"127.0.0.1:{seed_port}", timeout=30)
        assert out.returncode == 0, f"cluster status exited with {out.returncode}: {out.stdout}{out.stderr}"
        roster = parse_roster(out.stdout)
        problems = problems_of(roster)
        if not problems:
            return roster
        if time.time() > deadline:
            raise AssertionError(f"{problems[:10]}\n{out.stdout}")
        time.sleep(0.2)


def roster_problems(roster, members, replicas=3):
    """What keeps `roster` from being settled on `members` (all active), every partition with
    `replicas` voters that are its target, one of them leading."""
    problems = []
    if set(roster["members"]) != set(members):
        problems.append(f"members {sorted(roster['members'])}, not {sorted(members)}")
    problems += [f"member {m} is {state}" for m, (_, _, state) in roster["members"].items() if state != "active"]
    if roster.get("replicas") != replicas:
        problems.append(f"replicas {roster.get('replicas')}")
    if roster.get("moving") != 0:
        problems.append(f"moving {roster.get('moving')}")
    count = roster.get("partitions")
    if not count or sorted(roster["partition"]) != list(range(count)):
        problems.append(f"partitions {count}, lines for {len(roster['partition'])}")
    for p, (leader, voters, target) in sorted(roster["partition"].items()):
        if len(voters) != replicas or voters != target or not voters <= set(members):
            problems.append(f"partition {p}: voters {sorted(voters)}, target {sorted(target)}")
        elif leader not in voters:
            problems.append(f"partition {p}: leader {leader}, voters {sorted(voters)}")
    return problems


def test_a_fourth_node_joins_and_a_node_leaves_while_writing(own_cluster):
    c = own_cluster
    first, second, third = c.nodes
    stop = threading.Event()
    acked = [{}, {}]
    ack_times = [[], []]
    errors = [[], []]

    def writer(t):
        rc = None
        while rc is None and not stop.is_set():
            try:
                rc = RedisCluster(host="127.0.0.1", port=second.port, socket_timeout=5, socket_connect_timeout=2)
            except Exception as e:
                errors[t].append(f"connecting: {type(e).__name__}: {e}")
                time.sleep(0.1)
        i = 0
        while not stop.is_set():
            key = f"w{t}:{i}"
            try:
                if rc.set(key, i):
                    acked[t][key] = i
                    ack_times[t].append(time.time())
            except Exception as e:  # not acknowledged: a move, an election, a node leaving
                errors[t].append(f"{key}: {type(e).__name__}: {e}")
                time.sleep(0.05)
            i += 1
        if rc is not None:
            rc.close()

    writers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(2)]
    fourth = JoiningNode(c, 4, first.port)
    try:
        [w.start() for w in writers]
        time.sleep(1)
        fourth.start()
        c.nodes.append(fourth)  # the fixture stops it
        fourth.wait_listening()

        # Node 4 joins: partitions move to it a few at a time while the writers go on.
        add_started = time.time()
        out = cluster_cli("add-node", "--seed", f"127.0.0.1:{first.port}", f"4@127.0.0.1:{fourth.port}", "--wait")
        add_done = time.time()
        assert out.returncode == 0, f"add-node exited with {out.returncode}: {out.stdout}{out.stderr}"
        roster = settled_roster(second.port, lambda r: roster_problems(r, {1, 2, 3, 4}))
        assert roster["members"][4][:2] == (f"127.0.0.1:{fourth.port}", f"127.0.0.1:{fourth.port + RAFT_OFFSET}")
        partitions = roster["partitions"]
        on_fourth = sum(4 in voters for _, voters, _ in roster["partition"].values())
        assert on_fourth >= partitions / 3, f"node 4 is a voter of {on_fourth} of {partitions} partitions"

        # The node leading the member list leaves (the hardest one to lose): its partitions move
        # to the others; then it holds nothing and is forgotten.
        by_id = {n.id: n for n in [first, second, third, fourth]}
        leaving = by_id[roster["roster_leader"]]
        survivors = [n for n in by_id.values() if n is not leaving]
        seed = survivors[0]
        remove_started = time.time()
        out = cluster_cli("remove-node", "--seed", f"127.0.0.1:{seed.port}", str(leaving.id), "--wait")
        remove_done = time.time()
        assert out.returncode == 0, f"remove-node exited with {out.returncode}: {out.stdout}{out.stderr}"
        roster = settled_roster(seed.port, lambda r: roster_problems(r, {n.id for n in survivors}))
        assert all(leaving.id not in voters and leader != leaving.id
                   for leader, voters, _ in roster["partition"].values())
        assert roster["roster_leader"] in {n.id for n in survivors}
        leaving.kill()
        killed = time.time()
        time.sleep(1.5)
        stop.set()
        for w in writers:
            w.join(timeout=60)
        assert not any(w.is_alive() for w in writers), "the writers stop"

        # Writes were acknowledged all along: before, during each move (when it took a while)
        # and after the leaving node went.
        times = sorted(ack_times[0] + ack_times[1])

        def acks(since, until=float("inf")):
            return sum(since <= t < until for t in times)

        phases = {"before add-node": acks(0, add_started), "after remove-node started": acks(remove_started),
                  "after the leaving node was killed": acks(killed)}
        if add_done - add_started >= 2:
            phases["during add-node"] = acks(add_started, add_done)
        if remove_done - remove_started >= 2:
            phases["during remove-node"] = acks(remove_started, remove_done)
        assert all(phases.values()), (phases, add_done - add_started, remove_done - remove_started,
                                      errors[0][-5:] + errors[1][-5:])

        # Every acknowledged write reads back, through a client that never knew node 1.
        c.wait_ok(survivors)
        expected = {**acked[0], **acked[1]}
        rc = RedisCluster(host="127.0.0.1", port=seed.port, socket_timeout=10)
        keys = list(expected)
        values = []
        for chunk in range(0, len(keys), 500):
            values += rc.mget_nonatomic(keys[chunk:chunk + 500])
        rc.close()
        lost = [k for k, v in zip(keys, values) if v is None or int(v) != expected[k]]
        assert not lost, f"{len(lost)} of {len(keys)} acknowledged writes lost, e.g. {lost[:5]}"

        # The replicas agree: each voter of a partition holds as many keys in its slots as the
        # leader does (the local store's count, so each node is asked directly).
        by_id = {n.id: n for n in survivors}
        deadline = time.time() + 10
        while True:
            roster = parse_roster(command(seed.port, "CLUSTER", "ROSTER", timeout=10).decode())
            held = {}  # (node id, partition) -> keys in the partition's slots on that node
            for node_id, node in by_id.items():
                mine = [p for p, (_, voters, _) in roster["partition"].items() if node_id in voters]
                client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=20, protocol=2)
                pipe = client.pipeline(transaction=False)
                ranges = [(p, range(p * 16384 // partitions, (p + 1) * 16384 // partitions)) for p in mine]
                for _, slots in ranges:
                    for slot in slots:
                        pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
                counts = iter(pipe.execute())
                client.close()
                for p, slots in ranges:
                    held[node_id, p] = sum(next(counts) for _ in slots)
            disagree = {}
            for p, (leader, voters, _) in roster["partition"].items():
                counts = {v: held[v, p] for v in voters}
                if leader not in counts or len(set(counts.values())) != 1:
                    disagree[p] = (leader, counts)
            if not disagree or time.time() > deadline:
                break
            time.sleep(0.5)
        assert not disagree, f"replicas disagree on {len(disagree)} partitions, e.g. {list(disagree.items())[:5]}"
        total = sum(held[leader, p] for p, (leader, _, _) in roster["partition"].items())
        assert total >= len(expected), (total, len(expected))
    except BaseException:
        stop.set()
        print(f"writer errors: {len(errors[0]) + len(errors[1])}, last: {errors[0][-5:] + errors[1][-5:]}")
        print(logs_tail(c.nodes if fourth in c.nodes else c.nodes + [fourth]))
        raise
    finally:
        stop.set()
        for w in writers:
            if w.ident is not None:
                w.join(timeout=10)


class BareNode(Node):
    """A node started with only its id, port and data directory: it waits for
    `tessera cluster create`, and after a restart starts from what its directory holds."""

    def start(self, bootstrap=False):
        argv = [TESSERA, "--port", str(self.port), "--threads", "2", "--node-id", str(self.id),
                "--dir", os.path.join(self.cluster.dir, f"node-{self.id}")]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)


class BareCluster:
    password = None  # what Cluster.wait_ok, borrowed below, asks of its cluster

    def __init__(self, tmp_path, nodes=3):
        self.dir = str(tmp_path)
        self.base = free_base_port(nodes)
        self.nodes = [BareNode(self, i) for i in range(1, nodes + 1)]
        self.members = ",".join(f"{n.id}@127.0.0.1:{n.port}" for n in self.nodes)
        for node in self.nodes:
            node.start()
            node.wait_listening()


def test_cluster_create_makes_waiting_nodes_a_cluster_that_restarts_from_disk(tmp_path):
    c = BareCluster(tmp_path)
    try:
        first = c.nodes[0]
        with pytest.raises(redis.ResponseError, match="not in a cluster yet"):
            command(first.port, "SET", "k", "v")
        with pytest.raises(redis.ResponseError, match="--partitions 64"):
            command(first.port, "CLUSTER", "CREATE", "32", "3", c.members)
        out = cluster_cli("create", c.members, timeout=120)
        assert out.returncode == 0 and "cluster ready" in out.stdout, out.stdout + out.stderr
        rc = RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=10)
        for i in range(200):
            rc.set(f"created:{i}", i)
        again = cluster_cli("create", c.members, timeout=60)
        assert again.returncode == 0, "creating the same cluster again is a no-op: " + again.stderr
        other = c.members.rsplit(",", 1)[0]
        with pytest.raises(redis.ResponseError, match="another cluster"):
            command(first.port, "CLUSTER", "CREATE", "64", "3", other)
        # Restarted with the same command line (no member list), each node starts from its
        # directory: the cluster's members and every write come back.
        for node in c.nodes:
            assert node.stop() == 0
        for node in c.nodes:
            node.start()
        Cluster.wait_ok(c, c.nodes)
        roster = parse_roster(command(first.port, "CLUSTER", "ROSTER").decode())
        assert set(roster["members"]) == {1, 2, 3}
        rc = RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=10)
        assert [int(v) for v in rc.mget_nonatomic([f"created:{i}" for i in range(200)])] == list(range(200))
        rc.close()
    finally:
        for node in c.nodes:
            node.stop()
