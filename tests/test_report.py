"""report: each indicator and diagnosis against the simulator in the state it diagnoses, its exit codes,
formats and --since; every action it gives is a command line this CLI parses."""
import json
import shlex

import pytest

import cluster_cli
import simulator

INDICATORS = ["master", "nodes", "shard_availability", "replication", "migrations", "balance", "resources", "errors"]


def report(cli, *argv):
    """Run report --format json; return (exit code, the report), each action checked against the parser."""
    run = cli("report", "--format", "json", *argv)
    data = run.json()
    for indicator in data["indicators"].values():
        for diagnosis in indicator["diagnoses"]:
            words = shlex.split(diagnosis["action"])
            assert words[0] == "cluster_cli.py", diagnosis
            cluster_cli.build_parser(words[1:]).parse_args(words[1:])  # exits 2 (SystemExit) if it does not parse
    return run.code, data


def not_green(data) -> dict:
    return {name: (i["status"], [d["id"] for d in i["diagnoses"]]) for name, i in data["indicators"].items()
            if i["status"] != "GREEN"}


def test_a_healthy_cluster_is_green_in_every_indicator_and_exits_0(cli):
    code, data = report(cli)
    assert (code, data["status"], list(data["indicators"]), not_green(data)) == (0, "GREEN", INDICATORS, {})
    assert cli("report", "-o", "compact").out == "GREEN | all 8 indicators GREEN\n"
    table = cli("report").lines
    assert table[:3] == ["Cluster Health Report", "=====================", "Status: GREEN"]


def test_a_node_down_is_yellow_with_what_it_affects_and_what_to_run(cli, sim):
    sim.down("node-worker-002")
    code, data = report(cli)
    assert (code, data["status"]) == (4, "YELLOW")
    assert not_green(data) == {"nodes": ("YELLOW", ["nodes.unreachable"]),
                               "replication": ("YELLOW", ["replication.under_replicated"]),
                               "errors": ("YELLOW", ["errors.recent"])}
    nodes = data["indicators"]["nodes"]
    assert nodes["symptom"] == "1 node unreachable"
    assert nodes["impacts"] == [{"severity": 2, "areas": ["search", "ingest"],
                                 "description": "Shards on the nodes named are served by fewer copies."}]
    assert nodes["diagnoses"][0]["action"] == "cluster_cli.py node-health --node-id node-worker-002"
    assert nodes["diagnoses"][0]["affected"] == {"nodes": ["node-worker-002"], "shards": [], "nodes_total": 1,
                                                 "shards_total": 0, "truncated": False}
    short = data["indicators"]["replication"]["diagnoses"][0]
    assert short["action"] == "cluster_cli.py remove-node --node-id node-worker-002 --dry-run"
    assert short["affected"]["shards_total"] == 8
    run = cli("report", "-o", "compact")
    assert (run.code, run.out) == (4, "YELLOW | 1 node unreachable | 8 shards under-replicated | "
                                      "1 error in the last 15 minutes\n")
    assert run.err == "error: the cluster is YELLOW: 1 node unreachable | 8 shards under-replicated | " \
                      "1 error in the last 15 minutes\n"
    table = cli("report").out
    assert "│ nodes              │ YELLOW │ 1 node unreachable" in table
    assert "│ cluster_cli.py node-health --node-id node-worker-002 │" in table.replace("  ", " ").replace("  ", " ") \
        or "cluster_cli.py node-health --node-id node-worker-002" in table


def test_shards_with_no_live_copy_are_red_and_a_long_list_is_cut_and_says_so(cli, sim):
    sim.down("node-worker-001")
    sim.down("node-worker-002")
    code, data = report(cli, "--max-affected", "2")
    assert (code, data["status"]) == (4, "RED")
    offline = data["indicators"]["shard_availability"]
    assert (offline["status"], offline["symptom"]) == ("RED", "4 shards offline")
    affected = offline["diagnoses"][0]["affected"]
    assert (len(affected["shards"]), affected["shards_total"], affected["truncated"]) == (2, 4, True)
    assert data["indicators"]["nodes"]["status"] == "RED"  # half the nodes or more
    assert cli("report", "--max-affected", "x").code == 2


def test_a_stalled_migration_is_named_with_the_command_to_follow_it(cli, sim):
    sim.fault(stall_migrations=["shard-03"])
    shard = sim.cluster.shards["shard-03"]
    target = next(n for n in sim.cluster.nodes if n not in [shard["primary_node"]] + shard["replica_nodes"])
    assert cli("migrate-shard", "--shard-id", "shard-03", "--to-node", target).code == 0
    code, data = report(cli)
    assert data["indicators"]["migrations"]["status"] == "GREEN"  # running, not yet stalled
    assert data["indicators"]["migrations"]["symptom"] == "1 migration running"
    sim.advance(cluster_cli.DEFAULT_STALL_TIMEOUT + 1)
    code, data = report(cli)
    migrations = data["indicators"]["migrations"]
    assert (code, migrations["status"], migrations["symptom"]) == (4, "YELLOW", "1 migration stalled")
    assert migrations["diagnoses"][0]["action"] == "cluster_cli.py shard-status --shard-id shard-03"
    assert migrations["diagnoses"][0]["affected"]["shards"] == ["shard-03"]


def test_a_rebalance_that_failed_is_named_with_its_report(cli, sim):
    assert cli("add-node", "--node-id", "node-worker-004", "--address", "10.0.0.9:8080").code == 0
    sim.advance(60)
    code, data = report(cli)
    balance = data["indicators"]["balance"]
    assert (balance["status"], balance["diagnoses"][0]["id"]) == ("YELLOW", "balance.uneven_primaries")
    assert balance["symptom"].startswith("primaries uneven: ") and "0 on node-worker-004" in balance["symptom"]
    assert balance["diagnoses"][0]["action"] == "cluster_cli.py rebalance --dry-run"
    sim.fault(fail_migrations={shard: "disk full" for shard in sim.cluster.shards})
    assert cli("rebalance", "--yes", "--poll-interval", "0.05").code == 1
    code, data = report(cli)
    migrations = data["indicators"]["migrations"]
    assert [d["id"] for d in migrations["diagnoses"]] == ["migrations.operation_unfinished"]
    operation = cli("operations", "-o", "json").json()[-1]["operation"]
    assert migrations["diagnoses"][0]["action"] == "cluster_cli.py operations show %s" % operation
    assert migrations["diagnoses"][0]["cause"].startswith("%s ended failed: 0 of " % operation)


@pytest.mark.parametrize("disk, level", [(88, "YELLOW"), (97, "RED")])
def test_a_disk_nearly_full_is_named_by_its_node(cli, sim, disk, level):
    sim.control("/_sim/load", {"nodes": {"node-worker-002": {"disk_usage": disk}}})
    code, data = report(cli)
    resources = data["indicators"]["resources"]
    assert (code, data["status"], resources["status"]) == (4, level, level)
    assert resources["symptom"] == "disk %d%% on node-worker-002" % disk
    assert resources["diagnoses"][0]["id"] == "resources.disk"
    assert resources["diagnoses"][0]["action"] == "cluster_cli.py node-health --node-id node-worker-002"


def test_a_read_that_fails_is_unknown_never_green_and_exits_3(cli, sim):
    sim.fault(fail_paths={"/api/v1/cluster/diagnostics": 500})
    code, data = report(cli, "--retries", "0")
    errors = data["indicators"]["errors"]
    assert (code, data["status"], errors["status"]) == (3, "UNKNOWN", "UNKNOWN")
    assert errors["symptom"].startswith("could not read diagnostics: ")
    assert errors["diagnoses"][0]["action"] == "cluster_cli.py doctor"
    sim.down("node-worker-002")  # what is known to be wrong is not hidden by what could not be read
    code, data = report(cli, "--retries", "0")
    assert (code, data["status"]) == (4, "YELLOW")


def test_a_cluster_that_cannot_be_read_at_all_is_exit_3_with_one_line(cli):
    run = cli("--host", "127.0.0.1", "--port", "1", "--retries", "0", "report", target=False)
    assert (run.code, run.out, len(run.err.splitlines())) == (3, "", 1)


def test_since_shows_only_what_changed(cli, sim, tmp_path):
    saved = tmp_path / "before.json"
    saved.write_text(cli("report", "-o", "json").out)
    run = cli("report", "--since", str(saved), "-o", "json")
    assert (run.code, run.json()["indicators"]) == (0, {})
    assert cli("report", "--since", str(saved), "-o", "compact").out == \
        "GREEN | nothing changed since %s\n" % saved
    sim.down("node-worker-002")
    code, data = report(cli, "--since", str(saved))
    assert {name: i["was"] for name, i in data["indicators"].items()} == \
        {"nodes": "GREEN", "replication": "GREEN", "resources": "GREEN", "errors": "GREEN"}
    assert "1 node unreachable (was GREEN)" in cli("report", "--since", str(saved)).out
    saved.write_text("[]")
    run = cli("report", "--since", str(saved))
    assert (run.code, run.err) == (2, "error: --since: %r is not a saved report ('report --format json')\n"
                                   % str(saved))


def test_prometheus_has_one_gauge_per_indicator(cli, sim):
    sim.down("node-worker-002")
    lines = [line for line in cli("report", "-o", "prometheus").lines
             if line.startswith("jadevectordb_health_indicator_status{")]
    assert lines == ['jadevectordb_health_indicator_status{indicator="%s"} %d' % (name, level) for name, level in
                     zip(INDICATORS, (0, 2, 0, 2, 0, 0, 0, 2))]


@pytest.mark.parametrize("down", [False, True])
def test_columns_shape_the_report_whatever_its_status(cli, sim, down):
    if down:  # the report is then the answer of an exit 4: shaped all the same
        sim.down("node-worker-002")
    run = cli("report", "--columns", "status", "-o", "json")
    assert (run.code, run.json()) == (4 if down else 0, [{"status": "YELLOW" if down else "GREEN"}])
    run = cli("report", "--columns", "bogus")
    assert (run.code, run.out) == (2, "") and run.err.startswith("error: --columns: no field 'bogus'; the fields are "
                                                                 "status, cluster, indicators")


@pytest.mark.parametrize("personality", sorted(simulator.PERSONALITIES))
def test_every_server_gives_the_same_report(cli, sim, clean_env, personality):
    sim.reset(personality=personality)
    if simulator.traits_of(personality).get("dialect"):
        clean_env.setenv("JADEVECTORDB_API_PREFIX", "/v1")
    sim.down("node-worker-002")
    code, data = report(cli)
    assert (code, not_green(data)) == (4, {"nodes": ("YELLOW", ["nodes.unreachable"]),
                                           "replication": ("YELLOW", ["replication.under_replicated"]),
                                           "errors": ("YELLOW", ["errors.recent"])})
    assert json.dumps(data["indicators"]["replication"]["symptom"]) == '"8 shards under-replicated"'
