"""Rebalance and drain left running: every ending, the journal, --resume, the lock, replicas after removal."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import cluster_cli
from conftest import SCRIPT, interruptible, wait_until

FAST = ("--poll-interval", "0.05")
OPERATION = r"rebalance-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}"


def grow(sim, cli, *names, migration_seconds=0.1):
    """Start over with migrations of this length and these new nodes joined, HEALTHY and empty."""
    sim.reset(migration_seconds=migration_seconds)
    for i, name in enumerate(names):
        assert cli("add-node", "--node-id", name, "--address", "192.168.2.%d:8080" % (i + 1)).code == 0
    sim.advance(1)


def migrations(sim) -> list:
    return [dict(json.loads(r["body"]), shard=r["path"].split("/")[-2])
            for r in sim.requests if r["method"] == "POST" and r["path"].endswith("/migrate")]


def operations(cli) -> list:
    return json.loads(cli("operations", "--format", "json").out)


def primaries(sim) -> dict:
    counts = {}
    for shard in sim.cluster.shards.values():
        counts[shard["primary_node"]] = counts.get(shard["primary_node"], 0) + 1
    return counts


def moving(sim) -> bool:
    """Whether a migration was asked for and the CLI has polled since: it holds that move's answer."""
    methods = [(r["method"], r["path"].endswith("/migrate")) for r in sim.requests]
    return ("POST", True) in methods and "GET" in [m for m, _ in methods[methods.index(("POST", True)) + 1:]]


def test_a_stalled_move_ends_and_keeps_new_moves_off_its_nodes(cli, sim):
    grow(sim, cli, "node-worker-003")
    sim.fault(stall_migrations=["shard-00"])
    run = cli("rebalance", *FAST, "--stall-timeout", "0.5", "--format", "compact")
    assert run.code == 4
    results = {line.split(" | ")[0]: line.split(" | ")[4] for line in run.out.splitlines()}
    # shard-00 went to node-worker-003 and stopped there: nothing else goes to that node.
    assert results == {"shard-00": "STALLED", "shard-01": "NOT STARTED", "shard-03": "NOT STARTED"}
    assert [m["shard"] for m in migrations(sim)] == ["shard-00"]
    assert re.search(r"error: moves were given up on: 1 stalled, 2 not started; the running migrations go on: "
                     r"mig-7f01 \(shard-00; .*\); resume with '.* rebalance --resume %s'" % OPERATION, run.err)
    assert "no progress for" in run.out.splitlines()[0]
    assert operations(cli)[0]["state"] == "stalled"


def test_a_node_that_goes_quiet_mid_apply_gets_no_more_moves_and_the_run_ends(cli, sim):
    grow(sim, cli, "node-worker-003", "node-worker-004", migration_seconds=0.4)
    sim.fault(stall_on_down=True)
    stop = threading.Event()

    def take_it_down():  # once the first move into node-worker-003 runs, the node stops answering
        while not stop.is_set():
            if any(m["target_node"] == "node-worker-003" for m in migrations(sim)):
                sim.down("node-worker-003")
                return
            time.sleep(0.01)
    threading.Thread(target=take_it_down, daemon=True).start()
    try:
        run = cli("rebalance", *FAST, "--max-concurrent", "4", "--stall-timeout", "1", "--format", "json")
    finally:
        stop.set()
    assert run.code == 4
    report = run.json()
    into_down = [m for m in migrations(sim) if m["target_node"] == "node-worker-003"]
    assert len(into_down) == 1  # never a second move into the node that went quiet
    assert [m["target_node"] for m in report["stalled"]] == ["node-worker-003"]
    assert all(m["target_node"] != "node-worker-003" for m in report["completed"])


def test_a_migration_the_cluster_forgets_ends_as_unknown(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=600)
    sim.fault(forget_migrations=["shard-00"])
    run = cli("rebalance", *FAST, "--format", "compact")
    assert run.code == 4
    assert run.out.splitlines()[0] == ("shard-00 | node-worker-001 | node-worker-003 | mig-7f01 | UNKNOWN | the "
                                       "cluster no longer reports migration mig-7f01")


def test_a_target_that_is_no_longer_healthy_is_not_sent_a_move(cli, sim):
    grow(sim, cli, "node-worker-003")
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    client = cluster_cli.ClusterCLI(url=sim.url)
    sim.down("node-worker-003")
    with pytest.raises(cluster_cli.StalePlan):
        client.apply_plan(plan)  # the whole plan is checked first
    sim.up("node-worker-003")
    events = []

    def down_after_the_first(event, move):  # between two moves, the target goes down
        events.append(event)
        if event == "completed":
            sim.down("node-worker-003")
    report = client.apply_plan(plan, poll_interval=0.05, progress=down_after_the_first)
    assert [m["shard_id"] for m in report["completed"]] == ["shard-00"]
    assert [(m["shard_id"], m["error"]) for m in report["skipped"]] == [("shard-01", "node-worker-003 is UNREACHABLE")]
    assert len(migrations(sim)) == 1


def test_at_most_max_per_node_migrations_touch_one_node(cli, sim):
    grow(sim, cli, "node-worker-003", "node-worker-004", migration_seconds=0.3)
    run = cli("rebalance", *FAST, "--max-concurrent", "50")
    assert run.code == 0, run
    assert sim.cluster.most_per_node == 1
    assert sim.cluster.most_running == 2  # two pairs of nodes at once, never two moves into one node
    sim.reset()
    grow(sim, cli, "node-worker-003", "node-worker-004", migration_seconds=0.3)
    assert cli("rebalance", *FAST, "--max-concurrent", "50", "--max-per-node", "3").code == 0
    assert 1 < sim.cluster.most_per_node <= 3


def test_a_rejected_key_mid_apply_still_prints_what_runs(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=600)

    def rotate_the_key():
        wait_until(lambda: migrations(sim))
        sim.require_keys({"new-key": "admin"})
    threading.Thread(target=rotate_the_key, daemon=True).start()
    run = cli("rebalance", *FAST, "--format", "compact")
    assert run.code == 1
    assert [line.split(" | ")[4] for line in run.err.splitlines()[1:4]] == ["RUNNING", "NOT STARTED", "NOT STARTED"]
    assert re.fullmatch(r"error: missing or invalid API key \(HTTP 401 UNAUTHENTICATED\); no API key was sent; pass "
                        r"one with --api-key or JADEVECTORDB_API_KEY; resume with '.* rebalance --resume %s'"
                        % OPERATION, run.err.splitlines()[-1])
    assert operations(cli)[0]["state"] == "failed"


def start(sim, *argv, env=None):
    return subprocess.Popen([sys.executable, SCRIPT, "--url", sim.url] + list(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
                            env=dict(os.environ, **(env or {})))


def stopped_rebalance(sim, cli, signum=signal.SIGINT, *argv):
    """Start over with node-worker-003 joined and 600 s migrations; start a rebalance in a process and stop
    it with `signum` once its first move runs. Return (exit code, stdout, stderr)."""
    grow(sim, cli, "node-worker-003", migration_seconds=600)
    process = start(sim, "rebalance", *FAST, *argv)
    wait_until(lambda: moving(sim))
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def test_sigterm_then_resume_finishes_the_plan_without_sending_a_move_twice(cli, sim):
    code, out, err = stopped_rebalance(sim, cli, signal.SIGTERM, "--format", "compact")
    assert (code, out) == (143, "")
    assert "shard-00 | node-worker-001 | node-worker-003 | mig-7f01 | RUNNING" in err  # the report, then the error
    resume = re.search(r"resume with 'cluster_cli.py --url \S+ rebalance --resume (%s)'" % OPERATION,
                       err.splitlines()[-1]).group(1)
    listed = operations(cli)
    assert [(o["operation"], o["state"], o["completed"], o["moves"]) for o in listed] == [(resume, "interrupted", 0, 3)]
    sim.cluster.migration_seconds = 0.1
    sim.advance(600)  # the running migration ends while nothing watches it
    run = cli("rebalance", "--resume", *FAST)
    assert run.code == 0, run
    assert run.err.splitlines()[0] == "resuming %s: 0 of 3 moves completed" % resume
    assert [m["shard"] for m in migrations(sim)] == ["shard-00", "shard-01", "shard-03"]  # each sent once
    assert primaries(sim)["node-worker-003"] == 3
    assert operations(cli)[0]["state"] == "completed"
    assert cli("rebalance", "--resume").code == 2  # nothing left to resume


def test_a_resume_follows_a_migration_still_running(cli, sim):
    assert stopped_rebalance(sim, cli)[0] == 130
    sim.cluster.migration_seconds = 0.5  # the running one (started at 600 s) finishes soon
    run = cli("rebalance", "--resume", *FAST, "--format", "compact")
    assert run.code == 0, run
    assert [line.split(" | ")[:5] for line in run.lines] == [
        ["shard-00", "node-worker-001", "node-worker-003", "mig-7f01", "COMPLETED"],
        ["shard-01", "node-worker-002", "node-worker-003", "mig-7f02", "COMPLETED"],
        ["shard-03", "node-master-001", "node-worker-003", "mig-7f03", "COMPLETED"]]
    assert len(migrations(sim)) == 3


def test_a_new_run_after_an_interrupted_one_counts_its_migration_where_it_goes_and_ends_0(cli, sim):
    assert stopped_rebalance(sim, cli)[0] == 130  # shard-00 -> node-worker-003 still running
    sim.cluster.migration_seconds = 0.5
    run = cli("rebalance", "--yes", *FAST, "--format", "json")
    assert run.code == 0, run  # planned with shard-00 on node-worker-003, verified the same way
    assert run.json()["verified"] is True
    assert sorted(m["shard"] for m in migrations(sim)) == ["shard-00", "shard-01", "shard-03"]  # none sent twice
    assert primaries(sim)["node-worker-003"] == 3


def journal_lines(folder) -> list:
    """Every line of every journal under the state folder, each parsed: a torn line fails the test."""
    found = []
    for path in sorted((folder / "jadevectordb" / "operations").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                raise AssertionError("a torn line in %s: %r" % (path.name, line[-60:])) from None
    return found


def test_no_move_is_sent_that_the_journal_could_not_say_first(cli, sim, tmp_path, clean_env):
    import resource
    grow(sim, cli, "node-worker-003", migration_seconds=0.05)
    plan_size = len(cli("rebalance", "--dry-run", "--format", "json").out)
    for extra in range(0, 1400, 90):  # the limit falls inside each line of the journal in turn
        sim.reset(migration_seconds=0.05)
        cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.2.1:8080")
        sim.advance(1)
        state = tmp_path / ("state-%d" % extra)
        limit = plan_size // 2 + extra

        def limited(limit=limit):
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        done = subprocess.run([sys.executable, SCRIPT, "--url", sim.url, "rebalance", "--yes", *FAST],
                              capture_output=True, text=True, timeout=60, preexec_fn=limited,
                              env=dict({k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
                                       XDG_STATE_HOME=str(state)))  # coverage could not save its data here
        journaled = journal_lines(state) if (state / "jadevectordb" / "operations").exists() else []
        said = [r["shard_id"] for r in journaled if r.get("event") == "sending"]
        sent = [m["shard"] for m in migrations(sim)]
        assert sent == said[:len(sent)] and len(said) - len(sent) in (0, 1), (extra, sent, said, done.stderr)
        if done.returncode != 0:
            # The CLI's own lines
            errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
            assert errors and "cannot write the operation's journal" in errors[-1], done.stderr
            assert not any(line.startswith("error: unexpected") for line in errors), done.stderr
            if sent:  # moves went out: the ending names what they were and how to resume
                assert "rebalance --resume" in done.stderr, done.stderr


def test_a_journal_line_of_another_shape_is_skipped_with_a_warning_and_the_rest_is_listed(cli, sim, tmp_path):
    grow(sim, cli, "node-worker-003")
    assert cli("rebalance", "--yes", *FAST).code == 0
    journal = next((tmp_path / "state" / "jadevectordb" / "operations").glob("*.jsonl"))
    count = len(journal.read_text().splitlines())
    with journal.open("a") as out:
        out.write('{"event":"completed","shard_id":["a"]}\n[1, 2]\n')
    for argv in (["operations", "--format", "json"], ["operations"]):
        run = cli(*argv)
        assert run.code == 0, run
        assert run.err.splitlines()[:2] == ["warning: %s line %d is not a record of this CLI's journals; skipped"
                                            % (journal, n) for n in (count + 1, count + 2)]
    assert [o["state"] for o in operations(cli)] == ["completed"]


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "link to a journal"])
def test_what_is_not_a_journal_in_the_operations_folder_is_skipped(cli, sim, tmp_path, kind):
    grow(sim, cli, "node-worker-003")
    assert cli("rebalance", "--yes", *FAST).code == 0
    folder = tmp_path / "state" / "jadevectordb" / "operations"
    odd = folder / "rebalance-20990101-000000-abcd.jsonl"
    if kind == "fifo":
        os.mkfifo(str(odd))
    elif kind == "link to /dev/zero":
        odd.symlink_to("/dev/zero")
    else:
        odd.symlink_to(next(folder.glob("rebalance-2026*.jsonl")))
    run = cli("operations", "--format", "json")
    assert run.code == 0 and len(run.json()) == 1  # at once: nothing waits on the FIFO or reads /dev/zero
    assert run.err == "warning: %s is %s, not an operation's journal; skipped\n" % (
        odd, "not a regular file" if kind == "fifo" else "a link")


def test_the_journal_never_holds_the_key_a_server_echoes(cli, sim, tmp_path):
    grow(sim, cli, "node-worker-003")
    sim.require_keys({"s3cr3t-k3y-0123": "admin"})
    sim.fault(fail_migrations={"shard-00": "request with Authorization: Bearer s3cr3t-k3y-0123 conflicts"})
    run = cli("--api-key", "s3cr3t-k3y-0123", "rebalance", "--yes", *FAST)
    assert run.code == 1 and "s3cr3t" not in run.err
    journal = next((tmp_path / "state" / "jadevectordb" / "operations").glob("*.jsonl")).read_text()
    assert "Bearer ***************" in journal and "s3cr3t" not in journal


def stopped_journal(sim, cli, tmp_path):
    """A rebalance stopped with its first move running; returns (its journal's path, its lines)."""
    assert stopped_rebalance(sim, cli)[0] == 130
    journal = next((tmp_path / "state" / "jadevectordb" / "operations").glob("*.jsonl"))
    return journal, journal.read_text().splitlines()


def test_a_resume_refuses_a_plan_edited_after_it_was_reviewed(cli, sim, tmp_path):
    journal, lines = stopped_journal(sim, cli, tmp_path)
    head = json.loads(lines[0])
    head["plan"]["moves"][1]["target_node"] = "node-master-001"  # one target changed, and a move added
    head["plan"]["moves"].append({"shard_id": "shard-05", "source_node": "node-master-001",
                                  "target_node": "node-worker-003", "vector_count": 1})
    journal.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    before = len(migrations(sim))
    run = cli("rebalance", "--resume", *FAST)
    assert (run.code, run.out) == (2, "")
    assert run.err.splitlines()[-1] == ("error: --resume: the plan in %s is not the one that was reviewed (it was "
                                        "changed since); nothing was sent: make a new plan" % journal)
    assert len(migrations(sim)) == before


def test_a_resume_believes_completed_only_when_the_cluster_agrees(cli, sim, tmp_path):
    journal, lines = stopped_journal(sim, cli, tmp_path)
    with journal.open("a") as out:  # a line claiming shard-01 is done: the cluster says it is not
        out.write(json.dumps({"event": "completed", "at": "2026-12-05T00:00:00Z", "shard_id": "shard-01",
                              "source_node": "node-worker-002", "target_node": "node-worker-003"}) + "\n")
    sim.cluster.migration_seconds = 0.3
    run = cli("rebalance", "--resume", *FAST, "--format", "json")
    assert run.code == 0, run
    assert sorted(m["shard"] for m in migrations(sim)) == ["shard-00", "shard-01", "shard-03"]
    assert sim.cluster.shards["shard-01"]["primary_node"] == "node-worker-003"


def test_a_resume_shows_what_it_will_send_before_sending(cli, sim, tmp_path):
    journal, lines = stopped_journal(sim, cli, tmp_path)
    operation = json.loads(lines[0])["operation"]
    sim.cluster.migration_seconds = 0.3
    run = cli("rebalance", "--resume", "--yes", *FAST)
    assert run.code == 0, run
    shown = run.err.splitlines()
    assert shown[1:3] == ["Resume %s: 2 moves left to send, 0 done, 1 running" % operation, "=" * len(
        "Resume %s: 2 moves left to send, 0 done, 1 running" % operation)]
    assert shown.index("In Flight (counted where they go)") < [i for i, line in enumerate(shown)
                                                                if line.startswith("move ")][0]


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_journal_others_may_write_is_not_trusted(cli, sim, tmp_path, what):
    journal, lines = stopped_journal(sim, cli, tmp_path)
    (journal if what == "file" else journal.parent).chmod(0o666 if what == "file" else 0o777)
    before = len(migrations(sim))
    run = cli("rebalance", "--resume", *FAST)
    assert run.code == 2 and run.err.splitlines()[-1].startswith(
        "error: --resume: no stopped rebalance operation on this cluster")
    assert "its %s may be written by another user (mode %s" % (what, "666" if what == "file" else "777") in run.err
    assert len(migrations(sim)) == before


@pytest.mark.parametrize("finished", [False, True], ids=["running", "finished"])
@pytest.mark.parametrize("target", ["node-worker-003", "node-master-001"])
def test_a_migration_another_operator_started_is_followed_or_left_to_them_never_a_failure(cli, sim, target, finished):
    grow(sim, cli, "node-worker-003", migration_seconds=0.2)  # plan: shard-00, shard-01, shard-03 onto worker-003
    sim.fault(moved_first={"shard-01": [target, finished]})  # someone else's, just before this run asks
    run = cli("rebalance", "--yes", *FAST, "--format", "json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    if target == "node-worker-003":  # going where this plan sends it: followed, or counted, as this run's move
        assert sorted(m["shard_id"] for m in report["completed"]) == ["shard-00", "shard-01", "shard-03"]
        assert report["verified"] is True
        assert ("move 2/3 completed: shard-01 node-worker-002 -> node-worker-003 (by another operator)" in
                run.err) is finished
    else:  # elsewhere: left to it, not failed
        assert [(m["shard_id"], m["reason"]) for m in report["stale"]] == [
            ("shard-01", "another operator moved it to node-master-001: left there" if finished else
             "another migration of it is running, to node-master-001 (mig-7f02): left to it")]
        assert report["failed"] == [] and "1 moves no longer fitted the cluster" in run.err
    assert sim.cluster.shards["shard-01"]["primary_node"] == target


def test_a_migration_the_cluster_stops_reporting_is_followed_while_the_shard_is_migrating(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=0.5)
    sim.fault(hide_migrations=["shard-00"])  # the record is gone; the shard stays MIGRATING until it lands
    run = cli("rebalance", "--yes", *FAST, "--stall-timeout", "30", "--format", "json")
    assert run.code == 0, run
    assert [m["shard_id"] for m in run.json()["completed"]] == ["shard-00", "shard-01", "shard-03"]
    assert run.json()["unknown"] == []


def test_losing_the_cluster_mid_run_is_said_at_once_and_when_it_is_back(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=0.5)
    process = start(sim, "--retries", "0", "rebalance", "--yes", *FAST, "--stall-timeout", "30")
    wait_until(lambda: moving(sim))
    sim.fault(fail_next=6, fault_methods=["GET"], fail_status=502)  # the polls fail for a while, then answer
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    said = [line for line in err.splitlines() if line.startswith("the cluster")]
    assert said[0].startswith("the cluster does not answer (") and said[0].endswith("; still following 1 migration")
    assert said[1] == "the cluster answers again"


def running_operation(cli) -> str:
    wait_until(lambda: operations(cli) and operations(cli)[0]["state"] == "running")
    return operations(cli)[0]["operation"]


def test_a_throttle_from_another_terminal_takes_effect_at_the_next_round(cli, sim):
    grow(sim, cli, "node-worker-003", "node-worker-004", migration_seconds=1.0)
    process = start(sim, "rebalance", "--yes", *FAST)  # --max-concurrent 1
    wait_until(lambda: moving(sim))
    operation = running_operation(cli)
    run = cli("operations", "throttle", operation, "--max-concurrent", "3", "--max-per-node", "2")
    assert (run.code, run.out) == (0, "%s: --max-concurrent 3, --max-per-node 2 from its next round\n" % operation)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "throttled from another terminal: max-concurrent 3, max-per-node 2" in err
    assert sim.cluster.most_running >= 2  # more than one in flight once throttled up
    assert sim.cluster.migrations["mig-7f01"]["status"] == "COMPLETED"  # the one running was never cancelled


def test_a_stop_from_another_terminal_ends_the_run_with_its_report_and_it_resumes(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=1.0)
    process = start(sim, "rebalance", "--yes", *FAST, "--format", "json")
    wait_until(lambda: moving(sim))
    operation = running_operation(cli)
    shown = cli("operations", "show", operation, "--format", "json").json()
    assert [m["shard_id"] for m in shown["running"]] == ["shard-00"] and len(shown["not_started"]) == 2
    assert cli("operations", "stop", operation).code == 0
    out, err = process.communicate(timeout=60)
    assert process.returncode == 4, err
    report = json.loads(out)
    assert [m["shard_id"] for m in report["completed"]] == ["shard-00"]  # followed to its end
    assert [m["error"] for m in report["not_started"]] == ["not started: the run was stopped ('operations stop')"] * 2
    assert err.splitlines()[-1].startswith("error: stopped from another terminal ('operations stop'): ")
    assert operations(cli)[0]["state"] == "stopped"
    assert cli("operations", "stop", operation).code == 1  # not running: nothing to stop
    sim.cluster.migration_seconds = 0.1
    assert cli("rebalance", "--resume", *FAST).code == 0
    shown = cli("operations", "show", operation, "--format", "json").json()
    assert [m["shard_id"] for m in shown["completed"]] == ["shard-00", "shard-01", "shard-03"]
    assert shown["state"] == "completed"


def test_a_throttle_is_kept_by_resume(cli, sim):
    assert stopped_rebalance(sim, cli)[0] == 130
    operation = operations(cli)[0]["operation"]
    run = cli("operations", "throttle", operation, "--max-concurrent", "2", "--max-per-node", "2", "--format",
              "compact")  # every move goes onto node-worker-003: the per-node limit too
    assert run.out == "%s | --max-concurrent 2, --max-per-node 2, kept for --resume\n" % operation
    sim.cluster.migration_seconds = 0.5
    assert cli("rebalance", "--resume", *FAST).code == 0
    assert sim.cluster.most_running == 2


@pytest.mark.parametrize("argv, message", [
    (["operations", "show"], "error: operations show needs an operation's name"),
    (["operations", "stop", "nope"], "error: 'nope' is not an operation's name"),
    (["operations", "throttle", "rebalance-20990101-000000-abcd", "--max-concurrent", "2"],
     "error: no operation rebalance-20990101-000000-abcd in "),
])
def test_steering_what_is_not_there_is_one_line(cli, argv, message):
    run = cli(*argv)
    assert run.code == 2 and run.err.startswith(message) and run.out == ""


def test_a_second_run_against_the_same_cluster_is_refused_at_once(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=600)
    process = start(sim, "rebalance", *FAST)
    try:
        wait_until(lambda: moving(sim))
        run = cli("rebalance", *FAST)
        assert run.code == 1
        operation = operations(cli)[0]["operation"]
        assert run.err.splitlines()[-1] == (
            "error: another run is changing this cluster from this machine: pid %d, operation %s; nothing was sent "
            "(see 'cluster_cli.py --host 127.0.0.1 --port %d operations')" % (process.pid, operation, sim.port))
        assert run.err.splitlines()[0] == ("1 shard is MIGRATING (not started by this run), counted on the node it "
                                           "is going to: shard-00 -> node-worker-003")  # the first run's move
        assert len(migrations(sim)) == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_a_rerun_after_ctrl_c_counts_the_moves_still_in_flight(cli, sim):
    assert stopped_rebalance(sim, cli)[0] == 130
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    assert plan["in_flight"] == [{"shard_id": "shard-00", "source_node": "node-worker-001",
                                  "target_node": "node-worker-003"}]
    assert [m["shard_id"] for m in plan["moves"]] == ["shard-01", "shard-03"]  # two more, not three


def test_a_saved_plan_is_stale_when_the_cluster_changed_anywhere(cli, sim, tmp_path):
    grow(sim, cli, "node-worker-003")
    saved = tmp_path / "plan.json"
    saved.write_text(cli("rebalance", "--dry-run", "--format", "json").out)
    # shard-02 is in no move of the plan, but its move changes what balance needs.
    assert cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-003", "--wait", *FAST).code == 0
    run = cli("rebalance", "--plan", saved, "--yes")
    assert run.code == 1
    assert "shard-02" not in [m["shard_id"] for m in json.loads(saved.read_text())["moves"]]
    assert run.err.startswith("error: plan is stale, nothing was sent: the primaries per node changed since it was "
                              "made: ")
    assert len(migrations(sim)) == 1


def test_an_empty_saved_plan_is_checked_too(cli, sim, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text(cli("rebalance", "--dry-run", "--format", "json").out)
    assert json.loads(saved.read_text())["moves"] == []
    grow(sim, cli, "node-worker-003")
    run = cli("rebalance", "--plan", saved, "--yes")
    assert run.code == 1
    assert "plan is stale" in run.err and "node-worker-003 none -> 0" in run.err


def test_a_plan_of_the_other_command_is_refused(cli, sim, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text(cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "--format", "json").out)
    run = cli("rebalance", "--plan", saved, "--yes")
    assert (run.code, run.err) == (2, "error: plan: %s is a drain plan, not a rebalance\n" % saved)


def test_a_drain_of_an_unreachable_node_says_its_primaries_stay(cli, sim):
    sim.down("node-worker-002")
    run = cli("drain-node", "--node-id", "node-worker-002", "--yes")
    staying = sum(s["primary_node"] == "node-worker-002" for s in sim.cluster.shards.values())
    assert run.code == 0 and staying > 1
    assert run.err == ("nothing can move off node-worker-002: its %d primaries stay, skipped (--dry-run says why)\n"
                       % staying)
    assert sim.changes() == []


def test_drain_with_remove_follows_the_replicas_until_they_are_copied(cli, sim):
    sim.reset(migration_seconds=0.1, nodes=4)
    sim.fault(replica_delay=0.5)
    dry = cli("drain-node", "--node-id", "node-worker-002", "--dry-run", "--format", "json").json()
    held = sorted(s["shard_id"] for s in sim.cluster.shards.values() if "node-worker-002" in s["replica_nodes"])
    assert dry["replica_shards"] == held and held
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST)
    assert run.code == 0, run
    assert "replication factor 2 restored on the" in run.err
    assert all(len(s["replica_nodes"]) == 1 for s in sim.cluster.shards.values())


def test_drain_with_remove_never_succeeds_while_shards_are_left_short(cli, sim):
    sim.reset(migration_seconds=0.1, nodes=4)
    sim.fault(drop_replicas=True)
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST, "--wait-timeout", "1")
    assert run.code == 4
    short = sorted(s["shard_id"] for s in sim.cluster.shards.values() if not s["replica_nodes"])
    assert short
    assert run.err.splitlines()[-1].startswith(
        "error: node-worker-002 was removed, but %d shards are still under-replicated after " % len(short))
    assert ": %s; the cluster may still copy them: 'shards --check' shows them" % ", ".join(short) in run.err


def test_drain_with_remove_stops_following_when_nothing_changes_for_the_stall_timeout(cli, sim):
    sim.reset(migration_seconds=0.1, nodes=4)
    sim.fault(drop_replicas=True, replicas_configured=True)  # replicas stays 2: only status says they are short
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST, "--stall-timeout", "0.5")
    assert run.code == 4, run
    short = sorted(s["shard_id"] for s in sim.cluster.shards.values() if not s["replica_nodes"])
    assert re.search(r"^following \d+ shards the node held until each has 2 copies \(giving up after 0.5s with no "
                     r"change\)$", run.err, re.M)
    assert run.err.splitlines()[-1].startswith(
        "error: node-worker-002 was removed, but %d shards are still under-replicated with no change for 0.5s: %s"
        % (len(short), ", ".join(short)))


def test_drain_with_remove_takes_the_servers_word_when_it_lists_the_new_copy_late_or_never(cli, sim):
    sim.reset(migration_seconds=0.1, nodes=4)
    sim.fault(unlisted_replicas=-1)  # copied at once, HEALTHY with 2 replicas, replica_nodes one short for good
    run = cli("drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST, "--stall-timeout", "5")
    assert run.code == 0, run
    assert run.err.splitlines()[-1].startswith("replication factor 2 restored on the ")


@pytest.mark.parametrize("shard, target", [
    ("shard-01", "node-master-001"),  # off the node
    ("shard-02", "node-worker-002"),  # onto it: the node holds no copy yet, so its shard list does not show it
])
def test_a_drain_waits_out_migrations_already_running_to_or_from_its_node(cli, sim, shard, target):
    sim.reset(migration_seconds=0.5)
    assert cli("migrate-shard", "--shard-id", shard, "--to-node", target).code == 0
    run = cli("drain-node", "--node-id", "node-worker-002", *FAST)
    assert run.code == 0, run
    assert "waiting for 1 migration to or from node-worker-002 to end first: %s" % shard in run.err
    assert not [s for s in sim.cluster.shards.values() if s["primary_node"] == "node-worker-002"]


def test_explain_says_where_a_shard_can_go_and_why_not_elsewhere(cli, sim):
    grow(sim, cli, "node-worker-003")
    run = cli("explain", "--shard-id", "shard-00", "--format", "compact")
    assert run.code == 0, run
    assert run.lines == [
        "shard-00 | HEALTHY | primary node-worker-001 | planned: node-worker-001 -> node-worker-003",
        "node-master-001 | HEALTHY | 4 | yes | may take it",
        "node-worker-001 | HEALTHY | 4 | no | holds its primary",
        "node-worker-002 | HEALTHY | 4 | no | holds a replica of it: a node keeps one copy of a shard",
        "node-worker-003 | HEALTHY | 0 | yes | may take it"]
    assert cli("explain", "--shard-id", "shard-99").code == 1


def test_explain_says_what_its_table_shows_when_every_copy_blocks_the_shard(cli, sim):
    sim.reset(nodes=2, shards=4, replication_factor=2)
    for shard in sim.cluster.shards.values():  # every primary on one node, its copy on the other
        shard["primary_node"], shard["replica_nodes"] = "node-master-001", ["node-worker-001"]
    sim.cluster._changed()
    run = cli("explain", "--shard-id", "shard-00", "--format", "json")
    assert run.code == 0
    explained = run.json()
    assert not any(node["can_take"] for node in explained["nodes"])
    assert (explained["movable"], explained["reason"]) == (
        False, "no node may take it: every other node holds a copy of it or is not HEALTHY")
    assert explained["planned"] == "none: it stays on node-master-001"


def test_spreads_count_only_the_nodes_that_can_hold_primaries(cli, sim):
    sim.down("node-worker-002")  # it keeps its 4 primaries; no plan can change that
    assert cli("rebalance", "--dry-run", "-o", "compact").lines[0] == "rebalance | 0 moves | spread 0 -> 0"


def test_a_blocked_balance_names_the_copies_in_the_way(cli, sim):
    sim.reset(nodes=2, shards=4, replication_factor=2)
    for shard in sim.cluster.shards.values():  # every primary on one node, its copy on the other
        shard["primary_node"], shard["replica_nodes"] = "node-master-001", ["node-worker-001"]
    sim.cluster._changed()
    run = cli("rebalance", "--dry-run")
    assert run.code == 0
    assert "Blocked (copies in the way of an even spread)" in run.out
    assert "each of its 4 movable primaries has a copy on node-worker-001, the node with two or more primaries " \
           "fewer" in run.out
    assert run.err == "nothing can even the spread further: copies are in the way (the dry run's Blocked part names " \
                      "them)\n"  # not "already balanced": the spread is 4
    compact = cli("rebalance", "--dry-run", "--format", "compact").lines  # the reasons, in every form
    assert compact[0] == "rebalance | 0 moves | spread 4 -> 4"
    assert compact[1].startswith("blocked: node-master-001 | each of its 4 movable primaries has a copy on ")


def test_resume_takes_only_an_operations_name_and_its_own_plan(cli, sim, tmp_path):
    run = cli("rebalance", "--resume", "../../etc/passwd")
    assert (run.code, run.err) == (2, "error: --resume: '../../etc/passwd' is not an operation's name (such as "
                                      "rebalance-20261202-090000-3f2a; see 'cluster_cli.py --host 127.0.0.1 --port "
                                      "%d operations')\n" % sim.port)
    run = cli("rebalance", "--resume", "--dry-run")
    assert (run.code, run.err) == (2, "error: --resume goes on with the operation's own plan: --dry-run does not go "
                                      "with it\n")
    assert cli("rebalance", "--resume").err == ("error: --resume: no stopped rebalance operation on this cluster "
                                                "(see 'cluster_cli.py --host 127.0.0.1 --port %d operations')\n"
                                                % sim.port)
    assert sim.changes() == []


def test_a_state_folder_that_cannot_be_written_refuses_before_anything_is_sent(cli, sim, clean_env, tmp_path):
    grow(sim, cli, "node-worker-003")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    clean_env.setenv("XDG_STATE_HOME", str(blocker))
    before = len(sim.changes())
    run = cli("rebalance", *FAST)
    assert run.code == 1
    assert run.err.startswith("error: cannot make %s/jadevectordb/operations, where runs keep their journals and "
                              "locks: " % blocker)
    assert len(sim.changes()) == before


def test_a_locks_folder_that_is_a_file_is_one_line_and_nothing_is_sent(cli, sim, clean_env, tmp_path):
    grow(sim, cli, "node-worker-003")
    clean_env.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "jadevectordb").mkdir(mode=0o700)
    (tmp_path / "jadevectordb" / "locks").write_text("")
    before = len(sim.changes())
    run = cli("rebalance", "--yes", *FAST)
    assert (run.code, run.out) == (1, "")
    assert run.err.startswith("error: cannot make %s/jadevectordb/locks, where runs keep their journals and locks: "
                              % tmp_path)
    assert "unexpected" not in run.err and len(sim.changes()) == before


def test_a_run_killed_outright_is_resumable_at_once_whatever_its_pid(cli, sim, tmp_path):
    # A run SIGKILLed as pid 1 in a container left pid 1 in its journal, and pid 1 is always alive: only a
    # held lock says a run is running. Here the journal names this very process, which is alive too.
    grow(sim, cli, "node-worker-003", migration_seconds=600)
    process = start(sim, "rebalance", *FAST)
    wait_until(lambda: moving(sim))
    process.kill()  # SIGKILL: no ending written, its lock released by the kernel
    process.communicate(timeout=30)
    folder = tmp_path / "state" / "jadevectordb" / "operations"
    journal = next(folder.glob("*.jsonl"))
    lines = journal.read_text().splitlines()
    head = json.loads(lines[0])
    head["pid"] = os.getpid()  # a pid that is alive, as pid 1 always is
    journal.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    listed = operations(cli)
    assert [(o["state"], o["pid"]) for o in listed] == [("interrupted", os.getpid())]
    sim.cluster.migration_seconds = 0.3
    run = cli("rebalance", "--resume", *FAST)
    assert run.code == 0, run
    assert len(migrations(sim)) == 3


def test_a_plan_made_for_another_cluster_is_stale(cli, sim, tmp_path):
    grow(sim, cli, "node-worker-003")
    plan = json.loads(cli("rebalance", "--dry-run", "--format", "json").out)
    assert plan["cluster"].startswith("nodes:")  # no cluster_name sent: a digest of the node IDs
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(dict(plan, cluster="name:jade-staging")))
    run = cli("rebalance", "--plan", saved, "--yes")
    assert run.code == 1
    assert run.err == ("error: plan is stale, nothing was sent: it was made for another cluster (name:jade-staging, "
                       "this one is %s)\n" % plan["cluster"])
    assert migrations(sim) == []


def test_balance_by_vectors_shows_its_spread_in_vectors_and_never_moves_an_empty_shard(cli, sim):
    grow(sim, cli, "node-worker-003")
    sim.cluster.shards["shard-00"]["vector_count"] = 0
    sim.cluster._changed()
    plan = json.loads(cli("rebalance", "--dry-run", "--balance-by", "vectors", "--format", "json").out)
    assert "shard-00" not in [m["shard_id"] for m in plan["moves"]]
    assert {"shard_id": "shard-00", "reason": "it is empty: moving it changes no node's vectors"} in plan["skipped"]
    spread = lambda counts: max(counts.values()) - min(counts.values())  # noqa: E731
    compact = cli("rebalance", "--dry-run", "--balance-by", "vectors", "--format", "compact").lines[0]
    assert compact == "rebalance | %d moves | spread %s -> %s" % (
        len(plan["moves"]), format(spread(plan["vectors_before"]), ","), format(spread(plan["vectors_after"]), ","))
    assert spread(plan["vectors_after"]) < spread(plan["vectors_before"])


def test_a_refused_plan_is_kept_as_refused_and_never_resumed(cli, sim, tmp_path):
    grow(sim, cli, "node-worker-003")
    saved = tmp_path / "plan.json"
    saved.write_text(cli("rebalance", "--dry-run", "--format", "json").out)
    assert cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-003", "--wait", *FAST).code == 0
    assert cli("rebalance", "--plan", saved, "--yes").code == 1  # stale: nothing sent
    assert [o["state"] for o in operations(cli)] == ["refused"]
    run = cli("rebalance", "--resume")
    assert (run.code, run.err) == (2, "error: --resume: no stopped rebalance operation on this cluster (see "
                                      "'cluster_cli.py --host 127.0.0.1 --port %d operations')\n" % sim.port)
    assert len(migrations(sim)) == 1


def test_an_interrupted_drain_with_remove_resumes_and_then_removes(cli, sim):
    sim.reset(migration_seconds=600, nodes=4)
    process = start(sim, "drain-node", "--node-id", "node-worker-002", "--remove", "--yes", *FAST)
    wait_until(lambda: moving(sim))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    resume = re.search(r"resume with 'cluster_cli.py --url \S+ (drain-node --node-id node-worker-002 --remove "
                       r"--resume drain-\S+)'$", err.splitlines()[-1]).group(1)
    sim.cluster.migration_seconds = 0.1
    run = cli(*resume.split(), *FAST)
    assert run.code == 0, run
    assert "node-worker-002" not in sim.cluster.nodes
    assert len([m for m in migrations(sim) if m["shard"] == "shard-01"]) == 1  # followed, never sent twice


@pytest.mark.parametrize("what", ["fifo", "symlink"])
def test_a_fifo_or_symlink_in_the_state_folder_is_refused_not_waited_on(cli, sim, tmp_path, what):
    grow(sim, cli, "node-worker-003")
    locks = tmp_path / "state" / "jadevectordb" / "locks"
    locks.mkdir(parents=True)
    plan = json.loads(cli("rebalance", "--dry-run", "-o", "json").out)
    import hashlib
    lock = locks / (hashlib.sha256(plan["cluster"].encode()).hexdigest()[:16] + ".lock")
    if what == "fifo":
        os.mkfifo(str(lock))
    else:
        (tmp_path / "elsewhere").write_text("")
        lock.symlink_to(tmp_path / "elsewhere")
    run = cli("rebalance", *FAST)
    assert run.code == 1
    assert run.err.splitlines()[-1] == {
        "fifo": "error: %s is not a regular file; nothing more was sent (remove it)" % lock,
        "symlink": "error: cannot open %s: Too many levels of symbolic links; nothing more was sent" % lock}[what]
    assert migrations(sim) == []
    if what == "symlink":
        assert (tmp_path / "elsewhere").read_text() == ""  # never written through the link


def test_a_move_whose_answer_is_lost_is_reported_as_maybe_started_and_resumes_once(cli, sim):
    grow(sim, cli, "node-worker-003", migration_seconds=0.1)
    sim.fault(delay=1.5, fault_methods=["POST"])  # every answer slower than --timeout: each POST's answer lost
    run = cli("--timeout", "0.5", "rebalance", *FAST, "--format", "compact")
    assert run.code == 3
    assert run.err.splitlines()[0] == ("shard-00 | node-worker-001 | node-worker-003 |  | NOT STARTED | sent, its "
                                       "answer lost: it may or may not have started")
    assert re.search(r"check it with '.* shard-status --shard-id shard-00'; resume with '.* rebalance --resume "
                     r"%s'$" % OPERATION, run.err.splitlines()[-1])
    sim.settle()
    sim.fault(delay=0.0)
    sim.advance(1)  # the migration the lost answer started has completed
    run = cli("rebalance", "--resume", *FAST)
    assert run.code == 0, run
    assert [m["shard"] for m in migrations(sim)] == ["shard-00", "shard-01", "shard-03"]  # shard-00 sent once
