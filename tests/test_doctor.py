"""doctor against a dead port, a server without the cluster API, JadeVectorDB's /v1 dialect, a missing key and a
TLS server; and every command that cannot reach or find the cluster API points at it."""
import pytest

from conftest import free_port


def checks(run) -> dict:
    """{check: (result, message)} of doctor's JSON, one master."""
    return {row["check"]: (row["result"], row["message"]) for row in run.json()}


def test_a_cluster_that_answers_passes_every_check_and_exits_0(cli, sim):
    run = cli("doctor", "-o", "json")
    found = checks(run)
    assert run.code == 0 and run.err == ""
    assert list(found) == ["settings", "name", "tcp", "health", "clock", "api", "api-other", "auth", "answer time"]
    assert {result for result, _ in found.values()} == {"PASS"}
    assert found["settings"][1] == "address http://127.0.0.1:%d from --host and --port; no API key" % sim.port
    assert found["health"][1] == "/health: HTTP 200, ok, version 1.4.2"
    assert found["api"][1] == "the cluster API under /api/v1 answers"
    assert found["api-other"][1] == "the cluster API under /v1 is not served (HTTP 404)"


def test_a_dead_port_fails_at_tcp_and_exits_3(cli):
    port = free_port()
    run = cli("--host", "127.0.0.1", "--port", str(port), "doctor", "-o", "json", target=False)
    assert run.code == 3
    assert checks(run)["tcp"][0] == "FAIL" and "health" not in checks(run)
    assert run.err.startswith("error: no master answers: http://127.0.0.1:%d: cannot connect to port %d" % (port, port))


def test_through_a_proxy_the_proxy_is_the_hop_checked(cli, sim, clean_env):
    port = free_port()  # a proxy that is not there: the cluster's own port answering would say nothing of it
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % port)
    run = cli("doctor", "-o", "json")
    assert run.code == 3 and "health" not in checks(run) and sim.requests == []
    assert checks(run)["tcp"] == ("FAIL", "cannot connect to port %d: Connection refused (the proxy "
                                          "http://127.0.0.1:%d)" % (port, port))


def test_a_server_without_the_cluster_api_is_told_apart_and_exits_1(cli, sim):
    sim.fault(fail_paths={"/api/v1/cluster/status": 404, "/v1/cluster/status": 501})
    run = cli("doctor", "-o", "json")
    assert run.code == 1
    assert checks(run)["api"] == ("FAIL", "the cluster API under /api/v1 is not served (HTTP 404)")
    assert checks(run)["api-other"] == ("PASS", "the cluster API under /v1 is not implemented by this server "
                                                "(HTTP 501)")
    assert run.err.startswith("error: 1 check failed: the cluster API under /api/v1 is not served")


def test_the_v1_dialect_is_found_and_named_and_passes_once_set(cli, sim, clean_env):
    sim.fault(dialect=True)
    run = cli("doctor", "-o", "json")
    assert (run.code, checks(run)["api"]) == (1, ("FAIL", "the cluster API under /api/v1 is not served (HTTP 404); "
                                                          "set --api-prefix /v1"))
    assert checks(run)["health"] == ("PASS", "/health: HTTP 200, healthy, version not said")
    clean_env.setenv("JADEVECTORDB_API_PREFIX", "/v1")
    run = cli("doctor", "-o", "json")
    assert (run.code, checks(run)["api"]) == (0, ("PASS", "the cluster API under /v1 answers"))


def test_a_missing_or_wrong_key_fails_auth_and_the_key_is_never_shown(cli, sim, clean_env):
    sim.require_keys({"s3cret-admin-key": "admin"})
    run = cli("doctor", "-o", "json")
    assert (run.code, checks(run)["auth"]) == (1, ("FAIL", "the cluster needs an API key (HTTP 401): set --api-key "
                                                           "or JADEVECTORDB_API_KEY"))
    clean_env.setenv("JADEVECTORDB_API_KEY", "wrong-key")
    run = cli("doctor", "-o", "json")
    assert (run.code, checks(run)["auth"]) == (1, ("FAIL", "the key is refused (HTTP 401)"))
    assert checks(run)["settings"][1].endswith("API key from JADEVECTORDB_API_KEY")
    clean_env.setenv("JADEVECTORDB_API_KEY", "s3cret-admin-key")
    run = cli("doctor")
    assert run.code == 0 and "s3cret" not in run.out + run.err and "the key is taken" in run.out


def test_tls_is_verified_with_the_days_the_certificate_has_left(cli, tls_sim, tls_files):
    url = "https://127.0.0.1:%d" % tls_sim.port
    run = cli("--url", url, "--ca-cert", tls_files[0], "doctor", "-o", "json", target=False)
    result, message = checks(run)["tls"]
    assert (run.code, result) == (0, "PASS")
    assert message.startswith("the certificate is verified and expires in ")
    run = cli("--url", url, "--retries", "0", "doctor", "-o", "json", target=False)
    assert checks(run)["tls"] == ("FAIL", "the handshake failed: unable to get local issuer certificate")
    assert run.code == 3


@pytest.mark.parametrize("argv", [["status"], ["nodes"], ["report"]])
def test_a_command_that_cannot_reach_the_cluster_points_at_doctor(cli, argv):
    port = free_port()
    run = cli("--host", "127.0.0.1", "--port", str(port), "--retries", "0", *argv, target=False)
    assert run.code == 3
    assert run.err.endswith("; 'cluster_cli.py --host 127.0.0.1 --port %d doctor' checks each step\n" % port)


def test_a_command_that_finds_no_cluster_api_points_at_doctor(cli, sim):
    sim.fault(fail_paths={"/api/v1/cluster/status": 404})
    run = cli("status")
    assert run.code == 1 and run.err.endswith(" doctor' checks each step\n"), run.err
