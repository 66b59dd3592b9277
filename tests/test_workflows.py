"""Operator workflows: waits with progress, dry runs, confirmation, health gates, watch, filters, colour."""
import json
import signal
import subprocess
import sys

import pytest

from conftest import SCRIPT, interruptible, on_terminal

FAST = ("--poll-interval", "0.05")


# -- migrate-shard --wait ------------------------------------------------------------

STARTED = "migration %s of %s started; waiting for it (Ctrl-C stops waiting, not the migration)\n"

def test_wait_for_a_migration_to_complete(cli, sim):
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--wait", *FAST,
              "--format", "compact")
    assert (run.code, run.err) == (0, STARTED % ("mig-7f01", "shard-00"))
    assert run.out == "mig-7f01 | shard-00 | node-worker-001 -> node-master-001 | LIVE_COPY | COMPLETED | 100.0%% | " \
                      "%s\n" % sim.url
    assert cli("shard-status", "--shard-id", "shard-00", "--format", "json").json()["primary_node"] == "node-master-001"
    assert len([r for r in sim.requests if r["method"] == "POST"]) == 1


def test_wait_for_a_migration_that_fails(cli, sim):
    sim.fault(fail_migrations={"shard-02": "disk full on node-worker-002"})  # halfway through
    run = cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-002", "--wait", *FAST,
              "--format", "json")
    assert (run.code, run.out) == (1, "")  # stdout stays empty on a failure: the migration is shown on stderr
    lines = run.err.splitlines()
    assert lines[0] + "\n" == STARTED % ("mig-7f01", "shard-02") and "Status: FAILED" in lines and \
        "Progress: 50.0%" in lines
    assert lines[-1] == "error: migration mig-7f01 of shard-02 FAILED: disk full on node-worker-002"


def test_wait_for_a_migration_times_out_with_exit_4(cli, sim):
    sim.reset(migration_seconds=600)
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--wait",
              "--wait-timeout", "0.2", *FAST, "--format", "compact")
    assert run.code == 4
    assert " | IN_PROGRESS | " in run.out
    assert run.err.startswith(STARTED % ("mig-7f01", "shard-00") +
                              "error: migration mig-7f01 of shard-00 is still IN_PROGRESS after 0.2s; it goes on: "
                              "follow it again with 'cluster_cli.py --host 127.0.0.1 --port %d shard-status "
                              "--shard-id shard-00 --wait'" % sim.port)


def test_a_wait_that_timed_out_is_picked_up_again_by_shard_status_wait(cli, sim):
    sim.reset(migration_seconds=600)
    assert cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--wait",
               "--wait-timeout", "0.1", *FAST).code == 4
    assert cli("shard-status", "--shard-id", "shard-00", "--wait", "--wait-timeout", "0.1", *FAST).code == 4
    sim.cluster.migration_seconds = 1.5  # the running migration now ends about a second from here
    run = cli("shard-status", "--shard-id", "shard-00", "--wait", *FAST, "--format", "compact")
    assert run.code == 0, run
    assert run.err == "following migration mig-7f01 of shard-00 (Ctrl-C stops following, not the migration)\n"
    assert run.out == "mig-7f01 | shard-00 | node-worker-001 -> node-master-001 | LIVE_COPY | COMPLETED | " \
                      "100.0%% | %s\n" % sim.url
    assert [r["method"] for r in sim.requests].count("POST") == 1
    again = cli("shard-status", "--shard-id", "shard-00", "--wait", "--format", "compact")
    assert again.code == 0 and again.err == "no migration of shard-00 is running; its latest, mig-7f01, is COMPLETED\n"


def test_shard_status_wait_on_a_failed_migration_exits_1(cli, sim):
    sim.fault(fail_migrations={"shard-02": "disk full"})
    cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-002")
    run = cli("shard-status", "--shard-id", "shard-02", "--wait", *FAST, "--format", "json")
    assert (run.code, run.out) == (1, "")
    assert run.err.splitlines()[-1] == "error: migration mig-7f01 of shard-02 FAILED: disk full"


def test_wait_shows_progress_only_on_a_terminal(sim):
    code, shown, out = on_terminal(sim, ["migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001",
                                         "--wait", "--poll-interval", "0.1", "--format", "compact"], stream="stderr")
    assert code == 0
    assert "[####" in shown and "vectors/s" in shown and "/125,432 vectors" in shown
    assert out.endswith("| COMPLETED | 100.0%% | %s\n" % sim.url)


def test_a_wait_on_a_terminal_survives_counts_no_cluster_moves(sim):
    migration = {"migration_id": "mig-1", "shard_id": "shard-00", "strategy": "LIVE_COPY",
                 "source_node": "node-worker-001", "target_node": "node-master-001", "status": "IN_PROGRESS",
                 "progress": 10.0, "transferred_vectors": 1, "total_vectors": 125432}

    def poll(transferred, status="IN_PROGRESS"):
        shard = {"shard_id": "shard-00", "primary_node": "node-worker-001", "status": "MIGRATING",
                 "migration": dict(migration, status=status, transferred_vectors="TRANSFERRED")}
        return {"status": 200, "body": json.dumps(shard).replace('"TRANSFERRED"', transferred)}

    sim.fault(respond=[{"status": 202, "body": json.dumps(migration)}, poll("1"), poll("1e308"),
                       poll("1" + "0" * 400), poll("125432", "COMPLETED")])
    code, shown, out = on_terminal(sim, ["migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001",
                                         "--wait", "--poll-interval", "0.05", "--format", "compact"], stream="stderr")
    assert code == 0, shown
    assert "unexpected" not in shown and "| COMPLETED |" in out


# -- --from-node and --dry-run ------------------------------------------------------------

def test_from_node_is_checked_before_anything_is_sent(cli, sim):
    run = cli("migrate-shard", "--shard-id", "shard-00", "--from-node", "node-worker-002",
              "--to-node", "node-master-001")
    assert (run.code, run.out) == (1, "")
    assert run.err == ("error: shard-00's primary is on node-worker-001, not node-worker-002; "
                       "no migration was started\n")
    assert sim.changes() == []


def test_migration_dry_run_reports_what_would_move(cli, sim):
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--dry-run",
              "--format", "compact")
    assert (run.code, run.err) == (0, "")
    assert run.out == ("would succeed | migrate shard-00 | node-worker-001 -> node-master-001 | 125,432 vectors | "
                       "367.5 MiB\n")
    table = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--dry-run").lines
    assert table[:9] == ["Dry run: migrate shard-00", "=========================", "Shard ID: shard-00",
                         "From: node-worker-001", "To: node-master-001", "Strategy: LIVE_COPY",
                         "Vectors To Move: 125,432", "Bytes To Move: 367.5 MiB", "Would Succeed: yes"]
    assert sim.changes() == []


@pytest.mark.parametrize("setup, argv, reason", [
    (None, ["--to-node", "node-worker-002"], "node-worker-002 already holds a copy of shard-00"),
    (None, ["--to-node", "node-9"], "node-9 is not in the cluster"),
    (None, ["--to-node", "node-master-001", "--from-node", "node-worker-002"],
     "shard-00's primary is on node-worker-001"),
    ("running", ["--to-node", "node-master-001"], "migration mig-7f01 is IN_PROGRESS"),
])
def test_migration_dry_run_says_why_it_would_be_refused(cli, sim, setup, argv, reason):
    if setup == "down":
        sim.down("node-master-001")
    if setup == "running":
        sim.reset(migration_seconds=600)
        cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--strategy", "INCREMENTAL")
    before = sim.changes()
    run = cli("migrate-shard", "--shard-id", "shard-00", "--dry-run", "--format", "json", *argv)
    assert (run.code, run.out) == (1, "")
    assert "Would Succeed: no" in run.err.splitlines()  # the plan, on stderr
    assert run.err.splitlines()[-1].startswith("error: the cluster would refuse this: ") and reason in run.err
    assert sim.changes() == before


def test_a_dry_run_only_warns_where_the_contract_makes_no_refusal(cli, sim):
    # The contract refuses a migration for its source, a copy on the target or one running:
    # not for the target's health. A JOINING or UNREACHABLE target is a warning, exit 0.
    sim.reset(join_seconds=60)  # JOINING for the whole test, however slowly this machine runs it
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-worker-003", "--dry-run",
              "--format", "json")
    assert run.code == 0 and run.json()["would_succeed"] is True
    assert run.err == "warning: target is healthy: node-worker-003 is JOINING\n"
    sim.down("node-master-001")
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--dry-run")
    assert run.code == 0
    assert "│ target is healthy        │ WARN   │ node-master-001 is UNREACHABLE" in run.out
    assert run.err == "warning: target is healthy: node-master-001 is UNREACHABLE\n"
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_removal_dry_run_lists_the_shards_and_matches_the_removal(cli, sim):
    plan = cli("remove-node", "--node-id", "node-worker-002", "--dry-run", "--format", "json")
    assert plan.code == 0
    data = plan.json()
    assert data["primary_shards"] == ["shard-01", "shard-04", "shard-07", "shard-10"]
    assert data["replica_shards"] == ["shard-00", "shard-05", "shard-06", "shard-11"]
    assert data["under_replicated_after"] == []
    assert sim.changes() == []
    done = cli("remove-node", "--node-id", "node-worker-002", "--format", "json").json()
    assert done["shards_redistributed"] == data["shards_to_redistribute"] == 8


def test_removal_dry_run_refuses_when_a_shard_would_lose_its_last_live_copy(cli, sim):
    sim.down("node-worker-001")
    run = cli("remove-node", "--node-id", "node-worker-002", "--dry-run", "--format", "compact")
    assert (run.code, run.out) == (1, "")
    assert run.err.startswith("would fail | remove node-worker-002 | 8 shards to redistribute | "
                              "under-replicated after: shard-00, shard-01, shard-04, shard-05, shard-06, shard-07, "
                              "shard-10, shard-11 | no other live copy of: shard-00, shard-01, shard-06, shard-07")
    assert sim.changes() == []
    real = cli("remove-node", "--node-id", "node-worker-002")
    assert real.code == 1 and "HTTP 409 WOULD_LOSE_DATA" in real.err


def test_removal_dry_run_flags_shards_left_under_replicated(cli, sim):
    sim.reset(nodes=2, shards=4)
    run = cli("remove-node", "--node-id", "node-worker-001", "--dry-run", "--format", "json")
    assert run.code == 0
    assert run.json()["under_replicated_after"] == ["shard-00", "shard-01", "shard-02", "shard-03"]


def test_removal_of_the_master_dry_run(cli):
    run = cli("remove-node", "--node-id", "node-master-001", "--dry-run")
    assert run.code == 1
    assert "node-master-001 is the master" in run.err
    assert run.out == "" and "│ not the master" in run.err and "FAIL" in run.err


# -- confirmation on a terminal --------------------------------------------------------------

def test_removal_asks_on_a_terminal_and_no_keeps_the_node(sim):
    code, shown, out = on_terminal(sim, ["remove-node", "--node-id", "node-worker-002"], "stdin", answer="n\n")
    assert code == 1
    title = "Confirm: remove node-worker-002"
    assert "%s\n%s\n" % (title, "=" * len(title)) in shown.replace("\r", "")
    assert "Dry run" not in shown and "Remove node node-worker-002? [y/N]" in shown
    assert "aborted; node node-worker-002 was not removed" in shown
    assert out == ""
    assert sim.changes() == []


def test_removal_asks_on_a_terminal_and_yes_removes(sim):
    code, shown, out = on_terminal(sim, ["remove-node", "--node-id", "node-worker-002"], "stdin", answer="y\n")
    assert code == 0
    assert out.startswith("Node node-worker-002 removed from %s: 8 shards redistributed" % sim.url)
    assert sim.changes() == [("DELETE", "/api/v1/cluster/nodes/node-worker-002")]


def test_yes_skips_the_question(sim):
    code, shown, out = on_terminal(sim, ["remove-node", "--node-id", "node-worker-002", "--yes"], "stdin")
    assert code == 0 and "[y/N]" not in shown
    assert sim.changes() == [("DELETE", "/api/v1/cluster/nodes/node-worker-002")]


def test_no_question_when_stdin_is_not_a_terminal(script, sim):
    run = script("remove-node", "--node-id", "node-worker-002", stdin=subprocess.DEVNULL)
    assert run.code == 0 and "[y/N]" not in run.err


# -- health gates -------------------------------------------------------------------------------

def test_check_passes_on_a_healthy_cluster(cli):
    assert cli("status", "--check", "--format", "compact").code == 0


def test_check_exits_4_and_still_prints_the_status(cli, sim):
    sim.down("node-worker-001")
    run = cli("status", "--check", "--format", "json")
    assert run.code == 4
    assert run.json()["status"] == "DEGRADED"
    assert run.err == "error: cluster is DEGRADED, not HEALTHY\n"


def test_wait_for_healthy_polls_until_the_cluster_is(cli, sim):
    degraded = json.dumps({"status": "DEGRADED", "total_nodes": 3, "total_shards": 12})
    sim.fault(respond=[{"body": degraded}] * 3)  # three polls see it DEGRADED, the fourth HEALTHY
    run = cli("status", "--wait-for", "healthy", *FAST, "--format", "compact")
    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("HEALTHY | 3 nodes")
    assert len(sim.requests) == 4


def test_wait_for_times_out_with_exit_4(cli, sim):
    sim.down("node-worker-001")
    run = cli("status", "--wait-for", "HEALTHY", "--wait-timeout", "0.2", *FAST, "--format", "compact")
    assert run.code == 4
    assert run.out.startswith("DEGRADED | ")
    assert run.err == "error: cluster is DEGRADED, not HEALTHY, after 0.2s\n"


def test_wait_for_rides_out_a_leader_election(cli, sim):
    sim.fault(fail_next=6, retry_after=0)
    run = cli("status", "--wait-for", "HEALTHY", *FAST, "--retries", "0", "--format", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY |")


def test_wait_for_unhealthy_when_a_shard_has_no_live_copy(cli, sim):
    sim.down("node-worker-001")
    sim.down("node-worker-002")
    run = cli("status", "--wait-for", "UNHEALTHY", *FAST, "--format", "compact")
    assert run.code == 0 and run.out.startswith("UNHEALTHY |")


# -- watch ------------------------------------------------------------------------------------------

def test_watch_json_is_one_line_per_snapshot_on_one_connection(cli, sim):
    run = cli("status", "--watch", "0.05", "--count", "3", "--format", "json")
    assert run.code == 0
    snapshots = [json.loads(line) for line in run.lines]
    assert [s["status"] for s in snapshots] == ["HEALTHY"] * 3
    assert len({r["client_port"] for r in sim.requests}) == 1


def test_watch_table_prints_each_snapshot(cli):
    run = cli("nodes", "--watch", "0.05", "--count", "2")
    assert run.out.count("│ Node ID          │") == 2


@pytest.mark.parametrize("argv", [["metrics"], ["shards"], ["shard-status", "--shard-id", "shard-00"]])
def test_watch_works_for_each_listed_command(cli, argv):
    run = cli(*argv, "--watch", "0.05", "--count", "2", "--format", "json")
    assert run.code == 0 and len(run.lines) == 2


def test_watch_keeps_going_through_a_failure(cli, sim):
    sim.fault(html_next=1)
    run = cli("--retries", "0", "status", "--watch", "0.05", "--count", "2", "--format", "compact")
    assert run.code == 0
    assert run.lines == ["HEALTHY | 3 nodes | 12 shards | master: node-master-001"]
    assert "(still watching)" in run.err


def test_watch_ends_on_ctrl_c_with_exit_0_and_keeps_what_was_printed(sim):
    process = subprocess.Popen([sys.executable, SCRIPT, "--host", "127.0.0.1", "--port", str(sim.port),
                                "status", "--watch", "0.1", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == ""
    assert json.loads(first)["status"] == "HEALTHY"
    assert all(json.loads(line) for line in rest.splitlines())


def test_watch_redraws_in_place_on_a_terminal(sim):
    code, shown, _ = on_terminal(sim, ["status", "--watch", "0.05", "--count", "2"])
    assert code == 0
    assert shown.count("\x1b[H\x1b[2J") == 2 and "Every 0.05s: status" in shown


# -- filters ------------------------------------------------------------------------------------------

def test_shard_filters_are_sent_and_applied(cli, sim):
    run = cli("shards", "--node-id", "node-worker-002", "--status", "healthy", "--format", "compact")
    assert [line.split(" | ")[0] for line in run.lines] == ["shard-00", "shard-01", "shard-04", "shard-05",
                                                      "shard-06", "shard-07", "shard-10", "shard-11"]
    assert sim.requests[-1]["query"] == {"node_id": "node-worker-002", "status": "HEALTHY"}


def test_shard_filters_apply_even_when_the_server_ignores_them(cli, sim):
    everything = cli("shards", "--format", "json").out
    sim.fault(respond=[{"body": everything}])
    run = cli("shards", "--database-id", "logs", "--format", "compact")
    assert [line.split(" | ")[0] for line in run.lines] == ["shard-02", "shard-05", "shard-08", "shard-11"]


def test_a_mistyped_status_filter_is_refused_not_silently_empty(cli, sim):
    run = cli("shards", "--status", "UNDERREPLICATED")
    assert run.code == 2 and run.out == ""
    assert "UNDER_REPLICATED" in run.err
    assert sim.requests == []


def test_several_statuses_or_all_but_some_are_filtered_here_and_only_one_is_sent(cli, sim):
    sim.down("node-worker-002")
    short = sorted(shard_id for shard_id in sim.cluster.under_replicated)
    run = cli("shards", "--status", "under_replicated,offline", "--format", "compact")
    assert [line.split(" | ")[0] for line in run.lines] == short
    assert sim.requests[-1]["query"] == {}  # the contract's parameter takes one status: none sent
    assert cli("shards", "--status", "!HEALTHY", "--format", "compact").lines == run.lines
    assert [line.split(" | ")[0] for line in cli("nodes", "--status", "!HEALTHY", "-o", "compact").lines] == [
        "node-worker-002"]
    refused = cli("shards", "--status", "!HEALTHY,GOOD")
    assert refused.code == 2 and "'GOOD' is not a status" in refused.err and refused.out == ""


def test_shards_check_exits_4_naming_each_shard_not_healthy(cli, sim):
    assert cli("shards", "--check", "-o", "compact").code == 0
    sim.down("node-worker-002")
    run = cli("shards", "--check", "-o", "compact")
    assert run.code == 4 and len(run.lines) == 12  # the listing, then what is wrong
    named = ", ".join("%s (UNDER_REPLICATED)" % shard_id for shard_id in sorted(sim.cluster.under_replicated))
    assert run.err == "error: 8 shards are not HEALTHY: %s\n" % named


def test_node_filters(cli, sim):
    sim.down("node-worker-002")
    assert cli("nodes", "--status", "unreachable", "--format", "compact").lines == [
        "node-worker-002 | WORKER | 192.168.1.12:8080 | UNREACHABLE | 4"]
    assert [line.split(" | ")[0] for line in cli("nodes", "--role", "master", "--format", "compact").lines] == \
        ["node-master-001"]


# -- colour -----------------------------------------------------------------------------------------------

def test_status_words_are_coloured_on_a_terminal(sim):
    code, shown, _ = on_terminal(sim, ["status", "--format", "compact"], env={"TERM": "xterm-256color"})
    assert code == 0 and shown.startswith("\x1b[32mHEALTHY\x1b[0m | 3 nodes")


@pytest.mark.parametrize("argv, env", [(["--no-color"], None), ([], {"NO_COLOR": "1"}), ([], {"TERM": "dumb"}),
                                       (["--format", "json"], None)])
def test_no_colour_when_asked_or_in_json(sim, argv, env):
    code, shown, _ = on_terminal(sim, ["status"] + argv, env=env)
    assert code == 0 and "\x1b[" not in shown


def test_no_question_when_the_cluster_would_refuse(sim):
    code, shown, out = on_terminal(sim, ["remove-node", "--node-id", "node-master-001"], "stdin", answer="y\n")
    assert code == 1
    assert "[y/N]" not in shown
    assert "error: the cluster would refuse this: node-master-001 is the master; nothing was removed" in shown
    assert sim.changes() == []


def test_watch_stops_on_an_error_that_will_not_pass(cli):
    run = cli("shard-status", "--shard-id", "nope", "--watch", "0.05")
    assert run.code == 1 and run.err == "error: shard nope not found (HTTP 404 SHARD_NOT_FOUND)\n"


def test_wait_polls_through_failures_and_reports_the_last_on_timeout(cli, sim):
    sim.fault(html_next=1000, fault_methods=["GET"])  # the POST goes through, every poll gets a proxy's 502
    run = cli("--retries", "0", "migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001",
              "--wait", "--wait-timeout", "0.4", *FAST, "--format", "compact")
    assert run.code == 4
    assert run.err.endswith("(last poll: Bad Gateway: '<html> <head><title>502 Bad Gateway</title></head> <body> "
                            "<center><h1>502 Bad Gateway</h1></center> <hr><center>nginx</c...' (HTTP 502); "
                            "the cluster was still unavailable after 1 try in 0.0s)\n")


def test_wait_rides_out_a_short_outage(cli, sim):
    sim.fault(fail_next=3, retry_after=0, fault_methods=["GET"])  # the first three polls get 503
    run = cli("--retries", "0", "migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001",
              "--wait", *FAST, "--format", "compact")
    assert run.code == 0 and " | COMPLETED | 100.0%" in run.out


# -- tables fit the terminal -------------------------------------------------------------------

NARROW_NODES = """\
┌─────────────────┬────────┬───────────────────┬─────────┬────────┐
│ Node ID         │ Role   │ Address           │ Status  │ Shards │
├─────────────────┼────────┼───────────────────┼─────────┼────────┤
│ node-master-001 │ MASTER │ 192.168.1.10:8080 │ HEALTHY │ 4      │
│ node-worker-001 │ WORKER │ 192.168.1.11:8080 │ HEALTHY │ 4      │
│ node-worker-002 │ WORKER │ 192.168.1.12:8080 │ HEALTHY │ 4      │
└─────────────────┴────────┴───────────────────┴─────────┴────────┘
"""


def test_on_a_narrow_terminal_padding_goes_first_and_names_are_never_clipped(sim):
    # Clipped, two rows read 'node-worker…' and an address '192.168.1.10…': wider than 60 instead.
    code, shown, _ = on_terminal(sim, ["nodes", "--no-color"], env={"COLUMNS": "60"})
    assert code == 0
    assert shown.replace("\r\n", "\n") == NARROW_NODES


def test_piped_tables_keep_their_full_width(script):
    run = script("nodes", env={"COLUMNS": "60"})
    assert run.code == 0 and run.lines[3] == "│ node-master-001  │ MASTER  │ 192.168.1.10:8080  │ HEALTHY  │ 4        │"
