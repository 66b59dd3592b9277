"""One schema scripts can rely on: typed fields, fixed columns, TSV and CSV by the book."""
import csv
import io
import json

import jq
import pytest

import cluster_cli

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
    assert lines[0].split("\t") == list(cluster_cli.STATUS_FIELDS)
    assert lines[1].split("\t")[5] == "HEALTHY"  # the README's `cut -f 6`
    assert lines[1].split("\t")[0] == ""


def test_fields_the_server_adds_come_after_the_contract_ones(cli, sim):
    sim.fault(respond=[{"body": json.dumps({"zone": "eu-1", "status": "HEALTHY", "master_node": "m"})}])
    assert cli("status", "-o", "csv").lines == [",".join(cluster_cli.STATUS_FIELDS) + ",zone", ",m,,,,HEALTHY,,eu-1"]


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
        "┌─────────┬─────────────┐", "│ status  │ total_nodes │", "├─────────┼─────────────┤",
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
