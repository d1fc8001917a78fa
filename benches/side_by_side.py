#!/usr/bin/env python3
"""Side-by-side load benchmark: redis-server and Tessera on loopback, in one run.

Throughput: for each test (--tests) and pipeline depth (--pipelines), redis-benchmark
runs against each server in turn, redis then tessera, for --rounds rounds. The medians
of requests per second, server CPU time per request and p99 latency are reported with
tessera/redis ratios. A server's CPU time is utime+stime of its process (all threads)
from /proc/PID/stat, read just before and just after the redis-benchmark run.

Memory (unless --no-memory): a fresh instance of each server is loaded with --keys keys
`key:%012d` holding --data-size (64) byte values through `redis-cli --pipe`; VmRSS is read from
/proc/PID/status right after start-up and again after the load.

The script asserts nothing about speed: it is a benchmark, not a test. It exits non-zero
when a server fails to start or redis-benchmark / redis-cli fails.
"""

import argparse
import csv
import datetime
import io
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
SERVERS = ("redis", "tessera")  # the order of the runs within a round
PRELOAD_TESTS = {"get", "mget"}  # tests that read the keys SET writes
# redis-benchmark's LRANGE tests run LPUSH first in the same run; here the list is filled
# unmeasured and only the LRANGE itself is timed, as an explicit command.
COMMAND_TESTS = {
    f"lrange_{n}": (["LRANGE", "mylist", "0", str(n - 1)], "lpush") for n in (100, 300, 600)
}
# redis-benchmark's ZPOPMIN pops a set that its ZADD test left with at most -r members, so
# most pops would find nothing. Here the set is refilled unmeasured before every round with
# about as many distinct members as the round pops (random scores, -r of 100 x -n).
COMMAND_TESTS["zpopmin"] = (["ZPOPMIN", "myzset"], None)
CONSUMING_FILLS = {"zpopmin": ["ZADD", "myzset", "__rand_int__", "element:__rand_int__"]}
CSV_HEADER = ["test", "rps", "avg_latency_ms", "min_latency_ms", "p50_latency_ms",
              "p95_latency_ms", "p99_latency_ms", "max_latency_ms"]


class BenchError(Exception):
    """A failure that ends the run with a non-zero exit status."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- servers

class Server:
    """One server process on a loopback port, stopped by stop() (SIGTERM, then wait)."""

    live = []  # every started, not yet stopped server: main() stops them on any exit

    def __init__(self, name, argv, port, workdir):
        self.name, self.argv, self.port = name, argv, port
        self.log_path = os.path.join(workdir, f"{name}-{port}.log")
        self.log_file = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL,
                                         stdout=self.log_file, stderr=subprocess.STDOUT)
        except OSError as e:
            self.log_file.close()
            raise BenchError(f"{name}: cannot run {shlex.join(argv)}: {e}") from e
        Server.live.append(self)
        self.pid = self.proc.pid
        self._wait_ready(20.0)
        self.startup_rss = self.rss_bytes()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with status {self.proc.returncode} during "
                                 f"start-up: {shlex.join(self.argv)}\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    reply = b""
                    while len(reply) < 7 and b"\r\n" not in reply:
                        data = s.recv(64)
                        if not data:
                            break
                        reply += data
                    if reply.startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer PING on port {self.port} within {timeout:.0f} s: "
                         f"{shlex.join(self.argv)}\n{self.log_tail()}")

    def log_tail(self, lines=20):
        try:
            self.log_file.flush()
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "".join(f"  {self.name}| {line}\n" for line in text)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}\n{self.log_tail()}")

    def cpu_seconds(self):
        """utime + stime of the whole process (fields 14 and 15 of /proc/PID/stat)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                # comm (field 2) may contain spaces: split after its closing parenthesis,
                # where field 3 (state) comes first.
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError as e:
            raise BenchError(f"{self.name}: cannot read /proc/{self.pid}/stat: {e}") from e
        return (int(rest[14 - 3]) + int(rest[15 - 3])) / CLK_TCK

    def rss_bytes(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError as e:
            raise BenchError(f"{self.name}: cannot read /proc/{self.pid}/status: {e}") from e
        raise BenchError(f"{self.name}: no VmRSS in /proc/{self.pid}/status")

    def stop(self):
        if self in Server.live:
            Server.live.remove(self)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for 30 s: killing it")
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def tessera_argv(args, port):
    if args.tessera_cmd:
        return shlex.split(args.tessera_cmd.format(port=port))
    argv = [args.tessera, "--port", str(port), "--bind", HOST]
    if args.tessera_threads is not None:
        argv += ["--threads", str(args.tessera_threads)]
    return argv


def redis_argv(args, port):
    return [args.redis_server, "--port", str(port), "--bind", HOST,
            "--save", "", "--appendonly", "no", "--daemonize", "no"]


def describe_tessera(args):
    if args.tessera_cmd:
        return args.tessera_cmd
    return shlex.join(tessera_argv(args, 0)).replace("--port 0", "--port {port}")


def start(name, args, workdir):
    port = free_port()
    argv = tessera_argv(args, port) if name == "tessera" else redis_argv(args, port)
    server = Server(name, argv, port, workdir)
    log(f"started {name} (pid {server.pid}, port {port}): {shlex.join(argv)}")
    return server


def cli(args, server, *command):
    argv = [args.redis_cli, "-h", HOST, "-p", str(server.port), *command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} failed (status {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def dbsize(args, server):
    out = cli(args, server, "DBSIZE")
    try:
        return int(out.split()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{server.name}: unexpected DBSIZE reply {out!r}") from None


# --------------------------------------------------------------------------- throughput

def parse_csv(text, test):
    """The rows of redis-benchmark 7.0 --csv output, as dicts keyed by the header."""
    lines = [line for line in text.splitlines() if line.startswith('"')]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header_at = next((i for i, row in enumerate(rows) if row and row[0] == "test"), None)
    if header_at is None:
        raise BenchError(f"no CSV header in redis-benchmark output for {test}:\n{text}")
    header = rows[header_at]
    missing = [c for c in ("test", "rps", "p99_latency_ms") if c not in header]
    if missing:
        raise BenchError(f"redis-benchmark CSV header lacks {missing}: {header}")
    return [dict(zip(header, row)) for row in rows[header_at + 1:] if len(row) == len(header)]


def redis_benchmark(args, server, test, pipeline, requests, command=None, keyspace=None):
    """One redis-benchmark run of `test` (or of an explicit `command`, over `keyspace`);
    returns its numbers and the server's CPU time over it."""
    argv = [args.redis_benchmark, "-h", HOST, "-p", str(server.port),
            "-c", str(args.clients), "-r", str(keyspace or args.keyspace), "-d", str(args.data_size),
            "-n", str(requests), "-P", str(pipeline), "--csv"]
    if args.bench_threads is not None:
        argv += ["--threads", str(args.bench_threads)]
    if command is None and test in COMMAND_TESTS:
        command = COMMAND_TESTS[test][0]
    argv += command if command is not None else ["-t", test]
    server.check_alive()
    cpu_before = server.cpu_seconds()
    wall_before = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.bench_timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{server.name}: redis-benchmark ran past {args.bench_timeout} s: "
                         f"{shlex.join(argv)}") from None
    wall = time.monotonic() - wall_before
    cpu = server.cpu_seconds() - cpu_before
    if proc.returncode != 0:
        raise BenchError(f"{server.name}: redis-benchmark failed (status {proc.returncode}): "
                         f"{shlex.join(argv)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                         f"{server.log_tail()}")
    server.check_alive()
    rows = parse_csv(proc.stdout, test)
    if len(rows) != 1:
        raise BenchError(f"{server.name}: expected one result row for -t {test}, got {len(rows)} "
                         f"(use single-command tests):\n{proc.stdout}")
    row = rows[0]
    try:
        return {
            "rps": float(row["rps"]),
            "p50_ms": float(row.get("p50_latency_ms", "nan")),
            "p99_ms": float(row["p99_latency_ms"]),
            "max_ms": float(row.get("max_latency_ms", "nan")),
            "cpu_s": cpu,
            "cpu_us_per_req": cpu * 1e6 / requests,
            "wall_s": wall,
            "requests": requests,
        }
    except ValueError:
        raise BenchError(f"{server.name}: unparsable redis-benchmark row {row}") from None


def requests_for(args, pipeline):
    if args.requests is not None:
        return args.requests
    return args.requests_p1 if pipeline == 1 else args.requests_p16


def ratio(a, b):
    return a / b if b else float("nan")


def throughput_section(args, workdir, results):
    servers = {}
    try:
        for name in SERVERS:
            servers[name] = start(name, args, workdir)
        preloaded = set()
        for test in args.tests:
            for pipeline in args.pipelines:
                requests = requests_for(args, pipeline)
                if COMMAND_TESTS.get(test, (None, None))[1] is not None:
                    fill = COMMAND_TESTS[test][1]
                    for name in SERVERS:
                        log(f"filling {name}: {fill} -P 16 -n {args.preload_requests}")
                        redis_benchmark(args, servers[name], fill, 16, args.preload_requests)
                if test in PRELOAD_TESTS:
                    for name in SERVERS:
                        if name in preloaded:
                            continue
                        server = servers[name]
                        log(f"preloading {name}: SET -r {args.keyspace} -P 16 -n {args.preload_requests}")
                        redis_benchmark(args, server, "set", 16, args.preload_requests)
                        keys = dbsize(args, server)
                        log(f"  {name} DBSIZE {keys:,} ({keys / args.keyspace:.1%} of -r)")
                        results["preload"][name] = {"requests": args.preload_requests, "dbsize": keys}
                        preloaded.add(name)
                runs = {name: [] for name in SERVERS}
                for rnd in range(1, args.rounds + 1):
                    for name in SERVERS:
                        if test in CONSUMING_FILLS:
                            redis_benchmark(args, servers[name], test, 16, requests,
                                            command=CONSUMING_FILLS[test], keyspace=100 * requests)
                        r = redis_benchmark(args, servers[name], test, pipeline, requests)
                        runs[name].append(r)
                        log(f"{test} -P {pipeline} round {rnd}/{args.rounds} {name:8} "
                            f"{r['rps']:>12,.0f} rps  {r['cpu_us_per_req']:7.3f} CPU us/req  "
                            f"p99 {r['p99_ms']:.3f} ms")
                median = {name: {key: statistics.median(r[key] for r in runs[name])
                                 for key in ("rps", "cpu_us_per_req", "p99_ms")}
                          for name in SERVERS}
                results["throughput"].append({
                    "test": test, "pipeline": pipeline, "requests": requests,
                    "runs": runs, "median": median,
                    "ratio": {key: ratio(median["tessera"][key], median["redis"][key])
                              for key in ("rps", "cpu_us_per_req", "p99_ms")},
                })
    finally:
        for server in servers.values():
            server.stop()


def print_throughput(args, results):
    print(f"## Throughput (medians of {args.rounds} round{'s' if args.rounds != 1 else ''}; "
          f"redis-benchmark -c {args.clients} -r {args.keyspace} -d {args.data_size}"
          f"{f' --threads {args.bench_threads}' if args.bench_threads else ''})")
    print()
    print("| test | -P | redis rps | tessera rps | ratio | redis CPU µs/req | tessera CPU µs/req "
          "| ratio | redis p99 ms | tessera p99 ms |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in results["throughput"]:
        r, t, q = row["median"]["redis"], row["median"]["tessera"], row["ratio"]
        print(f"| {row['test']} | {row['pipeline']} | {r['rps']:,.0f} | {t['rps']:,.0f} | {q['rps']:.2f} "
              f"| {r['cpu_us_per_req']:.3f} | {t['cpu_us_per_req']:.3f} | {q['cpu_us_per_req']:.2f} "
              f"| {r['p99_ms']:.3f} | {t['p99_ms']:.3f} |")
    print()


# --------------------------------------------------------------------------- memory

def resp_chunks(keys, value_size, per_chunk=100_000):
    """RESP `SET key:%012d <value>` commands for keys 0..keys-1, as chunks of bytes.

    The keys are fixed-width (16 bytes below 10**12), so every command is the same header,
    twelve digits and the same tail: a chunk is one join over the digits.
    """
    value = (b"0123456789abcdef" * (value_size // 16 + 1))[:value_size]
    head = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:"
    tail = b"\r\n$%d\r\n%s\r\n" % (value_size, value)
    sep = tail + head
    for start in range(0, keys, per_chunk):
        end = min(start + per_chunk, keys)
        yield head + sep.join(b"%012d" % i for i in range(start, end)) + tail


def resp(*words):
    """One RESP command."""
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)


BATCH = 100  # elements per command when filling one large collection


def big_collection(command, n, pair):
    """One key `big` holding n elements, written BATCH at a time."""
    for start in range(0, n, BATCH):
        words = [command, b"big"]
        for i in range(start, min(start + BATCH, n)):
            words += pair(i)
        yield resp(*words)


def small_collections(command, n, elements):
    """n keys `key:%012d`, each holding the same few elements."""
    for i in range(n):
        yield resp(command, b"key:%012d" % i, *elements(i))


# name: (what it is, its command stream for n elements or keys)
DATASETS = {
    "strings": ("{n:,} keys `key:%012d`, {size}-byte values", None),
    "hash": ("one hash of {n:,} fields `field:%012d` → `value:%012d`",
             lambda n, size: big_collection(b"HSET", n, lambda i: [b"field:%012d" % i, b"value:%012d" % i])),
    "list": ("one list of {n:,} elements `element:%012d`",
             lambda n, size: big_collection(b"RPUSH", n, lambda i: [b"element:%012d" % i])),
    "set": ("one set of {n:,} members `member:%012d`",
            lambda n, size: big_collection(b"SADD", n, lambda i: [b"member:%012d" % i])),
    "small-hash": ("{n:,} hashes of 4 fields",
                   lambda n, size: small_collections(
                       b"HSET", n, lambda i: [b"name", b"user%d" % i, b"age", b"42", b"city", b"Paris",
                                              b"email", b"user%d@example.com" % i])),
    "small-list": ("{n:,} lists of 4 elements",
                   lambda n, size: small_collections(
                       b"RPUSH", n, lambda i: [b"event:%d" % i, b"login", b"click", b"logout"])),
    "small-set": ("{n:,} sets of 4 members",
                  lambda n, size: small_collections(
                      b"SADD", n, lambda i: [b"tag:a", b"tag:b", b"tag:%d" % (i % 100), b"tag:z"])),
    # Scores in a scrambled order, so members arrive as in a live leaderboard, not sorted.
    "zset": ("one sorted set of {n:,} members `member:%012d`, scores scrambled",
             lambda n, size: big_collection(b"ZADD", n, lambda i: [b"%d" % (i * 7919 % n), b"member:%012d" % i])),
    "small-zset": ("{n:,} sorted sets of 4 members",
                   lambda n, size: small_collections(
                       b"ZADD", n, lambda i: [b"1", b"alice", b"2.5", b"bob", b"%d" % (i % 1000), b"carol",
                                              b"7", b"dave"])),
}


def load_keys(args, server, dataset="strings"):
    argv = [args.redis_cli, "-h", HOST, "-p", str(server.port), "--pipe"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stream = DATASETS[dataset][1]
    commands = (resp_chunks(args.keys, args.data_size) if stream is None
                else batched(stream(args.keys, args.data_size)))
    try:
        try:
            for chunk in commands:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        # redis-cli --pipe prints a few lines only: reading them all cannot block on a full pipe.
        out = proc.stdout.read()
        proc.wait(timeout=args.bench_timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    out = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{server.name}: redis-cli --pipe failed (status {proc.returncode}):\n{out}"
                         f"{server.log_tail()}")
    # "errors: 0, replies: 1000000"
    errors = replies = None
    for line in out.splitlines():
        if line.startswith("errors:"):
            fields = dict(part.strip().split(": ") for part in line.split(","))
            errors, replies = int(fields["errors"]), int(fields["replies"])
    if errors:
        raise BenchError(f"{server.name}: redis-cli --pipe reported {errors} errors:\n{out}")
    return time.monotonic() - t0, replies


def batched(commands, size=1 << 20):
    """Joins commands into chunks of about `size` bytes for the pipe."""
    chunk = []
    length = 0
    for c in commands:
        chunk.append(c)
        length += len(c)
        if length >= size:
            yield b"".join(chunk)
            chunk, length = [], 0
    if chunk:
        yield b"".join(chunk)


def memory_section(args, workdir, results):
    results["memory"] = {}
    for dataset in args.datasets:
        results["memory"][dataset] = memory_of(args, workdir, dataset)


def memory_of(args, workdir, dataset):
    mem = {"keys": args.keys, "value_size": args.data_size,
           "what": DATASETS[dataset][0].format(n=args.keys, size=args.data_size)}
    expected_keys = 1 if dataset in ("hash", "list", "set") else args.keys
    for name in SERVERS:
        server = start(name, args, workdir)  # a fresh instance: nothing from the throughput runs
        try:
            startup_rss = server.startup_rss
            log(f"loading {mem['what']} into {name} with redis-cli --pipe")
            seconds, replies = load_keys(args, server, dataset)
            time.sleep(args.settle)
            server.check_alive()
            rss = server.rss_bytes()
            keys = dbsize(args, server)
            if keys != expected_keys:
                log(f"warning: {name} DBSIZE is {keys:,}, expected {expected_keys:,}")
            mem[name] = {
                "startup_rss_bytes": startup_rss,
                "rss_bytes": rss,
                "dbsize": keys,
                "pipe_replies": replies,
                "load_seconds": seconds,
                "bytes_per_key": (rss - startup_rss) / args.keys if args.keys else float("nan"),
            }
            log(f"  {name}: {seconds:.2f} s, RSS {rss / 2**20:.1f} MiB, DBSIZE {keys:,}")
        finally:
            server.stop()
    mem["ratio"] = {key: ratio(mem["tessera"][key], mem["redis"][key])
                    for key in ("rss_bytes", "bytes_per_key")}
    return mem


def print_memory(results):
    print("## Memory (each dataset loaded into a fresh server with redis-cli --pipe; RSS after load)")
    print()
    print("| dataset | redis RSS MiB | tessera RSS MiB | ratio | redis B/item | tessera B/item | start-up RSS redis / tessera MiB |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for m in results["memory"].values():
        r, t = m["redis"], m["tessera"]
        print(f"| {m['what']} | {r['rss_bytes'] / 2**20:.1f} | {t['rss_bytes'] / 2**20:.1f} "
              f"| {m['ratio']['rss_bytes']:.2f} | {r['bytes_per_key']:.1f} | {t['bytes_per_key']:.1f} "
              f"| {r['startup_rss_bytes'] / 2**20:.1f} / {t['startup_rss_bytes'] / 2**20:.1f} |")
    print()


# --------------------------------------------------------------------------- main

def comma_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", default=os.path.join(ROOT, "target", "release", "tessera"),
                   help="the Tessera binary (default: target/release/tessera in the repository)")
    p.add_argument("--tessera-threads", type=positive_int, metavar="N",
                   help="pass --threads N to Tessera (default: pass nothing, Tessera's own default)")
    # Hidden: launch the "tessera" side with this command line instead ({port} is replaced),
    # to test the script itself without a Tessera build.
    p.add_argument("--tessera-cmd", help=argparse.SUPPRESS)
    p.add_argument("--redis-server", default="redis-server", help="redis-server binary (default: from PATH)")
    p.add_argument("--redis-benchmark", default="redis-benchmark", help=argparse.SUPPRESS)
    p.add_argument("--redis-cli", default="redis-cli", help=argparse.SUPPRESS)
    p.add_argument("--tests", type=comma_list, default=["set", "get"],
                   help="redis-benchmark -t tests, comma-separated (default: set,get)")
    p.add_argument("--pipelines", type=lambda s: [positive_int(x) for x in comma_list(s)], default=[1, 16],
                   help="redis-benchmark -P depths, comma-separated (default: 1,16)")
    p.add_argument("--rounds", type=positive_int, default=3,
                   help="runs per server and configuration, medians reported (default 3, at least 3 "
                        "unless --quick)")
    p.add_argument("--requests", type=positive_int, metavar="N",
                   help="-n for every pipeline depth (overrides --requests-p1/--requests-p16)")
    p.add_argument("--requests-p1", type=positive_int, metavar="N",
                   help="-n for -P 1 (default 200000)")
    p.add_argument("--requests-p16", type=positive_int, metavar="N",
                   help="-n for every -P other than 1 (default 2000000)")
    p.add_argument("--clients", type=positive_int, default=50, help="redis-benchmark -c (default 50)")
    p.add_argument("--keyspace", type=positive_int, default=100000, help="redis-benchmark -r (default 100000)")
    p.add_argument("--data-size", type=positive_int, default=64,
                   help="value size in bytes: redis-benchmark -d and the memory section (default 64)")
    p.add_argument("--bench-threads", type=positive_int, metavar="T", help="pass --threads T to redis-benchmark")
    p.add_argument("--preload-requests", type=positive_int, metavar="N",
                   help="SET requests (-P 16, same -r) run unmeasured before GET tests (default 10 x --keyspace)")
    p.add_argument("--bench-timeout", type=positive_int, default=600, metavar="S",
                   help="give up on one redis-benchmark or redis-cli --pipe run after S seconds (default 600)")
    p.add_argument("--memory", dest="memory", action="store_true", default=True,
                   help="run the memory section (default)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory section")
    p.add_argument("--datasets", type=comma_list, default=["strings"],
                   help="memory datasets, comma-separated, of: " + ", ".join(DATASETS) + " (default: strings)")
    p.add_argument("--no-throughput", dest="throughput", action="store_false", default=True,
                   help="skip the throughput section")
    p.add_argument("--keys", type=positive_int, metavar="N",
                   help="keys loaded in the memory section (default 1000000; 100000 with --quick)")
    p.add_argument("--settle", type=float, default=1.0, metavar="S",
                   help="seconds to wait after loading before reading RSS (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="1 round, small -n and fewer keys: a smoke test of the script, not a measurement")
    p.add_argument("--json", metavar="FILE", help="write the configuration, every run and the medians here")
    args = p.parse_args(argv)

    if args.quick:
        args.rounds = 1
        args.requests_p1 = args.requests_p1 or 20000
        args.requests_p16 = args.requests_p16 or 200000
        args.keys = args.keys or 100000
        args.preload_requests = args.preload_requests or 2 * args.keyspace
    elif args.rounds < 3:
        p.error("--rounds must be at least 3 (medians of noisy runs); --quick is the way to smoke-test")
    args.requests_p1 = args.requests_p1 or 200000
    args.requests_p16 = args.requests_p16 or 2000000
    args.keys = args.keys or 1000000
    if args.keys >= 10**12:
        p.error("--keys must be below 10**12 (keys are key:%012d)")
    args.preload_requests = args.preload_requests or 10 * args.keyspace
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        p.error(f"unknown datasets {unknown}; choose from {', '.join(DATASETS)}")
    if not args.tests or not args.pipelines:
        p.error("--tests and --pipelines need at least one entry each")

    if args.tessera_cmd:
        if "{port}" not in args.tessera_cmd:
            p.error("--tessera-cmd must contain {port}")
        if args.tessera_threads is not None:
            log("note: --tessera-threads is ignored with --tessera-cmd")
    else:
        args.tessera = os.path.abspath(args.tessera)
        if not (os.path.isfile(args.tessera) and os.access(args.tessera, os.X_OK)):
            p.error(f"{args.tessera} is not an executable file: run `cargo build --release` first, "
                    f"or pass --tessera PATH")
    for tool in ("redis_server", "redis_benchmark", "redis_cli"):
        found = shutil.which(getattr(args, tool))
        if not found:
            p.error(f"{getattr(args, tool)} not found (--{tool.replace('_', '-')})")
        setattr(args, tool, found)
    return args


def version_of(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    results = {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {k: v for k, v in vars(args).items()},
        "environment": {
            "cpus": os.cpu_count(),
            "clk_tck": CLK_TCK,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "redis_server": version_of([args.redis_server, "--version"]),
            "redis_benchmark": version_of([args.redis_benchmark, "--version"]),
            "tessera_cmd": describe_tessera(args),
        },
        "preload": {},
        "throughput": [],
    }
    log(f"redis: {results['environment']['redis_server']}")
    log(f"tessera: {results['environment']['tessera_cmd']}")
    status = 0
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-side-by-side-") as workdir:
            try:
                if args.throughput:
                    throughput_section(args, workdir, results)
                if args.memory:
                    memory_section(args, workdir, results)
            finally:
                for server in list(Server.live):
                    server.stop()
    except BenchError as e:
        log(f"error: {e}")
        status = 1
    except KeyboardInterrupt:
        log("interrupted: servers stopped")
        status = 130
    results["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results["exit_status"] = status

    if status == 0:
        cpus = results["environment"]["cpus"]
        threads = args.tessera_threads if args.tessera_threads is not None and not args.tessera_cmd else "default"
        print(f"# redis-server vs Tessera, side by side ({cpus} CPUs; tessera threads: {threads}"
              f"{'; QUICK: not a measurement' if args.quick else ''})")
        print()
        if args.throughput:
            print_throughput(args, results)
        if args.memory:
            print_memory(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        log(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
