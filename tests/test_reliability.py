"""Every failure handled: exit codes, retries, failover, TLS, auth, paths, odd answers."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cluster_cli
import simulator
from conftest import SCRIPT, commands_that, free_port, interruptible, wait_until

KEY = "s3cret-Key_0123456789"


def assert_one_error_line(run, code):
    assert run.code == code, run
    assert run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("error: "), run.err
    assert "Traceback" not in run.err


@pytest.fixture
def second_sim():
    """Another cluster, for failover between masters."""
    server = simulator.start(cluster=simulator.Cluster(migration_seconds=0.6, join_seconds=0.2))
    yield server
    server.shutdown()
    server.server_close()


# -- cannot reach the cluster (exit 3) -------------------------------------------

def test_refused_connection_exits_3_naming_the_address(cli):
    port = free_port()
    run = cli("--host", "127.0.0.1", "--port", port, "--retries", "0", "status", target=False)
    assert_one_error_line(run, 3)
    assert run.err == ("error: cannot reach http://127.0.0.1:%d: connection refused; check the address, which "
                       "came from --host and --port, and that a master runs there; 'cluster_cli.py --host 127.0.0.1 "
                       "--port %d doctor' checks each step\n" % (port, port))


@pytest.fixture
def silent():
    """A listener on 127.0.0.1 that accepts connections and never says a word: a TLS handshake to it stalls."""
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    accepted, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.mark.parametrize("argv", [["status", "-o", "compact"],
                                  ["add-node", "--node-id", "n9", "--address", "10.0.0.9:8080"]])
def test_a_master_whose_tls_handshake_stalls_is_passed_over_for_the_next(cli, sim, silent, argv):
    run = cli("--url", "%s,%s" % (silent, sim.url), "--timeout", "2", *argv, target=False)
    assert run.code == 0, run  # nothing was written to the silent one: the next master is asked, a change too
    assert [r["method"] for r in sim.requests] == ["POST" if argv[0] == "add-node" else "GET"]


def test_a_lone_master_whose_tls_handshake_stalls_is_exit_3_and_a_wait_goes_on_to_its_deadline(cli, silent):
    run = cli("--url", silent, "--timeout", "1", "--retries", "0", "add-node", "--node-id", "n9", "--address",
              "10.0.0.9:8080", target=False)
    assert_one_error_line(run, 3)
    assert run.err.startswith("error: cannot reach %s: no " % silent) and "may or may not" not in run.err
    run = cli("--url", silent, "--timeout", "0.5", "status", "--wait-for", "HEALTHY", "--wait-timeout", "1.5",
              "--poll-interval", "0.2", target=False)
    assert_one_error_line(run, 4)
    assert run.err.startswith("error: cluster did not become HEALTHY within ")


def test_on_a_terminal_the_first_retry_is_said_at_once_with_how_long_it_may_take(sim):
    from conftest import on_terminal
    port = free_port()
    code, shown, out = on_terminal(sim, ["--url", "http://127.0.0.1:%d" % port, "--retries", "2", "status"],
                                   stream="stderr", target=False)
    assert (code, out) == (3, "")
    assert shown.splitlines() == [
        "cannot reach http://127.0.0.1:%d: connection refused; retrying for up to 0.75s (--retries and --timeout set "
        "how long; Ctrl-C stops)" % port,
        "error: cannot reach http://127.0.0.1:%d: connection refused; check the address, which came from --url, and "
        "that a master runs there; 'cluster_cli.py --url http://127.0.0.1:%d doctor' checks each step" % (port, port)]


def test_off_a_terminal_retries_stay_silent(script):
    port = free_port()
    run = script("--url", "http://127.0.0.1:%d" % port, "--retries", "1", "status", target=False)
    assert run.code == 3 and run.err.count("\n") == 1 and "retrying" not in run.err


def test_with_no_address_given_the_error_says_the_default_was_tried(cli, clean_env):
    run = cli("--retries", "0", "--timeout", "2", "status", target=False)
    if run.code == 0:
        pytest.skip("something answers on localhost:8080 here")
    assert run.err.endswith("; no address was given, so the default localhost:8080 was tried: set --host and --port, "
                            "--url, JADEVECTORDB_URL or a context; 'cluster_cli.py doctor' checks each step\n")


def test_timeout_exits_3(cli, sim):
    sim.fault(delay=1.0)
    run = cli("--timeout", "0.2", "--retries", "0", "status")
    assert_one_error_line(run, 3)
    assert run.err == "error: no complete answer from http://127.0.0.1:%d within 0.2s\n" % sim.port


def test_400_is_reported_and_not_retried(cli, sim):
    sim.fault(fail_next=1, fail_status=400)
    run = cli("add-node", "--node-id", "n9", "--address", "h9:8080")
    assert_one_error_line(run, 1)
    assert "(HTTP 400 UNAVAILABLE)" in run.err
    assert len(sim.requests) == 1


def test_a_timed_out_get_is_not_retried_past_its_timeout(cli, sim):
    # --timeout is the whole request: a GET that used it up has no time left for another try.
    sim.fault(delay=0.5)
    run = cli("--timeout", "0.2", "--retries", "5", "status")
    assert run.code == 3
    assert [r["path"] for r in sim.requests] == ["/api/v1/cluster/status"]


# -- retries: GET only -------------------------------------------------------------

def test_get_is_retried_through_503s(cli, sim):
    sim.fault(fail_next=2, retry_after=0)
    run = cli("status", "--format", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert [r["method"] for r in sim.requests] == ["GET", "GET", "GET"]


def test_get_gives_up_after_retries_with_the_servers_message(cli, sim):
    sim.fault(fail_next=5, retry_after=0)
    run = cli("--retries", "1", "nodes")
    assert_one_error_line(run, 1)
    assert run.err.startswith("error: leader election in progress, retry later (HTTP 503 UNAVAILABLE); "
                              "the cluster was still unavailable after 2 tries in ")
    assert len(sim.requests) == 2


@pytest.mark.parametrize("argv, path", [
    (["add-node", "--node-id", "n9", "--address", "h9:8080"], "/api/v1/cluster/nodes"),
    (["remove-node", "--node-id", "node-worker-002"], "/api/v1/cluster/nodes/node-worker-002"),
    (["migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001"],
     "/api/v1/cluster/shards/shard-00/migrate"),
])
def test_a_change_is_sent_once_under_503s(cli, sim, argv, path):
    sim.fault(fail_next=5, retry_after=0)
    run = cli(*argv)
    assert_one_error_line(run, 1)
    assert [(r["method"], r["path"]) for r in sim.requests if r["method"] != "GET"] == \
        [("DELETE" if argv[0] == "remove-node" else "POST", path)]


def test_a_change_is_not_resent_after_a_read_timeout(cli, sim):
    sim.fault(delay=0.5)
    run = cli("--timeout", "0.2", "add-node", "--node-id", "n9", "--address", "h9:8080")
    assert_one_error_line(run, 3)
    assert "may or may not have been applied" in run.err
    sim.settle()  # the held POST is answered now: had the CLI sent it again, the log would show two
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


@pytest.mark.real_clock  # the server keeps the real time; so must the CLI's retry pauses
def test_retry_after_is_honoured(cli, sim):
    sim.fault(fail_next=1, retry_after=0.3)
    started = time.monotonic()
    assert cli("status").code == 0
    assert time.monotonic() - started >= 0.3


# -- several masters -----------------------------------------------------------------

def test_failover_to_the_next_master_when_one_is_down(cli, sim):
    dead = free_port()
    run = cli("--host", "127.0.0.1:%d,127.0.0.1:%d" % (dead, sim.port), "--verbose", "status",
              "--format", "compact", target=False)
    assert run.code == 0
    assert run.out.startswith("HEALTHY |")
    assert "GET http://127.0.0.1:%d/api/v1/cluster/status -> connection refused" not in run.err
    assert "GET http://127.0.0.1:%d/api/v1/cluster/status -> 200" % sim.port in run.err


def test_a_post_fails_over_only_when_nothing_was_sent(cli, sim):
    dead = free_port()
    run = cli("--url", "http://127.0.0.1:%d,http://127.0.0.1:%d" % (dead, sim.port),
              "add-node", "--node-id", "n9", "--address", "h9:8080", target=False)
    assert run.code == 0, run
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_an_http_error_does_not_fail_over(cli, sim, second_sim):
    run = cli("--host", "127.0.0.1:%d,127.0.0.1:%d" % (sim.port, second_sim.port),
              "node-health", "--node-id", "nope", target=False)
    assert_one_error_line(run, 1)
    assert "HTTP 404" in run.err
    assert second_sim.cluster.requests == []


def test_a_slow_master_is_not_sent_the_same_post_twice(cli, sim, second_sim):
    sim.fault(delay=0.5)
    run = cli("--timeout", "0.2", "--host", "127.0.0.1:%d,127.0.0.1:%d" % (sim.port, second_sim.port),
              "add-node", "--node-id", "n9", "--address", "h9:8080", target=False)
    assert run.code == 3
    assert second_sim.cluster.requests == []


def test_a_change_held_across_a_reset_is_not_applied_to_the_new_cluster(cli, sim):
    # The simulator's own promise, which keeps the tests above from leaking into the next:
    # their timed-out add-node is answered 0.5 s later, after the next test's reset.
    sim.fault(delay=0.5)
    assert cli("--timeout", "0.2", "add-node", "--node-id", "n9", "--address", "h9:8080").code == 3
    sim.reset()
    sim.settle()
    assert "n9" not in [line.split(" | ")[0] for line in cli("nodes", "--format", "compact").lines]


def test_the_library_takes_a_list_of_masters(sim):
    dead = free_port()
    with cluster_cli.ClusterCLI(host="127.0.0.1:%d,127.0.0.1" % dead, port=sim.port, retries=0) as client:
        assert client.cluster_status()["status"] == "HEALTHY"
        assert client.answered_by == "http://127.0.0.1:%d" % sim.port


def test_all_masters_down_names_each(cli):
    a, b = free_port(), free_port()
    run = cli("--retries", "0", "--host", "127.0.0.1:%d,127.0.0.1:%d" % (a, b), "status", target=False)
    assert_one_error_line(run, 3)
    assert ":%d: connection refused; cannot reach" % a in run.err and ":%d" % b in run.err


# -- TLS ---------------------------------------------------------------------------------

def test_tls_is_verified_by_default(cli, tls_sim):
    run = cli("--url", "https://127.0.0.1:%d" % tls_sim.port, "--retries", "0", "status", target=False)
    assert_one_error_line(run, 3)
    assert run.err == ("error: TLS with https://127.0.0.1:%d failed: its certificate is signed by a CA this "
                       "machine does not trust (unable to get local issuer certificate); pass --ca-cert PATH to "
                       "trust the cluster's CA, or --insecure to skip verification\n" % tls_sim.port)


def test_ca_cert_trusts_the_clusters_ca(cli, tls_sim, tls_files):
    run = cli("--url", "https://127.0.0.1:%d" % tls_sim.port, "--ca-cert", tls_files[0], "status",
              "--format", "compact", target=False)
    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("HEALTHY |")


def test_insecure_skips_verification_with_a_warning(cli, tls_sim):
    run = cli("--url", "https://127.0.0.1:%d" % tls_sim.port, "--insecure", "status", "--format", "compact",
              target=False)
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert run.err == ("warning: TLS certificate verification is off (--insecure); "
                       "the cluster's identity is not checked\n")


def test_missing_ca_cert_file_is_a_usage_error(cli, sim):
    assert_one_error_line(cli("--ca-cert", "/nonexistent/ca.pem", "status"), 2)
    assert sim.requests == []


# -- auth --------------------------------------------------------------------------------

@pytest.fixture
def secured(sim):
    sim.server.api_keys = {KEY: "admin", "reader-key": "read"}
    return sim


def test_the_key_is_sent_as_a_bearer_token(cli, secured):
    assert cli("--api-key", KEY, "status").code == 0
    request = secured.requests[-1]
    assert request["authorization"] == "Bearer " + KEY
    assert KEY not in request["raw_path"]


def test_the_key_from_the_environment(cli, secured, clean_env):
    clean_env.setenv("JADEVECTORDB_API_KEY", KEY)
    assert cli("status").code == 0
    assert secured.requests[-1]["authorization"] == "Bearer " + KEY


def test_missing_key_is_401_with_a_hint(cli, secured):
    run = cli("status")
    assert_one_error_line(run, 1)
    assert run.err == ("error: missing or invalid API key (HTTP 401 UNAUTHENTICATED); "
                       "no API key was sent; pass one with --api-key or JADEVECTORDB_API_KEY\n")


def test_an_empty_key_is_an_input_error_not_an_override(cli, secured, clean_env):
    clean_env.setenv("JADEVECTORDB_API_KEY", KEY)
    run = cli("--api-key", "", "status")
    assert_one_error_line(run, 2)
    assert run.err == "error: --api-key must not be empty (leave it out to send no key)\n"
    clean_env.setenv("JADEVECTORDB_API_KEY", "")
    run = cli("status")
    assert run.err == "error: JADEVECTORDB_API_KEY is set but empty (unset it to send no key)\n" and run.code == 2
    assert secured.requests == []


def test_a_url_ending_in_the_api_path_is_understood(cli, sim):
    run = cli("--url", sim.url + "/api/v1/", "status", "--format", "compact", target=False)
    assert run.code == 0 and run.out.startswith("HEALTHY | 3 nodes | 12 shards")
    assert sim.requests[-1]["path"] == "/api/v1/cluster/status"


def test_counts_read_as_words(cli, sim):
    sim.reset(nodes=1, shards=1, replication_factor=1)
    assert cli("status", "--format", "compact").out.startswith("HEALTHY | 1 node | 1 shard | ")


def test_read_only_key_is_403_for_a_change(cli, secured):
    run = cli("--api-key", "reader-key", "remove-node", "--node-id", "node-worker-001")
    assert_one_error_line(run, 1)
    assert "HTTP 403" in run.err and "--api-key" in run.err


def test_the_key_never_appears_in_output(cli, secured):
    runs = [cli("--api-key", KEY, "--verbose", "status"),
            cli("--api-key", KEY, "--verbose", "node-health", "--node-id", "nope"),
            cli("--api-key", KEY, "--verbose", "--retries", "0", "--port", free_port(), "status")]
    for run in runs:
        assert KEY not in run.out + run.err
    assert "-> 200" in runs[0].err


def test_a_key_over_plain_http_to_a_remote_host_is_warned_about(cli, sim):
    # The first master (this machine's simulator) answers, so the second is never contacted.
    run = cli("--api-key", KEY, "--url", "%s,http://192.0.2.7:8080" % sim.url, "status", target=False)
    assert run.code == 0
    assert run.err == "warning: the API key is sent unencrypted to http://192.0.2.7:8080; use an https:// --url\n"
    assert {r["client_port"] > 0 for r in sim.requests} == {True} and len(sim.requests) == 1


def test_no_warning_for_loopback_or_https():
    assert cluster_cli.key_over_plain_http(["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2",
                                            "https://jade.example:8443"]) == []


def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(cli, sim):
    run = cli("--api-key", "bad key\nsecret", "status")
    assert_one_error_line(run, 2)
    assert "secret" not in run.err
    assert sim.requests == []


# -- paths and input ------------------------------------------------------------------------

def test_ids_are_one_encoded_path_segment(cli, sim):
    run = cli("node-health", "--node-id", "a/../b")
    assert run.code == 1
    assert sim.requests[-1]["raw_path"] == "/api/v1/cluster/nodes/a%2F..%2Fb/health"


def test_shard_id_with_query_characters_stays_in_the_path(cli, sim):
    cli("shard-status", "--shard-id", "x?y#z")
    assert sim.requests[-1]["raw_path"] == "/api/v1/cluster/shards/x%3Fy%23z"


@pytest.mark.parametrize("argv, message", [
    (["node-health", "--node-id", ""],
     "error: argument --node-id: must not be empty (see 'cluster_cli.py node-health --help')\n"),
    (["add-node", "--node-id", "n", "--address", "nohost"],
     "error: argument --address: must be HOST:PORT (IPv6 as [::1]:8080), got 'nohost' "
     "(see 'cluster_cli.py add-node --help')\n"),
    (["add-node", "--node-id", "n", "--address", "h:0"],
     "error: argument --address: port 0 is out of range (1-65535) (see 'cluster_cli.py add-node --help')\n"),
    (["add-node", "--node-id", "n", "--address", "h:65536"],
     "error: argument --address: port 65536 is out of range (1-65535) (see 'cluster_cli.py add-node --help')\n"),
    (["add-node", "--node-id", "n", "--address", "::1:80"],
     "error: argument --address: must be HOST:PORT (IPv6 as [::1]:8080), got '::1:80' "
     "(see 'cluster_cli.py add-node --help')\n"),
    (["migrate-shard", "--shard-id", "s", "--to-node", "  "],
     "error: argument --to-node: must not be empty (see 'cluster_cli.py migrate-shard --help')\n"),
    (["--port", "70000", "status"],
     "error: argument --port: port 70000 is out of range (1-65535) (see 'cluster_cli.py --help')\n"),
    (["--host", "http://x", "status"],
     "error: --host takes host names, not URLs such as 'http://x'; a URL goes in --url\n"),
    (["--url", "ftp://x", "status"],
     "error: --url: 'ftp://x' must look like http://host:port or https://host:port\n"),
    (["--timeout", "0", "status"],
     "error: argument --timeout: must be more than 0 and at most 604800 seconds, got '0' "
     "(see 'cluster_cli.py --help')\n"),
    (["migrate-shard", "--shard-id", "s", "--to-node", "n", "--strategy", "FAST"],
     "error: argument --strategy: invalid choice: 'FAST' (choose from 'LIVE_COPY', 'SNAPSHOT', 'INCREMENTAL') "
     "(see 'cluster_cli.py migrate-shard --help')\n"),
    (["frobnicate"], None),
])
def test_bad_input_exits_2_before_any_request(cli, sim, argv, message):
    run = cli(*argv, target=False)
    assert_one_error_line(run, 2)
    if message:
        assert run.err.replace('"', "'").replace("LIVE_COPY, SNAPSHOT, INCREMENTAL",
                                                 "'LIVE_COPY', 'SNAPSHOT', 'INCREMENTAL'") == message
    assert sim.requests == []


def test_ipv6_address_is_accepted(cli, sim):
    assert cli("add-node", "--node-id", "n6", "--address", "[fd00::6]:8080").code == 0
    assert json.loads(sim.requests[-1]["body"])["address"] == "[fd00::6]:8080"


def test_bad_environment_value_is_named(cli, clean_env):
    clean_env.setenv("JADEVECTORDB_PORT", "eighty")
    run = cli("status", target=False)
    assert_one_error_line(run, 2)
    assert run.err == "error: JADEVECTORDB_PORT: 'eighty' is not a port number (1-65535)\n"


def test_environment_then_flags(cli, sim, clean_env):
    clean_env.setenv("JADEVECTORDB_URL", "http://127.0.0.1:%d" % sim.port)
    clean_env.setenv("JADEVECTORDB_FORMAT", "compact")
    assert cli("status", target=False).out.startswith("HEALTHY | ")
    assert cli("status", "--format", "json", target=False).json()["status"] == "HEALTHY"
    clean_env.delenv("JADEVECTORDB_URL")
    clean_env.setenv("JADEVECTORDB_HOST", "127.0.0.1")
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))
    assert cli("status", target=False).out.startswith("HEALTHY | ")
    # --port given on the command line beats JADEVECTORDB_URL from the environment
    clean_env.setenv("JADEVECTORDB_URL", "http://127.0.0.1:%d" % free_port())
    assert cli("--port", sim.port, "status", target=False).code == 0


# -- odd answers -----------------------------------------------------------------------------

def test_html_502_from_a_proxy_is_reported_with_an_excerpt(cli, sim):
    sim.fault(html_next=1)
    run = cli("--retries", "0", "status")
    assert_one_error_line(run, 1)
    assert run.err == ("error: Bad Gateway: '<html> <head><title>502 Bad Gateway</title></head> <body> "
                       "<center><h1>502 Bad Gateway</h1></center> <hr><center>nginx</c...' (HTTP 502); "
                       "the cluster was still unavailable after 1 try in 0.0s\n")


def test_empty_body_is_reported(cli, sim):
    sim.fault(empty_next=1)
    run = cli("status")
    assert_one_error_line(run, 1)
    assert run.err == "error: the cluster answered HTTP 200 with an empty body where JSON was expected\n"


@pytest.mark.parametrize("body, message", [
    ("<html>oops</html>", "error: the cluster answered HTTP 200 with a body that is not JSON: '<html>oops</html>'\n"),
    ("[1, 2]", "error: expected a JSON object from the cluster, got list\n"),
    ('"HEALTHY"', "error: expected a JSON object from the cluster, got str\n"),
    ("[" * 100000, None),
])
def test_unexpected_json_is_reported(cli, sim, body, message):
    sim.fault(respond=[{"body": body}])
    run = cli("status")
    assert_one_error_line(run, 1)
    if message:
        assert run.err == message


def test_a_list_endpoint_with_an_object_of_the_wrong_shape(cli, sim):
    sim.fault(respond=[{"body": '{"items": []}'}])
    run = cli("nodes")
    assert_one_error_line(run, 1)
    assert run.err == "error: expected a list of nodes from the cluster\n"


def test_tolerated_variations_render_the_same_tables(cli, sim):
    normal = [cli("nodes").out, cli("shards").out, cli("status").out, cli("shard-status", "--shard-id", "shard-00").out]
    sim.fault(bare_lists=True, camel_case=True, numbers_as_strings=True)
    varied = [cli("nodes").out, cli("shards").out, cli("status").out, cli("shard-status", "--shard-id", "shard-00").out]
    assert varied == normal


def test_json_uses_the_contracts_snake_case_names_whatever_the_server_sends(cli, sim):
    plain = [cli(*argv, "--format", "json").json() for argv in (["nodes"], ["metrics"], ["shard-status", "--shard-id",
                                                                                          "shard-00"])]
    sim.fault(bare_lists=True, camel_case=True)
    camel = [cli(*argv, "--format", "json").json() for argv in (["nodes"], ["metrics"], ["shard-status", "--shard-id",
                                                                                          "shard-00"])]
    assert camel[0][0]["node_id"] == "node-master-001" and "nodeId" not in camel[0][0]
    assert [sorted(n) for n in camel[0]] == [sorted(n) for n in plain[0]]
    assert camel[1]["p99_query_latency_ms"] == plain[1]["p99_query_latency_ms"]
    assert sorted(camel[1]["nodes"]) == sorted(plain[1]["nodes"])  # node IDs, the map's keys, kept as sent
    assert sorted(camel[2]) == sorted(plain[2])
    assert cluster_cli.ClusterCLI(url=sim.url).list_shards()[0]["vector_count"] == 125432


def test_raw_prints_the_servers_body_as_it_came(cli, sim):
    import urllib.request
    sim.fault(camel_case=True)
    run = cli("--raw", "nodes")
    with urllib.request.urlopen(sim.url + "/api/v1/cluster/nodes") as answer:
        assert run.out == answer.read().decode()
    assert '"nodeId": "node-master-001"' in run.out and run.code == 0
    assert cli("--raw", "nodes", "--watch", "1").code == 2


def test_a_field_not_sent_leaves_no_empty_line_and_a_dash_in_grids(cli, sim):
    sim.fault(drop_fields=["status", "shard_count"])
    run = cli("nodes", "--format", "compact")
    assert run.lines[0] == "node-master-001 | MASTER | 192.168.1.10:8080 |  | "
    assert cli("nodes").lines[3] == "│ node-master-001  │ MASTER  │ 192.168.1.10:8080  │ -        │ -        │"
    status = cli("status").lines
    assert "Status:" not in status and status[-1] == "Replication Factor: 2"


def test_a_huge_field_is_clipped_in_a_table(cli, sim):
    node = {"node_id": "n" * 1000000, "status": "HEALTHY"}
    sim.fault(respond=[{"body": json.dumps([node])}])
    run = cli("nodes")
    assert run.code == 0
    assert max(len(line) for line in run.lines) < 300
    assert "n" * 197 + "..." in run.out


def test_control_characters_from_the_server_do_not_reach_the_terminal(cli, sim):
    sim.fault(respond=[{"body": json.dumps([{"node_id": "evil\x1b[2J\nrow", "status": "HEALTHY"}])}])
    run = cli("nodes", "--format", "compact")
    assert run.out == "evil [2J row |  |  | HEALTHY | \n"


# -- the process ---------------------------------------------------------------------------------

def test_help_for_every_command_has_an_example(script):
    for command in commands_that(lambda declared: declared.view):
        run = script(command, "--help", target=False)
        assert run.code == 0 and "example: cluster_cli.py " in run.out and "--format" in run.out, command


def test_help_and_version_do_not_import_requests_or_tabulate(script):
    for argv in (["--help"], ["--version"]):
        done = subprocess.run([sys.executable, "-X", "importtime", SCRIPT] + argv,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
        assert "requests" not in imported and "tabulate" not in imported
    assert script("--version", target=False).out == "cluster_cli.py %s\n" % cluster_cli.__version__


def test_simulator_fault_options(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(os.path.dirname(SCRIPT), "tests", "simulator.py"),
                           "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--fail-next N" in done.stdout and "/_sim/faults" in done.stdout


def test_closed_pipe_ends_quietly(sim, tmp_path):
    big = simulator.start(cluster=simulator.Cluster(shards=20000))
    try:
        done = subprocess.run("%s %s --host 127.0.0.1 --port %d shards --format compact | head -n 1"
                              % (sys.executable, SCRIPT, big.port), shell=True, capture_output=True,
                              text=True, timeout=60)
    finally:
        big.shutdown()
        big.server_close()
    assert done.stdout.startswith("shard-00000 | node-worker-001 | 2 | 125,432 | HEALTHY")
    assert done.stderr == ""


def test_ctrl_c_exits_130_without_a_traceback(sim):
    sim.fault(delay=5)
    process = subprocess.Popen([sys.executable, SCRIPT, "--host", "127.0.0.1", "--port", str(sim.port),
                                "status"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    wait_until(lambda: sim.requests, what="a request")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (130, "", "interrupted\n")


def test_an_internal_error_is_one_line_and_the_trace_needs_verbose(cli, monkeypatch):
    def broken(data):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setitem(cluster_cli.VIEWS, "status", cluster_cli.VIEWS["status"]._replace(prepare=broken))
    run = cli("status")
    assert_one_error_line(run, 1)
    assert run.err == ("error: unexpected ZeroDivisionError: division by zero "
                       "(rerun with --verbose for the trace)\n")
    run = cli("--verbose", "status")
    assert "Traceback" in run.err and "ZeroDivisionError" in run.err


def test_script_exit_codes(script, sim):
    assert script("status").code == 0
    assert script("node-health", "--node-id", "nope").code == 1
    assert script("node-health", "--node-id", "").code == 2
    assert script("--port", free_port(), "--retries", "0", "status", target=False).code == 3
    run = script("status", "--format", "json")
    assert json.loads(run.out)["status"] == "HEALTHY" and run.err == ""


def test_missing_dependency_is_named(tmp_path):
    # A Python with no third-party packages: only the standard library and the script.
    done = subprocess.run([sys.executable, "-S", "-s", SCRIPT, "--port", "1", "status"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"})
    if "requests" in sys.builtin_module_names:  # pragma: no cover - never true
        pytest.skip()
    assert done.returncode == 1
    assert done.stderr == ("error: the Python package 'requests' is not installed; "
                           "run: pip install -r requirements.txt\n")


def test_sources_are_python_3_8_syntax():
    import ast
    import glob
    for path in [SCRIPT] + glob.glob(os.path.join(os.path.dirname(SCRIPT), "tests", "*.py")):
        with open(path, encoding="utf-8") as source:
            ast.parse(source.read(), path, feature_version=(3, 8))


def test_a_key_echoed_by_a_usage_error_is_redacted(cli):
    run = cli("--api-key", KEY, "status", "--format", KEY)
    assert run.code == 2
    assert KEY not in run.err and "'%s'" % ("*" * len(KEY)) in run.err


# -- more input checks ------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["node-health", "--node-id", "a\tb"], "error: argument --node-id: contains control characters: 'a\\tb' "
     "(see 'cluster_cli.py node-health --help')\n"),
    (["--host", "a b", "status"], "error: --host: 'a b' is not a host or host:port\n"),
    (["--url", "http://h:99999", "status"], None),
    (["--url", "http://h:0", "status"], "error: --url: port 0 is out of range (1-65535)\n"),
    (["--url", "http://user:pw@h:1", "status"],
     "error: --url: 'http://***@h:1' must not carry credentials; give the API key separately\n"),
    (["--retries", "-1", "status"],
     "error: argument --retries: '-1' must be from 0 to 100 (see 'cluster_cli.py --help')\n"),
])
def test_more_bad_input_exits_2_before_any_request(cli, sim, argv, message):
    run = cli(*argv, target=False)
    assert_one_error_line(run, 2)
    if message:
        assert run.err == message
    assert sim.requests == []


def test_a_bare_ipv6_host_gets_brackets(sim):
    client = cluster_cli.ClusterCLI(host="::1,127.0.0.1", port=sim.port)
    assert client.base_urls == ["http://[::1]:%d" % sim.port, "http://127.0.0.1:%d" % sim.port]


def test_bad_format_in_the_environment(cli, clean_env):
    clean_env.setenv("JADEVECTORDB_FORMAT", "yaml")
    run = cli("status")
    assert_one_error_line(run, 2)
    assert run.err == ("error: JADEVECTORDB_FORMAT must be one of json, table, compact, ndjson, csv, tsv, "
                       "prometheus, got 'yaml'\n")


def test_library_checks_its_arguments_before_sending(sim):
    with pytest.raises(cluster_cli.InvalidInput, match="^timeout must be more than 0 and at most"):
        cluster_cli.ClusterCLI(port=sim.port, timeout=0)
    with pytest.raises(cluster_cli.InvalidInput, match="^retries must be a whole number from 0 to 100"):
        cluster_cli.ClusterCLI(port=sim.port, retries=-1)
    with cluster_cli.ClusterCLI(host="127.0.0.1", port=sim.port, api_key=KEY) as client:
        with pytest.raises(cluster_cli.InvalidInput) as raised:
            client.migrate_shard("shard-00", "node-master-001", strategy="FAST")
        assert raised.value.exit_code == 2
        assert KEY not in repr(client) and KEY not in repr(client._transport._auth)
    assert sim.requests == []


def test_a_key_is_warned_about_for_a_named_remote_host():
    assert cluster_cli.key_over_plain_http(["http://jade.example:8080"]) == ["http://jade.example:8080"]


def test_retry_after_as_an_http_date_falls_back_to_backoff(cli, sim):
    sim.fault(fail_next=1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    assert cli("status").code == 0
    assert len(sim.requests) == 2


def test_all_masters_unreachable_during_a_wait_for_status(cli):
    port = free_port()
    run = cli("--host", "127.0.0.1", "--port", port, "--retries", "0", "status", "--wait-for", "HEALTHY",
              "--wait-timeout", "0.2", "--poll-interval", "0.05", target=False)
    assert_one_error_line(run, 4)
    assert run.err == ("error: cluster did not become HEALTHY within 0.2s "
                       "(cannot reach http://127.0.0.1:%d: connection refused)\n" % port)


def test_ctrl_c_in_process_exits_130(cli, sim):
    import threading

    def interrupt_when_received():
        wait_until(lambda: sim.requests, what="a request")
        os.kill(os.getpid(), signal.SIGINT)  # a real signal: it breaks the blocking read, as Ctrl-C does

    # As in a terminal, even when this run inherited SIGINT ignored (a background job).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sim.fault(delay=10)
        interrupter = threading.Thread(target=interrupt_when_received)
        interrupter.start()
        run = cli("status")
        interrupter.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (run.code, run.out, run.err) == (130, "", "interrupted\n")  # answered, it would be 0


def test_a_narrow_terminal_setting_that_is_not_a_number_is_ignored(clean_env):
    clean_env.setenv("COLUMNS", "wide")
    assert cluster_cli.terminal_columns() >= 1
    clean_env.setenv("COLUMNS", "100")
    assert cluster_cli.terminal_columns() == 100


def test_odd_values_render_readably(cli, sim):
    node = {"node_id": "n1", "role": True, "status": "HEALTHY", "shard_count": "1234567", "cpu_usage": "12.5",
            "memory_usage": "lots", "disk_usage": None, "uptime_seconds": "3700", "last_heartbeat": {"at": 1},
            "checks": [{"name": "disk", "status": "WARN", "detail": ["a", 2]}, "junk"]}
    sim.fault(respond=[{"body": json.dumps(node)}])
    run = cli("node-health", "--node-id", "n1")
    # Fields not sent (address), sent as null (disk_usage) or not a number (memory_usage: null, said
    # once on stderr) leave no bare label behind; numbers sent as text are numbers.
    assert run.lines[3:9] == ["Role: yes", "Status: HEALTHY", "Shards: 1,234,567", "CPU Usage: 12.5%",
                              "Uptime: 1h 1m", 'Last Heartbeat: {"at":1}']
    assert run.err == "warning: the cluster sent values that are not numbers in memory_usage: shown as null\n"
    assert "│ disk  │ WARN   │ a, 2   │" in run.lines
    sim.fault(respond=[{"body": json.dumps(dict(node, uptime_seconds=65.5))},
                       {"body": json.dumps(dict(node, uptime_seconds="nan"))}])
    assert "Uptime: 1m 5s" in cli("node-health", "--node-id", "n1").lines
    run = cli("node-health", "--node-id", "n1")
    assert not any(line.startswith("Uptime") for line in run.lines)
    assert "memory_usage, uptime_seconds: shown as null" in run.err


# -- what a new user mistypes -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["stauts"], "unknown command 'stauts'; did you mean 'status'?"),
    (["--form", "compact", "status"], "unknown option '--form'; did you mean '--format'?"),
    (["nodes", "--stauts", "HEALTHY"], "unknown option '--stauts'; did you mean '--status'?"),
    (["migrate-shard", "--shard-id", "s", "--to-node", "n", "--stratgy", "SNAPSHOT"],
     "unknown option '--stratgy'; did you mean '--strategy'?"),
])
def test_a_mistyped_command_or_option_gets_a_suggestion(cli, sim, argv, message):
    run = cli(*argv)
    assert_one_error_line(run, 2)
    assert run.err.startswith("error: " + message)
    assert sim.requests == []


@pytest.mark.parametrize("argv, message", [
    (["add-node", "--node-id", "x", "--address", "1.2.3.4:8080", "--dry-run"],
     "'--dry-run' is not an option of add-node; remove-node, migrate-shard, rebalance and drain-node take it"),
    (["nodes", "--to-node", "x"], "'--to-node' is not an option of nodes; migrate-shard takes it"),
])
def test_another_commands_option_is_named_as_such_never_suggested_as_itself(cli, sim, argv, message):
    run = cli(*argv)
    assert_one_error_line(run, 2)
    assert run.err.startswith("error: " + message + " (see ")
    assert sim.requests == []


@pytest.mark.parametrize("argv", [[], ["--host", "localhost"]])
def test_no_command_prints_how_to_start_with_examples_and_exits_2(cli, sim, argv):
    run = cli(*argv, target=False)
    assert (run.code, run.out) == (2, "")
    assert run.err.splitlines()[0] == "usage: cluster_cli.py [options] COMMAND [options]"
    shown = run.err.split("examples:\n", 1)[1].splitlines()
    assert "  cluster_cli.py report                                  what is wrong, and what to run" in shown
    for line in shown:  # each example parses as it is written
        argv = line.split("  ")[1].split() if line.count("  ") > 1 else line.split()
        if "COMMAND" not in argv:
            cluster_cli.build_parser(argv[1:]).parse_args(argv[1:])
    assert cli("--help", target=False).out.rstrip("\n").split("examples:\n", 1)[1].startswith(
        "\n".join(shown))  # the top-level help ends with the same examples, then the exit codes
    assert sim.requests == []


def test_the_command_calls_itself_by_the_name_it_was_run_as(tmp_path, sim):
    installed = tmp_path / "jadevectordb-cluster"
    installed.symlink_to(SCRIPT)
    done = subprocess.run([sys.executable, str(installed), "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout == "jadevectordb-cluster %s\n" % cluster_cli.__version__
    done = subprocess.run([sys.executable, str(installed), "--url", sim.url, "migrate-shard", "--shard-id",
                           "shard-00", "--to-node", "node-master-001", "--wait", "--wait-timeout", "0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and ("'jadevectordb-cluster --url %s shard-status --shard-id shard-00 --wait'"
                                     % sim.url) in done.stderr
    assert "cluster_cli.py" not in done.stderr
