"""Against hostile and broken servers: nothing sent twice, nothing reported done that was not,
bounded time and memory, every value rendered or refused in one line, no secret printed."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import cluster_cli
import hostile
from conftest import SCRIPT, commands_that, free_port, interruptible, sample
from conftest import on_terminal, wait_until

KEY = "s3cret-Key_0123456789"
# The commands that send one change, from the registry: {name: (argv, method, path)}, and the command
# that checks whether it was applied.
def _change(name: str) -> tuple:
    argv = sample(name)
    args = cluster_cli.build_parser(argv).parse_args(argv)
    method, path = cluster_cli.COMMANDS[name].sends
    return argv, method, path.format(getattr(args, "node_id", None) or args.shard_id), \
        "cluster_cli.py " + cluster_cli.COMMANDS[name].check.format(**vars(args))


SENDING = commands_that(lambda declared: declared.sends)
CHANGES = {name: _change(name)[:3] for name in SENDING}
CHECK_WITH = {name: _change(name)[3] for name in SENDING}


@pytest.fixture
def at(cli):
    """at(server, *argv): the CLI in-process against one server, by its URL."""
    def run(server, *argv):
        return cli("--url", server.url, *argv, target=False)
    return run


def assert_one_error_line(run, code):
    assert run.code == code, run
    assert run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("error: "), run.err


# -- 1. redirects: a change never follows one --------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("command", sorted(CHANGES))
def test_a_change_answered_with_a_redirect_is_not_applied_and_not_resent(at, hostile_server, sim, status, command):
    argv, method, path = CHANGES[command]
    # To the same URL (a 307 loop replayed it 31 times) or to a cluster that would accept it.
    location = path if status in (307, 308) else sim.url + path
    hostile_server.script(hostile.redirect(status, location))
    run = at(hostile_server, *argv)
    assert_one_error_line(run, 1)
    assert run.err == ("error: the cluster answered %s %s with HTTP %d, redirecting to %s; redirects are not "
                       "followed for changes, so this request did not apply it; send it to the right URL "
                       "with --url\n" % (method, path, status, location))
    assert [(r.method, r.path) for r in hostile_server.received] == [(method, path)]
    assert sim.requests == []


def test_the_library_raises_redirected_with_the_location(hostile_server):
    hostile_server.script(hostile.redirect(302, "https://elsewhere.example/api/v1/cluster/nodes"))
    client = cluster_cli.ClusterCLI(url=hostile_server.url)
    with pytest.raises(cluster_cli.Redirected) as raised:
        client.add_node("n9", "h9:8080")
    assert raised.value.status_code == 302 and raised.value.exit_code == 1
    assert raised.value.location == "https://elsewhere.example/api/v1/cluster/nodes"
    assert str(raised.value).endswith("; send it to the right URL (the url parameter)")
    assert len(hostile_server.received) == 1


def test_a_get_follows_a_redirect_to_another_origin_without_the_key(at, hostile_server, sim):
    hostile_server.script(hostile.redirect(302, sim.url + "/api/v1/cluster/status"))
    run = at(hostile_server, "--api-key", KEY, "status", "--format", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY | 3 nodes")
    assert hostile_server.received[0].headers["authorization"] == "Bearer " + KEY
    assert [(r["path"], r["authorization"]) for r in sim.requests] == [("/api/v1/cluster/status", None)]


def test_a_get_keeps_the_key_on_a_redirect_within_its_origin(at, hostile_server):
    hostile_server.script(hostile.redirect(307, "/api/v1/cluster/status-moved"),
                          hostile.answer(200, {"status": "HEALTHY", "total_nodes": 3}))
    run = at(hostile_server, "--api-key", KEY, "status", "--format", "compact")
    assert run.code == 0
    assert [(r.path, r.headers.get("authorization")) for r in hostile_server.received] == [
        ("/api/v1/cluster/status", "Bearer " + KEY), ("/api/v1/cluster/status-moved", "Bearer " + KEY)]


def test_a_get_never_follows_https_to_http(at, hostile_tls, tls_files, sim):
    hostile_tls.script(hostile.redirect(301, sim.url + "/api/v1/cluster/status"))
    run = at(hostile_tls, "--ca-cert", tls_files[0], "--api-key", KEY, "status")
    assert_one_error_line(run, 1)
    assert run.err == ("error: the cluster redirected from https to http (%s/api/v1/cluster/status); "
                       "not followed\n" % sim.url)
    assert sim.requests == []


def test_a_get_follows_five_redirects_at_most(at, hostile_server):
    hostile_server.default = hostile.redirect(302, "/api/v1/cluster/status")
    run = at(hostile_server, "--retries", "0", "status")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster redirected more than 5 times\n"
    assert len(hostile_server.received) == 6


@pytest.mark.parametrize("location", ["http://[::1", "http://h:port/", "ftp://h/x"])
def test_a_malformed_location_is_a_bad_response_from_the_library(hostile_server, location):
    hostile_server.script(hostile.redirect(302, location))
    with pytest.raises(cluster_cli.BadResponse) as raised:
        cluster_cli.ClusterCLI(url=hostile_server.url, retries=0).cluster_status()
    assert "redirected to" in str(raised.value)


# -- 2. lost after sending: no failover, exit 3, "may or may not" ----------------------------

@pytest.mark.parametrize("command", sorted(CHANGES))
def test_a_change_whose_connection_drops_after_sending_is_not_sent_again(cli, hostile_server, sim, command):
    argv, method, path = CHANGES[command]
    hostile_server.script(hostile.drop())
    run = cli("--url", "%s,%s" % (hostile_server.url, sim.url), *argv, target=False)
    assert_one_error_line(run, 3)
    assert run.err == ("error: the connection to %s failed after the request was sent: remote end closed "
                       "connection without response; the %s may or may not have been applied; check with "
                       "'%s' before sending it again\n" % (hostile_server.url, method, CHECK_WITH[command].replace(
                           "cluster_cli.py", "cluster_cli.py --url %s,%s" % (hostile_server.url, sim.url))))
    assert [(r.method, r.path) for r in hostile_server.received] == [(method, path)]
    assert sim.requests == []  # the next master never saw it


def test_a_change_whose_tls_breaks_after_sending_is_not_sent_again(cli, hostile_tls, tls_files, sim):
    argv, method, path = CHANGES["migrate-shard"]
    hostile_tls.script(hostile.break_tls())
    run = cli("--ca-cert", tls_files[0], "--url", "%s,%s" % (hostile_tls.url, sim.url), *argv, target=False)
    assert_one_error_line(run, 3)
    assert "may or may not have been applied" in run.err and "TLS" not in run.err.split(";")[1]
    assert [(r.method, r.path) for r in hostile_tls.received] == [(method, path)]
    assert sim.requests == []


def test_a_change_moves_on_when_the_tls_handshake_fails(cli, hostile_tls, sim):
    # No --ca-cert: the handshake fails before a byte of the request is written.
    argv, method, path = CHANGES["add-node"]
    run = cli("--url", "%s,%s" % (hostile_tls.url, sim.url), *argv, target=False)
    assert run.code == 0, run
    assert hostile_tls.received == []
    assert sim.changes() == [(method, path)]


def test_a_change_moves_on_when_the_connection_is_refused(cli, sim):
    argv, method, path = CHANGES["add-node"]
    run = cli("--url", "http://127.0.0.1:%d,%s" % (free_port(), sim.url), *argv, target=False)
    assert run.code == 0, run
    assert sim.changes() == [(method, path)]


def test_a_get_whose_connection_drops_is_retried(at, hostile_server):
    hostile_server.script(hostile.drop(), hostile.answer(200, {"status": "HEALTHY"}))
    run = at(hostile_server, "status", "--format", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert len(hostile_server.received) == 2


def test_the_library_raises_maybe_applied(hostile_server):
    hostile_server.script(hostile.drop())
    with pytest.raises(cluster_cli.MaybeApplied) as raised:
        cluster_cli.ClusterCLI(url=hostile_server.url).remove_node("n1")
    assert raised.value.exit_code == 3 and "may or may not have been applied" in str(raised.value)


# -- 3. a refusal in a 200 is a refusal --------------------------------------------------------

def test_removed_false_in_a_200_is_a_refusal(at, hostile_server):
    hostile_server.script(hostile.answer(200, {"node_id": "node-worker-002", "removed": False,
                                               "message": "node is still draining"}))
    run = at(hostile_server, "remove-node", "--node-id", "node-worker-002")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster did not remove node node-worker-002: node is still draining\n"
    assert len(hostile_server.received) == 1


def test_a_failed_migration_in_a_202_is_a_refusal(at, hostile_server):
    hostile_server.script(hostile.answer(202, {"migration_id": "mig-1", "status": "FAILED",
                                               "error": "target disk full"}))
    run = at(hostile_server, "migrate-shard", "--shard-id", "shard-00", "--to-node", "n3", "--wait")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster did not migrate shard shard-00: target disk full\n"
    assert len(hostile_server.received) == 1  # no wait on a migration that never started


@pytest.mark.parametrize("body, reason", [
    ({"node_id": "n9", "error": "node n9 not added: quota reached"}, "node n9 not added: quota reached"),
    ({"node_id": "n9", "status": "REJECTED", "message": "address blocked"}, "address blocked"),
    ({"node_id": "n9", "status": "failed"}, "the answer says FAILED"),  # read in the contract's form
    ({"node_id": "n9", "status": "Rejected", "error": {"code": "E42"}}, '{"code":"E42"}'),
])
@pytest.mark.parametrize("command", sorted(CHANGES))
def test_any_refusal_in_a_2xx_is_exit_1_with_the_servers_reason(at, hostile_server, command, body, reason):
    argv, method, path = CHANGES[command]
    hostile_server.script(hostile.answer(200 if method == "DELETE" else 202, body))
    run = at(hostile_server, *argv)
    assert_one_error_line(run, 1)
    action = {"add-node": "add node n9", "remove-node": "remove node node-worker-002",
              "migrate-shard": "migrate shard shard-00"}[command]
    assert run.err == "error: the cluster did not %s: %s\n" % (action, reason)
    assert len(hostile_server.received) == 1


def test_a_migrations_null_error_is_not_a_refusal(at, hostile_server):
    hostile_server.script(hostile.answer(202, {"migration_id": "mig-1", "shard_id": "shard-00", "status": "PENDING",
                                               "error": None}))
    run = at(hostile_server, *CHANGES["migrate-shard"][0])
    assert run.code == 0 and run.out.startswith("Migration mig-1 started")


def test_the_library_raises_change_refused(hostile_server):
    hostile_server.script(hostile.answer(200, {"removed": "false", "error": "busy"}))
    with pytest.raises(cluster_cli.ChangeRefused) as raised:
        cluster_cli.ClusterCLI(url=hostile_server.url).remove_node("n1")
    assert raised.value.server_message == "busy"


# -- 4. ids that URL normalisation would turn into other paths ---------------------------------

@pytest.mark.parametrize("argv", [
    ["remove-node", "--node-id", "."], ["remove-node", "--node-id", ".."],
    ["migrate-shard", "--shard-id", "..", "--to-node", "n"], ["node-health", "--node-id", "..."],
    ["shard-status", "--shard-id", "."],
])
def test_dot_ids_are_refused_before_sending(cli, sim, argv):
    run = cli(*argv)
    assert_one_error_line(run, 2)
    assert "(only dots)" in run.err
    assert sim.requests == []


def test_the_library_refuses_dot_ids_by_parameter_name(sim):
    client = cluster_cli.ClusterCLI(url=sim.url)
    for call in (lambda: client.remove_node(".."), lambda: client.migrate_shard("..", "n"),
                 lambda: client.migrate_shard("s", "n", source_node=".")):
        with pytest.raises(cluster_cli.InvalidInput) as raised:
            call()
        assert raised.value.param in ("node_id", "shard_id", "source_node")
        assert str(raised.value).startswith(raised.value.param)
    assert sim.requests == []


# -- 5. --timeout is the whole request -----------------------------------------------------------

def test_a_trickled_body_ends_at_the_timeout(at, hostile_server):
    body = json.dumps({"status": "HEALTHY", "pad": " " * 400}).encode()
    hostile_server.script(hostile.trickle(body, 0.02))  # 400+ bytes: over 8 s if read to the end
    run = at(hostile_server, "--timeout", "1", "--retries", "0", "status")
    assert_one_error_line(run, 3)
    assert run.err == "error: no complete answer from %s within 1s\n" % hostile_server.url
    assert hostile_server.received[0].ended.wait(10)  # the server's send fails once the CLI hung up
    assert hostile_server.received[0].body_sent < len(body) // 2  # hung up long before the end


def test_a_change_whose_answer_trickles_past_the_timeout_may_have_been_applied(at, hostile_server):
    hostile_server.script(hostile.trickle(b'{"node_id": "n9", "status": "JOINING"' + b" " * 400 + b"}", 0.02))
    run = at(hostile_server, "--timeout", "1", *CHANGES["add-node"][0])
    assert_one_error_line(run, 3)
    assert ("within 1s; the POST may or may not have been applied; check with 'cluster_cli.py --url %s nodes'"
            % hostile_server.url) in run.err
    assert len(hostile_server.received) == 1


# -- 6. waits end on time, and ride out an election ---------------------------------------------

@pytest.mark.real_clock  # the server keeps the real time; so must the CLI's retry pauses
def test_a_wait_against_a_503_master_ends_at_its_deadline_with_a_last_poll(at, hostile_server):
    hostile_server.default = hostile.answer(503, {"error": "leader election in progress"})
    run = at(hostile_server, "status", "--wait-for", "HEALTHY", "--wait-timeout", "2")
    assert run.code == 4
    waited = float(re.search(r"within ([0-9.]+)s", run.err).group(1))
    assert waited >= 2.0, run.err  # never gives up early
    # Not 12 s of retries either: polls at 0, 0.25, 0.75 and 1.75 s, one at the deadline and one more in its grace.
    assert len(hostile_server.received) <= 7
    assert run.err.startswith("error: cluster did not become HEALTHY within %.1fs (leader election in progress "
                              "(HTTP 503); the cluster was still unavailable after " % waited)


@pytest.mark.real_clock  # the server keeps the real time; so must the CLI's retry pauses
def test_default_get_retries_ride_out_an_election_of_several_seconds(at, hostile_server):
    hostile_server.default = hostile.unavailable_for(2.5, hostile.answer(200, {"status": "HEALTHY"}))
    run = at(hostile_server, "status", "--format", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert len(hostile_server.received) > 3


def test_retries_stay_inside_an_explicit_timeout(at, hostile_server):
    hostile_server.default = hostile.answer(503, {"error": "leader election in progress"})
    run = at(hostile_server, "--timeout", "1", "status")
    assert_one_error_line(run, 1)
    tries = int(re.search(r"after (\d+) tries", run.err).group(1))
    assert tries == len(hostile_server.received) and tries < 5  # pauses 0.25 + 0.5 fit in 1 s, 1 more does not


def test_a_503_to_a_change_says_what_is_true(at, hostile_server):
    hostile_server.script(hostile.answer(503, {"error": "leader election in progress"}))
    run = at(hostile_server, *CHANGES["add-node"][0])
    assert_one_error_line(run, 1)
    assert run.err == ("error: leader election in progress (HTTP 503); changes are never retried, and this one "
                       "was not applied: send it again when the cluster is ready\n")
    assert len(hostile_server.received) == 1


# -- 7. response size ---------------------------------------------------------------------------

def test_a_huge_content_length_is_refused_before_reading(at, hostile_server):
    hostile_server.script(hostile.huge(2 * 1024 ** 3))
    run = at(hostile_server, "status")
    assert_one_error_line(run, 1)
    assert run.err == ("error: the cluster's answer is 2,147,483,648 bytes, more than --max-response-size "
                       "(256M)\n")


def test_an_endless_body_stops_at_the_limit(at, hostile_server):
    hostile_server.script(hostile.endless())
    run = at(hostile_server, "--max-response-size", "1M", "shards")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster's answer is larger than --max-response-size (1M)\n"


def test_a_gzip_bomb_stops_at_the_limit_in_little_memory(hostile_server):
    hostile_server.script(hostile.gzip_bomb(512 * 1024 ** 2))
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's across fork and exec.
    code = ("import re, sys; sys.argv[0] = 'cluster_cli.py'; import cluster_cli; "
            "code = cluster_cli.main(sys.argv[1:]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "--url", hostile_server.url, "--max-response-size", "8M",
                           "shards"], capture_output=True, text=True, timeout=60, cwd=os.path.dirname(SCRIPT))
    assert done.returncode == 1
    assert done.stderr == "error: the cluster's answer is larger than --max-response-size (8M)\n"
    assert int(done.stdout) < 200 * 1024  # KiB: 512 MB inflated would be far above


def test_the_library_takes_max_response_size(hostile_server):
    hostile_server.script(hostile.endless())
    client = cluster_cli.ClusterCLI(url=hostile_server.url, max_response_size="64K")
    with pytest.raises(cluster_cli.ResponseTooLarge) as raised:
        client.list_shards()
    assert str(raised.value) == "the cluster's answer is larger than max_response_size (64K)"
    assert raised.value.exit_code == 1


@pytest.mark.parametrize("value", ["0", "12X", "-1M", ""])
def test_a_bad_size_is_an_input_error(cli, sim, value):
    run = cli("--max-response-size", value, "status")
    assert_one_error_line(run, 2)
    assert run.err.startswith("error: argument --max-response-size: ")


# -- 8. every value renders, or is one clean line ------------------------------------------------

HUGE = "1" + "0" * 399

ODD_SHARDS = ('[{"shard_id": "s1", "primary_node": ["n1"], "replica_nodes": [["n2"]], "vector_count": %s, '
              '"replicas": %s, "size_bytes": %s, "status": "HEALTHY"}, {"primary_node": "n1"}, '
              '{"shard_id": "s3", "primary_node": "n1", "replica_nodes": %s}]'
              % (HUGE, HUGE, HUGE, "[" * 300 + "]" * 300))


@pytest.mark.parametrize("fmt", ["table", "compact", "json"])
def test_numbers_past_range_and_nested_ids_render(at, hostile_server, fmt):
    hostile_server.default = hostile.answer(200, ODD_SHARDS)
    run = at(hostile_server, "shards", "--format", fmt)
    assert run.code == 0, run
    if fmt == "json":
        assert run.json()[0]["vector_count"] == int(HUGE)
    else:  # the ID in a list is shown as its text, the number clipped
        assert "n1" in run.out and "1,000,000,000" in run.out and "..." in run.out
        assert max(len(line) for line in run.lines) < 4 * cluster_cli.MAX_CELL


@pytest.mark.parametrize("body", [
    '{"status": "HEALTHY", "total_nodes": %s, "replication_factor": 1e999}' % HUGE,
    '{"status": ["HEALTHY"], "master_node": {"a": [1, [2]]}, "total_shards": -%s}' % HUGE,
])
@pytest.mark.parametrize("fmt", ["table", "compact", "json"])
def test_status_values_of_any_shape_render(at, hostile_server, body, fmt):
    hostile_server.default = hostile.answer(200, body)
    run = at(hostile_server, "status", "--format", fmt)
    assert run.code == 0, run


@pytest.mark.parametrize("argv", [["remove-node", "--node-id", "n1", "--dry-run"],
                                  ["migrate-shard", "--shard-id", "s1", "--to-node", "n2", "--dry-run"]])
def test_a_planner_refuses_ids_that_are_not_ids_in_one_line(at, hostile_server, argv):
    hostile_server.default = hostile.by_path({
        "/api/v1/cluster/status": '{"master_node": "n0", "replication_factor": 2}',
        "/api/v1/cluster/nodes": '[{"node_id": ["n1"], "status": "HEALTHY"}]',
        "/api/v1/cluster/shards/s1": '{"shard_id": "s1", "primary_node": "n1"}'}, hostile.answer(200, ODD_SHARDS))
    run = at(hostile_server, *argv)
    assert_one_error_line(run, 1)
    assert run.err == 'error: the cluster sent a node whose node_id is ["n1"], not an ID\n'
    assert all(r.method == "GET" for r in hostile_server.received)


def test_a_shard_without_an_id_is_named_in_one_line(at, hostile_server):
    hostile_server.default = hostile.by_path({
        "/api/v1/cluster/status": '{"master_node": "n0", "replication_factor": 2}',
        "/api/v1/cluster/nodes": '[{"node_id": "n1", "status": "HEALTHY"}]'},
        hostile.answer(200, '[{"primary_node": "n1", "replica_nodes": ["n2"]}]'))
    run = at(hostile_server, "remove-node", "--node-id", "n1", "--dry-run")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster sent a shard whose shard_id is missing, not an ID\n"


def test_the_removal_confirmation_refuses_odd_ids_in_one_line(hostile_server):
    hostile_server.default = hostile.by_path({
        "/api/v1/cluster/status": '{"master_node": "n0"}',
        "/api/v1/cluster/nodes": '[{"node_id": [["n1"]], "status": "HEALTHY"}]'}, hostile.answer(200, "[]"))
    code, shown, out = on_terminal(hostile_server, ["remove-node", "--node-id", "n1"], stream="stdin")
    assert code == 1
    assert shown.strip() == 'error: the cluster sent a node whose node_id is [["n1"]], not an ID'
    assert all(r.method == "GET" for r in hostile_server.received)


@pytest.mark.parametrize("depth", [900, 5000, 100000])
@pytest.mark.parametrize("fmt", ["json", "table", "compact"])
def test_lists_nested_deep_print_or_fail_in_one_line(at, hostile_server, depth, fmt):
    hostile_server.default = hostile.answer(200, '{"status": "HEALTHY", "master_node": %s}'
                                            % ("[" * depth + "]" * depth))
    run = at(hostile_server, "status", "--format", fmt)
    if run.code == 0:
        assert run.out.count("[") >= depth if fmt == "json" else "HEALTHY" in run.out
    else:
        assert_one_error_line(run, 1)
        assert run.err.startswith(("error: the cluster answered HTTP 200 with a body that is not JSON",
                                   "error: the cluster's answer is nested too deeply to print"))


def test_the_migration_id_is_printed_before_the_wait_can_fail(at, hostile_server):
    hostile_server.script(hostile.answer(202, {"migration_id": "mig-77", "shard_id": "shard-00",
                                               "status": "PENDING"}),
                          hostile.answer(404, {"error": "shard shard-00 not found"}))
    run = at(hostile_server, "migrate-shard", "--shard-id", "shard-00", "--to-node", "n3", "--wait")
    assert run.code == 1
    assert run.err.splitlines() == [
        "migration mig-77 of shard-00 started; waiting for it (Ctrl-C stops waiting, not the migration)",
        "error: shard shard-00 not found (HTTP 404)"]


# -- 9. strict JSON ---------------------------------------------------------------------------------

def test_nan_and_infinity_become_null(at, hostile_server):
    hostile_server.default = hostile.answer(
        200, '{"cpu_usage": NaN, "memory_usage": Infinity, "disk_usage": -Infinity, "total_vectors": 1e400}')
    run = at(hostile_server, "metrics", "--format", "json")
    assert run.code == 0
    assert json.loads(run.out, parse_constant=lambda c: pytest.fail("not strict JSON: " + c)) == {
        "cpu_usage": None, "memory_usage": None, "disk_usage": None, "total_vectors": None}
    assert cluster_cli.ClusterCLI(url=hostile_server.url).metrics()["cpu_usage"] is None


# -- 10. stdout closed or full, stderr broken ------------------------------------------------------

@pytest.mark.parametrize("redirect, reason", [(">&-", "stdout is closed"),
                                              (">/dev/full", "No space left on device")])
def test_an_unwritable_stdout_is_one_line_and_exit_1(sim, redirect, reason):
    done = subprocess.run("exec %s %s --url %s status %s" % (sys.executable, SCRIPT, sim.url, redirect),
                          shell=True, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, "error: cannot write output: %s\n" % reason)


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_broken_stderr_never_changes_the_exit_code(redirect):
    done = subprocess.run("exec %s %s --port %d --retries 0 status %s"
                          % (sys.executable, SCRIPT, free_port(), redirect),
                          shell=True, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3


# -- 11. no secret printed ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, env", [
    (["--url", "http://admin:hunter2pass@h:8080", "status"], {}),
    (["--host", "admin:hunter2pass@h", "status"], {}),
    (["status"], {"JADEVECTORDB_URL": "http://admin:hunter2pass@h:8080"}),
    (["--apikey", "hunter2pass", "status"], {}),
    (["--api_key", "hunter2pass", "status"], {}),
    (["--api-key=hunter2pass", "--bogus", "status"], {}),
    (["--token", "hunter2pass", "status"], {}),
    (["--apikey", "hu2", "status"], {}),
])
def test_no_secret_reaches_any_message(cli, clean_env, sim, argv, env):
    for name, value in env.items():
        clean_env.setenv(name, value)
    run = cli(*argv, target=False)
    assert run.code == 2, run
    assert "hunter2pass" not in run.err and "hu2" not in run.err, run.err
    assert sim.requests == []


# -- 12. control characters and stray characters in hosts; numbers that are not durations ---------------

@pytest.mark.parametrize("argv", [
    ["--host", "evil\x1bc", "status"], ["--host", "a#b", "status"], ["--host", "a?b", "status"],
    ["--host", "[x", "status"], ["--host", "a]b", "status"], ["--url", "http://evil\x1bc:80", "status"],
    ["--url", "http://a#b:80", "status"], ["add-node", "--node-id", "n", "--address", "evil\x1bc:80"],
    ["--timeout", "nan", "status"], ["--timeout", "inf", "status"], ["--timeout", "1e300", "status"],
    ["status", "--wait-for", "HEALTHY", "--wait-timeout", "nan"],
])
def test_hosts_and_durations_that_cannot_be_right_are_input_errors(cli, sim, argv):
    run = cli(*argv, target="--host" not in argv and "--url" not in argv)
    assert_one_error_line(run, 2)
    assert "\x1b" not in run.err
    assert sim.requests == []


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 1e300, -1, "soon", True])
def test_the_library_refuses_such_timeouts(sim, timeout):
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        cluster_cli.ClusterCLI(url=sim.url, timeout=timeout)
    assert raised.value.param == "timeout"


def test_every_warning_is_escaped_as_errors_are(capsys):
    cluster_cli.warn("host evil\x1bc")
    assert capsys.readouterr().err == "warning: host evil\\x1bc\n"


# -- 13. the library raises only its own errors ----------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda url: cluster_cli.ClusterCLI(url=url, verify="/no/such/ca.pem"),
    lambda url: cluster_cli.ClusterCLI(url=url).node_health("\udc80"),
    lambda url: cluster_cli.ClusterCLI(url=url).list_shards(database_id="\udc80"),
    lambda url: cluster_cli.ClusterCLI(url=url, retries=-1),
    lambda url: cluster_cli.ClusterCLI(url=url, max_response_size="lots"),
    lambda url: cluster_cli.ClusterCLI(url=["http://a:1", 7]),
])
def test_bad_arguments_raise_invalid_input(sim, call):
    with pytest.raises(cluster_cli.InvalidInput):
        call(sim.url)
    assert sim.requests == []


def test_hosts_may_be_a_sequence(sim):
    client = cluster_cli.ClusterCLI(host=["127.0.0.1", "localhost:9"], port=sim.port)
    assert client.base_urls == [sim.url, "http://localhost:9"]
    assert client.cluster_status()["status"] == "HEALTHY"


# -- 14. advice that matches what happens: Ctrl-C during a change or a wait ---------------------------------

def interrupt_when_received(server, argv, count=1):
    process = subprocess.Popen([sys.executable, SCRIPT, "--url", server.url] + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_until(lambda: len(server.received) >= count, 20, what="%d requests received" % count)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def test_ctrl_c_during_a_change_says_it_may_have_been_applied(hostile_server):
    hostile_server.script(hostile.hang())
    code, out, err = interrupt_when_received(hostile_server, CHANGES["add-node"][0])
    assert (code, out) == (130, "")
    assert err == ("error: interrupted while the request to add n9 was in flight; it may or may not have been "
                   "applied: check with 'cluster_cli.py --url %s nodes'\n" % hostile_server.url)


def test_ctrl_c_during_a_wait_names_the_migration_that_goes_on(hostile_server):
    hostile_server.default = hostile.answer(200, {"shard_id": "shard-00", "migration": {
        "migration_id": "mig-9", "status": "IN_PROGRESS", "progress": 10}})
    hostile_server.script(hostile.answer(202, {"migration_id": "mig-9", "status": "PENDING"}))
    code, out, err = interrupt_when_received(hostile_server, CHANGES["migrate-shard"][0] + ["--wait"], count=2)
    assert code == 130
    assert err.splitlines()[-1] == ("error: interrupted; migration mig-9 of shard-00 goes on: follow it again with "
                                    "'cluster_cli.py --url %s shard-status --shard-id shard-00 --wait'"
                                    % hostile_server.url)


def test_a_wait_through_failing_polls_frees_what_they_leave(hostile_server, capsys):
    """A failed request leaves reference cycles (urllib3's exceptions hold their connection and frames,
    about 20 KiB): a wait of hours through failing polls must free them as it goes, not hold them all."""
    import gc
    import threading
    hostile_server.default = hostile.drop()
    alive = []

    def count_then_interrupt():
        deadline = time.monotonic() + 120  # a machine too slow for 1,400 polls fails below, never hangs
        for polls in (200, 1400):
            while len(hostile_server.received) < polls and time.monotonic() < deadline:
                time.sleep(0.005)
            alive.append(len(gc.get_objects()))
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupter = threading.Thread(target=count_then_interrupt)
        interrupter.start()
        code = cluster_cli.main(["--url", hostile_server.url, "--retries", "0", "status", "--wait-for", "HEALTHY",
                                 "--wait-timeout", "300", "--poll-interval", "0.001"])
        interrupter.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and capsys.readouterr().out == ""
    assert len(hostile_server.received) >= 1400
    # Each failed poll leaves about 110 objects in cycles: held, 1,200 more polls would hold 130,000 more.
    assert alive[1] - alive[0] < 70000, alive


# -- the library speaks Python, the command line speaks flags ------------------------------------------

def test_library_errors_name_parameters_and_the_cli_names_flags(cli, sim):
    sim.server.api_keys = {"right-key": "admin"}
    with pytest.raises(cluster_cli.AuthenticationFailed) as raised:
        cluster_cli.ClusterCLI(url=sim.url, api_key="wrong-key").cluster_status()
    assert str(raised.value).endswith("; the API key sent was refused; pass a valid one as api_key")
    run = cli("--api-key", "wrong-key", "status")
    assert run.err.endswith("; the API key sent, from --api-key, was refused; pass a valid one with --api-key or "
                            "JADEVECTORDB_API_KEY\n")
    with pytest.raises(cluster_cli.InvalidInput, match="^node_id must not be empty$"):
        cluster_cli.ClusterCLI(url=sim.url).node_health(" ")
    with pytest.raises(cluster_cli.InvalidInput, match="^max_response_size: 'x' is not a size"):
        cluster_cli.ClusterCLI(url=sim.url, max_response_size="x")


def test_all_names_the_public_api():
    assert set(cluster_cli.__all__) <= set(dir(cluster_cli))
    assert {"ClusterCLI", "ClusterError", "main", "EXIT_CONDITION"} <= set(cluster_cli.__all__)
    for name in cluster_cli.__all__:
        value = getattr(cluster_cli, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, cluster_cli.ClusterError) and isinstance(value.exit_code, int)


def test_a_library_call_and_an_in_process_main_leave_the_interpreter_as_they_found_it(cli, sim, hostile_server):
    import gc
    import logging
    import warnings

    logger = logging.getLogger("cluster_cli")
    before = (gc.isenabled(), logger.level, list(logger.handlers), list(warnings.filters))
    cluster_cli.ClusterCLI(url=sim.url, verify=False).list_shards()
    assert cli("--verbose", "nodes").code == 0
    assert cli("--verbose", "--url", hostile_server.url, "status", target=False).code == 0
    assert cli("--insecure", "--url", hostile_server.url, "status", target=False).code == 0
    assert (gc.isenabled(), logger.level, list(logger.handlers), list(warnings.filters)) == before
