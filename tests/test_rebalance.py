"""rebalance and drain-node against the simulator: plan, apply, verify, and every way it can stop."""
import json
import re
import signal
import subprocess
import sys

import pytest

import cluster_cli
from conftest import SCRIPT, interruptible, wait_until

FAST = ("--poll-interval", "0.05")


@pytest.fixture
def grown(sim, cli):
    """The default cluster plus node-worker-003, joined and HEALTHY, holding nothing."""
    sim.reset(migration_seconds=0.1)
    assert cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080").code == 0
    sim.advance(1)  # past --join-seconds
    return sim


def primaries(sim) -> dict:
    counts = {}
    for shard in sim.cluster.shards.values():
        counts[shard["primary_node"]] = counts.get(shard["primary_node"], 0) + 1
    return counts


def migrations(sim) -> list:
    """The migrations the cluster was asked for: their bodies, with the shard from the path."""
    return [dict(json.loads(r["body"]), shard=r["path"].split("/")[-2])
            for r in sim.requests if r["method"] == "POST" and r["path"].endswith("/migrate")]


def test_add_a_node_then_rebalance(cli, grown):
    run = cli("rebalance", *FAST)
    assert run.code == 0, run
    assert primaries(grown) == {"node-master-001": 3, "node-worker-001": 3, "node-worker-002": 3,
                                "node-worker-003": 3}
    assert [(m["shard"], m["source_node"], m["target_node"]) for m in migrations(grown)] == [
        ("shard-00", "node-worker-001", "node-worker-003"), ("shard-01", "node-worker-002", "node-worker-003"),
        ("shard-03", "node-master-001", "node-worker-003")]
    title = "Rebalance on " + grown.url
    assert run.lines[:12] == [title, "=" * len(title), "Completed: 3", "Failed: 0", "Stalled: 0", "Unknown: 0",
                              "Skipped: 0", "Running: 0", "Not Started: 0", "Stale: 0", "Verified: yes",
                              "Operation: " + json.loads(cli("operations", "-o", "json").out)[0]["operation"]]
    assert run.err.splitlines()[0] == ("move 1/3 started: shard-00 node-worker-001 -> node-worker-003 "
                                       "(migration mig-7f01)")
    assert cli("rebalance").err == "already balanced: nothing to move\n"


def test_the_dry_run_prints_the_plan_and_sends_nothing(cli, grown):
    run = cli("rebalance", "--dry-run", "--format", "json")
    assert run.code == 0
    plan = run.json()
    assert set(plan) >= {"moves", "before", "after", "skipped"}
    assert plan["moves"][0] == {"shard_id": "shard-00", "source_node": "node-worker-001",
                                "target_node": "node-worker-003", "vector_count": 125432}
    assert plan["before"]["node-worker-003"] == 0 and plan["after"]["node-worker-003"] == 3
    compact = cli("rebalance", "--dry-run", "--format", "compact").lines
    assert compact[0] == "rebalance | 3 moves | spread 4 -> 0"
    assert compact[1] == "shard-00 | node-worker-001 | node-worker-003 | 125,432"
    assert migrations(grown) == []


def test_a_balanced_cluster_sends_nothing(cli, sim):
    run = cli("rebalance", "--yes")
    assert (run.code, run.err) == (0, "already balanced: nothing to move\n")
    assert sim.changes() == []


def test_right_after_add_node_the_plan_says_what_to_wait_for_not_already_balanced(cli, sim):
    sim.reset(join_seconds=60)  # JOINING until advanced, however slowly this machine runs the next commands
    assert cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080").code == 0  # JOINING
    run = cli("rebalance", "--dry-run", "--format", "json")
    assert run.code == 4  # not balanced, and it cannot be yet
    assert run.json()["left_out"] == [{"node_id": "node-worker-003", "status": "JOINING", "primaries": 0, "reason": (
        "takes primaries once HEALTHY: wait for it (add-node --wait, or nodes --status JOINING) and plan again")}]
    assert run.err == ("error: nothing to move yet: node-worker-003 is JOINING and holds no primary; wait until it is "
                       "HEALTHY ('cluster_cli.py {0} add-node ... --wait', or 'cluster_cli.py {0} nodes --status "
                       "JOINING'), then plan again\n".format("--host 127.0.0.1 --port %d" % sim.port))
    assert "already balanced" not in cli("rebalance", "--yes").err and sim.changes() == [
        ("POST", "/api/v1/cluster/nodes")]
    sim.advance(60)  # joined
    assert cli("rebalance", "--dry-run", "--format", "json").json()["left_out"] == []


def test_add_node_wait_follows_the_node_until_it_is_healthy(cli, sim):
    sim.reset(join_seconds=0.5)
    run = cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080", "--wait", *FAST,
              "--format", "compact")
    assert run.code == 0, run
    assert run.out == "node-worker-003 | HEALTHY | 192.168.1.13:8080 | %s\n" % sim.url
    assert run.err == ("node node-worker-003 added, JOINING; waiting until it is HEALTHY (Ctrl-C stops waiting, not "
                       "the join)\nnode node-worker-003 is HEALTHY\n")
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_add_node_wait_exits_4_when_the_node_is_still_joining(cli, sim):
    sim.reset(join_seconds=600)
    run = cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080", "--wait",
              "--wait-timeout", "0.2", *FAST, "--format", "compact")
    assert run.code == 4
    assert run.out == "node-worker-003 | JOINING | 192.168.1.13:8080 | %s\n" % sim.url
    assert run.err.splitlines()[-1].startswith("error: node node-worker-003 is still JOINING after 0.")


def test_a_drain_dry_run_gives_its_reasons_in_compact_form_too(cli, sim):
    sim.down("node-worker-002")  # its primaries have no live copy to move from
    skipped = cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "--format", "json").json()["skipped"]
    compact = cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "-o", "compact").lines
    assert compact == ["drain | 0 moves | spread 0 -> 0"] + [
        "skipped: %s | %s" % (s["shard_id"], s["reason"]) for s in skipped] and len(skipped) == 4


@pytest.mark.parametrize("status", ["UNREACHABLE", "DEGRADED", "LEAVING"])
def test_plans_name_each_node_they_leave_out_in_every_format(cli, sim, status):
    sim.reset(nodes=4)  # so node-worker-001's primaries have somewhere to go with node-worker-002 left out
    sim.cluster.nodes["node-worker-002"]["status"] = status
    sim.cluster._changed()
    for argv in (["rebalance"], ["drain-node", "--node-id", "node-worker-001"]):
        plan = cli(*argv, "--dry-run", "--format", "json")
        assert [(n["node_id"], n["status"]) for n in plan.json()["left_out"]] == [("node-worker-002", status)], plan
        reason = plan.json()["left_out"][0]["reason"]
        compact = cli(*argv, "--dry-run", "-o", "compact").lines
        assert "left out: node-worker-002 | %s | %s" % (status, reason) in compact
        table = cli(*argv, "--dry-run").out
        assert "Left Out (only HEALTHY nodes take primaries)" in table and reason in table


def test_ndjson_streams_each_move_state_change_then_the_report_with_the_pace(cli, grown):
    run = cli("rebalance", "--yes", *FAST, "--format", "ndjson")
    assert run.code == 0, run
    lines = [json.loads(line) for line in run.lines]
    events = [(e["event"], e["shard_id"]) for e in lines[:-1]]
    assert events == [(event, shard) for shard in ("shard-00", "shard-01", "shard-03")
                      for event in ("sending", "started", "completed")]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", e["at"]) for e in lines[:-1])
    report = lines[-1]
    assert (report["moves_done"], report["moves_total"], report["seconds_left"]) == (3, 3, 0)
    assert report["vectors_per_second"] > 0
    assert re.search(r"^move 3/3 completed: .*; [0-9,]+ vectors/s, all moved$", run.err, re.M)


def test_migrate_shard_wait_streams_its_status_changes_as_ndjson(cli, sim):
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--wait", *FAST,
              "--format", "ndjson")
    assert run.code == 0, run
    lines = [json.loads(line) for line in run.lines]
    assert [line["event"] for line in lines[:-1]][-1] == "COMPLETED" and lines[-1]["status"] == "COMPLETED"
    assert len({line["event"] for line in lines[:-1]}) == len(lines) - 1  # one line per change, no repeats


def test_concurrency_never_goes_above_max_concurrent(cli, sim):
    sim.reset(migration_seconds=0.3)
    for name, address in (("node-worker-003", "192.168.1.13:8080"), ("node-worker-004", "192.168.1.14:8080")):
        cli("add-node", "--node-id", name, "--address", address)
    sim.advance(1)
    run = cli("rebalance", "--max-concurrent", "2", *FAST)
    assert run.code == 0, run
    assert len(migrations(sim)) == 4
    assert sim.cluster.most_running == 2  # two at once, never three


def test_the_first_failure_stops_new_moves_and_is_reported(cli, grown):
    grown.fault(fail_migrations={"shard-01": "disk full on node-worker-003"})
    run = cli("rebalance", *FAST, "--format", "compact")
    assert (run.code, run.out) == (1, "")  # a failure: the report goes to stderr, before the error
    operation = json.loads(cli("operations", "-o", "json").out)[0]
    assert operation["state"] == "failed"
    assert run.err.splitlines()[-1] == (
        "error: the move of shard-01 to node-worker-003 failed: disk full on node-worker-003; 1 completed, 1 failed, "
        "1 not started; resume with 'cluster_cli.py --host 127.0.0.1 --port %d rebalance --resume %s'"
        % (grown.port, operation["operation"]))
    assert [line.split(" | ")[4] for line in run.err.splitlines()[-4:-1]] == ["COMPLETED", "FAILED", "NOT STARTED"]
    assert len(migrations(grown)) == 2


def test_a_stale_plan_is_refused_before_anything_is_sent(cli, grown, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text(cli("rebalance", "--dry-run", "--format", "json").out)
    assert cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-worker-003", "--wait", *FAST).code == 0
    before = len(migrations(grown))
    run = cli("rebalance", "--plan", saved, "--yes")
    assert run.code == 1
    assert run.err == ("error: plan is stale, nothing was sent: the primaries per node changed since it was made: "
                       "node-worker-001 4 -> 3, node-worker-003 0 -> 1; shard-00 node-worker-001 -> node-worker-003: "
                       "its primary is on node-worker-003 now, not node-worker-001\n")
    assert len(migrations(grown)) == before


def test_a_saved_plan_is_applied_exactly(cli, grown, tmp_path):
    saved = tmp_path / "plan.json"
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    plan["moves"] = plan["moves"][:1]
    plan["after"] = dict(plan["before"], **{"node-worker-001": 3, "node-worker-003": 1})
    saved.write_text(json.dumps(plan))
    run = cli("rebalance", "--plan", saved, *FAST)
    assert run.code == 0, run
    assert [m["shard"] for m in migrations(grown)] == ["shard-00"]


def test_drain_moves_every_primary_off_and_keeps_the_node(cli, sim):
    sim.reset(migration_seconds=0.1)
    run = cli("drain-node", "--node-id", "node-worker-002", *FAST)
    assert run.code == 0, run
    assert "node-worker-002" not in primaries(sim) and "node-worker-002" in sim.cluster.nodes
    assert run.lines[0] == "Drain of node-worker-002 on " + sim.url
    again = cli("drain-node", "--node-id", "node-worker-002")
    assert (again.code, again.err) == (0, "node-worker-002 holds no primary: nothing to move\n")


def test_drain_with_remove_removes_the_node_after_the_moves(cli, sim):
    sim.reset(migration_seconds=0.1)
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", *FAST)
    assert run.code == 0, run
    assert run.out.startswith("Node node-worker-002 removed from %s: " % sim.url)
    assert sim.changes()[-1] == ("DELETE", "/api/v1/cluster/nodes/node-worker-002")
    assert len(migrations(sim)) == 4 and "node-worker-002" not in sim.cluster.nodes


def test_a_drained_node_goes_straight_to_removal(cli, sim):
    sim.reset(migration_seconds=0.1)
    assert cli("drain-node", "--node-id", "node-worker-002", *FAST).code == 0
    moved = len(migrations(sim))
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove")
    assert run.code == 0 and run.out.startswith("Node node-worker-002 removed")
    assert len(migrations(sim)) == moved


def test_a_drain_that_cannot_move_everything_names_what_stays_and_keeps_the_node(cli, sim):
    sim.reset(nodes=2, shards=4)  # replication factor 2 on two nodes: the other node holds every copy
    run = cli("drain-node", "--node-id", "node-worker-001", "--dry-run", "--format", "json")
    assert run.code == 4
    assert run.json()["stuck"] == [{"shard_id": s, "reason": "every other HEALTHY node already holds a copy"}
                                   for s in ("shard-00", "shard-02")]
    assert run.err == ("error: 2 primaries have no other node to go to, so they stay on node-worker-001: shard-00: "
                       "every other HEALTHY node already holds a copy; shard-02: every other HEALTHY node already "
                       "holds a copy\n")
    run = cli("drain-node", "--node-id", "node-worker-001", "--remove", "--yes", "--format", "compact")
    assert run.code == 4 and "they stay on node-worker-001; it was not removed: shard-00: " in run.err
    assert sim.changes() == [] and "node-worker-001" in sim.cluster.nodes


def test_a_drain_moves_what_can_move_then_ends_4_naming_what_stays(cli, sim):
    sim.reset(nodes=3, shards=6, migration_seconds=0.1)
    stuck = sim.cluster.shards["shard-00"]  # a copy on every other node: it cannot move; the others can
    stuck["replica_nodes"] = [n for n in sim.cluster.nodes if n != stuck["primary_node"]]
    sim.cluster._changed()
    source = stuck["primary_node"]
    movable = [s["shard_id"] for s in sim.cluster.shards.values() if s["primary_node"] == source and s is not stuck]
    run = cli("drain-node", "--node-id", source, "--remove", "--yes", *FAST, "--format", "json")
    assert run.code == 4, run
    assert sorted(m["shard_id"] for m in run.json()["completed"]) == sorted(movable) and movable
    assert run.err.splitlines()[-1] == ("error: 1 primary has no other node to go to, so it stays on %s; it was not "
                                        "removed: shard-00: every other HEALTHY node already holds a copy" % source)
    assert source in sim.cluster.nodes and ("DELETE", "/api/v1/cluster/nodes/" + source) not in sim.changes()


def test_a_wait_that_runs_out_reports_what_is_running(cli, grown):
    grown.reset(migration_seconds=600)
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    grown.advance(1)
    run = cli("rebalance", "--wait-timeout", "0.3", *FAST, "--format", "compact")
    assert run.code == 4
    operation = json.loads(cli("operations", "-o", "json").out)[0]["operation"]
    assert run.err.splitlines()[-1] == (
        "error: --wait-timeout ran out: 1 running, 2 not started; the running migrations go on: mig-7f01 (shard-00; "
        "'cluster_cli.py --host 127.0.0.1 --port %d shard-status --shard-id shard-00'); resume with "
        "'cluster_cli.py --host 127.0.0.1 --port %d rebalance --resume %s'" % (grown.port, grown.port, operation))
    assert [line.split(" | ")[4] for line in run.lines] == ["RUNNING", "NOT STARTED", "NOT STARTED"]


def test_ctrl_c_stops_new_moves_and_names_the_running_ones(sim):
    sim.reset(migration_seconds=600)
    sim.cluster.add_node({"node_id": "node-worker-003", "address": "192.168.1.13:8080"})
    sim.advance(1)
    process = subprocess.Popen([sys.executable, SCRIPT, "--url", sim.url, "rebalance", "--poll-interval", "0.05"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    wait_until(sim.polled_after_a_change, 20, what="a poll after the first move")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out) == (130, "")
    assert re.fullmatch(
        "error: interrupted; no new moves were started; migrations still running: mig-7f01 \\(shard-00; "
        "'cluster_cli.py --url %s shard-status --shard-id shard-00'\\); resume with 'cluster_cli.py --url %s "
        "rebalance --resume rebalance-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}'" % (sim.url, sim.url), err.splitlines()[-1])
    assert "RUNNING" in err  # the report of what ran, before the error
    assert len(migrations(sim)) == 1


def test_remove_node_points_at_drain_node(cli, sim):
    run = cli("remove-node", "--node-id", "node-worker-002", "--dry-run", "--format", "compact")
    assert run.code == 0
    assert run.err == ("node-worker-002 holds 4 primaries, which the cluster will move all at once; "
                       "'cluster_cli.py --host 127.0.0.1 --port %d drain-node --node-id node-worker-002 --remove' "
                       "moves them first, a few at a time, and then removes it\n" % sim.port)


def test_the_library_plans_and_applies(grown):
    client = cluster_cli.ClusterCLI(url=grown.url)
    plan = client.plan_rebalance()
    events = []
    report = client.apply_plan(plan, max_concurrent=3, progress=lambda event, move: events.append(event),
                               poll_interval=0.05)
    assert [len(report[k]) for k in ("completed", "failed", "running", "not_started")] == [3, 0, 0, 0]
    assert report["verified"] is True and events.count("started") == 3
    with pytest.raises(cluster_cli.StalePlan) as raised:
        client.apply_plan(plan)
    assert [m["shard_id"] for m in raised.value.moves] == [None, "shard-00", "shard-01", "shard-03"]  # None: the plan
    with pytest.raises(cluster_cli.InvalidInput):
        client.apply_plan({"moves": [{"shard_id": ".."}]})


@pytest.mark.parametrize("argument, value", [("poll_interval", -1), ("poll_interval", "soon"),
                                             ("poll_interval", float("nan")), ("progress", "print"),
                                             ("max_concurrent", 0), ("timeout", float("inf"))])
def test_apply_plan_checks_its_arguments_before_anything_is_sent(grown, argument, value):
    client = cluster_cli.ClusterCLI(url=grown.url)
    plan = client.plan_rebalance()
    grown.cluster.requests.clear()
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        client.apply_plan(plan, **{argument: value})
    assert raised.value.param == argument
    assert grown.changes() == []


def test_a_progress_callback_that_raises_stops_new_moves_and_the_report_comes_with_the_error(grown):
    client = cluster_cli.ClusterCLI(url=grown.url)
    plan = client.plan_rebalance()
    heard = []

    def progress(event, move):
        heard.append(event)
        if event == "started":
            raise ValueError("exporter down")
    with pytest.raises(cluster_cli.ProgressFailed) as raised:
        client.apply_plan(plan, max_concurrent=1, progress=progress, poll_interval=0.05)
    assert isinstance(raised.value.__cause__, ValueError) and raised.value.exit_code == 1
    assert str(raised.value).startswith("the progress callback raised ValueError: exporter down; no new move")
    report = raised.value.report
    assert [len(report[k]) for k in ("completed", "failed", "running", "not_started")] == [1, 0, 0, 2]
    assert heard == ["sending", "started"]  # never called again once it raised
    assert len(migrations(grown)) == 1 and grown.cluster.migrations["mig-7f01"]["status"] == "COMPLETED"


def test_on_a_terminal_the_plan_is_confirmed_and_progress_is_one_line(grown):
    from conftest import on_terminal
    code, shown, out = on_terminal(grown, ["rebalance", "--poll-interval", "0.05"], "stdin", answer="n\n")
    assert code == 1 and "Apply these 3 moves? [y/N]" in shown and "Rebalance plan (balance by shards)" in shown
    assert "error: aborted; nothing was moved" in shown and migrations(grown) == []
    code, shown, out = on_terminal(grown, ["rebalance", "--yes", "--poll-interval", "0.05"], "stderr")
    assert code == 0 and out.startswith("Rebalance on %s\n" % grown.url)
    assert "\rmoves 3/3 done, 0 running, 0 failed" in shown and "move 1/3 started" not in shown


def test_a_cluster_that_does_not_match_the_plan_afterwards_is_exit_1(cli, grown, tmp_path):
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    del plan["before"]  # written by hand: its `after` is what is checked, not derived from its moves
    plan["after"]["node-worker-003"] = 4  # what the cluster will not show
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    run = cli("rebalance", "--plan", saved, *FAST, "--format", "compact")
    assert run.code == 1
    assert run.err.splitlines()[-1] == ("error: the moves completed, but the cluster does not match the plan: "
                                        "node-worker-003 holds 3 primaries, planned 4")


def test_a_plan_trimmed_by_hand_applies_and_verifies_the_moves_it_kept(cli, grown, tmp_path):
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    plan["moves"] = plan["moves"][:1]  # jq '.moves |= .[:1]': its `after` still describes three moves
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    run = cli("rebalance", "--plan", saved, "--yes", *FAST, "--format", "json")
    assert run.code == 0, run
    assert run.json()["verified"] is True and len(run.json()["completed"]) == 1
    assert primaries(grown)["node-worker-003"] == 1


def test_a_trimmed_plan_with_a_stale_before_is_still_refused(cli, grown, tmp_path):
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    plan["moves"] = plan["moves"][:1]
    cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-003", "--wait", *FAST)
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    run = cli("rebalance", "--plan", saved, "--yes", *FAST)
    assert run.code == 1 and "the primaries per node changed since it was made" in run.err
    assert len(migrations(grown)) == 1  # only the hand-made one


def test_a_drain_plan_is_for_its_node_only(cli, sim, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text(cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "--format", "json").out)
    run = cli("drain-node", "--node-id", "node-worker-001", "--plan", saved)
    assert run.code == 2 and "is not a drain plan for node-worker-001" in run.err
    assert sim.changes() == []


# -- --columns, --sort-by and --no-headers: a plan and a report as their list of moves ------------

def test_shaping_flags_show_a_plan_as_its_moves(cli, grown):
    run = cli("rebalance", "--dry-run", "--sort-by", "-vector_count", "--columns", "shard_id,target_node,vector_count",
              "--no-headers", "--format", "tsv")
    assert (run.code, run.out) == (0, "shard-00\tnode-worker-003\t125432\nshard-01\tnode-worker-003\t118901\n"
                                      "shard-03\tnode-worker-003\t118419\n")
    run = cli("drain-node", "--node-id", "node-worker-001", "--dry-run", "--columns", "shard_id", "-o", "json")
    assert run.json() == [{"shard_id": "shard-00"}, {"shard_id": "shard-02"}, {"shard_id": "shard-06"},
                          {"shard_id": "shard-08"}]
    assert cli("rebalance", "--dry-run", "--columns", "help").lines == [
        "shard_id", "source_node", "target_node", "vector_count"]
    assert grown.changes() == [("POST", "/api/v1/cluster/nodes")]  # the fixture's add-node only


def test_shaping_flags_show_a_report_as_its_moves_and_their_results(cli, grown):
    run = cli("rebalance", "--yes", *FAST, "--columns", "shard_id,result,migration_id", "--sort-by", "-shard_id")
    assert run.code == 0
    assert run.lines == ["┌──────────┬───────────┬───────────┐",
                         "│ Shard ID │ Result    │ Migration │",
                         "├──────────┼───────────┼───────────┤",
                         "│ shard-03 │ COMPLETED │ mig-7f03  │",
                         "│ shard-01 │ COMPLETED │ mig-7f02  │",
                         "│ shard-00 │ COMPLETED │ mig-7f01  │",
                         "└──────────┴───────────┴───────────┘"]


def test_an_unknown_column_of_a_plan_names_the_fields(cli, grown):
    run = cli("rebalance", "--dry-run", "--columns", "shard,target_node")
    assert (run.code, run.out) == (2, "")
    assert run.err == ("error: --columns: no field 'shard'; the fields are shard_id, source_node, target_node, "
                       "vector_count ('--columns help' lists them)\n")
