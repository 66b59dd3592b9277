"""The specification's command lines and the README's examples, run as printed."""
import json
import os
import re
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPT, TESTS

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
    README = readme.read()


def fenced_blocks(text: str) -> list:
    """(language, body) of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)]


def block_after(heading: str, language: str) -> str:
    """The first fenced block of `language` after a README heading."""
    start = README.index("\n" + heading + "\n")
    return next(body for lang, body in fenced_blocks(README[start:]) if lang == language)


def output_after(command: str) -> str:
    """The README's output block that follows the block showing `command`."""
    blocks = fenced_blocks(README)
    for i, (lang, body) in enumerate(blocks):
        if lang == "bash" and body.strip() == command:
            return blocks[i + 1][1]
    raise AssertionError("README shows no block with: %s" % command)


# -- the specification's command lines, exactly as written ------------------------------------

SPEC_WALKTHROUGH = [
    "--host localhost --port 8080 status",
    "--host localhost --port 8080 diagnostics",
    "--host localhost --port 8080 metrics",
    "--host localhost --port 8080 nodes",
    "--host localhost --port 8080 add-node --node-id node-worker-003 --address 192.168.1.13:8080",
    "--host localhost --port 8080 node-health --node-id node-worker-001",
    "--host localhost --port 8080 shards",
    "--host localhost --port 8080 shard-status --shard-id shard-00",
    "--host localhost --port 8080 migrate-shard --shard-id shard-00 --from-node node-worker-001 "
    "--to-node node-worker-003 --strategy LIVE_COPY",
    "--host localhost --port 8080 remove-node --node-id node-worker-003",
    "status --format table",
    "status --format json",
    "status --format compact",
]


def test_every_specification_command_line_exits_0(cli, sim, clean_env):
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))  # for the lines written without --port
    for line in SPEC_WALKTHROUGH:
        run = cli(*line.replace("8080", str(sim.port)).split(), target=False)
        assert run.code == 0 and run.out and run.err == "", (line, run)


def test_the_specifications_outputs_are_printed_exactly(cli, sim, clean_env):
    spec = {"status": "Cluster Status\n==============\nMaster Node: node-master-001\nTotal Nodes: 3\n"
                      "Active Nodes: 3\nTotal Shards: 12\nStatus: HEALTHY\nReplication Factor: 2\n",
            "status --format compact": "HEALTHY | 3 nodes | 12 shards | master: node-master-001\n"}
    for argv, expected in spec.items():
        assert cli(*argv.split()).out == expected
    assert {k: v for k, v in cli("status", "--format", "json").json().items() if k != "cluster_name"} == {
        "master_node": "node-master-001", "total_nodes": 3, "active_nodes": 3, "total_shards": 12,
        "status": "HEALTHY", "replication_factor": 2}


# -- the README's outputs are what the CLI prints -------------------------------------------------

def as_the_reader_sees(text: str, sim) -> str:
    """Return output as the README's reader sees it: the cluster at localhost:8080, not the test's port."""
    for host in ("127.0.0.1", "localhost"):
        text = text.replace("http://%s:%d" % (host, sim.port), "http://localhost:8080")
    text = re.sub(r"(?m)^Vectors Per Second: [0-9,]+$", "Vectors Per Second: 1,204,811", text)  # as fast as it ran
    return re.sub(r"\b(rebalance|drain)-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}\b", r"\1-20261202-090000-3f2a", text)


@pytest.mark.parametrize("command", [
    "python cluster_cli.py --host localhost --port 8080 status",
    "python cluster_cli.py --host localhost --port 8080 nodes",
    "python cluster_cli.py --host localhost --port 8080 metrics",
    "python cluster_cli.py --host localhost --port 8080 shard-status --shard-id shard-00",
    "python cluster_cli.py --host localhost --port 8080 health",
    "python cluster_cli.py status --format json",
    "python cluster_cli.py status --format compact",
    "python cluster_cli.py nodes --format compact",
    "python cluster_cli.py status -o prometheus",
    "python cluster_cli.py version --format compact",
])
def test_readme_output_matches_the_cli(cli, sim, clean_env, command):
    expected = output_after(command)
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))
    run = cli(*command.split()[2:], target=False) if "--port" not in command else \
        cli(*command.replace("8080", str(sim.port)).split()[2:], target=False)
    assert run.code == 0
    assert matches(run.out, expected)


def test_readme_walkthrough_outputs_for_changes(cli, sim):
    assert as_the_reader_sees(cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080").out,
                              sim) == output_after(
        "python cluster_cli.py --host localhost --port 8080 add-node \\\n  --node-id node-worker-003 \\\n"
        "  --address 192.168.1.13:8080")
    assert cli("migrate-shard", "--shard-id", "shard-00", "--from-node", "node-worker-001", "--to-node",
               "node-worker-003", "--strategy", "LIVE_COPY", "--wait", "--poll-interval", "0.05").code == 0
    assert as_the_reader_sees(cli("remove-node", "--node-id", "node-worker-003").out, sim) == output_after(
        "python cluster_cli.py --host localhost --port 8080 remove-node --node-id node-worker-003")


# -- the README's scripts, run by bash against the simulator ----------------------------------------

@pytest.fixture
def shell(sim, tmp_path):
    """run(script) in bash, in a scratch folder holding cluster_cli.py, with jq and a recording `mail`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"jq": '#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, os.path.join(TESTS, "jq_shim.py")),
             "mail": '#!/bin/sh\necho "mail $*" >> "%s"\ncat >> "%s"\n'
                     % (tmp_path / "mail.log", tmp_path / "mail.log"),
             "python": '#!/bin/sh\nexec "%s" "$@"\n' % sys.executable}
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    os.symlink(SCRIPT, tmp_path / "cluster_cli.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_")}
    env.update(PATH="%s:%s" % (bin_dir, env.get("PATH", "")), JADEVECTORDB_HOST="127.0.0.1",
               JADEVECTORDB_PORT=str(sim.port))

    def run(script):
        done = subprocess.run(["bash", "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                              text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr
    run.folder = tmp_path
    return run


def test_health_check_is_quiet_when_healthy(shell):
    code, out, err = shell(block_after("### Monitor cluster health", "bash"))
    assert (code, err) == (0, "")
    assert not (shell.folder / "mail.log").exists()


def test_health_check_alerts_with_diagnostics_when_degraded(shell, sim):
    sim.down("node-worker-002")
    code, out, err = shell(block_after("### Monitor cluster health", "bash"))
    assert code == 0, err
    mail = (shell.folder / "mail.log").read_text()
    assert mail.startswith("mail -s Cluster Alert admin@example.com\nALERT: Cluster is DEGRADED | 3 nodes")
    diagnostics = json.loads((shell.folder / "cluster-diagnostics.json").read_text())
    assert diagnostics["errors"][0]["node_id"] == "node-worker-002"


def test_health_check_keeps_yesterdays_diagnostics_when_the_cluster_cannot_be_reached(shell):
    from conftest import free_port
    (shell.folder / "cluster-diagnostics.json").write_text('{"yesterday": true}')
    # No retries: a refused connection is retried to ride out an election, which is not what this tests.
    script = block_after("### Monitor cluster health", "bash")
    code, out, err = shell("export JADEVECTORDB_PORT=%d JADEVECTORDB_RETRIES=0\n" % free_port() + script)
    assert code == 3 and "mail -s Cluster Alert" in (shell.folder / "mail.log").read_text()
    assert (shell.folder / "cluster-diagnostics.json").read_text() == '{"yesterday": true}'


def test_auto_scale_adds_a_node_only_under_load(shell, sim):
    script = block_after("### Auto-scaling", "bash")
    code, out, err = shell(script)
    assert (code, out, err) == (0, "", "")
    sim.control("/_sim/load", {"cpu_usage": 91})
    code, out, err = shell(script)
    assert code == 0, err
    assert out.startswith("High load detected: 91%\nNode node-worker-")
    assert len(sim.cluster.nodes) == 4


def test_rebalance_script_moves_shards_onto_the_new_node(shell, sim, cli):
    sim.reset(migration_seconds=0.1)
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    sim.advance(1)
    code, out, err = shell(block_after("### Shard rebalancing", "bash"))
    assert code == 0, err
    assert out.startswith("Rebalance plan (balance by shards)\n") and "Completed: 3" in out
    assert json.loads((shell.folder / "plan.json").read_text())["after"]["node-worker-003"] == 3
    assert [s["primary_node"] for s in sim.cluster.shards.values()].count("node-worker-003") == 3


def test_readme_rebalance_and_drain_outputs_are_what_the_cli_prints(cli, sim):
    sim.reset(migration_seconds=0.1)
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    sim.advance(1)
    assert cli("rebalance", "--dry-run").out == output_after("python cluster_cli.py rebalance --dry-run")
    run = cli("rebalance", "--poll-interval", "0.05")
    assert as_the_reader_sees(run.out, sim) == output_after("python cluster_cli.py rebalance")
    assert cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "--format", "compact").out == \
        output_after("python cluster_cli.py drain-node --node-id node-worker-002 --dry-run --format compact")


def test_backup_verification_finds_no_under_replicated_shard(shell, sim):
    code, out, err = shell(block_after("### Cluster backup status", "bash"))
    assert (code, out.strip(), err) == (0, "[]", "")
    backups = list(shell.folder.glob("cluster-backup-*.json"))
    assert len(backups) == 1 and json.loads(backups[0].read_text())["topology"]["master_node"] == "node-master-001"


def test_backup_verification_lists_a_shard_with_one_copy(shell, sim):
    sim.reset(nodes=1, shards=2)
    code, out, err = shell(block_after("### Cluster backup status", "bash"))
    assert [s["shard_id"] for s in json.loads(out)] == ["shard-00", "shard-01"]


def test_the_backup_line_beside_the_specifications_catches_a_shard_short_by_its_status(shell, sim):
    sim.fault(replicas_configured=True)  # replicas stays 2: only status says a shard is short
    sim.down("node-worker-002")
    spec = block_after("### Cluster backup status", "bash").splitlines()[-1]
    ours = next(body for lang, body in fenced_blocks(README[README.index("only in its `status`"):])
                if lang == "bash").splitlines()
    code, out, _ = shell(spec)
    assert (code, json.loads(out)) == (0, [])  # the specification's line passes over them
    code, out, _ = shell(ours[0])
    assert sorted(s["shard_id"] for s in json.loads(out)) == sorted(sim.cluster.under_replicated)
    code, out, err = shell(ours[1])
    assert code == 4 and len(out.splitlines()) == 12 and err.startswith("error: 8 shards are not HEALTHY: ")


def test_jq_pipelines_of_the_specification(shell, sim):
    code, out, _ = shell("python cluster_cli.py status --format json | jq -r '.status'")
    assert out == "HEALTHY\n"
    code, out, _ = shell("python cluster_cli.py metrics --format json | jq -r '.cpu_usage'")
    assert float(out) == sim.cluster.metrics()["cpu_usage"]
    sim.down("node-worker-001")
    code, out, _ = shell("python cluster_cli.py diagnostics --format json | jq '.errors'")
    assert json.loads(out)[0]["message"] == "node node-worker-001 is unreachable: heartbeat missed"
    code, out, _ = shell("python cluster_cli.py nodes --format json | jq -r '.[].node_id'")
    assert out.split() == ["node-master-001", "node-worker-001", "node-worker-002"]


def test_kubernetes_cronjob_command(sim):
    yaml = block_after("### Kubernetes CronJob", "yaml")
    command = re.search(r"command:\n((?:\s+- .*\n)+)", yaml).group(1)
    argv = [line.strip()[2:].strip('"') for line in command.splitlines()]
    assert argv[:2] == ["python", "/scripts/cluster_cli.py"]
    argv = [sys.executable, SCRIPT] + ["127.0.0.1" if a == "jadevectordb-master" else
                                       str(sim.port) if a == "8080" else a for a in argv[2:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "HEALTHY"
    sim.down("node-worker-001")
    assert subprocess.run(argv, capture_output=True, env=env, timeout=60).returncode == 4


def test_prometheus_exporter_runs_as_printed(sim, clean_env):
    prometheus_client = pytest.importorskip("prometheus_client")
    clean_env.setenv("JADEVECTORDB_HOST", "127.0.0.1")
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))
    namespace = {"__name__": "prometheus_exporter"}
    exec(compile(block_after("### Prometheus exporter", "python"), "prometheus_exporter.py", "exec"), namespace)
    registry = prometheus_client.REGISTRY
    try:
        namespace["collect_metrics"]()
        assert registry.get_sample_value("jadevectordb_cluster_nodes") == 3
        assert registry.get_sample_value("jadevectordb_cluster_shards") == 12
        assert registry.get_sample_value("jadevectordb_cluster_up") == 1
        sim.fault(fail_next=1, fail_status=500)
        namespace["collect_metrics"]()
        assert registry.get_sample_value("jadevectordb_cluster_up") == 0
    finally:
        for name in ("cluster_up", "cluster_nodes", "cluster_shards"):
            registry.unregister(namespace[name])


def test_python_usage_example_runs(sim, capsys):
    source = block_after("## Use from Python", "python").replace("port=8080", "port=%d" % sim.port)
    exec(compile(source, "usage.py", "exec"), {"__name__": "usage"})
    assert capsys.readouterr().out == "node node-worker-003 not found (HTTP 404 NODE_NOT_FOUND) 1\n"


SPEC_EXPORTER = '''\
# prometheus_exporter.py - Export cluster metrics to Prometheus

import time
from cluster_cli import ClusterCLI
from prometheus_client import start_http_server, Gauge

# Create metrics
cluster_nodes = Gauge('jadevectordb_cluster_nodes', 'Total cluster nodes')
cluster_shards = Gauge('jadevectordb_cluster_shards', 'Total shards')

cli = ClusterCLI(host='localhost', port=8080)

def collect_metrics():
    status = cli.cluster_status()
    cluster_nodes.set(status.get('total_nodes', 0))
    cluster_shards.set(status.get('total_shards', 0))

if __name__ == '__main__':
    start_http_server(9091)
    while True:
        collect_metrics()
        time.sleep(15)
'''


def test_the_specifications_exporter_runs_as_written():
    """Verbatim from the specification: it talks to localhost:8080, so a simulator is started there."""
    prometheus_client = pytest.importorskip("prometheus_client")
    import simulator
    try:
        server = simulator.start(port=8080)
    except OSError:
        pytest.skip("NOT RUN: the specification's exporter is hard-wired to localhost:8080, which is in use here")
    namespace = {"__name__": "prometheus_exporter"}
    try:
        exec(compile(SPEC_EXPORTER, "prometheus_exporter.py", "exec"), namespace)
        namespace["collect_metrics"]()
        assert prometheus_client.REGISTRY.get_sample_value("jadevectordb_cluster_nodes") == 3
        assert prometheus_client.REGISTRY.get_sample_value("jadevectordb_cluster_shards") == 12
    finally:
        server.shutdown()
        server.server_close()
        if "cli" in namespace:
            namespace["cli"].close()
        for name in ("cluster_nodes", "cluster_shards"):
            if name in namespace:
                prometheus_client.REGISTRY.unregister(namespace[name])


def test_the_commands_section_runs_in_order_with_the_outputs_it_shows(cli, sim, clean_env):
    """The README's command examples, one after another on one cluster, as a reader would run them."""
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))
    section = README.split("\n## Commands\n", 1)[1].split("\n## Output formats\n", 1)[0]
    blocks = fenced_blocks(section)
    ran = []
    for i, (lang, body) in enumerate(blocks):
        command = body.replace("\\\n", " ").strip()
        if lang != "bash" or "\n" in command or not command.startswith("python cluster_cli.py"):
            continue
        argv = command.replace("--port 8080", "--port %d" % sim.port).split()[2:]
        run = cli(*argv, target=False)
        assert run.code == 0, (command, run)
        shown = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "" else None
        volatile = ("node-health", "diagnostics", "metrics")  # times and heartbeats change as they run
        if shown is not None and not any(word in command for word in volatile):
            assert matches(as_the_reader_sees(run.out, sim), shown), (command, run.out)
        ran.append(argv[argv.index("--port") + 2] if "--port" in argv else argv[0])
        sim.advance(10)  # a reader's pace: joins and migrations finish between commands
    assert ran[:1] == ["status"] and "migrate-shard" in ran and ran.index("migrate-shard") < ran.index("remove-node")


def matches(printed: str, shown: str) -> bool:
    """The README's output block is what was printed; a '...' line stands for lines left out."""
    if "\n...\n" not in "\n" + shown:
        return printed == shown
    head, tail = ("\n" + shown).split("\n...\n", 1)
    head = head[1:]
    return printed.startswith(head) and printed.endswith(tail) and len(printed) >= len(head) + len(tail)


# -- the README's contexts file and completion set-up ---------------------------------------------

@pytest.fixture
def readme_contexts(tmp_path, clean_env):
    """The README's sample contexts file, in use."""
    path = tmp_path / "cluster.toml"
    path.write_text(block_after("## Named clusters (contexts)", "toml"))
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    return path


def test_readme_contexts_file_is_listed_as_shown(cli, readme_contexts):
    run = cli("contexts", target=False)
    assert (run.code, run.out, run.err) == (0, output_after("python cluster_cli.py contexts"), "")


def test_readme_protected_context_refuses_a_change_off_a_terminal(cli, sim, readme_contexts, clean_env):
    clean_env.setenv("JADE_PROD_KEY", "prod-key-1")
    (readme_contexts.parent / "prod-ca.pem").write_text("")  # its ca_cert, beside the file
    run = cli("--context", "prod", "--url", sim.url, "add-node", "--node-id", "node-worker-003",
              "--address", "192.168.1.13:8080", target=False)
    assert (run.code, run.err.splitlines()) == (1, [
        "warning: the cluster is %s, from --url; not https://jade-prod-1.internal:8443,https://jade-prod-2.internal"
        ":8443, from context 'prod'" % sim.url,
        "error: context 'prod' is protected: pass --yes to add node node-worker-003 when not on a terminal; nothing "
        "was sent"])
    assert sim.changes() == []


def test_readme_named_cluster_from_python_prints_what_it_shows(sim, readme_contexts, clean_env, capsys):
    clean_env.setenv("JADE_PROD_KEY", "prod-key-1")
    (readme_contexts.parent / "prod-ca.pem").write_text("")  # its ca_cert, beside the file
    text = readme_contexts.read_text()
    prod_urls = '["https://jade-prod-1.internal:8443", "https://jade-prod-2.internal:8443"]'
    assert prod_urls in text
    readme_contexts.write_text(text.replace(prod_urls, '"%s"' % sim.url))  # prod is the simulator here
    source = block_after("### A named cluster from Python", "python")
    exec(compile(source, "named.py", "exec"), {"__name__": "named"})
    assert capsys.readouterr().out == next(body for lang, body in fenced_blocks(
        README[README.index("### A named cluster from Python"):]) if lang == "")
    assert sim.changes() == [] and sim.requests[-1]["authorization"] == "Bearer prod-key-1"


def documented_fields() -> dict:
    """README's 'Fields, command by command': {command: its top-level fields} (nested ones left out)."""
    start = README.index("#### Fields, command by command")
    rows = {}
    for line in README[start:].split("\n\n| command | JSON |\n|---|---|\n", 1)[1].split("\n\n", 1)[0].splitlines():
        command, fields = line.strip("|").split(" | ", 1)
        while "(" in fields:  # nested fields, and notes, out
            fields = re.sub(r"\([^()]*\)", "", fields)
        rows[command.strip(" `")] = re.findall(r"`(\w+)`", fields)
    return rows


@pytest.mark.parametrize("command, argv", [
    ("status", "status"), ("nodes", "nodes"), ("shards", "shards"), ("metrics", "metrics"),
    ("diagnostics", "diagnostics"), ("health", "health"), ("add-node", "add-node --node-id n9 --address h:1"),
    ("migrate-shard --dry-run", "migrate-shard --shard-id shard-00 --to-node node-master-001 --dry-run"),
    ("remove-node --dry-run", "remove-node --node-id node-worker-002 --dry-run"),
    ("migrate-shard", "migrate-shard --shard-id shard-00 --to-node node-master-001"),
    ("remove-node", "remove-node --node-id node-worker-002"),
    ("rebalance --dry-run", "rebalance --dry-run"),
])
def test_readme_lists_each_commands_json_fields(cli, sim, command, argv):
    sim.reset(cluster_name="jade-prod")  # the contract's every field
    data = cli(*argv.split(), "-o", "json").json()
    item = data[0] if isinstance(data, list) else data
    assert list(item) == documented_fields()[command]


def test_readme_lists_the_fields_of_what_a_run_reports(cli, sim, tmp_path, clean_env):
    sim.reset(migration_seconds=0.1)
    assert cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "-o", "json").json().keys() >= {
        "kind", "node_id", "moves", "before", "after", "skipped"}
    report = cli("drain-node", "--node-id", "node-worker-002", "--poll-interval", "0.05", "-o", "json").json()
    assert sorted(report) == sorted(documented_fields()["rebalance"])
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.a]\nurl = "%s"\n' % sim.url)
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    assert list(cli("contexts", "-o", "json").json()[0]) == documented_fields()["contexts"]
