"""Every command in each format: what the operator sees and what the cluster received."""
import json

import pytest

import cluster_cli
from conftest import commands_that, free_port, sample

SEED_STATUS = """\
Cluster Status
==============
Master Node: node-master-001
Total Nodes: 3
Active Nodes: 3
Total Shards: 12
Status: HEALTHY
Replication Factor: 2
"""

SEED_NODES = """\
┌──────────────────┬─────────┬────────────────────┬──────────┬──────────┐
│ Node ID          │ Role    │ Address            │ Status   │ Shards   │
├──────────────────┼─────────┼────────────────────┼──────────┼──────────┤
│ node-master-001  │ MASTER  │ 192.168.1.10:8080  │ HEALTHY  │ 4        │
│ node-worker-001  │ WORKER  │ 192.168.1.11:8080  │ HEALTHY  │ 4        │
│ node-worker-002  │ WORKER  │ 192.168.1.12:8080  │ HEALTHY  │ 4        │
└──────────────────┴─────────┴────────────────────┴──────────┴──────────┘
"""

SEED_SHARDS_TOP = """\
┌──────────┬─────────────────┬─────────────┬────────────────┬──────────┐
│ Shard ID │ Primary Node    │ Replicas    │ Vector Count   │ Status   │
├──────────┼─────────────────┼─────────────┼────────────────┼──────────┤
│ shard-00 │ node-worker-001 │ 2           │ 125,432        │ HEALTHY  │
│ shard-01 │ node-worker-002 │ 2           │ 118,901        │ HEALTHY  │
│ shard-02 │ node-worker-001 │ 2           │ 131,245        │ HEALTHY  │
"""


def last_request(sim):
    return sim.requests[-1]


# -- status -------------------------------------------------------------------

def test_status_table_is_the_specifications_block(cli, sim):
    run = cli("status")
    assert (run.code, run.out, run.err) == (0, SEED_STATUS, "")
    assert (last_request(sim)["method"], last_request(sim)["path"]) == ("GET", "/api/v1/cluster/status")


def test_status_compact_is_the_specifications_line(cli):
    run = cli("status", "--format", "compact")
    assert (run.code, run.out) == (0, "HEALTHY | 3 nodes | 12 shards | master: node-master-001\n")


def test_status_json_passes_the_servers_object_through(cli, sim):
    sim.reset(cluster_name="jade-sim")
    run = cli("status", "--format", "json")
    assert run.code == 0
    assert run.json() == {"cluster_name": "jade-sim", "master_node": "node-master-001", "total_nodes": 3,
                          "active_nodes": 3, "total_shards": 12, "status": "HEALTHY", "replication_factor": 2}
    assert run.out.startswith('{\n  "cluster_name"')


def test_format_before_and_after_the_command_last_one_wins(cli):
    assert cli("--format", "json", "status").json()["status"] == "HEALTHY"
    assert cli("status", "--format", "compact").out.startswith("HEALTHY | ")
    assert cli("--format", "json", "status", "--format", "compact").out.startswith("HEALTHY | ")
    assert cli("status", "--format", "json", "--format", "table").out == SEED_STATUS


def test_status_shows_degraded_when_a_node_is_down(cli, sim):
    sim.down("node-worker-002")
    run = cli("status", "--format", "compact")
    assert run.out == "DEGRADED | 3 nodes | 12 shards | master: node-master-001\n"


# -- nodes ----------------------------------------------------------------------

def test_nodes_table_is_the_specifications_grid(cli, sim):
    run = cli("nodes")
    assert (run.code, run.out, run.err) == (0, SEED_NODES, "")
    assert last_request(sim)["path"] == "/api/v1/cluster/nodes"


def test_nodes_json_is_a_bare_array(cli):
    nodes = cli("nodes", "--format", "json").json()
    assert [n["node_id"] for n in nodes] == ["node-master-001", "node-worker-001", "node-worker-002"]
    assert nodes[1]["address"] == "192.168.1.11:8080"


def test_nodes_compact_is_one_line_per_node(cli):
    assert cli("nodes", "--format", "compact").lines == [
        "node-master-001 | MASTER | 192.168.1.10:8080 | HEALTHY | 4",
        "node-worker-001 | WORKER | 192.168.1.11:8080 | HEALTHY | 4",
        "node-worker-002 | WORKER | 192.168.1.12:8080 | HEALTHY | 4"]


# -- shards ---------------------------------------------------------------------

def test_shards_table_is_the_specifications_grid(cli):
    run = cli("shards")
    assert run.code == 0
    assert run.out.startswith(SEED_SHARDS_TOP)
    assert run.lines[-1] == "└──────────┴─────────────────┴─────────────┴────────────────┴──────────┘"
    assert len(run.lines) == 3 + 12 + 1


def test_shards_json_is_a_bare_array_for_jq(cli):
    shards = cli("shards", "--format", "json").json()
    assert len(shards) == 12
    assert shards[0] == {"shard_id": "shard-00", "database_id": "products", "primary_node": "node-worker-001",
                         "replica_nodes": ["node-worker-002"], "replicas": 2, "vector_count": 125432,
                         "size_bytes": 385327104, "status": "HEALTHY"}


def test_shards_compact_is_one_line_per_shard(cli):
    run = cli("shards", "--format", "compact")
    assert run.lines[0] == "shard-00 | node-worker-001 | 2 | 125,432 | HEALTHY"
    assert len(run.lines) == 12


def test_shards_database_filter_is_sent_to_the_server(cli, sim):
    run = cli("shards", "--database-id", "users", "--format", "compact")
    assert [line.split(" | ")[0] for line in run.lines] == ["shard-01", "shard-04", "shard-07", "shard-10"]
    assert last_request(sim)["query"] == {"database_id": "users"}


# -- add-node / remove-node ------------------------------------------------------

def test_add_node_sends_one_post_and_says_what_was_accepted(cli, sim):
    run = cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    assert run.code == 0, run
    assert run.out.startswith("Node node-worker-003 (192.168.1.13:8080) added to %s: JOINING" % sim.url)
    posts = [r for r in sim.requests if r["method"] == "POST"]
    assert len(posts) == 1
    assert posts[0]["path"] == "/api/v1/cluster/nodes"
    assert json.loads(posts[0]["body"]) == {"node_id": "node-worker-003", "address": "192.168.1.13:8080"}


def test_add_node_json_and_compact(cli, sim):
    run = cli("add-node", "--node-id", "n4", "--address", "[::1]:9000", "--format", "json")
    assert run.json()["status"] == "JOINING"
    run = cli("add-node", "--node-id", "n5", "--address", "h5:9000", "--format", "compact")
    assert run.out == "n5 | JOINING | h5:9000 | %s\n" % sim.url


def test_added_node_turns_healthy(cli, sim):
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    sim.advance(60)  # later than --join-seconds
    line = [line for line in cli("nodes", "--format", "compact").lines if line.startswith("node-worker-003")]
    assert line == ["node-worker-003 | WORKER | 192.168.1.13:8080 | HEALTHY | 0"]


def test_add_node_conflict_exits_1_with_the_servers_message(cli):
    run = cli("add-node", "--node-id", "node-worker-001", "--address", "10.0.0.9:8080")
    assert (run.code, run.out) == (1, "")
    assert run.err == "error: node node-worker-001 is already in the cluster (HTTP 409 NODE_EXISTS)\n"


def test_remove_node_redistributes_its_shards(cli, sim):
    run = cli("remove-node", "--node-id", "node-worker-002")
    assert run.code == 0, run
    assert run.out.startswith("Node node-worker-002 removed from %s: 8 shards redistributed" % sim.url)
    assert sim.changes() == [("DELETE", "/api/v1/cluster/nodes/node-worker-002")]
    assert cli("status", "--format", "compact").out == "HEALTHY | 2 nodes | 12 shards | master: node-master-001\n"


def test_remove_node_compact_and_json(cli, sim):
    assert cli("remove-node", "--node-id", "node-worker-001", "--format", "compact").out == \
        "node-worker-001 | removed | 8 shards redistributed | %s\n" % sim.url
    assert cli("remove-node", "--node-id", "node-worker-002", "--format", "json").json()["removed"] is True


def test_remove_master_is_refused(cli):
    run = cli("remove-node", "--node-id", "node-master-001")
    assert (run.code, run.out) == (1, "")
    assert "master node" in run.err and "HTTP 409" in run.err


def test_remove_unknown_node_is_404(cli):
    run = cli("remove-node", "--node-id", "nope")
    assert (run.code, run.err) == (1, "error: node nope not found (HTTP 404 NODE_NOT_FOUND)\n")


# -- node-health -------------------------------------------------------------------

def test_node_health_table(cli, sim):
    run = cli("node-health", "--node-id", "node-worker-001")
    assert run.code == 0
    assert run.lines[:6] == ["Node Health: node-worker-001", "============================",
                             "Node ID: node-worker-001", "Role: WORKER", "Address: 192.168.1.11:8080",
                             "Status: HEALTHY"]
    assert "Checks" in run.lines and any(line.startswith("│ storage ") for line in run.lines)
    assert last_request(sim)["path"] == "/api/v1/cluster/nodes/node-worker-001/health"


def test_node_health_compact_names_failing_checks(cli, sim):
    sim.down("node-worker-001")
    run = cli("node-health", "--node-id", "node-worker-001", "--format", "compact")
    assert run.out == ("node-worker-001 | UNREACHABLE | cpu 0.0%% | mem %.1f%% | disk %.1f%% | checks: heartbeat FAIL\n"
                       % (sim.cluster.nodes["node-worker-001"]["memory_usage"],
                          sim.cluster.nodes["node-worker-001"]["disk_usage"]))


def test_node_health_json(cli):
    data = cli("node-health", "--node-id", "node-worker-001", "--format", "json").json()
    assert [c["name"] for c in data["checks"]] == ["heartbeat", "cpu", "memory", "storage"]


# -- shard-status / migrate-shard --------------------------------------------------

def test_shard_status_table(cli):
    run = cli("shard-status", "--shard-id", "shard-00")
    assert run.lines[:10] == ["Shard Status: shard-00", "======================", "Shard ID: shard-00",
                              "Database: products", "Primary Node: node-worker-001",
                              "Replica Nodes: node-worker-002", "Replicas: 2", "Vector Count: 125,432",
                              "Size: 367.5 MiB", "Status: HEALTHY"]
    assert run.lines[-3:] == ["Migration", "---------", "none"]


def test_shard_status_compact_and_json(cli):
    assert cli("shard-status", "--shard-id", "shard-01", "--format", "compact").out == \
        "shard-01 | HEALTHY | primary: node-worker-002 | 118,901 vectors\n"
    assert cli("shard-status", "--shard-id", "shard-01", "--format", "json").json()["migration"] is None


def test_migrate_shard_sends_one_post_with_the_specifications_fields(cli, sim):
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")
    run = cli("migrate-shard", "--shard-id", "shard-00", "--from-node", "node-worker-001",
              "--to-node", "node-worker-003", "--strategy", "LIVE_COPY")
    assert run.code == 0, run
    assert run.out == "Migration mig-7f01 started on %s: shard-00 node-worker-001 -> node-worker-003 (LIVE_COPY)\n" \
        % sim.url
    posts = [r for r in sim.requests if r["path"].endswith("/migrate")]
    assert len(posts) == 1
    assert json.loads(posts[0]["body"]) == {"target_node": "node-worker-003", "strategy": "LIVE_COPY",
                                            "source_node": "node-worker-001"}


def test_migration_shows_in_shard_status(cli, sim):
    sim.reset(migration_seconds=600)  # still running whenever the next command comes
    cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001", "--strategy", "snapshot")
    run = cli("shard-status", "--shard-id", "shard-00", "--format", "compact")
    assert run.out.startswith("shard-00 | MIGRATING | primary: node-worker-001 | 125,432 vectors | "
                              "migration: mig-7f01 ")
    table = cli("shard-status", "--shard-id", "shard-00").lines
    assert [c.strip() for c in table[14].split("│")[1:-1]] == ["Migration ID", "Strategy", "From", "To", "Status",
                                                              "Progress", "Vectors"]
    row = [c.strip() for c in table[16].split("│")[1:-1]]
    assert row[:5] == ["mig-7f01", "SNAPSHOT", "node-worker-001", "node-master-001", "IN_PROGRESS"]
    assert table[18].startswith("Phase: ") and table[19].startswith("Started: ")


def test_migrate_shard_compact_and_json(cli, sim):
    run = cli("migrate-shard", "--shard-id", "shard-01", "--to-node", "node-master-001", "--format", "compact")
    assert run.out == "mig-7f01 | shard-01 | node-worker-002 -> node-master-001 | LIVE_COPY | PENDING | 0.0%% | %s\n" \
        % sim.url
    run = cli("migrate-shard", "--shard-id", "shard-02", "--to-node", "node-worker-002", "--format", "json")
    assert run.json()["target_node"] == "node-worker-002"


def test_migration_to_a_node_holding_a_copy_is_refused(cli):
    run = cli("migrate-shard", "--shard-id", "shard-00", "--to-node", "node-worker-002")
    assert (run.code, run.out) == (1, "")
    assert run.err == "error: node-worker-002 already holds a copy of shard-00 (HTTP 409 TARGET_HOLDS_SHARD)\n"


# -- metrics, diagnostics, health ------------------------------------------------------

def test_metrics_table_and_json_agree(cli, sim):
    data = cli("metrics", "--format", "json").json()
    lines = cli("metrics").lines
    assert lines[:3] == ["Cluster Metrics", "===============", "CPU Usage: %.1f%%" % data["cpu_usage"]]
    assert "Total Vectors: {:,}".format(data["total_vectors"]) in lines
    assert sorted(data["nodes"]) == ["node-master-001", "node-worker-001", "node-worker-002"]
    compact = cli("metrics", "--format", "compact").out
    assert compact.startswith("cpu %.1f%% | mem " % data["cpu_usage"])


def test_diagnostics_shows_every_section(cli, sim):
    sim.down("node-worker-002")
    lines = cli("diagnostics").lines
    assert lines[:3] == ["Cluster Diagnostics", "===================", "Generated At: " + lines[2][14:]]
    assert lines[3:6] == ["", "Topology", "--------"]
    for heading in ("Topology", "Node Health", "Shard Distribution", "Replication", "Performance", "Errors"):
        assert heading in lines
    assert any("node-worker-002" in line and "UNREACHABLE" in line and "heartbeat FAIL" in line for line in lines)
    assert any("node node-worker-002 is unreachable: heartbeat missed" in line for line in lines)


def test_diagnostics_json_and_compact(cli, sim):
    sim.down("node-worker-002")
    data = cli("diagnostics", "--format", "json").json()
    assert data["errors"][0]["message"] == "node node-worker-002 is unreachable: heartbeat missed"
    assert len(data["replication"]["under_replicated_shards"]) == 8
    compact = cli("diagnostics", "--format", "compact").lines
    assert compact[0] == "master: node-master-001 | 3 nodes | 8 under-replicated shards | 1 error"


def test_health_in_each_format(cli, sim):
    assert cli("health", "--format", "compact").out == "ok | 1.4.2\n"
    assert cli("health", "--format", "json").json() == {"status": "ok", "version": "1.4.2"}
    assert cli("health").lines[2:] == ["Status: ok", "Version: 1.4.2"]
    assert last_request(sim)["path"] == "/health"


def test_version_names_the_client_the_server_the_prefix_and_the_contract(cli, sim):
    assert cli("version").lines == ["Version", "=======", "Client: %s" % cluster_cli.__version__,
                                    "Server: 1.4.2", "API Prefix: /api/v1", "Contract: v1"]
    assert cli("version", "-o", "json").json() == {"client": cluster_cli.__version__, "server": "1.4.2",
                                                   "api_prefix": "/api/v1", "contract": "v1"}
    assert [r["path"] for r in sim.requests] == ["/health", "/health"]
    sim.reset(personality="dialect")  # JadeVectorDB's own /health says no version
    run = cli("--api-prefix", "/v1", "version", "-o", "compact")
    assert (run.code, run.out) == (0, "client %s | /v1 | contract v1\n" % cluster_cli.__version__)


def test_version_of_a_server_that_cannot_be_reached_is_the_clients_and_exit_3(cli, sim):
    run = cli("--url", "http://127.0.0.1:%d" % free_port(), "--retries", "0", "version", "-o", "compact",
              target=False)
    assert (run.code, run.out) == (3, "client %s | /api/v1 | contract v1\n" % cluster_cli.__version__)
    assert run.err.startswith("error: the server's version: cannot reach http://127.0.0.1:")


def test_the_version_flag_is_the_clients_and_asks_nothing(cli, sim):
    run = cli("--version")
    assert (run.code, run.out, sim.requests) == (0, "cluster_cli.py %s\n" % cluster_cli.__version__, [])


def test_health_says_no_version_where_the_server_gives_none(cli, sim):
    sim.reset(personality="dialect")  # JadeVectorDB's own /health: status, timestamp and checks
    assert cli("--api-prefix", "/v1", "health", "--format", "compact").out == "HEALTHY\n"


@pytest.mark.parametrize("command", commands_that(lambda declared: not declared.changes and not declared.local))
@pytest.mark.parametrize("fmt", ["json", "table", "compact"])
def test_every_read_command_in_every_format_sends_only_gets(cli, sim, command, fmt):
    run = cli(*sample(command), "--format", fmt)
    assert run.code == 0 and run.out.strip() and run.err == ""
    assert sim.changes() == []


# -- csv, tsv, ndjson, -o -------------------------------------------------------------------------

def test_csv_has_a_header_of_field_names_then_a_row_per_item(cli):
    run = cli("nodes", "-o", "csv")
    assert run.code == 0
    assert run.lines[0] == ("node_id,role,address,status,shard_count,cpu_usage,memory_usage,disk_usage,"
                            "uptime_seconds,last_heartbeat")
    assert run.lines[1].startswith("node-master-001,MASTER,192.168.1.10:8080,HEALTHY,4,") and len(run.lines) == 4
    shards = cli("shards", "--format", "csv").lines
    assert shards[1] == 'shard-00,products,node-worker-001,"[""node-worker-002""]",2,125432,385327104,HEALTHY'


def test_tsv_of_an_object_is_one_row(cli, sim):
    sim.reset(cluster_name="jade-sim")
    assert cli("status", "-o", "tsv").lines == [
        "cluster_name\tmaster_node\ttotal_nodes\tactive_nodes\ttotal_shards\tstatus\treplication_factor",
        "jade-sim\tnode-master-001\t3\t3\t12\tHEALTHY\t2"]


def test_an_empty_list_still_names_its_columns(cli):
    run = cli("shards", "--status", "OFFLINE", "-o", "csv")
    assert run.out == "shard_id,database_id,primary_node,replica_nodes,replicas,vector_count,size_bytes,status\n"


def test_ndjson_is_one_compact_object_per_line(cli):
    lines = cli("shards", "-o", "ndjson").lines
    assert len(lines) == 12 and json.loads(lines[0])["shard_id"] == "shard-00"
    assert json.loads(cli("status", "-o", "ndjson").out)["status"] == "HEALTHY"


def test_control_characters_in_csv_are_escaped(cli, sim):
    sim.fault(respond=[{"body": json.dumps([{"node_id": "evil\x1b[2J", "status": "HEALTHY"}])}])
    assert cli("nodes", "-o", "csv", "--columns", "node_id,status").lines == ["node_id,status",
                                                                            "evil\\x1b[2J,HEALTHY"]


# -- prometheus, --output ----------------------------------------------------------------------------

def test_prometheus_text_parses_and_carries_every_named_metric(cli, sim):
    from prometheus_client.parser import text_string_to_metric_families
    sim.down("node-worker-002")
    found = {}
    for command in commands_that(lambda declared: declared.view and cluster_cli.VIEWS[declared.view].samples):
        run = cli(command, "-o", "prometheus")
        assert run.code == (4 if command == "report" else 0), run  # a report of a node down is YELLOW
        for family in text_string_to_metric_families(run.out):
            assert family.type == "gauge" and family.documentation
            for point in family.samples:
                found[(point.name, tuple(sorted(point.labels.items())))] = point.value
    assert found[("jadevectordb_cluster_nodes", ())] == 3
    assert found[("jadevectordb_cluster_status", (("status", "DEGRADED"),))] == 1
    assert found[("jadevectordb_cluster_status", (("status", "HEALTHY"),))] == 0
    assert found[("jadevectordb_node_up", (("node_id", "node-worker-002"), ("role", "WORKER")))] == 0
    assert found[("jadevectordb_node_up", (("node_id", "node-worker-001"), ("role", "WORKER")))] == 1
    assert found[("jadevectordb_shard_vectors", (("primary_node", "node-worker-001"), ("shard_id", "shard-00")))] \
        == 125432
    assert ("jadevectordb_cluster_query_latency_p99_seconds", ()) in found
    assert ("jadevectordb_node_cpu_usage_ratio", (("node_id", "node-worker-001"),)) in found


def test_prometheus_escapes_labels_and_leaves_out_what_was_not_sent(cli, sim):
    sim.fault(respond=[{"body": json.dumps([{"node_id": 'a"b\\c\nd', "status": "HEALTHY"}])}])
    run = cli("nodes", "-o", "prometheus")
    # a backslash reads doubled, so no ID's label is another's escape
    assert 'jadevectordb_node_up{node_id="a\\"b\\\\\\\\c\\nd",role=""} 1' in run.lines
    assert "jadevectordb_node_shards" not in run.out  # no shard_count sent: no sample, not a 0
    run = cli("health", "-o", "prometheus")
    assert run.code == 2 and run.err.startswith("error: --format prometheus is for status, ")


def test_output_replaces_the_file_atomically_and_a_failure_leaves_no_stale_value(cli, sim, tmp_path):
    target = tmp_path / "cluster.prom"
    assert cli("status", "-o", "prometheus", "--output", target).code == 0
    assert "jadevectordb_cluster_nodes 3\n" in target.read_text()
    sim.fault(fail_next=10, fail_status=500)
    assert cli("status", "-o", "prometheus", "--output", target).code == 1
    assert "jadevectordb_cluster_nodes" not in target.read_text()  # up 0 instead (tests/test_schema.py)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.prom"]  # no temporary left behind
    target.write_text("yesterday\n")
    assert cli("status", "-o", "json", "--output", target).code == 1
    assert target.read_text() == "yesterday\n"  # other formats: left as it was


# -- --columns, --sort-by, --no-headers ------------------------------------------------------------------

def test_columns_and_sort_apply_to_every_format(cli):
    table = cli("shards", "--columns", "shard_id,vector_count", "--sort-by", "-vector_count").lines
    assert table[1] == "│ Shard ID │ Vector Count   │" and table[3].startswith("│ shard-02 │ 131,245")
    assert cli("shards", "--columns", "shard_id,vector_count", "--sort-by", "vector_count", "-o", "csv",
               "--no-headers").lines[:2] == ["shard-10,93873", "shard-05,94578"]
    assert cli("nodes", "--columns", "node_id,role", "-o", "json").json()[0] == {"node_id": "node-master-001",
                                                                             "role": "MASTER"}
    assert cli("nodes", "--columns", "role,node_id", "--sort-by", "role,-node_id", "-o", "compact").lines == [
        "MASTER | node-master-001", "WORKER | node-worker-002", "WORKER | node-worker-001"]


def test_a_column_the_table_does_not_show_is_titled_like_the_others(cli):
    assert cli("shards", "--columns", "shard_id,replica_nodes").lines[1] == "│ Shard ID │ Replica Nodes   │"
    assert cli("nodes", "--columns", "node_id,uptime_seconds,cpu_usage").lines[1] == \
        "│ Node ID          │ Uptime Seconds │ CPU Usage │"
    assert cli("nodes", "--columns", "uptime_seconds", "-o", "csv").lines[0] == "uptime_seconds"  # csv: the names


def test_a_check_that_fails_shows_its_status_as_columns_asks(cli, sim):
    sim.down("node-worker-002")
    run = cli("status", "--check", "--columns", "status,active_nodes", "-o", "csv", "--no-headers")
    assert (run.code, run.out) == (4, "DEGRADED,2\n")


def test_no_headers_drops_the_grids_header(cli):
    lines = cli("nodes", "--no-headers").lines
    assert len(lines) == 5 and lines[1].startswith("│ node-master-001 ")


def test_columns_help_lists_the_fields_and_a_wrong_one_is_named(cli):
    assert cli("shards", "--columns", "help").lines[:3] == ["shard_id", "database_id", "primary_node"]
    run = cli("nodes", "--sort-by", "cpu")
    assert run.code == 2 and run.err.startswith("error: --sort-by: no field 'cpu'; the fields are node_id, ")
