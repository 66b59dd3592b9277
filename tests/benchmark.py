#!/usr/bin/env python3
"""Measure the CLI against its floor: Python + requests + one GET + print.

    python tests/benchmark.py            # every comparison, about fifteen minutes on 2 cores
    python tests/benchmark.py --quick    # fewer runs (about eight minutes)
    python tests/benchmark.py --instructions  # start-up in instructions (valgrind), about two minutes

Each comparison alternates the two commands (ours, floor, ours, floor, ...)
so both see the same machine, and prints the medians and their ratio against
the target. Not part of the test suite: wall-clock limits are never asserted
in tests. Exits 1 if a ratio misses its target.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
CLI = os.path.join(ROOT, "cluster_cli.py")
SIMULATOR = os.path.join(TESTS, "simulator.py")
PY = sys.executable
# What pip's console script `jadevectordb-cluster` runs: the module from its compiled bytecode.
INSTALLED = [PY, "-c", "import sys; sys.path.insert(0, %r); from cluster_cli import main; sys.exit(main())" % ROOT]
# `python cluster_cli.py`: Python compiles a script's source on every run and never caches it.
SCRIPT = [PY, CLI]
FLOOR = "import json,sys,requests; print(json.dumps(requests.get(%r, timeout=60).json(), indent=2))"


def start_simulator(*options) -> tuple:
    process = subprocess.Popen([PY, SIMULATOR, "--port", "0"] + list(options), stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    return process, "http://127.0.0.1:%d" % port, port


def run_once(argv) -> tuple:
    """Wall time and peak RSS (MiB) of one run; output discarded."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    if process.returncode != 0:
        raise SystemExit("benchmark command failed (%d): %s" % (process.returncode, " ".join(argv)))
    return elapsed, usage.ru_maxrss / 1024.0


def compare(ours, floor, runs: int) -> dict:
    mine, base = [], []
    run_once(ours), run_once(floor)  # warm the file cache
    for _ in range(runs):
        mine.append(run_once(ours))
        base.append(run_once(floor))
    return {"ours": statistics.median(t for t, _ in mine), "floor": statistics.median(t for t, _ in base),
            "ours_mem": max(m for _, m in mine), "floor_mem": max(m for _, m in base)}


def library_loop(port: int, calls: int, runs: int) -> dict:
    """200 cluster_status() calls on one ClusterCLI vs a bare requests.Session doing the same GETs."""
    sys.path.insert(0, ROOT)
    import requests
    from cluster_cli import ClusterCLI
    url = "http://127.0.0.1:%d/api/v1/cluster/status" % port

    def ours():
        with ClusterCLI(host="127.0.0.1", port=port) as client:
            started = time.perf_counter()
            for _ in range(calls):
                client.cluster_status()
            return time.perf_counter() - started

    def floor():
        with requests.Session() as session:
            started = time.perf_counter()
            for _ in range(calls):
                session.get(url, timeout=10).json()
            return time.perf_counter() - started

    ours(), floor()
    mine, base = [], []
    for _ in range(runs):
        mine.append(ours())
        base.append(floor())
    return {"ours": statistics.median(mine), "floor": statistics.median(base)}


PLAN_READ = ("import sys; sys.path.insert(0, %r); import cluster_cli as c; import json; "
             "cluster = c.typed(c.parse_json(open(sys.argv[1], encoding='utf-8').read(), 1 << 31), set()); ")
PLAN = PLAN_READ + "plan = c.rebalance_plan(cluster['nodes'], cluster['shards'], sys.argv[2])"


def cluster_file(folder: str, nodes: int, shards: int, skewed: bool) -> str:
    """Write a cluster's nodes and shards as the CLI reads them: replicas on the next two nodes; skewed,
    every primary on a tenth of the nodes."""
    import json
    import random
    rng = random.Random(7)
    names = ["node-worker-%04d" % i for i in range(nodes)]
    path = os.path.join(folder, "%d-%d-%s.json" % (nodes, shards, "skewed" if skewed else "even"))
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"nodes": %s, "shards": [' % json.dumps([{"node_id": n, "status": "HEALTHY"} for n in names]))
        for i in range(shards):
            home = rng.randrange(nodes // 10 if skewed else nodes)
            out.write(("," if i else "") + json.dumps({
                "shard_id": "shard-%07d" % i, "database_id": "db-%d" % (i % 7), "primary_node": names[home],
                "replica_nodes": [names[(home + 1) % nodes], names[(home + 2) % nodes]], "replicas": 3,
                "vector_count": rng.randint(1, 200000), "size_bytes": rng.randint(1, 1 << 30), "status": "HEALTHY"}))
        out.write("]}")
    return path


def planning(runs: int, row) -> None:
    """Plan a rebalance of 1,000 nodes and 1M shards against reading the same list (decoded and typed as
    the client does): planning should cost about the read again (within 1.25x of it: 2.25x the floor),
    in at most 1.5x its memory."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        for skewed in (False, True):
            path = cluster_file(folder, 1000, 1000000, skewed)
            for unit in ("shards", "vectors"):
                row("plan 1,000 nodes, 1M shards, %s, by %s" % ("skewed" if skewed else "even", unit),
                    compare([PY, "-c", PLAN % ROOT, path, unit], [PY, "-c", PLAN_READ % ROOT, path, unit], runs),
                    2.25, 1.5)


def instructions(argv) -> dict:
    """Count the instructions one run executes, with valgrind's callgrind: the same on every run, where
    the time of a 0.15 s command varies by a third on a shared machine. Child processes are not counted."""
    import re
    import shutil
    if not shutil.which("valgrind"):
        raise SystemExit("--instructions needs valgrind (Debian and Ubuntu: apt install valgrind)")
    run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counted = re.search(r"Collected : ([0-9]+)", run.stderr)
    if run.returncode != 0 or not counted:
        raise SystemExit("benchmark command failed under valgrind (%d): %s" % (run.returncode, " ".join(argv)))
    return int(counted.group(1))


def start_up_instructions(row) -> None:
    """Compare the start-up commands with their floors in instructions, one run each."""
    small, url, port = start_simulator()
    try:
        target = ["--host", "127.0.0.1", "--port", str(port)]
        bare = instructions([PY, "-c", "pass"])
        status_floor = instructions([PY, "-c", FLOOR % (url + "/api/v1/cluster/status")])
        for name, ours, floor, limit in (
                # No target (issue 28 withdrew 2.2x): a guard at the 3.5x of that day, so help grows no slower.
                ("--help", INSTALLED + ["--help"], bare, 3.5),
                ("status --format json", INSTALLED + target + ["status", "--format", "json"], status_floor, 1.1),
                ("status (table)", INSTALLED + target + ["status"], status_floor, 1.2),
                # The script form compiles the whole file on every run: a guard, so the file grows only with
                # what it needs (the 1.4x target was withdrawn; one readable module cannot meet it).
                ("python cluster_cli.py status --format json", SCRIPT + target + ["status", "--format", "json"],
                 status_floor, 2.0)):
            row(name, {"ours": instructions(ours), "floor": floor}, limit, unit="%.1fM instructions", scale=1e-6)
    finally:
        small.terminate()
        small.wait()


def compile_module() -> None:
    """Write cluster_cli's bytecode, as pip does at install (even under PYTHONDONTWRITEBYTECODE)."""
    import importlib.util
    import py_compile
    py_compile.compile(CLI, cfile=importlib.util.cache_from_source(CLI), doraise=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (noisier)")
    parser.add_argument("--planning", action="store_true", help="only the planner at 1,000 nodes and 1M shards")
    parser.add_argument("--instructions", action="store_true",
                        help="only start-up, counted in instructions by valgrind (repeatable on a noisy machine)")
    args = parser.parse_args(argv)
    small_runs, big_runs, huge_runs, loop_runs = (7, 3, 2, 5) if args.quick else (21, 7, 3, 15)
    rows = []
    compile_module()

    def row(name, result, target, memory_target=None, unit="%.3f s", scale=1.0):
        ratio = result["ours"] / result["floor"]
        ok = target is None or ratio <= target
        line = [name, unit % (result["ours"] * scale), unit % (result["floor"] * scale),
                ("%.2fx" if unit.endswith(" s") else "%.3fx") % ratio,  # counts repeat to the last digit
                "<= %.2fx" % target if target else "(no target)"]
        if memory_target:
            mem_ratio = result["ours_mem"] / result["floor_mem"]
            ok = ok and mem_ratio <= memory_target
            line += ["%.0f/%.0f MiB = %.2fx (<= %gx)" % (result["ours_mem"], result["floor_mem"], mem_ratio,
                                                          memory_target)]
        else:
            line += [""]
        rows.append(line + ["" if target is None and memory_target is None else "ok" if ok else "MISSED"])
        print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)

    if args.planning:
        planning(huge_runs, row)
        return report(rows, "medians of %d runs per comparison" % huge_runs)
    if args.instructions:
        start_up_instructions(row)
        return report(rows, "one run per command under valgrind's callgrind (instructions executed, not time)")
    small, small_url, small_port = start_simulator()
    print("small cluster (3 nodes, 12 shards) on %s" % small_url, file=sys.stderr, flush=True)
    try:
        bare = [PY, "-c", "pass"]
        # Timed start-up has no target (issue 28): --instructions holds --help and the script form by guards.
        row("--help", compare(INSTALLED + ["--help"], bare, small_runs), None)
        row("--version", compare(INSTALLED + ["--version"], bare, small_runs), None)
        status_floor = [PY, "-c", FLOOR % (small_url + "/api/v1/cluster/status")]
        target = ["--host", "127.0.0.1", "--port", str(small_port)]
        row("status --format json", compare(INSTALLED + target + ["status", "--format", "json"], status_floor,
                                            small_runs), 1.1)
        row("status (table)", compare(INSTALLED + target + ["status"], status_floor, small_runs), 1.2)
        row("python cluster_cli.py --help", compare(SCRIPT + ["--help"], bare, small_runs), None)
        row("python cluster_cli.py status --format json",
            compare(SCRIPT + target + ["status", "--format", "json"], status_floor, small_runs), None)
        row("library: 200 x cluster_status()", library_loop(small_port, 200, loop_runs), 1.2)
    finally:
        small.terminate()
        small.wait()

    print("large cluster (100 nodes, 100,000 shards): starting", file=sys.stderr, flush=True)
    big, big_url, big_port = start_simulator("--nodes", "100", "--shards", "100000")
    try:
        shards_floor = [PY, "-c", FLOOR % (big_url + "/api/v1/cluster/shards")]
        target = ["--host", "127.0.0.1", "--port", str(big_port)]
        for fmt, limit in (("json", 1.1), ("compact", 0.9), ("table", 1.1)):
            row("100k shards --format %s" % fmt,
                compare(INSTALLED + target + ["shards", "--format", fmt], shards_floor, big_runs), limit, 2.0)
    finally:
        big.terminate()
        big.wait()

    print("huge cluster (100 nodes, 1,000,000 shards): starting", file=sys.stderr, flush=True)
    huge, huge_url, huge_port = start_simulator("--nodes", "100", "--shards", "1000000")
    try:
        shards_floor = [PY, "-c", FLOOR % (huge_url + "/api/v1/cluster/shards")]
        target = ["--host", "127.0.0.1", "--port", str(huge_port)]
        row("1M shards --format json",
            compare(INSTALLED + target + ["shards", "--format", "json"], shards_floor, huge_runs), None, 0.6)
        row("1M shards --format table",
            compare(INSTALLED + target + ["shards"], shards_floor, huge_runs), 1.1, 0.6)
    finally:
        huge.terminate()
        huge.wait()
    planning(huge_runs, row)
    return report(rows, "medians of %d runs per small comparison, %d per 100k-shard and %d per 1M-shard comparison"
                  % (small_runs, big_runs, huge_runs))


def report(rows: list, runs: str) -> int:
    header = ["comparison", "ours", "floor", "ratio", "target", "peak memory (ours/floor)", ""]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for line in [header, ["-" * w for w in widths]] + rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    import io
    import tokenize
    with open(CLI, encoding="utf-8") as source:
        text = source.read()
    lines = text.count("\n")
    tokens = sum(t.type not in (tokenize.COMMENT, tokenize.NL)
                 for t in tokenize.generate_tokens(io.StringIO(text).readline))
    print("\nours: the installed command (cluster_cli from bytecode, as pip's console script runs it),")
    print(f"      and where named, python cluster_cli.py (its {lines:,} lines compiled on every run)")
    # Measured on 3.11: parsing costs about 6K instructions a token (a comment costs nothing), a def, lambda
    # or comprehension about 0.12M more (a code object each), and the parser's token array, when it grows
    # past 65,536, takes 65,536 more tokens' slots at once: 8.5M instructions, 1.8% of the floor.
    print(f"      {tokens:,} tokens of the 65,536 past which Python 3.11's parser allocates 8.5M instructions more")
    print("floor: python -c \"%s\" (against the same endpoint); --help/--version against python -c pass"
          % (FLOOR % "URL"))
    print("plan: python -c \"%s\" FILE UNIT; its floor stops before the plan (reads and decodes the list)"
          % (PLAN % "ROOT"))
    print("peak memory: the largest resident size of the process, from the OS (wait4's ru_maxrss)")
    print("python %s, %d CPUs, %s" % (sys.version.split()[0], os.cpu_count(), runs))
    return 0 if all(r[-1] != "MISSED" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
