#!/usr/bin/env python3
"""Side-by-side load benchmark: Tessera and redis-server on loopback, measured in one run.

For each test and pipeline depth, redis-benchmark runs against each server in turn
(A B A B ..., --rounds times); the medians of throughput, server CPU per request and p99
are reported with Tessera/Redis ratios. CPU per request is the server process's
utime+stime (/proc/PID/stat) over the run divided by the requests. Then, unless --no-memory,
--keys keys with 64-byte values are loaded into a fresh instance of each and both RSS
figures are reported. It asserts nothing: it is a benchmark, not a test.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, argv, port):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited during start-up: {' '.join(argv)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"{name} did not answer PING on port {port}")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_tessera(args):
    port = free_port()
    argv = [args.tessera, "--port", str(port), "--bind", "127.0.0.1", "--loglevel", "warning"]
    if args.tessera_threads:
        argv += ["--threads", str(args.tessera_threads)]
    return Server("tessera", argv, port)


def start_redis():
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Server("redis", argv, port)


def benchmark(server, args, test, pipeline, requests):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-t", test, "-c", str(args.clients),
            "-r", str(args.keyspace), "-d", str(args.data_size), "-n", str(requests), "-P", str(pipeline), "--csv"]
    if args.bench_threads:
        argv += ["--threads", str(args.bench_threads)]
    cpu_before = server.cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - cpu_before
    header, row = None, None
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split('","')]
        if cells[0].startswith('"test') or cells[0] == "test":
            header = [c.strip('"') for c in cells]
        elif header and len(cells) == len(header):
            row = dict(zip(header, (c.strip('"') for c in cells)))
    if not row:
        raise SystemExit(f"could not parse redis-benchmark output:\n{out}")
    return {"rps": float(row["rps"]), "p99_ms": float(row["p99_latency_ms"]), "cpu_us_per_req": cpu * 1e6 / requests}


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def throughput_section(args, results):
    tessera, redis = start_tessera(args), start_redis()
    try:
        servers = [redis, tessera]
        for test in args.tests.split(","):
            for pipeline in [int(p) for p in args.pipelines.split(",")]:
                requests = args.requests or (args.requests_p1 if pipeline == 1 else args.requests_p16)
                if test == "get":
                    for s in servers:
                        benchmark(s, args, "set", 16, max(args.keyspace * 3, 100000))
                runs = {s.name: [] for s in servers}
                for _ in range(args.rounds):
                    for s in servers:
                        runs[s.name].append(benchmark(s, args, test, pipeline, requests))
                row = {"test": test, "pipeline": pipeline, "requests": requests, "runs": runs}
                for name in runs:
                    for key in ("rps", "p99_ms", "cpu_us_per_req"):
                        row[f"{name}_{key}"] = median(runs[name], key)
                results["throughput"].append(row)
                print_row(row)
    finally:
        tessera.stop()
        redis.stop()


def print_row(row):
    r, t = row, row
    print(f"| {r['test']} | {r['pipeline']} | {r['redis_rps']:,.0f} | {t['tessera_rps']:,.0f} | "
          f"{t['tessera_rps'] / r['redis_rps']:.2f} | {r['redis_cpu_us_per_req']:.2f} | "
          f"{t['tessera_cpu_us_per_req']:.2f} | {t['tessera_cpu_us_per_req'] / r['redis_cpu_us_per_req']:.2f} | "
          f"{r['redis_p99_ms']:.3f} | {t['tessera_p99_ms']:.3f} |", flush=True)


def load_file(keys):
    """RESP SET commands for `keys` keys `key:%012d` with 64-byte values, in a temp file."""
    f = tempfile.NamedTemporaryFile(prefix="tessera-load-", suffix=".resp", delete=False)
    value = b"v" * 64
    chunk = []
    for i in range(keys):
        key = b"key:%012d" % i
        chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(key), key, value))
        if len(chunk) == 10000:
            f.write(b"".join(chunk))
            chunk = []
    f.write(b"".join(chunk))
    f.close()
    return f.name


def memory_section(args, results):
    path = load_file(args.keys)
    try:
        for start in (start_redis, lambda: start_tessera(args)):
            server = start()
            try:
                baseline = server.rss_bytes()
                with open(path, "rb") as f:
                    subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=f, check=True,
                                   capture_output=True)
                time.sleep(1)
                size = int(subprocess.run(["redis-cli", "-p", str(server.port), "dbsize"], capture_output=True,
                                          text=True, check=True).stdout.strip())
                rss = server.rss_bytes()
                results["memory"][server.name] = {"keys": size, "rss": rss, "baseline_rss": baseline,
                                                  "bytes_per_key": (rss - baseline) / max(size, 1)}
            finally:
                server.stop()
    finally:
        os.unlink(path)
    m = results["memory"]
    print(f"\n| keys | redis RSS MiB | tessera RSS MiB | ratio | redis B/key | tessera B/key |")
    print("|---|---|---|---|---|---|")
    print(f"| {m['tessera']['keys']:,} | {m['redis']['rss'] / 2**20:.1f} | {m['tessera']['rss'] / 2**20:.1f} | "
          f"{m['tessera']['rss'] / m['redis']['rss']:.2f} | {m['redis']['bytes_per_key']:.0f} | "
          f"{m['tessera']['bytes_per_key']:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", default=os.path.join(ROOT, "target", "release", "tessera"))
    p.add_argument("--tessera-threads", type=int, help="pass --threads N to tessera (default: its own default)")
    p.add_argument("--bench-threads", type=int, help="redis-benchmark --threads")
    p.add_argument("--tests", default="set,get")
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--keyspace", type=int, default=100000, help="redis-benchmark -r")
    p.add_argument("--data-size", type=int, default=64)
    p.add_argument("--requests", type=int, help="requests per run for every pipeline depth")
    p.add_argument("--requests-p1", type=int, default=200000)
    p.add_argument("--requests-p16", type=int, default=2000000)
    p.add_argument("--keys", type=int, default=1000000, help="keys loaded for the memory comparison")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-throughput", action="store_true")
    p.add_argument("--quick", action="store_true", help="one round, few requests: checks the script itself")
    p.add_argument("--json", help="write raw runs and medians here")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.requests, args.keys = 1, 20000, min(args.keys, 20000)
    elif args.rounds < 3:
        p.error("--rounds must be at least 3 (medians of noisy runs); use --quick to smoke-test")
    if not os.access(args.tessera, os.X_OK):
        p.error(f"{args.tessera} is not executable: run `cargo build --release` first")
    results = {"config": vars(args), "throughput": [], "memory": {}}
    if not args.no_throughput:
        threads = args.tessera_threads or "default"
        print(f"tessera threads: {threads}; redis-benchmark -c {args.clients} -r {args.keyspace} -d {args.data_size}; "
              f"{args.rounds} rounds, medians\n")
        print("| test | -P | redis rps | tessera rps | ratio | redis CPU µs/req | tessera CPU µs/req | ratio | "
              "redis p99 ms | tessera p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        throughput_section(args, results)
    if not args.no_memory:
        memory_section(args, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
