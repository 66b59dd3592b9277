"""Fixtures: a simulated cluster on 127.0.0.1 and the CLI driven through main(argv)."""
import atexit
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, settings

# Property tests: a quick look by default, a thorough one where HYPOTHESIS_PROFILE=thorough (.ci/run
# sets it for the suite on 3.8 and 3.13). No deadline: a test that starts the simulator or a
# subprocess varies with the machine.
settings.register_profile("fast", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# CI's gate: derandomized, so a run can be repeated as it was (a failure it finds stays found).
settings.register_profile("thorough", settings.get_profile("fast"), max_examples=400, derandomize=True,
                          database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
SCRIPT = os.path.join(ROOT, "cluster_cli.py")
sys.path[:0] = [ROOT, TESTS]

import cluster_cli  # noqa: E402
import hostile  # noqa: E402
import simulator  # noqa: E402

ENV_VARS = ("JADEVECTORDB_HOST", "JADEVECTORDB_PORT", "JADEVECTORDB_URL", "JADEVECTORDB_FORMAT",
            "JADEVECTORDB_API_KEY", "JADEVECTORDB_CONFIG", "JADEVECTORDB_CONTEXT", "JADEVECTORDB_API_PREFIX",
            "JADEVECTORDB_RETRIES", "NO_COLOR")
# Proxy settings of whoever runs the suite are not the tests': a test that wants a proxy sets its own.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "no_proxy")
for _name in PROXY_VARS:
    os.environ.pop(_name, None)
# The contexts file of whoever runs the suite is never read: its default place is an empty folder.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="jadevectordb-tests-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)
# Nor are its operations and locks: each test starts with an empty state folder (clean_env).
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="jadevectordb-state-")
atexit.register(shutil.rmtree, os.environ["XDG_STATE_HOME"], True)
# Fast enough for tests, slow enough to be seen IN_PROGRESS.
CLUSTER_OPTIONS = dict(nodes=3, shards=12, replication_factor=2, migration_seconds=0.6,
                       join_seconds=0.2, rebalance=False, seed=7, cluster_name=None)


# Command lines of the simulator's default cluster, for tests that run every command of a kind: a
# command's first help example, unless it names what that cluster lacks. A new command is in every
# such test at once, with its own example.
SAMPLE_RUNS = {"nodes": ["nodes"], "add-node": ["add-node", "--node-id", "n9", "--address", "h9:8080"],
               "remove-node": ["remove-node", "--node-id", "node-worker-002"],
               "migrate-shard": ["migrate-shard", "--shard-id", "shard-00", "--to-node", "node-master-001"],
               "bundle": ["bundle", "--output", os.devnull]}  # never an archive in the working folder


def sample(name: str) -> list:
    """Return a command line (argv) of command NAME for the default cluster, without --dry-run."""
    if name in SAMPLE_RUNS:
        return list(SAMPLE_RUNS[name])
    import shlex
    doc = cluster_cli.COMMANDS[name].handler.__doc__
    line = doc.split("example:", 1)[1].replace("\\\n", " ").strip().splitlines()[0].split(" | ")[0]
    return [word for word in shlex.split(line)[1:] if word != "--dry-run"]


def commands_that(test) -> list:
    """Return the names of the commands whose record passes test(record), in --help's order."""
    return [name for name, declared in cluster_cli.COMMANDS.items() if test(declared)]


class Sim:
    """The running simulator, as a test sees it."""

    def __init__(self, server):
        self.server = server
        self.cluster = server.cluster
        self.port = server.port
        self.url = "http://127.0.0.1:%d" % server.port

    @property
    def requests(self) -> list:
        """Requests the cluster received under /api/v1 and /health, oldest first."""
        return list(self.cluster.requests)

    def polled_after_a_change(self) -> bool:
        """Whether a GET came after the first change: the CLI holds that change's answer."""
        methods = [r["method"] for r in self.requests]
        return "POST" in methods and "GET" in methods[methods.index("POST") + 1:]

    def changes(self) -> list:
        return [(r["method"], r["path"]) for r in self.requests if r["method"] != "GET"]

    def control(self, path: str, body=None):
        request = urllib.request.Request(self.url + path, method="POST",
                                         data=json.dumps(body or {}).encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def fault(self, **faults):
        return self.control("/_sim/faults", faults)

    def down(self, node_id: str):
        return self.control("/_sim/nodes/%s/down" % node_id)

    def up(self, node_id: str):
        return self.control("/_sim/nodes/%s/up" % node_id)

    def reset(self, **options):
        """Start over, as a cluster built with these options (the others as the fixture's)."""
        self.cluster.options.update(CLUSTER_OPTIONS, **options)
        self.cluster.reset()

    def require_keys(self, keys: dict):
        """From now on, /api/v1 needs one of these keys: {key: "admin" | "read"}."""
        self.server.api_keys = dict(keys)

    def settle(self):
        """Wait until the simulator answers no request (one held by a delay included)."""
        assert self.server.answering.wait(timeout=30), "the simulator is still answering after 30 s"

    def advance(self, seconds: float):
        """Move the cluster's clock on: joins and migrations progress without waiting."""
        self.cluster.advance(seconds)


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    @property
    def lines(self) -> list:
        return self.out.splitlines()

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "Run(code=%r, out=%r, err=%r)" % (self.code, self.out[:2000], self.err[:2000])


@pytest.fixture(scope="session")
def sim_server():
    server = simulator.start(cluster=simulator.Cluster(**CLUSTER_OPTIONS))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim(sim_server):
    """A freshly reset 3-node, 12-shard cluster, open (no API key)."""
    sim = Sim(sim_server)
    sim.cluster.options["personality"] = ()  # a test's sim.reset(personality=...) ends with the test
    sim.reset()
    sim.require_keys({})
    return sim


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return monkeypatch


class TestClock:
    """The CLI's clock in a test (cluster_cli.CLOCK): now() is the real one plus what the CLI has slept,
    and sleep() sleeps none of it, moving the simulator's cluster on as much instead. A wait, a plan's
    polls and its stall checks take no time of the test's, and see the cluster as they would have."""

    def __init__(self, cluster):
        self.cluster, self.slept = cluster, 0.0

    def now(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.slept += seconds
        self.cluster.advance(seconds)
        time.sleep(0)  # other threads (the simulator, a test's) get their turn


@pytest.fixture
def clock(sim, monkeypatch, request):
    """The in-process CLI's clock: a TestClock, unless the test is marked real_clock (it races a
    thread or a server that keeps the real time)."""
    if request.node.get_closest_marker("real_clock"):
        return cluster_cli.CLOCK
    fake = TestClock(sim.cluster)
    monkeypatch.setattr(cluster_cli, "CLOCK", fake)
    return fake


def wait_until(condition, timeout: float = 30.0, interval: float = 0.01, what: str = "the condition"):
    """Return condition()'s first true value, polled every `interval` seconds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "%s did not hold within %g s" % (what, timeout)
        time.sleep(interval)


@pytest.fixture
def cli(sim, capsys, clean_env, clock):
    """cli(*argv) runs main() in-process against the simulator, on the test's clock; returns Run."""
    def run(*argv, target=True):
        prefix = ["--host", "127.0.0.1", "--port", str(sim.port)] if target else []
        code = cluster_cli.main(prefix + [str(a) for a in argv])
        out, err = capsys.readouterr()
        return Run(code, out, err)
    return run


@pytest.fixture
def script(sim):
    """script(*argv) runs the real cluster_cli.py in a subprocess."""
    def run(*argv, env=None, target=True, **kwargs):
        prefix = ["--host", "127.0.0.1", "--port", str(sim.port)] if target else []
        environ = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        environ.update(env or {})
        done = subprocess.run([sys.executable, SCRIPT] + prefix + [str(a) for a in argv],
                              capture_output=True, text=True, env=environ, timeout=60, **kwargs)
        return Run(done.returncode, done.stdout, done.stderr)
    return run


def interruptible():
    """For Popen(preexec_fn=...): a child that can be interrupted even when this run
    was started where SIGINT is ignored (a background job of a non-interactive shell)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """(CA bundle, certificate, key) for 127.0.0.1 and localhost, from a throwaway CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    ca_path, cert_path, key_path = (str(folder / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(ca_path)
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_sim(tls_files):
    """The simulator over TLS, its certificate from the tls_files CA."""
    server = simulator.start(cluster=simulator.Cluster(), tls=tls_files[1:])
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hostile_server():
    """A hostile server over plain HTTP on 127.0.0.1 (see tests/hostile.py)."""
    server = hostile.start()
    yield server
    server.stop()


@pytest.fixture
def proxy():
    """A forward proxy on 127.0.0.1 (absolute-form requests and CONNECT), scripted like the hostile server."""
    server = hostile.start_proxy()
    yield server
    server.stop()


@pytest.fixture
def hostile_tls(tls_files):
    """The hostile server over TLS, its certificate from the tls_files CA."""
    server = hostile.start(tls=tls_files[1:])
    yield server
    server.stop()


def read_all(fd, until_exit, timeout=30.0, until=None) -> str:
    """Everything a pseudo-terminal shows until the process exits (or what it showed once until(text))."""
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until is not None and until(b"".join(chunks).decode("utf-8", "replace")):
            break
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif until_exit.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def asks(text: str) -> bool:
    """Whether a terminal's text ends with a question waiting for its answer."""
    return text.endswith(("[y/N] ", ": ")) and "\n" not in text[-2:]


def on_terminal(sim, argv, stream="stdout", answer=None, env=None, target=True):
    """Run the script with one stream on a pseudo-terminal (stdin: stderr too, where questions are
    asked); returns (code, terminal text, other output). target: --host and --port of `sim` first."""
    master, slave = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_") and k != "NO_COLOR"}
    environ.update(env or {})
    streams = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    streams[stream] = slave
    if stream == "stdin":
        streams["stderr"] = slave
    prefix = ["--host", "127.0.0.1", "--port", str(sim.port)] if target else []
    process = subprocess.Popen([sys.executable, SCRIPT] + prefix + argv,
                               env=environ, **streams)
    os.close(slave)
    shown = ""
    if answer is not None:  # typed once the question is on the screen, as an operator would
        shown = read_all(master, process, until=asks)
        os.write(master, answer.encode())
    shown += read_all(master, process)
    other = (process.stdout or process.stderr).read().decode()
    process.wait(timeout=30)
    os.close(master)
    return process.returncode, shown, other
