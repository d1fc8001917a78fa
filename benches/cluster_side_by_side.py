#!/usr/bin/env python3
"""Replicated clusters side by side, on loopback, in one run:

  redis-cluster   Redis Cluster: 3 masters with 1 replica each (asynchronous replication),
                  redis-server --cluster-enabled yes, formed with redis-cli --cluster create.
  tessera-rf3     Tessera: 3 nodes, every partition a Raft group of 3 replicas (synchronous:
                  a write is acknowledged once a majority has it), durability memory.
  tessera-rf3-fsync  the same with durability fsync: acknowledged once on disk on a majority.
  tessera-single  Tessera: one node, no cluster.

For each round, each configuration is started alone and runs `redis-benchmark [--cluster]
-t set` then `-t get` (the GET run reads the keys the SET run wrote); medians of requests per
second, p99 latency and the servers' CPU time per request (utime+stime of every server
process, over the run) are reported, with ratios to Redis Cluster. redis-benchmark reports a
threaded (--cluster) run's duration in steps of 250 ms, so after the first round each run
asks for as many requests as about --seconds of it took then (never fewer than --requests).
The CPU ratio is the steadier figure on a shared machine: on 2 CPUs every configuration is
CPU-bound, and the host's other load moves throughput more than CPU per request. The script
asserts nothing about speed.

With --restart-keys N it then loads N keys (`key:%012d`, --data-size bytes) into a fresh
3-node fsync cluster, kills one node with SIGKILL, restarts it, and reports how long it took
to serve again (CLUSTER INFO ok on it and a GET of one of its keys answered by it).
"""

import argparse
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import HOST, ROOT, BenchError, Server, log, parse_csv, resp_chunks  # noqa: E402

BUS_OFFSET = 10000  # Redis Cluster's bus port and Tessera's Raft port: client port + 10000
CONFIGS = ("redis-cluster", "tessera-rf3", "tessera-rf3-fsync", "tessera-single")


def ports_free(base, count):
    for port in [base + i for i in range(count)] + [base + BUS_OFFSET + i for i in range(count)]:
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def free_base(count):
    for _ in range(500):
        base = random.randrange(20000, 30000)
        if ports_free(base, count):
            return base
    raise BenchError("no free port range")


def command(port, *words, timeout=5):
    """One command through redis-cli; its stdout (empty when the server is not up)."""
    proc = subprocess.run(["redis-cli", "-h", HOST, "-p", str(port), *words],
                          capture_output=True, text=True, timeout=timeout)
    return proc.stdout


def wait_cluster_ok(ports, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("cluster_state:ok" in command(p, "CLUSTER", "INFO") for p in ports):
            return
        time.sleep(0.2)
    raise BenchError(f"the cluster on ports {ports} did not reach cluster_state:ok")


def start_redis_cluster(args, workdir):
    base = free_base(6)
    ports = [base + i for i in range(6)]
    servers = []
    for port in ports:
        argv = [args.redis_server, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--daemonize", "no"]
        servers.append(Server(f"redis-{port}", argv, port, workdir))
    create = ["redis-cli", "--cluster", "create", *[f"{HOST}:{p}" for p in ports],
              "--cluster-replicas", "1", "--cluster-yes"]
    proc = subprocess.run(create, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(create)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    wait_cluster_ok(ports)
    return servers, ports[0], True


def tessera_node_argv(args, workdir, base, i, durability, *extra):
    members = ",".join(f"{n + 1}@{HOST}:{base + n}" for n in range(3))
    return [args.tessera, "--port", str(base + i), "--bind", HOST, "--threads", str(args.threads),
            "--node-id", str(i + 1), "--members", members, "--durability", durability,
            "--dir", os.path.join(workdir, f"node-{i + 1}"), *extra]


def start_tessera_cluster(args, workdir, durability="memory", *extra):
    base = free_base(3)
    servers = []
    for i in range(3):
        argv = tessera_node_argv(args, workdir, base, i, durability, "--bootstrap", *extra)
        servers.append(Server(f"tessera-{i + 1}", argv, base + i, workdir))
    wait_cluster_ok([base + i for i in range(3)])
    return servers, base, True


def start_tessera_single(args, workdir):
    port = free_base(1)
    argv = [args.tessera, "--port", str(port), "--bind", HOST, "--threads", str(args.threads)]
    return [Server("tessera", argv, port, workdir)], port, False


STARTERS = {
    "redis-cluster": start_redis_cluster,
    "tessera-rf3": start_tessera_cluster,
    "tessera-rf3-fsync": lambda args, workdir: start_tessera_cluster(args, workdir, "fsync"),
    "tessera-single": start_tessera_single,
}


def bench(args, servers, port, cluster, test, requests):
    """Requests per second, p99 latency (ms) and the servers' CPU seconds per request."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-t", test, "-P", str(args.pipeline),
            "-c", str(args.clients), "-n", str(requests), "-r", str(args.keyspace),
            "-d", str(args.data_size), "--csv"]
    if cluster:
        argv.insert(1, "--cluster")
    cpu_before = sum(server.cpu_seconds() for server in servers)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    cpu = sum(server.cpu_seconds() for server in servers) - cpu_before
    row = parse_csv(proc.stdout, test)[-1]
    return float(row["rps"]), float(row["p99_latency_ms"]), cpu / requests


def run(args):
    """Each round starts each configuration alone (so no idle cluster's heartbeats or gossip
    share the CPUs with the one measured), runs SET then GET, and stops it."""
    runs = {(c, t): [] for c in CONFIGS for t in ("set", "get")}
    requests = {(c, t): args.requests for c in CONFIGS for t in ("set", "get")}
    with tempfile.TemporaryDirectory(prefix="tessera-cluster-bench-") as workdir:
        for rnd in range(1, args.rounds + 1):
            for config in CONFIGS:
                try:
                    # A fresh directory: Redis Cluster nodes must not find an old nodes.conf.
                    servers, port, cluster = STARTERS[config](args, tempfile.mkdtemp(dir=workdir))
                    for test in ("set", "get"):
                        n = requests[(config, test)]
                        rps, p99, cpu = bench(args, servers, port, cluster, test, n)
                        runs[(config, test)].append((rps, p99, cpu))
                        requests[(config, test)] = max(args.requests, int(rps * args.seconds))
                        log(f"round {rnd} {config:15} {test}: {rps:>12,.0f} rps  p99 {p99:.3f} ms  "
                            f"cpu {cpu * 1e6:.2f} us/request  (-n {n})")
                finally:
                    for server in list(Server.live):  # whatever started, even if not all did
                        server.stop()
    return runs


def load_cluster(args, workdir, keys):
    """A fresh 3-node fsync cluster (with forwarding) holding `keys` keys loaded through node 1."""
    servers, base, _ = start_tessera_cluster(args, workdir, "fsync", "--cluster-forwarding")
    log(f"loading {keys:,} keys through node 1 (forwarding)")
    proc = subprocess.Popen(["redis-cli", "-h", HOST, "-p", str(base), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for chunk in resp_chunks(keys, args.data_size):
        proc.stdin.write(chunk)
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    if proc.wait() != 0 or "errors: 0" not in out:
        raise BenchError(f"loading failed:\n{out}")
    return servers, base


def restart_time(args):
    """Seconds a killed node holding --restart-keys keys takes to serve again."""
    with tempfile.TemporaryDirectory(prefix="tessera-cluster-restart-") as workdir:
        try:
            servers, base = load_cluster(args, workdir, args.restart_keys)
            victim = servers[0]
            keys = int(command(victim.port, "DBSIZE").strip() or 0)
            log(f"node 1 holds {keys:,} keys; killing it")
            key = next(f"key:{i:012d}" for i in range(args.restart_keys)
                       if command(victim.port, "GET", f"key:{i:012d}").strip() and
                       not command(victim.port, "GET", f"key:{i:012d}").startswith("MOVED"))
            victim.proc.kill()
            victim.proc.wait()
            Server.live.remove(victim)
            started = time.monotonic()
            argv = tessera_node_argv(args, workdir, base, 0, "fsync", "--cluster-forwarding")
            Server("tessera-1-restarted", argv, base, workdir)
            wait_cluster_ok([base], timeout=600)
            while len(command(base, "GET", key).strip()) != args.data_size:
                time.sleep(0.01)
            return keys, time.monotonic() - started
        finally:
            for server in list(Server.live):
                server.stop()


class Progress:
    """A redis-benchmark SET load left running, its live rps lines read with their times."""

    def __init__(self, args, port):
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-t", "set", "-P", str(args.pipeline),
                "-c", str(args.clients), "-n", "1000000000", "-r", str(args.keyspace), "-d", str(args.data_size)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.samples = []  # (monotonic time, rps over the last interval)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        line = b""
        while (byte := self.proc.stdout.read(1)):
            if byte in b"\r\n":
                text = line.decode(errors="replace")
                if "rps=" in text:
                    rps = text.split("rps=")[1].split()[0]
                    self.samples.append((time.monotonic(), float(rps)))
                line = b""
            else:
                line += byte

    def mean(self, since, until):
        during = [rps for t, rps in self.samples if since <= t < until]
        return statistics.mean(during) if during else 0.0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed_cli(args, *words):
    started = time.monotonic()
    proc = subprocess.run([args.tessera, "cluster", *words], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise BenchError(f"tessera cluster {' '.join(words)} failed:\n{proc.stdout}{proc.stderr}")
    return started, time.monotonic()


def membership_time(args):
    """Adds a fourth node to a cluster holding --move-keys keys, then removes node 1, each with
    `tessera cluster ... --wait`, under a SET load through node 2 (forwarding): how long each
    took, and the load's rps before and during each."""
    with tempfile.TemporaryDirectory(prefix="tessera-cluster-move-") as workdir:
        load = None
        try:
            servers, base = load_cluster(args, workdir, args.move_keys)
            fourth = free_base(1)
            argv = [args.tessera, "--port", str(fourth), "--bind", HOST, "--threads", str(args.threads),
                    "--node-id", "4", "--join", f"{HOST}:{base}", "--durability", "fsync",
                    "--dir", os.path.join(workdir, "node-4"), "--cluster-forwarding"]
            Server("tessera-4", argv, fourth, workdir)
            load = Progress(args, base + 1)
            time.sleep(5)
            add = timed_cli(args, "add-node", "--seed", f"{HOST}:{base + 1}", f"4@{HOST}:{fourth}", "--wait")
            log(f"add-node took {add[1] - add[0]:.2f} s")
            time.sleep(3)
            held = int(command(fourth, "DBSIZE").strip() or 0)
            remove = timed_cli(args, "remove-node", "--seed", f"{HOST}:{base + 1}", "1", "--wait")
            log(f"remove-node took {remove[1] - remove[0]:.2f} s")
            time.sleep(3)
            load.stop()
            return {
                "keys": args.move_keys, "held_by_new_node": held,
                "add_s": add[1] - add[0], "remove_s": remove[1] - remove[0],
                "rps_before": load.mean(add[0] - 4, add[0]), "rps_add": load.mean(*add),
                "rps_remove": load.mean(*remove), "rps_after": load.mean(remove[1], remove[1] + 3),
            }
        finally:
            if load is not None and load.proc.poll() is None:
                load.stop()
            for server in list(Server.live):
                server.stop()


def report(args, runs):
    print(f"## Clusters side by side (redis-benchmark -P {args.pipeline} -c {args.clients} "
          f"-r {args.keyspace} -d {args.data_size} -n {args.requests}+ (about {args.seconds:g} s a run); "
          f"medians of {args.rounds} rounds; {os.cpu_count()} CPUs; tessera --threads {args.threads} per node)")
    print()
    print("| configuration | test | rps | p99 ms | server CPU us/request | rps / Redis Cluster | "
          "Redis Cluster CPU / this CPU |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for test in ("set", "get"):
        def median(config, field):
            return statistics.median(run[field] for run in runs[(config, test)])
        base_rps, base_cpu = median("redis-cluster", 0), median("redis-cluster", 2)
        for config in CONFIGS:
            rps, p99, cpu = median(config, 0), median(config, 1), median(config, 2)
            print(f"| {config} | {test.upper()} | {rps:,.0f} | {p99:.3f} | {cpu * 1e6:.2f} | "
                  f"{rps / base_rps:.2f} | {base_cpu / cpu:.2f} |")
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", default=os.path.join(ROOT, "target", "release", "tessera"))
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--threads", type=int, default=1, help="event-loop threads per Tessera node (default 1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=1_000_000,
                   help="-n of every first-round run, and the least of the later ones")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="how long each run after the first round should take, about")
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--data-size", type=int, default=64)
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--restart-keys", type=int, default=0, metavar="N",
                   help="also time a node holding N keys restarting (0: skip)")
    p.add_argument("--move-keys", type=int, default=0, metavar="N",
                   help="also time adding a node to, and removing one from, a cluster holding N keys "
                        "under a SET load (0: skip)")
    p.add_argument("--no-throughput", dest="throughput", action="store_false", default=True)
    args = p.parse_args()
    try:
        if args.throughput:
            report(args, run(args))
        if args.restart_keys:
            keys, seconds = restart_time(args)
            print(f"## Restart: a node holding {keys:,} keys ({args.data_size}-byte values, durability fsync) "
                  f"served again {seconds:.2f} s after it was restarted (snapshots + log tail from its own disk)")
        if args.move_keys:
            m = membership_time(args)
            print(f"## Membership: {m['keys']:,} keys ({args.data_size}-byte values, durability fsync), "
                  f"SET load through node 2 (-P {args.pipeline} -c {args.clients})")
            print()
            print("| step | seconds | SET rps during | vs before |")
            print("|---|--:|--:|--:|")
            print(f"| before | | {m['rps_before']:,.0f} | 1.00 |")
            print(f"| add-node 4 --wait | {m['add_s']:.2f} | {m['rps_add']:,.0f} | "
                  f"{m['rps_add'] / max(m['rps_before'], 1):.2f} |")
            print(f"| remove-node 1 --wait | {m['remove_s']:.2f} | {m['rps_remove']:,.0f} | "
                  f"{m['rps_remove'] / max(m['rps_before'], 1):.2f} |")
            print(f"| after | | {m['rps_after']:,.0f} | {m['rps_after'] / max(m['rps_before'], 1):.2f} |")
            print()
            print(f"Node 4 held {m['held_by_new_node']:,} keys after joining.")
    except BenchError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
