"""Every workflow on every server the contract allows: the simulator's personalities, each alone and all at once.

The matrix: each workflow below runs against every personality of tests/simulator.py (one trait each, and "all"
combined), on the session's one simulator, reset per test, never on a new process per personality: that keeps it
to about a minute. Workflows that need a process of their own (Ctrl-C) start one per personality, no more.
"""
import json
import signal
import subprocess
import sys

import pytest

import simulator
from conftest import SCRIPT, free_port, interruptible, wait_until
from test_examples import SPEC_WALKTHROUGH, block_after, shell  # noqa: F401  (shell is a fixture)
from test_operations import migrations, moving

FAST = ("--poll-interval", "0.05")
NOTICE = ("the cluster serves its API under /v1, not /api/v1: using /v1 (--api-prefix /v1 says so and saves the "
          "extra request)\n")


@pytest.fixture(params=sorted(simulator.PERSONALITIES))
def server(request, sim, clean_env):
    """The simulator as one personality, its traits kept across the test's resets. On JadeVectorDB's own
    dialect the operator has set its API prefix once (a change is never sent to a guessed one)."""
    sim.cluster.options["personality"] = request.param
    sim.reset()
    sim.traits = simulator.traits_of(request.param)
    sim.setting = ""
    if sim.traits.get("dialect"):
        clean_env.setenv("JADEVECTORDB_API_PREFIX", "/v1")
        sim.setting = "export JADEVECTORDB_API_PREFIX=/v1\n"  # for the scripts, which start with a clean environment
    yield sim
    sim.cluster.options["personality"] = ()
    sim.reset()


def primaries(server) -> dict:
    counts = {}
    for shard in server.cluster.shards.values():
        counts[shard["primary_node"]] = counts.get(shard["primary_node"], 0) + 1
    return counts


def test_the_specifications_command_lines(cli, server, clean_env):
    clean_env.setenv("JADEVECTORDB_PORT", str(server.port))  # for the lines written without --port
    for line in SPEC_WALKTHROUGH:
        run = cli(*line.replace("8080", str(server.port)).split(), target=False)
        assert run.code == 0 and run.out and run.err == "", (line, run)


def test_the_specifications_outputs_keep_their_fields_in_place(cli, server):
    table = cli("status").lines
    assert table[:8] == ["Cluster Status", "==============", "Master Node: node-master-001", "Total Nodes: 3",
                         "Active Nodes: 3", "Total Shards: 12", "Status: HEALTHY", "Replication Factor: 2"]
    assert table[8:] == (["Cluster: jade-ref"] if "cluster_name" in server.traits else [])
    compact = cli("status", "--format", "compact").out
    assert compact == "HEALTHY | 3 nodes | 12 shards | master: node-master-001%s\n" % (
        " | cluster: jade-ref" if "cluster_name" in server.traits else "")
    assert compact.split(" | ")[0] == "HEALTHY"  # cut -d'|' -f1 reads the status from every server
    assert cli("shards", "--format", "compact").lines[0] == "shard-00 | node-worker-001 | 2 | 125,432 | HEALTHY"
    node = cli("nodes", "--format", "json").json()[0]
    assert (node["node_id"], node["role"], node["status"], node["shard_count"]) == (
        "node-master-001", "MASTER", "HEALTHY", 4)  # the contract's names, numbers and enum spelling


def test_the_health_check_script_alerts_when_degraded(shell, server):  # noqa: F811
    script = server.setting + block_after("### Monitor cluster health", "bash")
    code, out, err = shell(script)
    assert code == 0 and not (shell.folder / "mail.log").exists(), err
    server.down("node-worker-002")
    code, out, err = shell(script)
    assert (shell.folder / "mail.log").read_text().startswith(
        "mail -s Cluster Alert admin@example.com\nALERT: Cluster is DEGRADED | 3 nodes")
    assert json.loads((shell.folder / "cluster-diagnostics.json").read_text())["errors"][0]["node_id"] == \
        "node-worker-002"


def test_the_backup_checks(shell, server):  # noqa: F811
    code, out, err = shell(server.setting + block_after("### Cluster backup status", "bash"))
    assert (code, json.loads(out)) == (0, [])
    server.down("node-worker-002")
    short = sorted(server.cluster.under_replicated)
    code, out, err = shell(server.setting + "python cluster_cli.py shards --format json | jq '[.[] | select("
                           ".replicas < 2 or .status != \"HEALTHY\") | .shard_id]'")
    assert json.loads(out) == short
    code, out, err = shell(server.setting + "python cluster_cli.py shards --check --format compact")
    assert code == 4 and err.splitlines()[-1].startswith("error: %d shards are not HEALTHY: " % len(short))


def test_the_auto_scale_script_adds_a_node_under_load(shell, server):  # noqa: F811
    server.control("/_sim/load", {"cpu_usage": 91})
    code, out, err = shell(server.setting + block_after("### Auto-scaling", "bash"))
    assert code == 0 and out.startswith("High load detected: 91%\nNode node-worker-"), err
    assert len(server.cluster.nodes) == 4


def test_add_rebalance_drain_remove(cli, server):
    server.reset(migration_seconds=0.1)
    run = cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080", "--wait", *FAST,
              "--format", "compact")
    assert run.code == 0 and run.out.startswith("node-worker-003 | HEALTHY | "), run
    run = cli("rebalance", "--yes", *FAST, "--format", "json")
    assert run.code == 0 and run.json()["verified"] is True, run
    assert primaries(server)["node-worker-003"] == 3
    held = sorted(s["shard_id"] for s in server.cluster.shards.values() if "node-worker-002" in s["replica_nodes"])
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST, "--stall-timeout", "5",
              "--format", "compact")
    assert run.code == 0 and held, run  # its replicas are copied elsewhere, listed or not, and that is seen
    assert "node-worker-002" not in server.cluster.nodes
    assert run.err.splitlines()[-1] == "replication factor 2 restored on the %d shards node-worker-002 held" % len(held)
    assert cli("shards", "--check").code == 0
    assert len(migrations(server)) == 6  # 3 onto the new node, 3 off the drained one, each sent once


def test_migrate_and_wait_then_pick_the_wait_up_again(cli, server):
    server.reset(migration_seconds=600)
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--wait",
              "--wait-timeout", "0.1", *FAST, "--format", "compact")
    assert run.code == 4 and " | IN_PROGRESS | " in run.out, run
    server.cluster.migration_seconds = 1.0
    run = cli("shard-status", "--shard-id", "shard-00", "--wait", *FAST, "--format", "compact")
    assert run.code == 0, run
    assert run.out.startswith("mig-7f01 | shard-00 | node-worker-001 -> node-master-001 | LIVE_COPY | COMPLETED | ")
    assert len(migrations(server)) == 1


def test_interrupt_then_rerun_and_resume(cli, server):
    server.reset(migration_seconds=600)
    assert cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080").code == 0
    server.advance(5)  # joined, however slowly this server joins
    process = subprocess.Popen([sys.executable, SCRIPT, "--url", server.url, "rebalance", "--yes", *FAST],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_until(lambda: moving(server))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "rebalance --resume" in err, err
    server.cluster.migration_seconds = 0.5  # the running move ends soon
    run = cli("rebalance", "--yes", *FAST, "--format", "json")
    assert run.code == 0 and run.json()["verified"] is True, run  # a correct rerun is a success
    assert sorted(m["shard"] for m in migrations(server)) == ["shard-00", "shard-01", "shard-03"]  # none twice
    resumed = cli("rebalance", "--resume", *FAST)  # the interrupted run is settled from the cluster, sending nothing
    assert resumed.code == 0 and "no longer fitted the cluster and were left out" in resumed.err, resumed
    assert len(migrations(server)) == 3
    assert cli("rebalance", "--resume").code == 2  # nothing left to resume


def test_watch_and_check(cli, server):
    run = cli("status", "--watch", "0.05", "--count", "2", "--format", "json")
    assert run.code == 0 and [json.loads(line)["status"] for line in run.lines] == ["HEALTHY", "HEALTHY"]
    assert cli("status", "--check").code == 0 and cli("shards", "--check", "--format", "compact").code == 0
    server.down("node-worker-002")
    assert cli("status", "--check", "--format", "compact").code == 4
    assert cli("nodes", "--status", "!HEALTHY", "--format", "compact").lines == [
        "node-worker-002 | WORKER | 192.168.1.12:8080 | UNREACHABLE | 4"]
    assert cli("shards", "--check", "--format", "compact").code == 4


def test_a_fleet_read_of_this_server_beside_a_dead_one(cli, server, tmp_path, clean_env):
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.one]\nurl = "%s"\n\n[contexts.dead]\nurl = "http://127.0.0.1:%d"\nretries = 0\n'
                    % (server.url, free_port()))
    path.chmod(0o600)
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    run = cli("--all-contexts", "nodes", "-o", "json", target=False)
    one, dead = run.json()
    assert (run.code, one["ok"], dead["ok"], dead["error"]["kind"]) == (3, True, False, "cluster_unreachable")
    assert [(n["node_id"], n["status"], n["shard_count"]) for n in one["result"]] == [
        ("node-master-001", "HEALTHY", 4), ("node-worker-001", "HEALTHY", 4), ("node-worker-002", "HEALTHY", 4)]
    server.down("node-worker-002")
    run = cli("--contexts", "one", "status", "--check", "-o", "compact", target=False)
    assert run.code == 4 and run.lines[0].startswith("one | DEGRADED | 3 nodes | 12 shards"), run


# -- JadeVectorDB's own dialect, with no prefix set ------------------------------------------------------------

@pytest.fixture
def dialect(sim):
    sim.cluster.options["personality"] = "dialect"
    sim.reset()
    yield sim
    sim.cluster.options["personality"] = ()
    sim.reset()


def test_a_read_moves_to_v1_when_only_it_answers_and_says_so_once(cli, dialect):
    run = cli("rebalance", "--dry-run", "--format", "compact")  # several reads, one notice
    assert (run.code, run.err) == (0, NOTICE + "already balanced: nothing to move\n")
    assert [r["path"] for r in dialect.requests[:3]] == ["/api/v1/cluster/nodes", "/api/v1/cluster/status",
                                                          "/v1/cluster/status"]
    assert all(r["path"].startswith("/v1/") for r in dialect.requests[3:])
    run = cli("health", "--format", "json")  # the server's own /health shape, its status in the contract's form
    assert run.json()["status"] == "HEALTHY" and set(run.json()["checks"]) == {"database", "storage", "cluster"}


def test_a_change_is_never_sent_to_a_guessed_prefix(cli, dialect):
    run = cli("add-node", "--node-id", "n9", "--address", "10.0.0.9:8080")
    assert (run.code, run.out) == (1, "")
    assert run.err == ("error: the cluster API is not served under /api/v1 (HTTP 404 for POST /api/v1/cluster/nodes); "
                       "it is served under /v1: run again with --api-prefix /v1 (nothing was changed); 'cluster_cli.py "
                       "--host 127.0.0.1 --port %d doctor' checks each step\n" % dialect.port)
    assert dialect.changes() == [("POST", "/api/v1/cluster/nodes")] and "n9" not in dialect.cluster.nodes
    run = cli("--api-prefix", "/v1", "add-node", "--node-id", "n9", "--address", "10.0.0.9:8080")
    assert run.code == 0 and dialect.changes()[-1] == ("POST", "/v1/cluster/nodes")


@pytest.mark.parametrize("how", ["flag", "environment", "context"])
def test_the_prefix_set_any_way_is_used_from_the_first_request(cli, dialect, clean_env, tmp_path, how):
    argv = ["status"]
    if how == "flag":
        argv = ["--api-prefix", "/v1/"] + argv  # the trailing slash is not doubled
    elif how == "environment":
        clean_env.setenv("JADEVECTORDB_API_PREFIX", "/v1")
    else:
        config = tmp_path / "cluster.toml"
        config.write_text('[contexts.ref]\nurl = "%s"\napi_prefix = "/v1"\n' % dialect.url)
        config.chmod(0o600)
        argv = ["--config", str(config), "--context", "ref"] + argv
    run = cli(*argv, target=how != "context")
    assert (run.code, run.err) == (0, ""), run
    assert [r["path"] for r in dialect.requests] == ["/v1/cluster/status"]


def test_a_given_prefix_is_never_guessed_past(cli, dialect):
    run = cli("--api-prefix", "/api/v2", "status")
    assert (run.code, run.out) == (1, "")
    assert run.err == ("error: the cluster API is not served under /api/v2 (HTTP 404 for GET /api/v2/cluster/status); "
                       "it answers /health, so this is a JadeVectorDB node that serves no cluster API under /api/v2: "
                       "set --api-prefix to the path it uses (JadeVectorDB's own server: /v1); "
                       "'cluster_cli.py --host 127.0.0.1 --port %d --api-prefix /api/v2 doctor' checks each step\n"
                       % dialect.port)
    assert [r["path"] for r in dialect.requests] == ["/api/v2/cluster/status", "/health"]


@pytest.mark.parametrize("value", ["v1", "/v1?x=1", "/a b", "//v1"])
def test_a_malformed_prefix_is_refused_before_anything_is_sent(cli, sim, clean_env, value):
    run = cli("--api-prefix", value, "status")
    assert run.code == 2 and run.err.startswith("error: --api-prefix must be a path such as /api/v1 or /v1, got ")
    clean_env.setenv("JADEVECTORDB_API_PREFIX", value)
    run = cli("status")
    assert run.code == 2 and run.err.startswith("error: JADEVECTORDB_API_PREFIX must be a path such as /api/v1 ")
    assert sim.requests == []


def test_a_501_quotes_the_servers_message(cli, sim):
    sim.fault(respond=[{"status": 501, "body": '{"error": "cluster management is not implemented in this build"}'}])
    run = cli("nodes")
    assert (run.code, run.err) == (1, "error: cluster management is not implemented in this build (HTTP 501)\n")


def test_the_readmes_dialect_line_works_as_shown(cli, dialect, clean_env):
    line = block_after("### The server's own dialect", "bash").split("#")[0].split()
    assert line[:2] == ["python", "cluster_cli.py"]
    clean_env.setenv("JADEVECTORDB_PORT", str(dialect.port))
    run = cli(*line[2:], target=False)
    assert (run.code, run.err) == (0, "") and "Status: HEALTHY" in run.lines
    assert [r["path"] for r in dialect.requests] == ["/v1/cluster/status"]
