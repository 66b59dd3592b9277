"""bundle: the archive for a support ticket, against the simulator whole, with a node that hangs, with nothing
answering, on every server the contract allows; what the manifest says of each file, and what no file holds."""
import base64
import json
import os
import stat
import tarfile
from urllib.parse import quote

import pytest

import simulator
from conftest import on_terminal

API = ["api/health.json", "api/status.json", "api/nodes.json", "api/shards.json", "api/metrics.json",
       "api/diagnostics.json"]
NODE_HEALTH = ["api/node_health/%s.json" % node for node in ("node-master-001", "node-worker-001", "node-worker-002")]


def opened(path) -> dict:
    """The archive's files, {path: text}; each file's mode is 0600."""
    with tarfile.open(path) as archive:
        members = archive.getmembers()
        assert all(member.isfile() and member.mode == 0o600 for member in members)
        return {member.name: archive.extractfile(member).read().decode() for member in members}


def test_a_whole_bundle_holds_every_read_the_report_and_the_settings_and_exits_0(cli, sim, tmp_path):
    archive = tmp_path / "ticket.tar.gz"
    run = cli("bundle", "--output", archive, "--format", "json")
    assert (run.code, run.err) == (0, "")  # off a terminal, nothing but the manifest
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    files = opened(archive)
    manifest = json.loads(files["MANIFEST.json"])
    assert run.json() == manifest  # what is printed is the archive's manifest
    assert [entry["path"] for entry in manifest] == API + NODE_HEALTH
    assert sorted(files) == sorted(API + NODE_HEALTH + ["MANIFEST.json", "cli.json", "report.json"])
    for entry in manifest:
        assert set(entry) == {"path", "endpoint", "status", "http_status", "bytes", "seconds", "error"}
        assert (entry["status"], entry["http_status"], entry["error"]) == ("ok", 200, None)
        assert entry["bytes"] == len(files[entry["path"]].encode())
    assert manifest[1]["endpoint"] == "GET /api/v1/cluster/status"
    assert manifest[6]["endpoint"] == "GET /api/v1/cluster/nodes/node-master-001/health"
    assert json.loads(files["api/status.json"]) == sim.cluster.status()  # the server's answer as it came
    assert json.loads(files["report.json"])["status"] == "GREEN"
    settings = json.loads(files["cli.json"])
    assert (settings["api_key"], settings["settings"]["port"], settings["sources"]["address"]) == (
        None, sim.port, "--host and --port")
    assert {r["method"] for r in sim.requests} == {"GET"} and len(sim.requests) == len(manifest)


def test_the_shards_not_healthy_and_this_machines_journals_of_the_cluster_are_in_it(cli, sim, tmp_path):
    assert cli("add-node", "--node-id", "node-worker-004", "--address", "10.0.0.9:8080").code == 0
    sim.advance(60)
    sim.fault(stall_migrations=["shard-00", "shard-01", "shard-02"])
    assert cli("rebalance", "--yes", "--max-concurrent", "3", "--timeout", "1", "--poll-interval", "0.05",
               "--stall-timeout", "0.2").code != 0
    operation = cli("operations", "-o", "json").json()[-1]["operation"]
    run = cli("bundle", "--output", tmp_path / "b.tar.gz", "-o", "json")
    files = opened(tmp_path / "b.tar.gz")
    moving = sorted(path for path in files if path.startswith("api/shard_status/"))
    assert moving and all(json.loads(files[path])["status"] == "MIGRATING" for path in moving)
    journal = files["journals/%s.jsonl" % operation].splitlines()
    assert json.loads(journal[0])["operation"] == operation
    assert run.code in (0, 4)


def test_a_node_that_hangs_costs_its_timeout_is_marked_and_the_rest_is_collected(cli, sim, tmp_path):
    sim.fault(hang_paths=["/api/v1/cluster/nodes/node-worker-002/health"])
    run = cli("--timeout", "1", "bundle", "--output", tmp_path / "b.tar.gz", "-o", "json")
    assert run.code == 4
    assert run.err.splitlines()[-1] == ("error: 1 artifact not collected: api/node_health/node-worker-002.json "
                                        "timeout")
    manifest = run.json()
    hung = manifest.pop(8)
    assert (hung["path"], hung["status"], hung["http_status"], hung["bytes"]) == (NODE_HEALTH[2], "timeout", None, 0)
    assert hung["error"].startswith("no complete answer from http://127.0.0.1:%d within " % sim.port)
    assert {entry["status"] for entry in manifest} == {"ok"}
    files = opened(tmp_path / "b.tar.gz")
    assert NODE_HEALTH[2] not in files and json.loads(files["MANIFEST.json"])[8]["status"] == "timeout"


def test_the_deadline_bounds_the_whole_collection(cli, sim, tmp_path):
    sim.fault(hang_paths=["/api/v1/cluster/diagnostics"])
    run = cli("bundle", "--deadline", "1", "--output", tmp_path / "b.tar.gz", "-o", "json")
    assert run.code == 4
    diagnostics = run.json()[5]
    assert (diagnostics["path"], diagnostics["status"]) == ("api/diagnostics.json", "timeout")


def test_an_error_answer_is_kept_and_marked_and_the_key_is_in_no_file_in_any_form(cli, sim, tmp_path):
    key = "s3cr3t-Key/with+chars"
    sim.require_keys({key: "admin"})
    sim.fault(fail_paths={"/api/v1/cluster/metrics": 500})  # the simulator echoes the key, raw and in base64
    run = cli("--api-key", key, "--retries", "0", "bundle", "--output", tmp_path / "b.tar.gz", "-o", "json")
    assert run.code == 4
    metrics = run.json()[4]
    assert (metrics["status"], metrics["http_status"]) == ("error", 500)
    files = opened(tmp_path / "b.tar.gz")
    assert "internal error reading /api/v1/cluster/metrics" in files["api/metrics.json"]
    assert json.loads(files["cli.json"])["api_key"] == "set (not shown)"
    raw = ("Bearer " + key).encode()
    forms = [key, quote(key, safe=""), json.dumps(key)[1:-1], base64.b64encode(key.encode()).decode().rstrip("="),
             key.encode().hex(), base64.b64encode(raw).decode().rstrip("=")[8:]]
    with open(tmp_path / "b.tar.gz", "rb") as archive:
        assert key.encode() not in archive.read()
    for path, text in files.items():
        for form in forms:
            assert form not in text, (path, form)
    assert key not in run.out + run.err


def test_addresses_are_replaced_by_the_same_pseudonym_everywhere(cli, sim, tmp_path):
    run = cli("bundle", "--redact-addresses", "--output", tmp_path / "b.tar.gz", "-o", "json")
    assert run.code == 0
    files = opened(tmp_path / "b.tar.gz")
    text = "\n".join(files.values())
    for address in ["127.0.0.1"] + [node["address"].split(":")[0] for node in sim.cluster.nodes.values()]:
        assert address not in text
    nodes = json.loads(files["api/nodes.json"])
    nodes = nodes["nodes"] if isinstance(nodes, dict) else nodes
    addresses = [node["address"] for node in nodes]
    assert addresses == ["host-2:8080", "host-3:8080", "host-4:8080"]  # 127.0.0.1 is host-1: sorted order
    assert json.loads(files["cli.json"])["settings"]["host"] == "host-1"
    health = json.loads(files["api/node_health/node-worker-001.json"])
    assert health["address"] == addresses[1]


def test_list_says_what_would_be_collected_and_sends_nothing(cli, sim, tmp_path):
    run = cli("bundle", "--list", "-o", "json")
    assert run.code == 0 and sim.requests == [] and not list(tmp_path.iterdir())
    listed = run.json()
    assert [entry["path"] for entry in listed] == API + ["api/node_health/NODE_ID.json",
                                                         "api/shard_status/SHARD_ID.json"]
    assert [entry["endpoint"] for entry in listed[-3:]] == [
        "GET /api/v1/cluster/diagnostics", "GET /api/v1/cluster/nodes/NODE_ID/health",
        "GET /api/v1/cluster/shards/SHARD_ID"]


def test_nothing_read_is_exit_3_and_the_archive_says_what_failed(cli, tmp_path):
    run = cli("--host", "127.0.0.1", "--port", "1", "--retries", "0", "bundle", "--output", tmp_path / "b.tar.gz",
              "-o", "json", target=False)
    assert run.code == 3
    assert run.err.splitlines()[-1].startswith("error: nothing could be read: cannot reach")
    assert run.err.splitlines()[-1].endswith("'cluster_cli.py --host 127.0.0.1 --port 1 doctor' checks each step")
    files = opened(tmp_path / "b.tar.gz")
    assert sorted(files) == ["MANIFEST.json", "cli.json"]
    assert {entry["status"] for entry in json.loads(files["MANIFEST.json"])} == {"error"}


def test_the_default_name_has_the_cluster_and_the_time_and_an_old_file_is_replaced_whole(cli, sim, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("bundle", "-o", "compact").code == 0
    [name] = os.listdir(tmp_path)
    assert name.startswith("jadevectordb-bundle-127.0.0.1-") and name.endswith("Z.tar.gz")
    target = tmp_path / "old.tar.gz"
    target.write_text("old")
    target.chmod(0o644)
    assert cli("bundle", "--output", target).code == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600 and "MANIFEST.json" in opened(target)


@pytest.mark.parametrize("personality", sorted(simulator.PERSONALITIES))
def test_every_server_gives_a_whole_bundle(cli, sim, clean_env, tmp_path, personality):
    sim.reset(personality=personality)
    prefix = "/api/v1"
    if simulator.traits_of(personality).get("dialect"):
        clean_env.setenv("JADEVECTORDB_API_PREFIX", "/v1")
        prefix = "/v1"
    run = cli("bundle", "--output", tmp_path / "b.tar.gz", "-o", "json")
    assert run.code == 0, run.err
    manifest = run.json()
    assert [entry["path"] for entry in manifest] == API + NODE_HEALTH
    assert manifest[2]["endpoint"] == "GET %s/cluster/nodes" % prefix
    assert json.loads(opened(tmp_path / "b.tar.gz")["report.json"])["status"] == "GREEN"


def test_on_a_terminal_it_says_where_the_archive_went(sim, tmp_path):
    archive = tmp_path / "b.tar.gz"
    code, shown, printed = on_terminal(sim, ["bundle", "--output", str(archive), "-o", "json"], stream="stderr")
    assert code == 0 and json.loads(printed)[0]["path"] == "api/health.json"
    assert shown.strip() == "wrote %s: 12 files, %s" % (archive, shown.strip().rsplit(", ", 1)[1])
    assert shown.strip().endswith(("KiB", " B"))


@pytest.mark.parametrize("command", [["bundle", "--output", os.devnull], ["report"]])
def test_sigterm_ends_at_once_not_after_a_hung_requests_timeout(sim, tmp_path, command):
    """The reads run on threads; a hung one must not hold the command's end (a pool would, twice)."""
    import signal
    import subprocess
    import sys
    from conftest import SCRIPT, wait_until
    hung = "/api/v1/cluster/diagnostics"
    sim.fault(hang_paths=[hung])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_")}
    process = subprocess.Popen([sys.executable, SCRIPT, "--port", str(sim.port), "--timeout", "120"] + command,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    wait_until(lambda: any(r["path"] == hung for r in sim.requests), what="the hung request")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)  # the hang lasts a minute; the old pool waited it out
    assert (process.returncode, err) == (143, "terminated by SIGTERM\n")


def test_an_archive_that_cannot_be_written_is_refused_before_anything_is_read(cli, sim, tmp_path):
    run = cli("bundle", "--output", tmp_path / "missing" / "b.tar.gz")
    assert (run.code, run.out) == (1, "")
    assert run.err == "error: cannot write '%s': no such folder\n" % (tmp_path / "missing" / "b.tar.gz")
    assert sim.requests == []


@pytest.mark.parametrize("command", [["bundle", "--output", os.devnull], ["report"]])
def test_reads_on_several_threads_find_the_servers_own_prefix_once(cli, sim, command):
    """JadeVectorDB's own server, no prefix set: the threads' first reads all meet a 404 under /api/v1."""
    sim.reset(personality="dialect")
    run = cli(*command, "-o", "json")
    assert run.code == 0, run.err
    assert run.err == ("the cluster serves its API under /v1, not /api/v1: using /v1 (--api-prefix /v1 says so and "
                       "saves the extra request)\n")
    if command[0] == "bundle":
        assert {entry["status"] for entry in run.json()} == {"ok"}
