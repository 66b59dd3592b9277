"""Fleet reads: one read command asked of many contexts' clusters at once (--contexts, --all-contexts).

The fleet: east (the session's simulator, the file's default context), west (a second simulator speaking
JadeVectorDB's own dialect in camelCase, its key in WEST_KEY), stranger (west again, with a key west does not
take), slow (a third simulator that answers after a delay) and dead (nothing listens).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import cluster_cli
import simulator
from conftest import SCRIPT, commands_that, free_port, interruptible, sample, wait_until
from test_examples import block_after, output_after

FLEET = "east,west,stranger,slow,dead"


class Hung:
    """A server that takes every connection and the request on it, and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port, self.held = self.sock.getsockname()[1], []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self):
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def fleet(sim, tmp_path, clean_env):
    """Writes the fleet's contexts file (JADEVECTORDB_CONFIG) and starts west and slow; returns
    {name: its server (dead: the port nothing listens on)}, and the file's path as "file"."""
    west = simulator.start(cluster=simulator.Cluster(nodes=2, shards=4, replication_factor=2, seed=7,
                                                     personality=("dialect", "camel-case")),
                           api_keys={"west-key": "read"})
    slow = simulator.start(cluster=simulator.Cluster(nodes=3, shards=12, replication_factor=2, seed=7))
    slow.cluster.faults["delay"] = 0.4
    path, dead = tmp_path / "cluster.toml", free_port()
    path.write_text('default_context = "east"\n\n'
                    '[contexts.east]\nurl = "%s"\n\n'
                    '[contexts.west]\nurl = "http://127.0.0.1:%d"\napi_prefix = "/v1"\napi_key_env = "WEST_KEY"\n\n'
                    '[contexts.stranger]\nurl = "http://127.0.0.1:%d"\napi_prefix = "/v1"\n'
                    'api_key_env = "OTHER_KEY"\n\n'
                    '[contexts.slow]\nurl = "http://127.0.0.1:%d"\n\n'
                    '[contexts.dead]\nurl = "http://127.0.0.1:%d"\nretries = 0\n'
                    % (sim.url, west.port, west.port, slow.port, dead))
    os.chmod(str(path), 0o600)
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    clean_env.setenv("WEST_KEY", "west-key")
    clean_env.setenv("OTHER_KEY", "not-west-key")
    yield {"east": sim, "west": west, "slow": slow, "dead": dead, "file": path}
    for server in (west, slow):
        server.shutdown()
        server.server_close()


def test_a_table_has_one_row_per_cluster_in_the_order_asked_led_by_its_context(cli, fleet):
    run = cli("--contexts", FLEET, "status", "--columns", "status,total_nodes", "-o", "csv", target=False)
    dead = "http://127.0.0.1:%s" % fleet["dead"]
    assert run.lines == [
        "context,status,total_nodes,error",
        "east,HEALTHY,3,",
        "west,HEALTHY,2,",
        "stranger,,,\"authentication_failed: missing or invalid API key (HTTP 401 UNAUTHENTICATED); the API key "
        "sent, from OTHER_KEY (the api_key_env of context 'stranger'), was refused; pass a valid one with --api-key "
        "or JADEVECTORDB_API_KEY\"",
        "slow,HEALTHY,3,",
        "dead,,,cluster_unreachable: cannot reach %s: connection refused" % dead]
    assert run.err == "error: 2 of 5 contexts failed: stranger (authentication_failed), dead (cluster_unreachable)\n"
    assert run.code == cluster_cli.EXIT_UNREACHABLE  # the worst: a cluster not reached before one that refused


def test_a_table_leads_with_context_and_ends_with_the_error(cli, fleet):
    run = cli("--contexts", "east,west", "status", target=False)
    assert run.code == 0 and run.err == ""
    assert run.lines[1].split("│")[1:-1] == [
        " Context ", " Cluster Name ", " Master Node     ", " Total Nodes ", " Active Nodes ", " Total Shards ",
        " Status  ", " Replication Factor ", " Error "]
    assert [line.split("│")[1].strip() for line in run.lines[3:-1]] == ["east", "west"]


def test_json_is_a_list_in_the_order_asked_each_with_its_result_or_error(cli, fleet):
    run = cli("--contexts", "dead,east,stranger", "nodes", "-o", "json", target=False)
    entries = run.json()
    assert [(e["context"], e["ok"]) for e in entries] == [("dead", False), ("east", True), ("stranger", False)]
    assert entries[0]["error"] == {"kind": "cluster_unreachable", "exit_code": 3, "message":
                                   "cannot reach http://127.0.0.1:%s: connection refused" % fleet["dead"]}
    assert entries[2]["error"]["kind"] == "authentication_failed" and entries[2]["error"]["exit_code"] == 1
    assert "result" not in entries[0] and "result" not in entries[2]
    assert [node["node_id"] for node in entries[1]["result"]] == ["node-master-001", "node-worker-001",
                                                                  "node-worker-002"]
    assert run.code == 3


def test_each_cluster_is_read_in_its_own_dialect_and_with_its_own_key(cli, fleet):
    run = cli("--contexts", "west", "shards", "-o", "json", target=False)
    assert run.code == 0
    assert [s["shard_id"] for s in run.json()[0]["result"]] == ["shard-00", "shard-01", "shard-02", "shard-03"]
    asked = fleet["west"].cluster.requests
    assert {r["path"].split("/")[1] for r in asked} == {"v1"}
    assert {r["authorization"] for r in asked} == {"Bearer west-key"}


def test_the_default_context_is_never_asked(cli, fleet):
    assert cli("--contexts", "slow,west", "status", target=False).code == 0
    assert fleet["east"].requests == []


def test_ndjson_gives_each_cluster_as_it_ends(cli, fleet):
    run = cli("--contexts", "slow,east", "status", "-o", "ndjson", target=False)
    entries = [json.loads(line) for line in run.lines]
    assert [e["context"] for e in entries] == ["east", "slow"]  # slow was asked first, and answered last
    assert all(e["ok"] and e["result"]["status"] == "HEALTHY" for e in entries) and run.code == 0
    one_at_a_time = cli("--contexts", "slow,east", "--parallel", "1", "status", "-o", "ndjson", target=False)
    assert [json.loads(line)["context"] for line in one_at_a_time.lines] == ["slow", "east"]


def test_compact_is_each_clusters_own_lines_after_its_context(cli, fleet):
    run = cli("--contexts", "east,west,dead", "status", "-o", "compact", target=False)
    assert run.lines == [
        "east | HEALTHY | 3 nodes | 12 shards | master: node-master-001",
        "west | HEALTHY | 2 nodes | 4 shards | master: node-master-001",
        "dead | cluster_unreachable: cannot reach http://127.0.0.1:%s: connection refused" % fleet["dead"]]


def test_prometheus_labels_every_series_with_its_context(cli, fleet):
    run = cli("--contexts", "east,dead", "metrics", "-o", "prometheus", target=False)
    lines = run.lines
    assert lines.count("# TYPE jadevectordb_cluster_up gauge") == 1
    assert 'jadevectordb_cluster_up{context="east",command="metrics"} 1' in lines
    assert 'jadevectordb_cluster_up{context="dead",command="metrics"} 0' in lines
    assert 'jadevectordb_node_cpu_usage_ratio{context="east",node_id="node-master-001"} 0.247' in lines
    series = [line for line in lines if not line.startswith("#")]
    assert all(line.split("{", 1)[1].startswith('context="') for line in series)
    # each metric's samples together, after its HELP and TYPE, as the exposition format asks
    names = [line.split("{", 1)[0] for line in series]
    assert names == sorted(names, key=names.index) and len(set(names)) == len(
        [line for line in lines if line.startswith("# TYPE")])


def test_the_exit_code_is_the_worst_clusters(cli, fleet):
    assert cli("--contexts", "east,west", "status", target=False).code == 0
    assert cli("--contexts", "east,stranger", "status", target=False).code == 1
    fleet["east"].down("node-worker-002")
    checked = cli("--contexts", "east,west", "status", "--check", "-o", "json", target=False)
    assert checked.code == 4 and [e["ok"] for e in checked.json()] == [False, True]
    # a condition not met still answers: what was read is there beside the error
    assert checked.json()[0]["result"]["status"] == "DEGRADED"
    assert checked.json()[0]["error"]["kind"] == "condition_not_met"
    assert cli("--contexts", "east,stranger", "status", "--check", target=False).code == 1
    assert cli("--contexts", "dead,east,stranger", "status", "--check", target=False).code == 3


@pytest.mark.parametrize("name", commands_that(lambda declared: declared.changes))
def test_a_command_that_changes_a_cluster_refuses_a_list_of_contexts(cli, fleet, name):
    run = cli(*sample(name), "--contexts", "east,west", target=False)
    assert (run.code, run.out) == (2, "")
    assert run.err == "error: %s changes a cluster: it takes one cluster (--context), not --contexts\n" % name
    assert fleet["east"].requests == [] and fleet["west"].cluster.requests == []


def test_flags_that_name_one_cluster_do_not_go_with_a_list(cli, fleet):
    for flags in (["--context", "east"], ["--url", fleet["east"].url], ["--port", "1"], ["--watch", "1"], ["--raw"]):
        run = cli("--contexts", "east", "status", *flags, target=False)
        assert run.code == 2 and run.err == (
            "error: %s does not go with --contexts: each context names its own cluster\n" % flags[0]), flags
    both = cli("--contexts", "east", "--all-contexts", "status", target=False)
    assert both.err == "error: --contexts does not go with --all-contexts: each context names its own cluster\n"
    assert fleet["east"].requests == []


def test_an_unknown_context_in_the_list_stops_everything_before_a_request(cli, fleet):
    run = cli("--contexts", "east,staging", "status", target=False)
    assert run.code == 2 and run.out == "" and "staging" in run.err and run.err.startswith("error: ")
    assert fleet["east"].requests == []


def test_all_contexts_asks_every_context_in_the_files_order(cli, fleet):
    run = cli("--all-contexts", "health", "-o", "json", target=False)
    assert [e["context"] for e in run.json()] == ["east", "west", "stranger", "slow", "dead"]
    assert cli("--contexts", "east,east,west", "health", "-o", "json", target=False).json()[1]["context"] == "west"


@pytest.mark.parametrize("name", commands_that(lambda d: not (d.changes or d.local or d.writes_output)))
def test_every_read_command_takes_a_list_of_contexts(cli, fleet, name):
    run = cli(*sample(name), "--contexts", "east,dead", "-o", "json", target=False)
    entries = run.json()
    assert [(e["context"], e["ok"]) for e in entries] == [("east", True), ("dead", False)], run
    assert run.code == 3


def test_a_dead_cluster_among_several_costs_one_timeout_not_one_each(fleet, tmp_path):
    hung = [Hung() for _ in range(4)]
    try:
        text = "".join('[contexts.hung%d]\nurl = "http://127.0.0.1:%d"\n' % (n, h.port) for n, h in enumerate(hung))
        path = tmp_path / "hung.toml"
        path.write_text(fleet["file"].read_text() + text)
        os.chmod(str(path), 0o600)
        env = dict(os.environ, JADEVECTORDB_CONFIG=str(path))
        started = time.monotonic()
        done = subprocess.run([sys.executable, SCRIPT, "--contexts", "hung0,east,hung1,hung2,hung3", "--timeout",
                               "2", "status", "-o", "json"], capture_output=True, text=True, env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        for server in hung:
            server.close()
    entries = json.loads(done.stdout)
    assert [e["ok"] for e in entries] == [False, True, False, False, False] and done.returncode == 3
    assert {e["error"]["kind"] for e in entries if not e["ok"]} == {"cluster_unreachable"}
    # one after another, four hung clusters take 4 x 2 s at the least; asked at once, about one --timeout
    assert took < 6, took


def test_sigterm_ends_a_fleet_read_at_once(fleet, tmp_path):
    hung = Hung()
    try:
        path = tmp_path / "hung.toml"
        path.write_text('[contexts.hung]\nurl = "http://127.0.0.1:%d"\n' % hung.port)
        os.chmod(str(path), 0o600)
        process = subprocess.Popen([sys.executable, SCRIPT, "--all-contexts", "--timeout", "600", "status"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
                                   env=dict(os.environ, JADEVECTORDB_CONFIG=str(path)))
        wait_until(lambda: hung.held, what="the request on the hung server")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        hung.close()
    assert (process.returncode, out, err) == (143, "", "terminated by SIGTERM\n")


def test_no_context_key_is_shown_even_when_verbose(cli, fleet):
    run = cli("--contexts", "west,stranger", "-v", "status", "-o", "json", target=False)
    assert "west-key" not in run.out + run.err and "not-west-key" not in run.out + run.err
    assert run.err.count("GET") >= 2


def test_a_context_whose_key_is_not_set_has_its_entry_and_the_others_are_read(cli, fleet, clean_env):
    clean_env.delenv("WEST_KEY")
    run = cli("--contexts", "west,east", "status", "-o", "json", target=False)
    assert [e["ok"] for e in run.json()] == [False, True] and run.code == 2
    assert run.json()[0]["error"]["kind"] == "invalid_input" and "WEST_KEY" in run.json()[0]["error"]["message"]
    assert fleet["west"].cluster.requests == []


def test_the_readmes_fleet_example_prints_what_it_shows(cli, sim, tmp_path, clean_env):
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.staging]\nurl = "%s"\n\n[contexts.prod]\nurl = "%s"\nprotected = true\n' % (
        sim.url, sim.url))
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    command = block_after("## Many clusters at once", "bash").strip()
    run = cli(*command.split()[2:], target=False)
    assert (run.code, run.out, run.err) == (0, output_after(command), "")


def test_a_misbehaving_server_is_its_own_rows_error_and_the_others_are_read(cli, fleet, hostile_server, tmp_path,
                                                                             clean_env):
    import hostile
    path = tmp_path / "hostile.toml"
    path.write_text('[contexts.east]\nurl = "%s"\n\n[contexts.bad]\nurl = "%s"\nretries = 0\n' % (
        fleet["east"].url, hostile_server.url))
    path.chmod(0o600)
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    for behaviour, kind, code in ((hostile.endless(), "response_too_large", 1),
                                  (hostile.hang(), "cluster_unreachable", 3),
                                  (hostile.drop(), "cluster_unreachable", 3)):
        hostile_server.script(behaviour)
        run = cli("--all-contexts", "--max-response-size", "1M", "--timeout", "1", "nodes", "-o", "json",
                  target=False)
        east, bad = run.json()
        assert (run.code, east["ok"], bad["ok"], bad["error"]["kind"]) == (code, True, False, kind), run
        assert len(east["result"]) == 3 and "result" not in bad
        hostile_server.settle()
    assert [r.method for r in hostile_server.received] == ["GET"] * 3
