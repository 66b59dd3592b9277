"""Named clusters: the contexts file, which context a run uses, what it sets, and protected contexts."""
import os
import pathlib
import re
import shutil

import pytest

import cluster_cli
from conftest import commands_that, free_port, on_terminal, sample

ADD = ("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")


@pytest.fixture
def contexts(tmp_path, clean_env):
    """contexts(text) writes the contexts file and points JADEVECTORDB_CONFIG at it; returns its path."""
    def write(text, mode=0o600, name="cluster.toml"):
        path = tmp_path / name
        path.write_text(text)
        os.chmod(str(path), mode)
        clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
        return str(path)
    return write


@pytest.fixture
def two_clusters(sim, contexts):
    """staging (the default) is the simulator; prod is the simulator too, protected, its key in PROD_KEY."""
    return contexts('''
default_context = "staging"

[contexts.staging]
url = "%s"
format = "compact"

[contexts.prod]
host = "127.0.0.1"
port = %d
protected = true
api_key_env = "PROD_KEY"
''' % (sim.url, sim.port))


@pytest.fixture
def second_sim():
    import simulator
    server = simulator.start(cluster=simulator.Cluster())
    yield server
    server.shutdown()
    server.server_close()


def dead_url():
    return "http://127.0.0.1:%d" % free_port()


# -- which context, and what it sets ----------------------------------------------------------

def test_the_default_context_is_used_with_no_flags(cli, sim, two_clusters):
    run = cli("status", target=False)
    assert (run.code, run.out, run.err) == (0, "HEALTHY | 3 nodes | 12 shards | master: node-master-001\n", "")
    assert sim.requests[-1]["path"] == "/api/v1/cluster/status"


def test_context_flag_beats_environment_beats_default(cli, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    assert cli("contexts", "-o", "json", target=False).json()[0]["chosen_by"] == "default_context"
    clean_env.setenv("JADEVECTORDB_CONTEXT", "prod")
    listed = cli("contexts", "-o", "json", target=False).json()
    assert [(c["name"], c["current"], c["chosen_by"]) for c in listed] == [
        ("staging", False, None), ("prod", True, "JADEVECTORDB_CONTEXT")]
    listed = cli("--context", "staging", "contexts", "-o", "json", target=False).json()
    assert [(c["name"], c["current"], c["chosen_by"]) for c in listed] == [
        ("staging", True, "--context"), ("prod", False, None)]


def test_contexts_lists_name_url_protection_and_why_current(cli, sim, two_clusters):
    run = cli("contexts", "-o", "table", target=False)
    url = "http://127.0.0.1:%d" % sim.port
    width = len(url)
    assert run.code == 0 and run.err == ""
    assert run.lines[1] == "│ Current │ Name    │ %-*s │ Protected │ Chosen By       │" % (width, "URL")
    assert run.lines[3] == "│ *       │ staging │ %s │ no        │ default_context │" % url
    assert run.lines[4] == "│         │ prod    │ %s │ yes       │ -               │" % url
    assert sim.requests == []  # the file is read; no cluster is asked


def test_each_setting_is_flag_then_environment_then_context(cli, sim, two_clusters, clean_env):
    assert cli("status", "-o", "json", target=False).json()["total_nodes"] == 3  # --format beats the context's
    clean_env.setenv("JADEVECTORDB_FORMAT", "json")
    assert cli("status", target=False).json()["total_nodes"] == 3  # so does the environment's
    clean_env.delenv("JADEVECTORDB_FORMAT")
    # --url beats the context's url; a dead one shows it was used
    asked = len(sim.requests)
    run = cli("--url", dead_url(), "--retries", "0", "status", target=False)
    assert run.code == 3 and len(sim.requests) == asked


# -- precedence: flags > --context > JADEVECTORDB_* > JADEVECTORDB_CONTEXT or default_context > defaults --

def test_an_explicit_context_beats_the_environment_and_says_what_it_overrode(cli, sim, contexts, clean_env):
    far = dead_url()
    contexts('[contexts.here]\nurl = "%s"\n' % sim.url)
    clean_env.setenv("JADEVECTORDB_URL", far)
    run = cli("--context", "here", "status", "-o", "compact", target=False)
    assert run.code == 0 and run.out.startswith("HEALTHY |")
    assert run.err == "warning: the cluster is %s, from context 'here'; not %s, from JADEVECTORDB_URL\n" % (
        sim.url, far)


def test_a_protected_context_named_by_flag_gets_the_change_whatever_the_environment_says(cli, sim, second_sim,
                                                                                         contexts, clean_env):
    contexts('[contexts.prod]\nurl = "%s"\nprotected = true\n' % sim.url)
    clean_env.setenv("JADEVECTORDB_URL", "http://localhost:%d" % second_sim.port)
    run = cli("--context", "prod", *ADD, target=False)
    assert (run.code, run.err.splitlines()[-1]) == (1, "error: context 'prod' is protected: pass --yes to add node "
                                                      "node-worker-003 when not on a terminal; nothing was sent")
    run = cli("--context", "prod", *ADD, "--yes", target=False)
    assert run.code == 0
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")] and second_sim.cluster.requests == []


@pytest.mark.parametrize("chosen_by", ["JADEVECTORDB_CONTEXT", "default_context"])
def test_the_environment_beats_a_context_it_did_not_name_by_flag(cli, sim, contexts, clean_env, chosen_by):
    far = dead_url()
    contexts(('default_context = "far"\n' if chosen_by == "default_context" else "") +
             '[contexts.far]\nurl = "%s"\n' % far)
    if chosen_by == "JADEVECTORDB_CONTEXT":
        clean_env.setenv("JADEVECTORDB_CONTEXT", "far")
    clean_env.setenv("JADEVECTORDB_URL", sim.url)
    run = cli("status", "-o", "compact", target=False)
    assert run.code == 0
    assert run.err == "warning: the cluster is %s, from JADEVECTORDB_URL; not %s, from context 'far'\n" % (
        sim.url, far)


def test_a_flag_beats_every_other_source_and_each_one_it_overrode_is_named(cli, sim, contexts, clean_env):
    far, farther = dead_url(), "http://localhost:%d" % free_port()
    contexts('default_context = "far"\n[contexts.far]\nurl = "%s"\n' % far)
    clean_env.setenv("JADEVECTORDB_URL", farther)
    run = cli("--url", sim.url, "status", "-o", "compact", target=False)
    assert run.code == 0
    assert run.err == ("warning: the cluster is %s, from --url; not %s, from JADEVECTORDB_URL; nor %s, from "
                       "context 'far'\n" % (sim.url, farther, far))


def test_nothing_is_said_when_every_source_names_the_same_cluster(cli, sim, contexts, clean_env):
    contexts('default_context = "here"\n[contexts.here]\nhost = "127.0.0.1"\nport = %d\n' % sim.port)
    clean_env.setenv("JADEVECTORDB_PORT", str(sim.port))
    run = cli("status", target=True)  # --host 127.0.0.1 --port PORT, as the context and JADEVECTORDB_PORT say
    assert (run.code, run.err) == (0, "")


def test_a_port_flag_takes_its_host_from_the_environment_not_from_a_context(cli, sim, contexts, clean_env):
    contexts('default_context = "far"\n[contexts.far]\nhost = "localhost"\nport = %d\n' % free_port())
    clean_env.setenv("JADEVECTORDB_HOST", "127.0.0.1")
    run = cli("--port", sim.port, "status", "-o", "compact", target=False)
    assert run.code == 0
    assert run.err.startswith("warning: the cluster is %s, from JADEVECTORDB_HOST and --port; not " % sim.url)


def test_an_explicit_contexts_key_beats_the_environments(cli, sim, two_clusters, clean_env):
    sim.require_keys({"prod-key-1": "admin"})
    clean_env.setenv("PROD_KEY", "prod-key-1")
    clean_env.setenv("JADEVECTORDB_API_KEY", "a-shells-old-key")
    assert cli("--context", "prod", "status", target=False).code == 0
    assert sim.requests[-1]["authorization"] == "Bearer prod-key-1"
    assert cli("status", target=False).code == 1  # staging (default_context) has no key: the environment's is sent
    assert sim.requests[-1]["authorization"] == "Bearer a-shells-old-key"


def test_a_contexts_timeout_is_used(cli, sim, contexts):
    contexts('[contexts.slow]\nurl = "%s"\ntimeout = 0.3\n' % sim.url)
    sim.fault(delay=2)
    run = cli("--context", "slow", "--retries", "0", "status", target=False)
    assert run.code == 3 and "0.3s" in run.err


def test_a_relative_ca_cert_is_relative_to_the_file(cli, contexts, tmp_path):
    contexts('[contexts.tls]\nurl = "https://127.0.0.1:1"\nca_cert = "certs/ca.pem"\n')
    run = cli("--context", "tls", "status", target=False)
    assert (run.code, run.err) == (2, "error: context 'tls': ca_cert: no such file: %r\n"
                                   % str(tmp_path / "certs" / "ca.pem"))


# -- the key ---------------------------------------------------------------------------------

def test_the_key_comes_from_the_variable_api_key_env_names(cli, sim, two_clusters, clean_env):
    sim.require_keys({"prod-key-1": "admin"})
    clean_env.setenv("PROD_KEY", "prod-key-1")
    run = cli("--context", "prod", "-o", "compact", "status", target=False)
    assert run.code == 0
    assert sim.requests[-1]["authorization"] == "Bearer prod-key-1"


def test_an_unset_api_key_env_is_an_input_error(cli, sim, two_clusters):
    run = cli("--context", "prod", "status", target=False)
    assert (run.code, run.err) == (2, "error: context 'prod' takes its API key from PROD_KEY, which is not set\n")
    assert sim.requests == []


def test_a_key_in_a_file_others_can_read_is_refused(cli, sim, contexts):
    path = contexts('[contexts.a]\nurl = "%s"\napi_key = "file-key-123"\n' % sim.url, mode=0o644)
    run = cli("--context", "a", "status", target=False)
    assert run.code == 2 and sim.requests == []
    assert run.err == ("error: %s: holds an API key (context 'a') but others may read it (mode 644): run "
                       "'chmod 600 %s', or keep the key in an environment variable named by api_key_env\n"
                       % (path, path))


def test_a_key_in_an_owner_only_file_is_sent_and_never_shown(cli, sim, contexts):
    contexts('[contexts.a]\nurl = "%s"\napi_key = "file-key-123"\n' % sim.url, mode=0o600)
    sim.require_keys({"file-key-123": "read"})
    run = cli("--context", "a", "remove-node", "--node-id", "node-worker-002", "--yes", target=False)
    assert sim.requests[-1]["authorization"] == "Bearer file-key-123"
    assert run.code == 1 and "file-key-123" not in run.err  # a read key may not remove: 403


# -- what is refused ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["prdo", ""])  # an empty flag is not taken for no flag (then the default)
def test_an_unknown_context_lists_the_known_ones(cli, sim, two_clusters, name):
    run = cli("--context", name, "status", target=False)
    assert (run.code, run.err) == (2, "error: --context: no context %r; the contexts are staging, prod\n" % name)
    assert sim.requests == []


def test_a_context_without_a_file_says_where_it_looked(cli, clean_env):
    run = cli("--context", "prod", "status", target=False)
    path = os.path.join(os.environ["XDG_CONFIG_HOME"], "jadevectordb", "cluster.toml")
    assert (run.code, run.err) == (2, "error: --context: no context 'prod'; there is no contexts file at %s\n"
                                   % path)


@pytest.mark.parametrize("text, error", [
    ('[contexts.a]\nurl = http://x\n', "line 2: Invalid value"),
    ('[contexts.a]\nurl = "http://x"\n\n[contexts.a]\n', "line 4: Cannot declare ('contexts', 'a') twice"),
    ('[contexts.a]\nurl = "http://x"\nprotect = true\n',
     "line 3: context 'a': unknown setting 'protect' (the settings are host, port, url, api_prefix, format, "
     "api_key, api_key_env, timeout, retries, ca_cert, protected)"),
    ('[contexts.a]\nurl = "http://x"\nprotected = "yes"\n', "line 3: context 'a': protected must be true or false"),
    ('[contexts.a]\nhost = "h"\nport = 70000\n', "line 3: context 'a': port 70000 is out of range (1-65535)"),
    ('[contexts.a]\nurl = "ftp://x"\n',
     "line 2: context 'a': url: 'ftp://x' must look like http://host:port or https://host:port"),
    ('[contexts.a]\nformat = "xml"\nurl = "http://x"\n',
     "line 2: context 'a': format must be one of json, table, compact, ndjson, csv, tsv, prometheus, got 'xml'"),
    ('[contexts.a]\nport = 8080\n', "line 1: context 'a' names no cluster: set url, or host (and port)"),
    ('default_context = "b"\n[contexts.a]\nurl = "http://x"\n',
     "line 1: default_context 'b' is not one of the contexts (a)"),
    ('[contexts.a]\nurl = "http://x"\napi_key_env = "MY-KEY"\n',
     "line 3: context 'a': api_key_env must be the name of an environment variable, got 'MY-KEY'"),
])
def test_a_malformed_file_is_an_input_error_naming_file_and_line(cli, sim, contexts, text, error):
    path = contexts(text)
    run = cli("status", target=False)
    assert (run.code, run.err) == (2, "error: %s %s\n" % (path, error))
    assert sim.requests == []


def test_a_named_file_that_is_missing_is_an_error_but_the_default_place_need_not_exist(cli, clean_env, tmp_path):
    run = cli("--config", str(tmp_path / "nope.toml"), "status", target=False)
    assert (run.code, run.err) == (2, "error: --config: no such file: %s\n" % (tmp_path / "nope.toml"))
    run = cli("contexts", target=False)
    assert run.code == 0 and run.err.startswith("warning: no contexts: there is no contexts file at ")


# -- protected contexts ------------------------------------------------------------------------

# Every command that changes the cluster, from the registry (rebalance has a test of its own, needing a
# node to move to).
@pytest.mark.parametrize("name", commands_that(lambda declared: declared.changes and declared.name != "rebalance"))
def test_a_protected_context_needs_yes_off_a_terminal(cli, sim, two_clusters, clean_env, name):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    argv = sample(name)
    run = cli("--context", "prod", *argv, target=False)
    assert (run.code, run.out) == (1, "")
    assert re.match(r"^error: context 'prod' is protected: pass --yes to \S.* when not on a terminal; "
                    r"(nothing was \w+|.* was not \w+|no \w+ was \w+)\n$", run.err), run.err
    assert sim.changes() == []
    faster = ("--max-concurrent", "4", "--poll-interval", "0.05") if name == "drain-node" else ()
    run = cli("--context", "prod", *argv, "--yes", *faster, target=False)
    assert run.code == 0 and sim.changes() != []


def test_rebalance_in_a_protected_context_needs_yes_off_a_terminal(cli, sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    cli("add-node", "--node-id", "node-worker-003", "--address", "192.168.1.13:8080")  # through staging
    sim.advance(1)
    run = cli("--context", "prod", "rebalance", target=False)
    assert run.code == 1 and "context 'prod' is protected: pass --yes to apply these 3 moves" in run.err
    assert [c for c in sim.changes() if c[0] == "POST" and "migrate" in c[1]] == []


def test_a_dry_run_in_a_protected_context_asks_nothing(cli, sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    run = cli("--context", "prod", "remove-node", "--node-id", "node-worker-002", "--dry-run", "-o", "json",
              target=False)
    assert run.code == 0 and run.json()["would_succeed"] is True


def test_on_a_terminal_the_protected_contexts_name_must_be_typed(sim, two_clusters):
    env = {"JADEVECTORDB_CONFIG": two_clusters, "PROD_KEY": "prod-key-1"}
    code, shown, _ = on_terminal(sim, ["--context", "prod", *ADD, "--yes"], "stdin", answer="yes\n", env=env,
                                 target=False)
    assert "Context 'prod' is protected. Type its name to add node node-worker-003: " in shown
    assert code == 1 and "error: context 'prod' is protected and its name was not typed; nothing was sent" in shown
    assert sim.changes() == []
    code, shown, out = on_terminal(sim, ["--context", "prod", *ADD], "stdin", answer="prod\n", env=env,
                                   target=False)
    assert code == 0 and "Node node-worker-003 (192.168.1.13:8080) added to context prod (%s): JOINING" % sim.url in out
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_an_unprotected_context_asks_nothing_more(cli, sim, two_clusters):
    run = cli(*ADD, target=False)  # staging, off a terminal, no --yes
    assert run.code == 0 and sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_a_host_flag_does_not_lift_a_contexts_protection(cli, sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    run = cli("--context", "prod", *ADD)  # --host and --port of the simulator come first
    assert run.code == 1 and "context 'prod' is protected" in run.err and sim.changes() == []


def test_an_endless_file_is_refused_and_a_pipe_is_read(script, sim):
    run = script("--config", "/dev/zero", "status", target=False)
    assert (run.code, run.out, run.err) == (2, "", "error: /dev/zero is larger than 1M; it is not a contexts file\n")
    run = script("--config", "/dev/stdin", "--context", "a", "status", "-o", "compact", target=False,
                 input='[contexts.a]\nurl = "%s"\n' % sim.url)
    assert (run.code, run.out) == (0, "HEALTHY | 3 nodes | 12 shards | master: node-master-001\n")


def test_a_contexts_ca_cert_verifies_the_cluster_and_the_flag_still_wins(cli, contexts, tls_sim, tls_files, tmp_path):
    shutil.copy(tls_files[0], str(tmp_path / "ca.pem"))
    contexts('[contexts.tls]\nurl = "https://127.0.0.1:%d"\nca_cert = "ca.pem"\n' % tls_sim.port)
    run = cli("--context", "tls", "status", "-o", "compact", target=False)
    assert (run.code, run.err) == (0, "") and run.out.startswith("HEALTHY |")
    run = cli("--context", "tls", "--ca-cert", str(tmp_path / "nope.pem"), "status", target=False)
    assert (run.code, run.err) == (2, "error: --ca-cert: no such file: %r\n" % str(tmp_path / "nope.pem"))


def test_the_timeout_flag_beats_the_contexts(cli, sim, contexts):
    contexts('[contexts.slow]\nurl = "%s"\ntimeout = 0.3\n' % sim.url)
    sim.fault(delay=0.6)
    run = cli("--context", "slow", "--timeout", "5", "--retries", "0", "status", "-o", "compact", target=False)
    assert run.code == 0 and run.out.startswith("HEALTHY |")


def test_a_contexts_key_is_kept_out_of_the_servers_message(cli, sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    sim.fault(respond=[{"status": 400, "body": '{"error": "no cluster answers to key prod-key-1"}'}])
    run = cli("--context", "prod", "status", target=False)
    assert run.code == 1 and "prod-key-1" not in run.err and "no cluster answers to key **********" in run.err


# -- the library: ClusterCLI.from_context ----------------------------------------------------------------

def test_the_library_takes_the_default_context_and_its_settings(sim, two_clusters):
    with cluster_cli.ClusterCLI.from_context() as client:
        assert (client.context, client.base_urls, client.timeout) == ("staging", [sim.url], 30.0)
        assert client.cluster_status()["total_nodes"] == 3
    assert sim.requests[-1]["authorization"] is None


def test_the_library_takes_a_named_context_its_key_and_overrides(sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    for name, value in (("URL", dead_url()), ("HOST", "10.9.9.9"), ("PORT", "1"), ("API_KEY", "shell-key")):
        clean_env.setenv("JADEVECTORDB_" + name, value)  # the command line's settings, not the library's
    with cluster_cli.ClusterCLI.from_context("prod", timeout=5, retries=0) as client:
        assert (client.context, client.timeout, client.retries) == ("prod", 5.0, 0)
        client.list_nodes()
    assert sim.requests[-1]["authorization"] == "Bearer prod-key-1"
    other = "http://127.0.0.1:%d" % free_port()
    with cluster_cli.ClusterCLI.from_context("prod", url=other) as client:  # the address is one setting
        assert client.base_urls == [other]


def test_the_library_names_the_context_file_and_choice_it_was_given(sim, two_clusters, tmp_path, clean_env):
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        cluster_cli.ClusterCLI.from_context("qa")
    assert str(raised.value) == "name: no context 'qa'; the contexts are staging, prod"
    clean_env.setenv("JADEVECTORDB_CONTEXT", "qa")
    with pytest.raises(cluster_cli.InvalidInput, match="^JADEVECTORDB_CONTEXT: no context 'qa'"):
        cluster_cli.ClusterCLI.from_context()
    clean_env.delenv("JADEVECTORDB_CONTEXT")
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        cluster_cli.ClusterCLI.from_context("prod", config=str(tmp_path / "none.toml"))
    assert str(raised.value) == "config: no such file: %s" % (tmp_path / "none.toml")
    bare = tmp_path / "bare.toml"
    bare.write_text('[contexts.a]\nurl = "%s"\n' % sim.url)
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        cluster_cli.ClusterCLI.from_context(config=str(bare))
    assert str(raised.value) == "no context named, and %s has no default_context" % bare
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    clean_env.delenv("JADEVECTORDB_CONFIG")
    with pytest.raises(cluster_cli.InvalidInput) as raised:
        cluster_cli.ClusterCLI.from_context()
    assert str(raised.value) == "no context named, and there is no contexts file at %s" % (
        tmp_path / "empty" / "jadevectordb" / "cluster.toml")
    assert sim.requests == []


def test_a_protected_contexts_client_reads_and_refuses_changes_unless_confirmed(sim, two_clusters, clean_env):
    clean_env.setenv("PROD_KEY", "prod-key-1")
    with cluster_cli.ClusterCLI.from_context("prod") as client:
        assert client.cluster_status()["status"] == "HEALTHY"
        plan = client.plan_drain("node-worker-002")
        for change in (lambda: client.add_node("node-worker-003", "192.168.1.13:8080"),
                       lambda: client.remove_node("node-worker-002"),
                       lambda: client.migrate_shard("shard-00", "node-master-001"),
                       lambda: client.apply_plan(plan)):
            with pytest.raises(cluster_cli.ProtectedContext) as raised:
                change()
            assert raised.value.exit_code == 1
            assert str(raised.value) == ("context 'prod' is protected: pass confirm='prod' to "
                                         "ClusterCLI.from_context() to change its cluster; nothing was sent")
    assert sim.changes() == []
    with cluster_cli.ClusterCLI.from_context("prod", confirm="staging") as client, \
            pytest.raises(cluster_cli.ProtectedContext):  # another name is no answer
        client.remove_node("node-worker-002")
    with cluster_cli.ClusterCLI.from_context("prod", confirm="prod") as client:
        assert client.add_node("node-worker-003", "192.168.1.13:8080")["node_id"] == "node-worker-003"
    assert sim.changes() == [("POST", "/api/v1/cluster/nodes")]


def test_the_library_verifies_tls_with_a_contexts_relative_ca_cert(contexts, tls_sim, tls_files, tmp_path, clean_env):
    shutil.copy(tls_files[0], str(tmp_path / "ca.pem"))
    path = contexts('default_context = "tls"\n[contexts.tls]\nurl = "https://127.0.0.1:%d"\nca_cert = "ca.pem"\n'
                    % tls_sim.port)
    clean_env.chdir(str(tmp_path.parent))  # relative to the file, not to where the program runs
    with cluster_cli.ClusterCLI.from_context(config=path) as client:
        assert client.cluster_status()["status"] == "HEALTHY"


# -- contexts set, delete and rename: the file kept as it was written ------------------------------------

WRITTEN = ('# our clusters\r\ndefault_context = "lab"   # the safe one\r\n\r\n[contexts.lab]  # mine\r\n'
           'host = "127.0.0.1"  # here\r\nport = %d\r\n\r\n# production below\r\n[contexts.prod]\r\n'
           'url = "https://jade-prod.internal:8443"\r\napi_key = "in-the-file"\r\nprotected = true\r\n')


@pytest.fixture
def written(sim, contexts):
    """The contexts file WRITTEN (CRLF, comments, a default, a protected context with a plaintext key)."""
    path = contexts(WRITTEN % sim.port)
    return pathlib.Path(path)


def test_contexts_set_creates_the_file_and_its_folder_owner_only(cli, sim, tmp_path, clean_env):
    path = tmp_path / "new" / "cluster.toml"
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    run = cli("contexts", "set", "prod", "--url", "https://a.internal:8443,https://b.internal:8443",
              "--api-key-env", "JADE_PROD_KEY", "--protected", "--timeout", "10", target=False)
    assert (run.code, run.out, run.err) == (0, "Context prod created (%s)\n" % path, "")
    assert path.read_text() == ('[contexts.prod]\nurl = ["https://a.internal:8443", "https://b.internal:8443"]\n'
                                'timeout = 10\napi_key_env = "JADE_PROD_KEY"\nprotected = true\n')
    assert (oct(path.stat().st_mode & 0o777), oct(path.parent.stat().st_mode & 0o777)) == ("0o600", "0o700")
    # --format is the context's (and this command's output's)
    assert cli("contexts", "set", "lab", "--url", sim.url, "-o", "json", target=False).json() == {
        "name": "lab", "done": "created", "path": str(path)}
    assert path.read_text().endswith('protected = true\n\n[contexts.lab]\nurl = "%s"\nformat = "json"\n' % sim.url)
    assert cli("--context", "lab", "status", "-o", "compact", target=False).out.startswith("HEALTHY | 3 nodes")
    assert sim.requests and sim.changes() == []


def test_contexts_set_changes_only_its_settings_keeping_comments_order_and_crlf(cli, sim, written, tmp_path):
    run = cli("contexts", "set", "lab", "--url", sim.url, "--ca-cert", "ca.pem", "--format", "compact", target=False)
    assert (run.code, run.err) == (0, "")
    assert written.read_bytes() == (WRITTEN % sim.port).replace(
        'host = "127.0.0.1"  # here\r\nport = %d\r\n' % sim.port,  # an address is one setting: url replaces both
        'url = "%s"\r\nformat = "compact"\r\nca_cert = "%s"\r\n' % (sim.url, os.path.abspath("ca.pem"))).encode()
    cli("contexts", "set", "lab", "--host", "127.0.0.1", "--port", sim.port, "--format", "table", target=False)
    assert written.read_bytes() == (WRITTEN % sim.port).replace(
        'host = "127.0.0.1"  # here\r\nport = %d\r\n' % sim.port,
        'format = "table"\r\nca_cert = "%s"\r\nhost = "127.0.0.1"\r\nport = %d\r\n' % (
            os.path.abspath("ca.pem"), sim.port)).encode()
    # a key variable replaces the key written in the file, which these commands never write
    cli("contexts", "set", "prod", "--api-key-env", "JADE_PROD_KEY", target=False)
    assert 'protected = true\r\napi_key_env = "JADE_PROD_KEY"\r\n' in written.read_bytes().decode()
    assert "in-the-file" not in written.read_text()


def test_contexts_set_never_writes_a_key_or_a_flag_no_context_keeps_and_needs_something_to_set(cli, written):
    before = written.read_bytes()
    for argv, error in (
            (["prod", "--api-key", "s3cret"], "contexts set writes no API key: keep it in an environment variable "
                                              "and pass --api-key-env VAR"),
            (["prod"], "contexts set prod: nothing to set; give --url (or --host and --port), --api-key-env, "
                       "--ca-cert, --protected, --timeout, ..."),
            (["edge", "--timeout", "5"], "contexts set: edge is a new context: give its --url (or --host)"),
            (["a b", "--url", "http://h:1"], "context name 'a b' must be letters, digits, '.', '_' or '-'"),
            (["lab", "--url", "http://h:1", "--host", "h"], "contexts set: --url or --host (and --port), not both"),
            # not ignored: an operator who typed --insecure must not believe the context has it
            (["lab", "--insecure", "--max-response-size", "1G"],
             "contexts set: a context does not keep --max-response-size or --insecure (it keeps --host, --port, "
             "--url, --api-prefix, --format, --timeout, --retries, --ca-cert, --api-key-env, --protected); nothing "
             "was written"),
            (["lab", "--timeout", "-1"], None)):
        run = cli("contexts", "set", *argv, target=False)
        assert run.code == 2 and (error is None or run.err == "error: %s\n" % error), run
    assert written.read_bytes() == before


def test_unprotecting_or_deleting_a_protected_context_needs_yes_off_a_terminal(cli, written):
    before = written.read_bytes()
    for argv, action in ((["set", "prod", "--no-protected"], "unprotect it"), (["delete", "prod"], "delete it")):
        run = cli("contexts", *argv, target=False)
        assert (run.code, run.err) == (1, "error: context 'prod' is protected: pass --yes to %s when not on a "
                                          "terminal; it %s\n" % (action, "is still protected" if "set" in argv else
                                                                 "was not deleted"))
    assert written.read_bytes() == before
    assert cli("contexts", "set", "prod", "--no-protected", "--yes", target=False).code == 0
    assert "protected = false\r\n" in written.read_bytes().decode()


def test_on_a_terminal_deleting_a_protected_context_asks_for_its_name(sim, written):
    env = {"JADEVECTORDB_CONFIG": str(written)}
    code, shown, _ = on_terminal(sim, ["contexts", "delete", "prod"], "stdin", answer="yes\n", env=env, target=False)
    assert code == 1 and "Context 'prod' is protected. Type its name to delete it: " in shown
    assert "[contexts.prod]" in written.read_text()
    code, shown, out = on_terminal(sim, ["contexts", "delete", "prod"], "stdin", answer="prod\n", env=env,
                                   target=False)
    assert (code, out) == (0, "Context prod deleted (%s)\n" % written)
    # its comment goes with it, and the blank line before: the file ends where lab's table does
    assert written.read_bytes() == (WRITTEN % sim.port).split("\r\n# production below")[0].encode()


def test_contexts_delete_takes_its_table_and_the_default_that_named_it(cli, sim, written):
    run = cli("contexts", "delete", "lab", target=False)
    assert (run.code, run.out) == (0, "Context lab deleted (%s)\n" % written)
    assert written.read_bytes() == (b'# our clusters\r\n\r\n\r\n# production below\r\n[contexts.prod]\r\n'
                                    b'url = "https://jade-prod.internal:8443"\r\napi_key = "in-the-file"\r\n'
                                    b'protected = true\r\n')
    assert cli("contexts", "delete", "lab", target=False).err == "error: contexts delete: no context 'lab'; the " \
                                                                  "file has prod\n"


def test_contexts_rename_renames_the_table_and_the_default(cli, sim, written):
    run = cli("contexts", "rename", "lab", "lab.eu", target=False)
    assert (run.code, run.out) == (0, "Context lab.eu renamed from lab (%s)\n" % written)
    assert written.read_bytes() == (WRITTEN % sim.port).replace('"lab"   #', '"lab.eu"   #').replace(
        "[contexts.lab]  # mine", '[contexts."lab.eu"]  # mine').encode()
    assert cli("contexts", "current", target=False).out == "lab.eu\n"
    assert cli("status", "-o", "compact", target=False).code == 0
    for argv, error in ((["lab.eu", "prod"], "contexts rename: there is already a context 'prod'; the file has "
                                             "lab.eu, prod"),
                        (["lab.eu"], "contexts rename: give NAME NEW"), (["lab.eu", "-x"], None)):
        run = cli("contexts", "rename", *argv, target=False)
        assert run.code == 2 and (error is None or run.err == "error: %s\n" % error), run


def test_a_context_written_another_way_is_not_edited(cli, sim, contexts):
    text = 'default_context = "lab"\ncontexts = { lab = { url = "%s" } }\n' % sim.url
    path = contexts(text)
    for argv in (["set", "lab", "--timeout", "5"], ["rename", "lab", "lab2"], ["delete", "lab"]):
        run = cli("contexts", *argv, target=False)
        assert run.code == 2 and "cannot be edited here" in run.err, run
    assert pathlib.Path(path).read_text() == text


def test_the_readmes_contexts_commands_run_as_printed(cli, tmp_path, clean_env):
    from test_examples import README, fenced_blocks
    block = next(body for lang, body in fenced_blocks(README) if "contexts set prod" in body)
    path = tmp_path / "cluster.toml"
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    for line in block.strip().splitlines():
        run = cli(*line.split()[2:], target=False)
        assert (run.code, run.err) == (0, ""), (line, run)
    assert path.read_text() == ('[contexts.prod]\nurl = "https://jade-prod-1.internal:8443"\n'
                                'api_key_env = "JADE_PROD_KEY"\nprotected = true\n')  # no blank line left


def test_a_file_is_written_as_it_is_not_starred_like_output(cli, sim, written, clean_env):
    # The key the file holds is this run's key too: output would star it, the file must keep it.
    clean_env.setenv("JADEVECTORDB_API_KEY", "in-the-file")
    for argv in (["use", "prod"], ["set", "lab", "--timeout", "3"], ["rename", "lab", "lab2"]):
        assert cli("contexts", *argv, target=False).code == 0, argv
        assert 'api_key = "in-the-file"' in written.read_text(), argv
