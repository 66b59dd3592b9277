"""One schema scripts can rely on: typed fields, fixed columns, TSV and CSV by the book."""
import csv
import io
import json

import jq
import pytest

import cluster_cli
from conftest import commands_that

BACKUP_CHECK = "[.[]|select(.replicas < 2)]|length"  # the specification's backup script


def under_replicated(cli) -> int:
    return jq.compile(BACKUP_CHECK).input_value(json.loads(cli("shards", "--format", "json").out)).first()


# -- 1. typed fields ----------------------------------------------------------------------------------

def test_numbers_sent_as_strings_still_fail_the_backup_check(cli, sim):
    sim.reset(replication_factor=1)  # every shard one copy: the check must find all 12
    truth = under_replicated(cli)
    assert truth == 12
    sim.fault(numbers_as_strings=True)
    assert under_replicated(cli) == truth


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_numbers_sent_as_strings_are_numbers_in_json(cli, sim, fmt):
    sim.fault(numbers_as_strings=True)
    run = cli("shards", "--format", fmt)
    first = json.loads(run.out)[0] if fmt == "json" else json.loads(run.lines[0])
    assert (first["replicas"], first["vector_count"], first["size_bytes"]) == (2, 125432, 385327104)
    assert run.err == ""
    status = json.loads(cli("status", "-o", "json").out)
    assert (status["total_nodes"], status["total_shards"], status["replication_factor"]) == (3, 12, 2)
    metrics = json.loads(cli("metrics", "-o", "json").out)
    assert isinstance(metrics["cpu_usage"], float) and isinstance(metrics["nodes"]["node-worker-001"]["cpu_usage"],
                                                                  float)


def test_a_value_that_is_no_number_is_null_with_one_warning_naming_its_fields(cli, sim):
    shards = [{"shard_id": "s1", "replicas": "two", "vector_count": True, "size_bytes": "12"},
              {"shard_id": "s2", "replicas": "1", "vector_count": [1]}]
    sim.fault(respond=[{"body": json.dumps({"shards": shards})}] * 3)
    run = cli("shards", "-o", "json")
    assert json.loads(run.out) == [{"shard_id": "s1", "replicas": None, "vector_count": None, "size_bytes": 12},
                                   {"shard_id": "s2", "replicas": 1, "vector_count": None}]
    assert run.err == "warning: the cluster sent values that are not numbers in replicas, vector_count: " \
                      "shown as null\n"
    assert jq.compile(BACKUP_CHECK).input_value(json.loads(run.out)).first() == 2  # null < 2: still caught
    run = cli("shards", "-o", "csv", "--columns", "shard_id,replicas,size_bytes")
    assert run.lines == ["shard_id,replicas,size_bytes", "s1,,12", "s2,1,"]
    assert cli("shards", "-o", "prometheus").out.count("jadevectordb_shard_replicas{") == 1


def test_the_library_gives_numbers_and_names_the_fields_it_could_not(sim):
    sim.fault(numbers_as_strings=True)
    with cluster_cli.ClusterCLI(url=sim.url) as client:
        node = client.list_nodes()[0]
        assert isinstance(node["shard_count"], int) and isinstance(node["cpu_usage"], float)
        diagnostics = client.diagnostics()
        assert all(isinstance(count, int) for count in diagnostics["shard_distribution"].values())
        assert client.not_numbers == set()
    sim.fault(numbers_as_strings=False, respond=[{"body": json.dumps({"status": "HEALTHY", "total_nodes": "many"})}])
    with cluster_cli.ClusterCLI(url=sim.url) as client:
        assert client.cluster_status() == {"status": "HEALTHY", "total_nodes": None}
        assert client.not_numbers == {"total_nodes"}


def test_raw_stays_the_body_as_sent(cli, sim):
    sim.fault(numbers_as_strings=True)
    assert '"replicas": "2"' in cli("shards", "--raw").out


# -- 2. fixed columns -----------------------------------------------------------------------------------

def test_status_columns_do_not_move_when_the_server_leaves_a_field_out(cli, sim):
    sim.fault(drop_fields=["cluster_name"])
    lines = cli("status", "-o", "tsv").lines
    assert lines[0].split("\t") == list(cluster_cli.VIEWS["status"].fields)
    assert lines[1].split("\t")[5] == "HEALTHY"  # the README's `cut -f 6`
    assert lines[1].split("\t")[0] == ""


def test_fields_the_server_adds_come_after_the_contract_ones(cli, sim):
    sim.fault(respond=[{"body": json.dumps({"zone": "eu-1", "status": "HEALTHY", "master_node": "m"})}])
    header = ",".join(cluster_cli.VIEWS["status"].fields) + ",zone"
    assert cli("status", "-o", "csv").lines == [header, ",m,,,,HEALTHY,,eu-1"]


@pytest.mark.parametrize("argv", [["status"], ["health"], ["metrics"], ["diagnostics"],
                                  ["node-health", "--node-id", "node-worker-001"],
                                  ["shard-status", "--shard-id", "shard-00"]])
def test_every_command_takes_columns_and_a_key_value_result_is_one_row(cli, argv):
    names = cli(*argv, "--columns", "help").lines
    assert names[:1] == [cluster_cli.VIEWS[{"shard-status": "shard-status", "node-health": "node-health"}.get(
        argv[0], argv[0])].fields[0]]
    run = cli(*argv, "--columns", names[0], "-o", "csv", "--no-headers")
    assert run.code == 0 and len(run.lines) == 1


def test_status_columns_in_a_table(cli):
    assert cli("status", "--columns", "status,total_nodes").lines == [
        "┌─────────┬─────────────┐", "│ Status  │ Total Nodes │", "├─────────┼─────────────┤",
        "│ HEALTHY │ 3           │", "└─────────┴─────────────┘"]


def test_sort_by_on_a_key_value_result_is_accepted(cli):
    assert cli("status", "--sort-by", "status", "-o", "tsv", "--no-headers").out.split("\t")[5] == "HEALTHY"


# -- 3. TSV and CSV by the book -------------------------------------------------------------------------

AWKWARD = "a\tb\\c\nd\re,\"f\""


def test_tsv_escapes_tab_newline_cr_and_backslash_and_never_quotes(cli, sim):
    sim.fault(respond=[{"body": json.dumps([{"node_id": AWKWARD, "status": "HEALTHY"}])}])
    lines = cli("nodes", "-o", "tsv", "--columns", "node_id,status").lines
    assert lines == ["node_id\tstatus", 'a\\tb\\\\c\\nd\\re,"f"\tHEALTHY']


def test_csv_quotes_cr_too_and_reads_back_whole(cli, sim):
    sim.fault(respond=[{"body": json.dumps([{"node_id": AWKWARD, "status": "HEALTHY"},
                                            {"node_id": "lone\rcr", "status": "HEALTHY"}])}])
    out = cli("nodes", "-o", "csv", "--columns", "node_id,status").out
    assert '"lone\rcr"' in out
    assert list(csv.reader(io.StringIO(out, newline=""))) == [["node_id", "status"], [AWKWARD, "HEALTHY"],
                                                              ["lone\rcr", "HEALTHY"]]


# -- 4. Prometheus by the book --------------------------------------------------------------------------

PROMETHEUS_COMMANDS = commands_that(lambda declared: declared.view and cluster_cli.VIEWS[declared.view].samples)
# promtool check metrics: abbreviated units, and units other than the base ones.
NOT_BASE_UNITS = {"ms", "milliseconds", "us", "ns", "sec", "secs", "minutes", "hours", "percent", "kb", "mb", "gb",
                  "kilobytes", "megabytes"}


def families(text: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families
    return list(text_string_to_metric_families(text))


def test_no_series_comes_from_two_commands_and_every_name_is_by_the_book(cli, sim):
    seen = {}
    for command in PROMETHEUS_COMMANDS:
        for family in families(cli(command, "-o", "prometheus").out):
            assert family.type == "gauge" and not family.name.endswith("_total")
            assert not NOT_BASE_UNITS & set(family.name.split("_")), family.name
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in seen, (key, command, seen.get(key))
                seen[key] = command
                if sample.name.endswith("_ratio"):
                    assert 0 <= sample.value <= 1, sample
    names = {name for name, _ in seen}
    assert {"jadevectordb_cluster_up", "jadevectordb_cli_last_success_timestamp_seconds",
            "jadevectordb_node_cpu_usage_ratio", "jadevectordb_cluster_query_latency_p99_seconds"} <= names


def test_usage_is_a_ratio_and_latency_in_seconds(cli, sim):
    sim.fault(respond=[{"body": json.dumps({"cpu_usage": 41.5, "avg_query_latency_ms": 3.2,
                                            "nodes": {"n1": {"cpu_usage": "40"}}})}])
    samples = {(s.name, tuple(s.labels.items())): s.value for f in families(cli("metrics", "-o", "prometheus").out)
               for s in f.samples}
    assert samples[("jadevectordb_cluster_cpu_usage_ratio", ())] == 0.415
    assert samples[("jadevectordb_cluster_query_latency_avg_seconds", ())] == 0.0032
    assert samples[("jadevectordb_node_cpu_usage_ratio", (("node_id", "n1"),))] == 0.4
    assert samples[("jadevectordb_cluster_up", (("command", "metrics"),))] == 1


@pytest.mark.parametrize("failure, code", [(dict(fail_next=20, fail_status=500), 1), (None, 3)])
def test_a_failed_run_still_writes_the_file_with_up_0_and_no_stale_values(cli, sim, tmp_path, failure, code):
    target = tmp_path / "jadevectordb.prom"
    assert cli("status", "-o", "prometheus", "--output", target).code == 0
    before = {s.name: s.value for f in families(target.read_text()) for s in f.samples}
    assert before["jadevectordb_cluster_up"] == 1 and before["jadevectordb_cluster_nodes"] == 3
    if failure:
        sim.fault(**failure)
        run = cli("status", "-o", "prometheus", "--output", target)
    else:
        run = cli("--url", "http://127.0.0.1:1", "status", "-o", "prometheus", "--output", target, target=False)
    assert run.code == code and run.out == ""
    after = {s.name: s.value for f in families(target.read_text()) for s in f.samples}
    assert after == {"jadevectordb_cluster_up": 0,
                     "jadevectordb_cli_last_success_timestamp_seconds":
                         before["jadevectordb_cli_last_success_timestamp_seconds"]}


def test_a_first_run_that_fails_writes_up_0_and_no_last_success(cli, tmp_path):
    target = tmp_path / "new.prom"
    run = cli("--url", "http://127.0.0.1:1", "nodes", "-o", "prometheus", "--output", target, target=False)
    assert run.code == 3
    assert target.read_text().splitlines()[-1] == 'jadevectordb_cluster_up{command="nodes"} 0'
    assert "last_success" not in target.read_text()


def test_bad_input_leaves_the_file_alone(cli, tmp_path):
    target = tmp_path / "kept.prom"
    target.write_text("yesterday\n")
    assert cli("status", "-o", "prometheus", "--output", target, "--wait-for", "BLUE").code == 2
    assert target.read_text() == "yesterday\n"


# -- 5. which cluster answered --------------------------------------------------------------------------

def test_the_status_table_and_line_name_the_cluster_after_the_specifications_fields(cli, sim):
    plain = cli("status").lines
    assert "Cluster:" not in "\n".join(plain)  # not sent: the specification's output, line for line
    sim.reset(cluster_name="jade-prod")
    assert cli("status").lines == plain + ["Cluster: jade-prod"]  # the specification's lines stay in place
    assert cli("status", "-o", "compact").out == \
        "HEALTHY | 3 nodes | 12 shards | master: node-master-001 | cluster: jade-prod\n"


def test_a_change_names_where_it_went(cli, sim, tmp_path, clean_env):
    run = cli("add-node", "--node-id", "n9", "--address", "10.0.0.9:8080")
    assert run.out == "Node n9 (10.0.0.9:8080) added to %s: JOINING (node is joining the cluster)\n" % sim.url
    assert cli("-o", "compact", "remove-node", "--node-id", "n9", "--yes").out == \
        "n9 | removed | 0 shards redistributed | %s\n" % sim.url
    config = tmp_path / "cluster.toml"
    config.write_text('[contexts.lab]\nurl = "%s"\n' % sim.url)
    config.chmod(0o600)
    run = cli("--config", config, "--context", "lab", "migrate-shard", "--shard-id", "shard-00", "--to-node",
              "node-master-001", target=False)
    assert run.out.startswith("Migration mig-7f01 started on context lab (%s): shard-00" % sim.url)
    assert "sent_to" not in cli("migrate-shard", "--shard-id", "shard-01", "--to-node", "node-master-001",
                                "-o", "json").out  # the server's answer, as it was


# -- 10. messages -----------------------------------------------------------------------------------------

def test_help_is_a_command_too(cli):
    assert cli("help").out == cli("--help").out and cli("help").code == 0
    assert cli("help", "status").out == cli("status", "--help").out
    assert cli("--port", "8080", "help", "nodes").out.startswith("usage: cluster_cli.py nodes")


def test_a_stray_word_is_named_with_the_flag_it_may_belong_to(cli):
    run = cli("node-health", "node-worker-001")
    assert (run.code, run.err) == (2, "error: stray word 'node-worker-001'; did you mean --node-id node-worker-001? "
                                      "(see 'cluster_cli.py node-health --help')\n")
    run = cli("status", "extra")
    assert (run.code, run.err) == (2, "error: stray word 'extra': the command takes options there, not words "
                                      "(see 'cluster_cli.py --help')\n")


def test_exit_code_help_names_the_signals(cli):
    assert "143 and 129 terminated by SIGTERM and SIGHUP" in " ".join(cli("--help").out.split())
    assert "143/129 terminated" in cli("status", "--help").out


# -- 7. contexts use and current -------------------------------------------------------------------------

CONTEXTS = '# our clusters\r\ndefault_context = "lab"   # the safe one\r\n\r\n[contexts.lab]\r\nurl = "%s"\r\n' \
           '\r\n[contexts.prod]  # careful\r\nurl = "%s"\r\nprotected = true\r\n'


def test_contexts_use_changes_only_the_default_and_current_prints_it(cli, sim, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_bytes((CONTEXTS % (sim.url, sim.url)).encode())
    path.chmod(0o600)
    assert cli("--config", path, "contexts", "current", target=False).out == "lab\n"
    run = cli("--config", path, "contexts", "use", "prod", target=False)
    assert (run.code, run.out) == (0, "Switched to context prod (default_context in %s)\n" % path)
    assert path.read_bytes() == (CONTEXTS % (sim.url, sim.url)).replace('"lab"   #', '"prod"   #').encode()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert cli("--config", path, "contexts", "current", "-o", "json", target=False).json() == {
        "name": "prod", "chosen_by": "default_context"}
    assert cli("--config", path, "--context", "lab", "contexts", "current", target=False).out == "lab\n"


def test_contexts_use_adds_the_setting_before_the_first_table_when_there_is_none(cli, sim, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text("# mine\n[contexts.a]\nurl = \"%s\"\n" % sim.url)
    path.chmod(0o600)
    assert cli("--config", path, "contexts", "use", "a", target=False).code == 0
    assert path.read_text() == "# mine\ndefault_context = \"a\"\n[contexts.a]\nurl = \"%s\"\n" % sim.url


def test_contexts_use_refuses_a_name_the_file_does_not_have(cli, sim, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text("[contexts.a]\nurl = \"%s\"\n" % sim.url)
    path.chmod(0o600)
    before = path.read_text()
    run = cli("--config", path, "contexts", "use", "zz", target=False)
    assert (run.code, run.err) == (2, "error: contexts use: no context 'zz'; the file has a\n")
    assert path.read_text() == before
    run = cli("--config", path, "contexts", "current", target=False)
    assert run.code == 1 and "no context is in use" in run.err


# -- 8. ids are never clipped ----------------------------------------------------------------------------

def test_a_narrow_table_never_clips_an_id_and_other_columns_give_way_first(sim):
    rows = [{"node_id": "node-worker-%03d-eu-west-1a" % i, "address": "[fd00::3]:8080%d" % i, "status": "HEALTHY",
             "last_heartbeat": "2026-11-26T05:00:00Z and a long note from the server " * 2} for i in (1, 2)]
    columns = tuple(cluster_cli.labelled(key, key) for key in ("node_id", "address", "status", "last_heartbeat"))
    style = cluster_cli.Output("table", width=80, columns=columns)
    lines = cluster_cli.rendered("nodes", rows, style).splitlines()
    assert all(len(line) <= 80 for line in lines)  # the note gave way
    assert "node-worker-001-eu-west-1a" in lines[3] and "[fd00::3]:80801" in lines[3]
    assert "…" in lines[3]
    narrow = cluster_cli.rendered("nodes", rows, style._replace(width=40)).splitlines()
    assert "node-worker-002-eu-west-1a" in narrow[4] and "[fd00::3]:80802" in narrow[4]  # wider than 40: whole
    assert len(narrow[0]) > 40


# -- 9. a first screen that serves -----------------------------------------------------------------------

def test_the_readmes_first_80_lines_say_how_to_install_point_run_read_and_exit():
    import os
    with open(os.path.join(os.path.dirname(cluster_cli.__file__), "README.md"), encoding="utf-8") as readme:
        first = "".join(readme.readlines()[:80])
    for needed in ("pip install", "--host", "--url", "--api-key", "--context", "Exit codes"):
        assert needed in first, needed
    assert [name for name in cluster_cli.COMMANDS if "`%s`" % name not in first] == []
    assert [fmt for fmt in cluster_cli.FORMAT_NAMES if "`%s`" % fmt not in first] == []
    assert [code for code in ("0 ok", " 1 ", " 2 ", " 3 ", " 4 ", "130", "143", "129") if code not in first] == []


def test_demo_on_a_terminal_keeps_the_cluster_for_the_commands_it_prints():
    import os
    import pty
    import re
    import signal
    import subprocess
    import sys
    from conftest import TESTS, read_all
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, os.path.join(TESTS, "simulator.py"), "--demo"], stdin=slave,
                               stdout=slave, stderr=slave)
    os.close(slave)
    try:
        shown = read_all(master, process, until=lambda text: "runs until Ctrl-C" in text and "dry-run" in text)
        assert "Cluster Status" in shown and "HEALTHY" in shown
        tried = re.search(r"python cluster_cli.py (--host 127.0.0.1 --port \d+ nodes)", shown).group(1)
        run = subprocess.run([sys.executable, cluster_cli.__file__] + tried.split(), capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 0 and "node-master-001" in run.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


# -- paths real deployments take: FIFOs where files are expected ----------------------------------------

def test_contexts_use_refuses_a_contexts_file_that_is_a_pipe(cli, sim, tmp_path):
    import os
    import threading
    fifo = tmp_path / "cluster.fifo"
    os.mkfifo(fifo)
    text = '[contexts.a]\nurl = "%s"\n' % sim.url
    writer = threading.Thread(target=lambda: fifo.write_text(text), daemon=True)
    writer.start()
    run = cli("--config", fifo, "contexts", "use", "a", target=False)
    assert (run.code, run.err) == (2, "error: contexts: %s is not a regular file; edit it where it comes from\n"
                                   % fifo)


def test_a_failed_prometheus_run_writes_up_0_into_a_fifo_without_reading_it(cli, tmp_path):
    import os
    import threading
    fifo = tmp_path / "up.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    run = cli("--url", "http://127.0.0.1:1", "status", "-o", "prometheus", "--output", fifo, target=False)
    reader.join(10)
    assert run.code == 3 and got and got[0].endswith('jadevectordb_cluster_up{command="status"} 0\n')
