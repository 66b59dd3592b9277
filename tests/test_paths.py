"""On the paths real deployments take: proxies, gateways, name resolution, certificates, forks.

Each test drives a real server (the simulator, the hostile server, the forward proxy of
tests/hostile.py) and asserts what an operator sees and what each server received."""
import datetime
import json
import os
import re
import socket
import sys
from urllib.parse import quote

import pytest

import cluster_cli
import hostile
import simulator
from test_hostile import CHANGES, assert_one_error_line

KEY = "s3cret-Key_0123456789"


@pytest.fixture
def second_sim():
    server = simulator.start(cluster=simulator.Cluster())
    yield server
    server.shutdown()
    server.server_close()


# -- a proxy in the environment: one transport path knows what was sent -------------------------------

@pytest.mark.parametrize("command", sorted(CHANGES))
def test_a_change_a_proxy_drops_is_sent_once_and_may_have_been_applied(cli, sim, second_sim, proxy, clean_env,
                                                                     command):
    argv, method, path = CHANGES[command]
    clean_env.setenv("HTTP_PROXY", proxy.url)
    proxy.script(hostile.drop())
    second = "http://localhost:%d" % second_sim.port
    run = cli("--url", "%s,%s" % (sim.url, second), *argv, target=False)
    assert_one_error_line(run, 3)
    assert run.err.startswith("error: the connection to %s through the proxy %s failed after the request was "
                              "sent: remote end closed connection without response; the %s may or may not have "
                              "been applied; check with '" % (sim.url, proxy.url, method)), run.err
    assert proxy.targets == [(method, sim.url + path)]  # not passed on to the second master
    assert sim.requests == [] and second_sim.cluster.requests == []


def test_a_change_through_a_connect_tunnel_that_breaks_is_sent_once(cli, hostile_tls, tls_sim, tls_files, proxy,
                                                                    clean_env):
    argv, method, path = CHANGES["add-node"]
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    hostile_tls.script(hostile.drop())  # reads the POST inside the tunnel, then hangs up
    run = cli("--ca-cert", tls_files[0], "--url", "%s,https://localhost:%d" % (hostile_tls.url, tls_sim.port),
              *argv, target=False)
    assert_one_error_line(run, 3)
    assert "may or may not have been applied" in run.err
    assert [(r.method, r.path) for r in hostile_tls.received] == [(method, path)]
    assert proxy.targets == [("CONNECT", "127.0.0.1:%d" % hostile_tls.port)]
    assert tls_sim.cluster.requests == []


def test_a_change_goes_to_the_next_master_when_the_proxy_cannot_open_a_tunnel(cli, tls_sim, tls_files, proxy,
                                                                              clean_env):
    argv, method, path = CHANGES["add-node"]
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    proxy.script(hostile.refuse_connect(502))  # nothing was tunnelled: the request never left
    dead = "https://127.0.0.1:%d" % tls_sim.port
    run = cli("--ca-cert", tls_files[0], "--url", "%s,https://localhost:%d" % (dead, tls_sim.port), *argv,
              target=False)
    assert run.code == 0, run
    assert [m for m, _ in proxy.targets] == ["CONNECT", "CONNECT"]
    assert [(r["method"], r["path"]) for r in tls_sim.cluster.requests] == [(method, path)]


def test_the_timeout_bounds_a_request_through_a_proxy_that_trickles(cli, proxy, clean_env, sim):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    body = json.dumps({"status": "HEALTHY", "pad": " " * 400}).encode()
    proxy.script(hostile.trickle(body, 0.02))  # 400+ bytes: over 8 s if read to the end
    run = cli("--timeout", "1", "--retries", "0", "status")
    assert_one_error_line(run, 3)
    assert run.err == "error: no complete answer from %s through the proxy %s within 1s\n" % (sim.url, proxy.url)
    proxy.settle()
    assert proxy.received[0].body_sent < len(body) // 2


def test_no_proxy_is_honoured(cli, sim, proxy, clean_env):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    assert cli("status").code == 0
    assert proxy.received == [] and len(sim.requests) == 1


def test_reads_go_through_the_proxy_and_verbose_says_so(cli, sim, proxy, clean_env):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    run = cli("--verbose", "status", "-o", "compact")
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert proxy.targets == [("GET", sim.url + "/api/v1/cluster/status")]
    assert " via %s -> 200 " % proxy.url in run.err


def test_a_key_sent_in_clear_to_a_proxy_is_warned_about_even_for_a_loopback_cluster(cli, sim, proxy, clean_env):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    run = cli("--api-key", KEY, "status", "-o", "compact")
    assert run.code == 0
    assert run.err == ("warning: the API key is sent unencrypted to %s through the proxy %s; use an https:// "
                       "--url\n" % (sim.url, proxy.url))


def test_no_warning_when_the_proxy_tunnels_to_an_https_cluster(cli, tls_sim, tls_files, proxy, clean_env):
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    run = cli("--api-key", KEY, "--ca-cert", tls_files[0], "--url", "https://127.0.0.1:%d" % tls_sim.port,
              "status", "-o", "compact", target=False)
    assert (run.code, run.err) == (0, "")
    assert proxy.targets == [("CONNECT", "127.0.0.1:%d" % tls_sim.port)]
    assert tls_sim.cluster.requests[-1]["authorization"] == "Bearer " + KEY


@pytest.mark.skipif(sys.modules.get("socks") is not None, reason="PySocks is installed here")
def test_a_socks_proxy_without_pysocks_is_an_input_error(cli, sim, clean_env):
    clean_env.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
    run = cli("status")
    assert_one_error_line(run, 2)
    assert run.err == ("error: the proxy 'socks5://127.0.0.1:9' is a SOCKS proxy, which needs PySocks: pip install "
                       "'requests[socks]', or leave the cluster out of it with NO_PROXY\n")
    assert sim.requests == []


def test_a_proxy_password_is_never_shown(cli, proxy, clean_env, sim):
    clean_env.setenv("HTTP_PROXY", "http://user:hunter2pass@127.0.0.1:%d" % proxy.port)
    proxy.script(hostile.drop())
    run = cli("--retries", "0", "status")
    assert run.code == 3 and "hunter2pass" not in run.err and "***@127.0.0.1" in run.err


# -- gateways: a 502 or 504 may come after the change was passed on -------------------------------

@pytest.mark.parametrize("status", [502, 504])
@pytest.mark.parametrize("command", sorted(CHANGES))
def test_a_gateway_error_to_a_change_may_have_been_applied(at, hostile_server, status, command):
    argv, method, path = CHANGES[command]
    hostile_server.script(hostile.answer(status, "<html>gateway</html>"))
    run = at(hostile_server, *argv)
    assert_one_error_line(run, 3)
    assert run.err.startswith("error: %s: '<html>gateway</html>' (HTTP %d from a gateway); the %s may or may not "
                              "have been applied; check with '" % (hostile.REASONS.get(status, "Status"), status,
                                                                    method)), run.err
    assert len(hostile_server.received) == 1


def test_the_library_raises_maybe_applied_not_retryable_for_a_gateway_error(hostile_server):
    hostile_server.script(hostile.answer(504, {"error": "upstream timed out"}))
    with pytest.raises(cluster_cli.MaybeApplied) as raised:
        cluster_cli.ClusterCLI(url=hostile_server.url).remove_node("n1")
    assert (raised.value.status_code, raised.value.retryable, raised.value.exit_code) == (504, False, 3)
    assert raised.value.server_message == "upstream timed out"


def test_a_503_to_a_change_stays_not_applied(at, hostile_server):
    hostile_server.script(hostile.answer(503, {"error": "no leader yet"}))
    run = at(hostile_server, *CHANGES["remove-node"][0])
    assert_one_error_line(run, 1)
    assert "this one was not applied" in run.err


# -- names that do not resolve are not retried ------------------------------------------------------

@pytest.fixture
def unresolvable(monkeypatch):
    """Names under .invalid do not resolve (the resolver answers at once, as for a typo); counts the asks."""
    asked = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".invalid"):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_that_does_not_resolve_is_exit_3_at_once(cli, unresolvable):
    run = cli("--host", "jade-master.invalid", "status", target=False)
    assert_one_error_line(run, 3)
    assert run.err == ("error: cannot reach http://jade-master.invalid:8080: the name does not resolve (name or "
                       "service not known); check the address, which came from --host, and that a master runs there; "
                       "'cluster_cli.py --host jade-master.invalid doctor' checks each step\n")
    assert unresolvable == ["jade-master.invalid"]  # asked once, not for 12 seconds


def test_the_next_master_is_still_tried_after_a_name_that_does_not_resolve(cli, sim, unresolvable):
    run = cli("--host", "jade-master.invalid,127.0.0.1", "--port", str(sim.port), "status", "-o", "compact",
              target=False)
    assert run.code == 0 and run.out.startswith("HEALTHY |")


def test_refused_connections_still_ride_out_an_election(cli):
    from conftest import free_port
    run = cli("--host", "127.0.0.1", "--port", str(free_port()), "--timeout", "1", "--verbose", "status",
              target=False)
    assert run.code == 3 and "retrying in" in run.err


# -- certificates: each problem named, and only an unknown CA points at --ca-cert -----------------------

@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """{kind: (CA bundle, certificate, key)} for certificates that are expired, or for another name."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("certs")
    ca_path = str(folder / "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    # trustme 1.1 (the last for Python 3.8) starts every certificate in 2000; only the end can be set.
    leaves = {"expired": ca.issue_cert("127.0.0.1", not_after=datetime.datetime(2020, 1, 1)),
              "hostname": ca.issue_cert("jade-other.example")}
    files = {}
    for kind, leaf in leaves.items():
        cert, key = str(folder / (kind + ".pem")), str(folder / (kind + ".key"))
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        files[kind] = (ca_path, cert, key)
    return files


@pytest.mark.parametrize("kind, message", [
    ("expired", "its certificate has expired (certificate has expired); renew the cluster's certificate, or check "
                "this machine's clock"),
    ("hostname", "its certificate is not for this address (IP address mismatch, certificate is not valid for "
                 "'127.0.0.1'.); connect by a name the certificate carries (--url or --host)"),
])
def test_each_certificate_problem_is_named_and_only_an_unknown_ca_suggests_ca_cert(cli, certificates, kind,
                                                                                  message):
    ca, cert, key = certificates[kind]
    server = simulator.start(cluster=simulator.Cluster(), tls=(cert, key))
    try:
        run = cli("--ca-cert", ca, "--url", "https://127.0.0.1:%d" % server.port, "status", target=False)
    finally:
        server.shutdown()
        server.server_close()
    assert_one_error_line(run, 3)
    assert run.err == "error: TLS with https://127.0.0.1:%d failed: %s\n" % (server.port, message)
    assert "--ca-cert" not in run.err and server.cluster.requests == []


# -- a client used before a fork keeps its deadlines in the child ---------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_keeps_the_whole_call_deadline(hostile_server, sim):
    client = cluster_cli.ClusterCLI(url=hostile_server.url, timeout=1, retries=0)
    client.cluster_status()  # the parent's pool and watchdog are in use
    body = json.dumps({"status": "HEALTHY", "pad": " " * 400}).encode()
    hostile_server.script(hostile.trickle(body, 0.02))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what the call did, and leave at once
        try:
            client.cluster_status()
            outcome = "answered"
        except cluster_cli.ClusterError as exc:
            outcome = type(exc).__name__ + ": " + str(exc)
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    outcome = os.read(read, 4096).decode()
    os.close(read)
    assert outcome == "ClusterUnreachable: no complete answer from %s within 1s" % hostile_server.url
    hostile_server.settle()
    assert hostile_server.received[-1].body_sent < len(body) // 2


# -- host names: only what can be a host ---------------------------------------------------------------

@pytest.mark.parametrize("host, why", [
    ("１２７.０.０.１", "names are ASCII: write an international name in its xn-- form"),
    ("a..b", "it has an empty label between dots"),
])
def test_hosts_that_cannot_be_a_name_are_input_errors(cli, sim, host, why):
    for argv in (["--host", host], ["--url", "http://%s:8080" % host]):
        run = cli(*argv, "status", target=False)
        assert_one_error_line(run, 2)
        assert run.err.endswith("(%s)\n" % why), run.err
    assert sim.requests == []


@pytest.fixture
def at(cli):
    def run(server, *argv):
        return cli("--url", server.url, *argv, target=False)
    return run


# -- SIGTERM and SIGHUP end as Ctrl-C does -------------------------------------------------------------

def signal_when(condition, argv, signals, env=None):
    """Run the script; once condition() holds, send it `signals` (one after another); (code, out, err)."""
    import signal
    import subprocess
    from conftest import SCRIPT, interruptible, wait_until
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_")}
    environ.update(env or {})
    process = subprocess.Popen([sys.executable, SCRIPT] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environ, preexec_fn=interruptible)
    wait_until(lambda: condition() or process.poll() is not None, 20)
    for number in signals:
        process.send_signal(getattr(signal, number))
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_during_a_change_says_it_may_have_been_applied(hostile_server, name, code):
    hostile_server.script(hostile.hang())
    result = signal_when(lambda: hostile_server.received, ["--url", hostile_server.url] + CHANGES["add-node"][0],
                         [name])
    assert result == (code, "", "error: terminated by %s while the request to add n9 was in flight; it may or may "
                                "not have been applied: check with 'cluster_cli.py --url %s nodes'\n"
                                % (name, hostile_server.url))


def test_sigterm_during_a_rebalance_names_the_running_migrations(sim):
    sim.reset(migration_seconds=600)
    sim.cluster.add_node({"node_id": "node-worker-003", "address": "192.168.1.13:8080"})
    sim.advance(1)
    code, out, err = signal_when(sim.polled_after_a_change, ["--url", sim.url, "rebalance", "--poll-interval", "0.05"],
                                 ["SIGTERM"])
    assert (code, out) == (143, "")
    assert re.fullmatch(r"error: terminated by SIGTERM; no new moves were started; migrations still running: "
                        r"mig-7f01 \(shard-00; 'cluster_cli.py --url %s shard-status --shard-id shard-00'\); resume "
                        r"with 'cluster_cli.py --url %s rebalance --resume rebalance-\d{8}-\d{6}-[0-9a-f]{4}'"
                        % (re.escape(sim.url), re.escape(sim.url)), err.splitlines()[-1])


# The script form, with Ctrl-C arriving while an HTTP answer is finalized (a poll's, after the first move
# started). Python drops an exception raised there: printed as "Exception ignored in" from a __del__, and
# without a word from what io.IOBase's finalizer asks (`closed`, Python code in urllib3's answers). The
# first version of the signal handler then went on polling a 10-minute migration as if no signal came
# (CI, about once in 1,000 interrupts of a rebalance; here made certain).
FINALIZED_ANSWER = """
import io, os, signal, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import cluster_cli

def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # the finalizer's own Python code: where the signal's handler runs
        pass

class Answer:
    def __del__(self):
        ctrl_c()

class Response(io.IOBase):
    @property
    def closed(self):
        ctrl_c()
        return True

decode, methods, dropped = cluster_cli.decode, [], globals()[sys.argv.pop(2)]

def finalizing(status, reason, body, method, *args):
    methods.append(method)
    if methods.count("POST") == 1 and methods[-1] == "GET" and methods[-2] == "POST":
        dropped()
    return decode(status, reason, body, method, *args)

cluster_cli.decode = finalizing
sys.argv = sys.argv[1:]
cluster_cli.end_process(cluster_cli.main())
"""


@pytest.mark.parametrize("finalized", ["Answer", "Response"])
def test_ctrl_c_while_an_answer_is_finalized_still_stops_the_rebalance(sim, finalized):
    import subprocess
    from conftest import SCRIPT, interruptible
    sim.reset(migration_seconds=600)
    sim.cluster.add_node({"node_id": "node-worker-003", "address": "192.168.1.13:8080"})
    sim.advance(1)
    process = subprocess.run([sys.executable, "-c", FINALIZED_ANSWER, SCRIPT, finalized, "--url", sim.url,
                              "rebalance", "--yes", "--poll-interval", "0.05"], capture_output=True, text=True,
                             timeout=30, preexec_fn=interruptible)
    assert (process.returncode, process.stdout) == (130, "")
    assert "Exception ignored" not in process.stderr
    assert re.fullmatch(r"error: interrupted; no new moves were started; migrations still running: mig-7f01 "
                        r"\(shard-00; .*\); resume with 'cluster_cli.py --url %s rebalance --resume "
                        r"rebalance-\d{8}-\d{6}-[0-9a-f]{4}'" % re.escape(sim.url), process.stderr.splitlines()[-1])
    assert sim.changes() == [("POST", "/api/v1/cluster/shards/shard-00/migrate")]


# Ctrl-C handled as a threading.Condition's __enter__ returns: its lock is taken and its with-block not
# begun, so raising there leaves the lock taken. CI caught it in urllib3's pool: the request's own clean-up
# then waited on that lock for ever, and the rebalance never ended. Here the lock's taking is C code that
# sends the signal, so Python handles it at exactly that point.
CONDITION_ENTERED = """
import functools, os, signal, sys, threading, time
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import cluster_cli

class Lock:
    def __init__(self):
        self.acquire = self.release = None
        self.__enter__ = functools.partial(os.kill, os.getpid(), signal.SIGINT)

    def __exit__(self, *exc):
        print("released")

condition = threading.Condition(Lock())
with cluster_cli.signals_stop_the_command(restore=False):
    try:
        with condition:
            print("taken")
        time.sleep(5)
    except KeyboardInterrupt as exc:
        print(cluster_cli.interruption(exc))
"""


def test_ctrl_c_as_a_lock_is_taken_is_raised_once_it_is_held_in_its_block_not_before():
    import subprocess
    from conftest import SCRIPT, interruptible
    process = subprocess.run([sys.executable, "-c", CONDITION_ENTERED, SCRIPT], capture_output=True, text=True,
                             timeout=30, preexec_fn=interruptible)
    assert (process.returncode, process.stdout, process.stderr) == (0, "taken\nreleased\ninterrupted\n", "")


def test_sigterm_leaves_the_output_file_as_it_was_and_no_temporary_behind(hostile_server, tmp_path):
    target = tmp_path / "cluster.prom"
    target.write_text("yesterday\n")
    hostile_server.script(hostile.hang())
    code, out, err = signal_when(lambda: hostile_server.received, ["--url", hostile_server.url, "status", "-o",
                                                                    "prometheus", "--output", str(target)],
                                 ["SIGTERM"])
    assert (code, err) == (143, "terminated by SIGTERM\n")
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.prom"] and target.read_text() == "yesterday\n"


def test_sigterm_ends_a_watch_with_143(sim):
    # The second snapshot's request: the first is on stdout.
    code, out, err = signal_when(lambda: len(sim.requests) >= 2, ["--url", sim.url, "status", "--watch", "0.1", "-o",
                                                                  "compact"], ["SIGTERM"])
    assert code == 143 and out.startswith("HEALTHY |") and err == ""


@pytest.mark.parametrize("attempt", range(3))
def test_a_second_and_third_signal_while_the_first_is_handled_print_no_traceback(hostile_server, attempt):
    hostile_server.script(hostile.hang())
    code, out, err = signal_when(lambda: hostile_server.received,
                                 ["--url", hostile_server.url] + CHANGES["remove-node"][0],
                                 ["SIGINT", "SIGINT", "SIGTERM", "SIGHUP", "SIGINT"])
    # Which of them Python handles first depends on timing (pending ones are taken by number): any one.
    how = {130: "interrupted", 143: "terminated by SIGTERM", 129: "terminated by SIGHUP"}[code]
    assert out == ""
    assert err == ("error: %s while the request to remove node-worker-002 was in flight; it may or may not have "
                   "been applied: check with 'cluster_cli.py --url %s nodes'\n" % (how, hostile_server.url))


# -- --output: safe as root --------------------------------------------------------------------------

def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(cli, sim, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(str(victim), 0o600)
    target = tmp_path / "cluster.prom"
    os.symlink(str(victim), str(tmp_path / (".cluster.prom.%d.tmp" % os.getpid())))  # the name it used to take
    assert cli("status", "-o", "prometheus", "--output", target).code == 0
    assert victim.read_text() == "precious\n"
    assert "jadevectordb_cluster_nodes 3\n" in target.read_text()


def test_an_existing_files_mode_and_owner_are_kept(cli, sim, tmp_path):
    target = tmp_path / "cluster.prom"
    target.write_text("old\n")
    os.chmod(str(target), 0o600)
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(str(target), *owner)
    assert cli("status", "-o", "prometheus", "--output", target).code == 0
    info = os.stat(str(target))
    assert (info.st_mode & 0o7777, (info.st_uid, info.st_gid)) == (0o600, owner)


def test_a_new_file_gets_the_mode_the_umask_gives(cli, sim, tmp_path):
    mask = os.umask(0o027)
    try:
        assert cli("status", "--output", tmp_path / "new.txt").code == 0
    finally:
        os.umask(mask)
    assert os.stat(str(tmp_path / "new.txt")).st_mode & 0o777 == 0o640


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a link to another user needs root")
@pytest.mark.parametrize("where", ["the last part", "a folder on the way"])
def test_a_link_another_user_planted_in_their_folder_is_not_followed_as_root(cli, sim, tmp_path, where):
    victim = tmp_path / "root-only.conf"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(str(theirs), 65534, 65534)  # nobody's folder: nobody may put anything in it
    if where == "the last part":
        link, output = theirs / "cluster.prom", theirs / "cluster.prom"
        os.symlink(str(victim), str(link))
    else:
        link = theirs / "reports"
        os.symlink(str(tmp_path), str(link))
        output = link / "root-only.conf"
    os.lchown(str(link), 65534, 65534)
    run = cli("--output", output, "status", "-o", "prometheus")
    assert (run.code, run.out) == (2, "")
    assert run.err == ("error: --output '%s' goes through the link %s, which belongs to another user (uid 65534) in "
                       "a folder another user may write: not followed, nothing was written\n" % (output, link))
    assert victim.read_text() == "precious\n" and sim.requests == []


def test_a_symlinked_target_is_written_through_the_link(cli, sim, tmp_path):
    real = tmp_path / "real.prom"
    real.write_text("old\n")
    os.symlink(str(real), str(tmp_path / "link.prom"))
    assert cli("status", "-o", "prometheus", "--output", tmp_path / "link.prom").code == 0
    assert os.path.islink(str(tmp_path / "link.prom")) and "jadevectordb_cluster_nodes 3" in real.read_text()


def test_a_fifo_is_written_in_place_not_replaced(cli, sim, tmp_path):
    import stat
    import threading
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    got = []

    def read():
        with open(fifo) as stream:
            got.append(stream.read())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    run = cli("status", "-o", "compact", "--output", fifo)
    reader.join(10)
    assert run.code == 0 and got == ["HEALTHY | 3 nodes | 12 shards | master: node-master-001\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_device_is_written_in_place_and_stays_a_device(cli, sim, device):
    import stat
    if not os.path.exists(device):
        pytest.skip("no %s here" % device)
    before = os.stat(device)
    run = cli("status", "--output", device)
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    if device == "/dev/full":
        assert_one_error_line(run, 1)
        assert run.err == "error: cannot write output: No space left on device\n"
    else:
        assert (run.code, run.out, run.err) == (0, "", "")


@pytest.mark.parametrize("stdout", ["a pipe", "a file"])
def test_dev_stdout_is_written_in_place(sim, tmp_path, stdout):
    import subprocess
    from conftest import SCRIPT
    command = "%s %s --url %s status -o compact --output /dev/stdout" % (sys.executable, SCRIPT, sim.url)
    shell = command + (" | cat" if stdout == "a pipe" else " > %s; cat %s" % (tmp_path / "out", tmp_path / "out"))
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "HEALTHY | 3 nodes | 12 shards | master: "
                                                              "node-master-001\n", "")
    assert os.path.islink("/dev/stdout") or not os.path.lexists("/dev/stdout")


# -- every file read is bounded and never waits forever ------------------------------------------------

@pytest.fixture
def held_fifo(tmp_path):
    """A FIFO whose writer keeps it open and writes nothing (a stuck 'vault read')."""
    fifo = str(tmp_path / "stuck")
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # holds a writer end open, without blocking
    yield fifo
    os.close(writer)


def test_an_endless_plan_is_refused_at_the_size_limit(script, sim):
    run = script("rebalance", "--plan", "/dev/zero", "--max-response-size", "1M")
    assert_one_error_line(run, 2)
    assert run.err == "error: --plan: /dev/zero is larger than 1M\n"


def test_a_plan_fifo_that_sends_nothing_ends_at_the_timeout(script, sim, held_fifo):
    run = script("--timeout", "1", "rebalance", "--plan", held_fifo)
    assert_one_error_line(run, 2)
    assert run.err == "error: --plan: %s sent nothing more for 1s (a FIFO or device with no writer?)\n" % held_fifo
    assert sim.requests == []


def test_a_contexts_fifo_that_sends_nothing_ends_at_the_timeout(script, sim, held_fifo):
    run = script("--config", held_fifo, "--timeout", "1", "status")
    assert_one_error_line(run, 2)
    assert run.err == ("error: %s sent nothing more for 1s (a FIFO or device with no writer?); it is not a "
                       "contexts file\n" % held_fifo)


@pytest.mark.parametrize("action", [["use", "lab"], ["set", "lab", "--timeout", "5"], ["delete", "lab"],
                                    ["rename", "lab", "lab2"]])
def test_editing_a_contexts_fifo_is_refused_at_once_not_after_the_timeout(script, sim, held_fifo, action):
    run = script("--config", held_fifo, "contexts", *action)  # the default timeout: 30 s, were it waited for
    assert_one_error_line(run, 2)
    assert run.err == "error: contexts: %s is not a regular file; edit it where it comes from\n" % held_fifo
    assert os.path.exists(held_fifo) and not os.path.isfile(held_fifo)


def test_a_fifo_at_the_default_contexts_place_is_refused_at_once(script, sim, tmp_path):
    folder = tmp_path / "jadevectordb"
    folder.mkdir()
    os.mkfifo(str(folder / "cluster.toml"))
    run = script("status", env={"XDG_CONFIG_HOME": str(tmp_path)})  # no writer: it used to wait for one
    assert_one_error_line(run, 2)
    assert run.err == ("error: %s is not a regular file; name a FIFO or pipe with --config\n"
                       % (folder / "cluster.toml"))


def test_a_plan_whose_values_would_not_fit_is_refused_before_parsing(cli, sim, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"moves": [' + ",".join(["[]"] * 300000) + "]}")  # 900 KB: some 36 MB of lists
    run = cli("rebalance", "--plan", plan, "--max-response-size", "1M")
    assert_one_error_line(run, 2)
    assert run.err.startswith("error: --plan: %r holds more values than --max-response-size (1M) allows" % str(plan))


def test_deeply_nested_toml_is_one_line_exit_2(cli, sim, tmp_path, clean_env):
    path = tmp_path / "cluster.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    run = cli("--config", path, "status")
    assert_one_error_line(run, 2)
    assert run.err == "error: %s: its values are nested too deeply to be a contexts file\n" % path


# -- a contexts file anyone could write is not trusted ------------------------------------------------

@pytest.mark.parametrize("file_mode, folder_mode, who, where", [
    (0o666, 0o700, "others", "file"), (0o620, 0o700, "its group", "file"), (0o600, 0o777, "others", "folder"),
    (0o600, 0o770, "its group", "folder"),
])
def test_a_contexts_file_others_may_write_is_refused_with_the_chmod_that_fixes_it(cli, sim, tmp_path, file_mode,
                                                                                folder_mode, who, where):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "cluster.toml"
    path.write_text('default_context = "x"\n[contexts.x]\nurl = "%s"\nprotected = true\n' % sim.url)
    os.chmod(str(path), file_mode)
    os.chmod(str(folder), folder_mode)
    run = cli("--config", path, "status", target=False)
    assert_one_error_line(run, 2)
    named = str(path) if where == "file" else str(folder)
    assert run.err == ("error: %s: its %s %s may be written by %s (mode %03o), who could point it at another "
                       "cluster or lift a protection; run 'chmod go-w %s'\n" % (
                           path, where, named, who, file_mode if where == "file" else folder_mode, named))
    assert sim.requests == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_a_contexts_file_of_another_user_is_refused(cli, sim, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.x]\nurl = "%s"\n' % sim.url)
    os.chown(str(path), 65534, 65534)
    run = cli("--config", path, "status", target=False)
    assert_one_error_line(run, 2)
    assert "belongs to another user (uid 65534)" in run.err


# -- messages name the cause ------------------------------------------------------------------------

def test_an_integer_too_long_to_print_is_out_of_range_not_not_json(at, hostile_server):
    hostile_server.default = hostile.answer(200, '{"status": "HEALTHY", "total_vectors": %s}' % ("7" * 5000))
    run = at(hostile_server, "status", "-o", "json")
    assert run.code == 0 and run.json() == {"status": "HEALTHY", "total_vectors": None}


def test_distinct_ids_are_distinct_series_and_a_repeated_id_is_one_series_with_a_warning(at, hostile_server):
    nodes = [{"node_id": node_id, "status": "HEALTHY", "shard_count": count} for node_id, count in (
        ("n\x1b", 1), ("n\\x1b", 2), ('q"1', 3), ("dup", 4), ("dup", 5))]
    hostile_server.default = hostile.answer(200, nodes)
    run = at(hostile_server, "nodes", "-o", "prometheus")
    assert run.code == 0, run
    shards = [line for line in run.lines if line.startswith("jadevectordb_node_shards{")]
    assert shards == ['jadevectordb_node_shards{node_id="n\\\\x1b"} 1',
                      'jadevectordb_node_shards{node_id="n\\\\\\\\x1b"} 2',
                      'jadevectordb_node_shards{node_id="q\\"1"} 3', 'jadevectordb_node_shards{node_id="dup"} 4']
    assert len(set(line for line in run.lines if not line.startswith("#"))) == len(
        [line for line in run.lines if not line.startswith("#")])  # no series written twice
    assert run.err == ('warning: the cluster sent node_id="dup" more than once: written once, from the first '
                       '(node_exporter refuses a series written twice)\n')


@pytest.mark.parametrize("fmt", ["prometheus", "table", "compact", "csv", "tsv", "json", "ndjson"])
def test_unprintable_text_from_the_server_is_escaped_in_every_format(at, hostile_server, fmt):
    hostile_server.default = hostile.answer(200, '[{"node_id": "n\\ud800\\u001b[2J", "status": "HEALTHY", '
                                                 '"role": "WORKER", "shard_count": 1}]')
    run = at(hostile_server, "nodes", "-o", fmt)
    assert run.code == 0, run
    assert "\x1b" not in run.out and "\ud800" not in run.out


def test_a_contexts_file_in_a_sticky_folder_such_as_tmp_is_read(cli, sim, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(str(folder), 0o1777)  # no one else may rename or replace what is ours in it
    path = folder / "cluster.toml"
    path.write_text('[contexts.x]\nurl = "%s"\n' % sim.url)
    assert cli("--config", path, "--context", "x", "status", target=False).code == 0


# -- no secret is printed anywhere: one writer for stdout and stderr -------------------------------------

@pytest.mark.parametrize("argv", [
    ["status", "-o", "json"], ["status", "-o", "compact", "--watch", "0.05", "--count", "2"], ["status", "--raw"],
    ["status", "-o", "tsv"], ["--verbose", "status"],
])
def test_a_key_the_server_echoes_is_never_printed(at, hostile_server, argv):
    hostile_server.default = hostile.answer(200, {"status": "HEALTHY", "master_node": "echo " + KEY,
                                                  "total_nodes": 3})
    run = at(hostile_server, "--api-key", KEY, *argv)
    assert run.code == 0, run
    assert KEY not in run.out + run.err
    assert "*" * len(KEY) in run.out + run.err


ODD_KEY = 'k3y"with\\back%slash'  # each format escapes a quote, a backslash or a percent its own way


@pytest.mark.parametrize("argv", [["-o", "json"], ["-o", "ndjson"], ["--raw"], ["-o", "csv"], ["-o", "tsv"],
                                  ["-o", "table"], ["-o", "compact"]])
def test_no_escaped_or_clipped_form_of_the_key_is_printed(at, hostile_server, argv):
    hostile_server.default = hostile.answer(200, {"status": "HEALTHY", "total_nodes": 3,
                                                  "master_node": "echo " + ODD_KEY + " /" + quote(ODD_KEY, safe=""),
                                                  "cluster_name": "x" * 190 + ODD_KEY})  # clipped at 200 inside it
    run = at(hostile_server, "--api-key", ODD_KEY, "status", *argv)
    assert run.code == 0, run
    shown = run.out + run.err
    for form in (ODD_KEY, json.dumps(ODD_KEY)[1:-1], ODD_KEY.replace('"', '""'), ODD_KEY.replace("\\", "\\\\"),
                 quote(ODD_KEY, safe=""), ODD_KEY[:6]):
        assert form not in shown, (form, shown)


def test_a_key_in_a_failed_moves_reason_is_redacted_in_progress_the_report_and_the_error(cli, sim, clean_env):
    sim.require_keys({KEY: "admin"})
    sim.reset(migration_seconds=0.1)
    sim.cluster.add_node({"node_id": "node-worker-003", "address": "192.168.1.13:8080"})
    sim.advance(1)
    sim.fault(fail_migrations={"shard-00": "auth to backup store failed with token " + KEY})
    clean_env.setenv("JADEVECTORDB_API_KEY", KEY)
    run = cli("rebalance", "--poll-interval", "0.05")
    assert run.code == 1
    assert KEY not in run.out + run.err
    mask = "*" * len(KEY)
    assert "move 1/3 FAILED: shard-00 node-worker-001 -> node-worker-003 (migration mig-7f01): auth to backup store " \
           "failed with token %s\n" % mask in run.err
    assert "│ auth to backup store failed with token %s │" % mask in run.err  # the report's Detail column, aligned
    assert len({len(line) for line in run.err.splitlines() if line.startswith(("│", "┌", "├", "└"))}) == 1


# -- stdout stays empty when a command fails; a failure keeps its code when stdout's reader is gone -------

def test_a_refused_drain_prints_nothing_on_stdout(cli, sim):
    run = cli("drain-node", "--node-id", "node-worker-009", "-o", "json")  # not in the cluster: refused
    assert (run.code, run.out) == (1, "")
    assert run.err == "error: node node-worker-009 is not in the cluster\n"


@pytest.mark.parametrize("argv, code", [
    (["drain-node", "--node-id", "node-worker-009", "-o", "json"], 1),
    (["status", "--check", "-o", "json"], 4),
])
def test_a_failure_whose_stdout_reader_has_gone_keeps_its_exit_code(sim, argv, code):
    import subprocess
    from conftest import SCRIPT
    if code == 4:
        sim.down("node-worker-001")
    command = "%s %s --url %s %s | true" % (sys.executable, SCRIPT, sim.url, " ".join(argv))
    done = subprocess.run(["bash", "-c", "set -o pipefail; " + command + "; echo ${PIPESTATUS[0]}"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split()[-1] == str(code)


def test_the_script_form_ends_with_the_exit_handlers_run_and_stdout_flushed(sim):
    # It skips the interpreter's teardown (end_process): what a caller or coverage registered still runs,
    # and what is still buffered still arrives.
    import subprocess
    from conftest import SCRIPT
    program = ("import atexit, runpy, sys; atexit.register(lambda: print('exit handler ran')); "
               "sys.argv = [%r, '--url', %r, 'status', '-o', 'compact']; runpy.run_path(%r, run_name='__main__')"
               % (SCRIPT, sim.url, SCRIPT))
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "HEALTHY | 3 nodes | 12 shards | master: node-master-001\nexit handler ran\n", "")
    sim.down("node-worker-001")
    done = subprocess.run([sys.executable, SCRIPT, "--url", sim.url, "status", "--check", "-o", "compact"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and done.stdout.startswith("DEGRADED | ")


# -- hints can be pasted: they repeat how the cluster was named ------------------------------------------

def test_a_hint_repeats_the_context_and_config_it_was_given(cli, sim, hostile_server, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.lab]\nurl = "%s"\n' % hostile_server.url)
    hostile_server.script(hostile.drop())
    run = cli("--config", path, "--context", "lab", "--api-key", KEY, *CHANGES["add-node"][0], target=False)
    assert run.code == 3
    assert run.err.endswith("check with 'cluster_cli.py --context lab --config %s nodes' before sending it again\n"
                            % path)
    assert KEY not in run.err


def test_a_pasted_hint_asks_the_same_cluster(cli, sim, hostile_server):
    import re
    import shlex
    hostile_server.script(hostile.drop())
    run = cli("--url", hostile_server.url, *CHANGES["add-node"][0], target=False)
    pasted = shlex.split(re.search(r"check with '([^']*)'", run.err).group(1))
    assert pasted[0] == "cluster_cli.py"
    hostile_server.script(hostile.answer(200, []))
    again = cli(*pasted[1:], target=False)
    assert again.code == 0 and hostile_server.received[-1].path == "/api/v1/cluster/nodes"


# -- --max-response-size bounds the process, whatever the body's shape ---------------------------------

@pytest.mark.parametrize("fmt", ["table", "compact", "csv"])
def test_a_body_of_many_tiny_rows_stays_within_a_few_times_the_size_limit(hostile_server, fmt):
    import subprocess
    from conftest import SCRIPT
    limit = 8 * 1024 ** 2
    hostile_server.default = hostile.answer(200, "[" + ",".join(["[]"] * 390000) + "]")  # 1.2 MB, 390,000 rows
    code = ("import re, sys; sys.argv[0] = 'cluster_cli.py'; import cluster_cli; "
            "code = cluster_cli.main(sys.argv[1:]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr); "
            "sys.exit(code)")
    # The CLI's peak, not coverage's: the child runs unmeasured.
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", code, "--url", hostile_server.url, "--max-response-size", "8M",
                           "shards", "-o", fmt], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120, cwd=os.path.dirname(SCRIPT), env=unmeasured)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.split()[-1]) * 1024
    assert peak < 6 * limit + 64 * 1024 ** 2, peak  # the decoded bound, and Python itself
