"""Shell completion: the scripts `completion` prints, run by the shells themselves."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import SCRIPT

CONTEXTS = '[contexts.prod]\nurl = "http://127.0.0.1:1"\n\n[contexts.staging]\nurl = "http://127.0.0.1:2"\n'


@pytest.fixture
def installed(tmp_path, script):
    """A folder on PATH with the command under both names it completes, a contexts file,
    and the scripts for each shell; returns (folder, environment)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("jadevectordb-cluster", "cluster_cli.py"):
        launcher = folder / name
        launcher.write_text('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, SCRIPT))
        launcher.chmod(0o755)
    for shell in ("bash", "zsh", "fish"):
        run = script("completion", shell, target=False)
        assert (run.code, run.err) == (0, "")
        (tmp_path / ("completion." + shell)).write_text(run.out)
    config = tmp_path / "cluster.toml"
    config.write_text(CONTEXTS)
    (tmp_path / "other.toml").write_text('[contexts.dr]\nurl = "http://127.0.0.1:3"\n')  # for --config on the line
    env = {k: v for k, v in os.environ.items() if not k.startswith("JADEVECTORDB_")}
    env.update(PATH="%s%s%s" % (folder, os.pathsep, os.environ.get("PATH", "")), JADEVECTORDB_CONFIG=str(config))
    return tmp_path, env


def bash_completes(installed, *words) -> list:
    """What bash's completion offers for the words typed, the last being the one completed."""
    folder, env = installed
    program = ('source "%s"\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_jadevectordb_cluster\n'
               'printf "%%s\\n" "${COMPREPLY[@]}"\n') % (
        folder / "completion.bash", " ".join("'%s'" % w for w in words), len(words) - 1)
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


# zsh's completion builtins replaced by ones that print what they are given; t runs the function on a line.
ZSH_STUBS = """
compdef() { : }
compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
_describe() { print -l -- ${(P)2} }
_files() { print FILES }
_message() { : }
t() { words=("$@"); CURRENT=$#words; _jadevectordb_cluster | tr "\\n" " "; print }
"""


def zsh_completes(installed, *lines) -> list:
    """What zsh's completion function offers for each command line, one output line each."""
    folder, env = installed
    program = ZSH_STUBS + 'source "%s"\n' % (folder / "completion.zsh") + "".join("t %s\n" % line for line in lines)
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == len(lines), done.stderr
    return done.stdout.splitlines()


def fish_completes(installed, line) -> list:
    """What fish's completion offers for the command line typed."""
    folder, env = installed
    done = subprocess.run(["fish", "--no-config", "-c", 'source "%s"; complete -C"%s"' % (
        folder / "completion.fish", line)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return [entry.split("\t")[0] for entry in done.stdout.splitlines()]


def test_bash_completes_a_command(installed):
    assert bash_completes(installed, "jadevectordb-cluster", "mig") == ["migrate-shard"]
    assert bash_completes(installed, "cluster_cli.py", "--host", "h", "mig") == ["migrate-shard"]


def test_bash_completes_choices_of_the_command_being_typed(installed):
    assert bash_completes(installed, "jadevectordb-cluster", "migrate-shard", "--strategy", "") == [
        "LIVE_COPY", "SNAPSHOT", "INCREMENTAL"]
    assert bash_completes(installed, "jadevectordb-cluster", "nodes", "--status", "D") == ["DEGRADED"]
    assert bash_completes(installed, "jadevectordb-cluster", "shards", "--status", "U") == ["UNDER_REPLICATED"]
    assert bash_completes(installed, "jadevectordb-cluster", "-o", "c") == ["compact", "csv"]


def test_bash_completes_options_and_context_names(installed):
    assert bash_completes(installed, "jadevectordb-cluster", "status", "--con") == [
        "--context", "--config", "--contexts"]
    assert bash_completes(installed, "jadevectordb-cluster", "--context", "") == ["prod", "staging"]
    assert bash_completes(installed, "jadevectordb-cluster", "--contexts", "prod,") == ["prod,staging"]
    assert bash_completes(installed, "jadevectordb-cluster", "--context", "prod", "no") == ["nodes", "node-health"]


def test_bash_offers_the_contexts_of_a_config_file_typed_on_the_line(installed):
    folder, env = installed
    other = str(folder / "other.toml")
    assert bash_completes(installed, "jadevectordb-cluster", "--config", other, "--context", "") == ["dr"]
    assert bash_completes(installed, "jadevectordb-cluster", "status", "--config", other, "--context", "") == ["dr"]
    env["HOME"] = str(folder)
    assert bash_completes(installed, "jadevectordb-cluster", "--config", "~/other.toml", "--context", "") == ["dr"]


def test_every_command_and_option_is_in_the_script(installed):
    """Made from the parser: nothing added to it can be missing here."""
    import cluster_cli
    parser = cluster_cli.build_parser()
    words = set(bash_completes(installed, "jadevectordb-cluster", ""))
    assert words == set(cluster_cli.COMMANDS)
    for name, sub in parser.subparsers.items():
        offered = set(bash_completes(installed, "jadevectordb-cluster", name, "-"))
        assert offered == {o for action in sub._actions for o in action.option_strings}, name


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed")
def test_zsh_completes_commands_choices_and_contexts(installed):
    """The function run by zsh, with its completion builtins replaced by ones that print what they are given."""
    folder, _ = installed
    lines = zsh_completes(installed, 'jadevectordb-cluster mig', 'jadevectordb-cluster migrate-shard --strategy ""',
                          'jadevectordb-cluster --context ""', 'jadevectordb-cluster rebalance --plan ""',
                          'jadevectordb-cluster --config "%s" --context ""' % (folder / "other.toml"))
    assert "migrate-shard:Move a shard's primary copy to another node" in lines[0]
    assert lines[1:] == ["LIVE_COPY SNAPSHOT INCREMENTAL ", "prod staging ", "FILES ", "dr "]


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed")
def test_fish_completes_commands_choices_and_contexts(installed):
    folder, _ = installed

    def complete(line):
        return fish_completes(installed, line)

    assert complete("jadevectordb-cluster mig") == ["migrate-shard"]
    assert complete("cluster_cli.py migrate-shard --strategy ") == ["INCREMENTAL", "LIVE_COPY", "SNAPSHOT"]
    assert complete("jadevectordb-cluster --context ") == ["prod", "staging"]
    assert complete("jadevectordb-cluster --config %s --context " % (folder / "other.toml")) == ["dr"]


def test_completion_needs_no_cluster_and_no_valid_contexts_file(script, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[contexts.a\n")
    run = script("completion", "bash", target=False, env={"JADEVECTORDB_CONFIG": str(broken)})
    assert run.code == 0 and run.out.startswith("# bash completion for jadevectordb-cluster and cluster_cli.py")


def test_an_unknown_shell_is_an_input_error(cli):
    run = cli("completion", "ksh", target=False)
    assert (run.code, run.out) == (2, "")
    assert run.err == ("error: argument shell: invalid choice: 'ksh' (choose from 'bash', 'zsh', 'fish') "
                       "(see 'cluster_cli.py completion --help')\n")


def test_the_readmes_bash_line_registers_both_names(installed):
    from test_examples import README
    line = next(line for line in README.splitlines() if line.startswith("source <(") and "bash" in line)
    folder, env = installed
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", line.split("#")[0] + "\ncomplete -p"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["complete -F _jadevectordb_cluster cluster_cli.py",
                                                "complete -F _jadevectordb_cluster jadevectordb-cluster",
                                                "complete -F _jadevectordb_cluster python",
                                                "complete -F _jadevectordb_cluster python3"]


def test_completion_goes_to_output_file_like_any_result(cli, tmp_path):
    run = cli("completion", "fish", "--output", str(tmp_path / "jadevectordb-cluster.fish"), target=False)
    assert (run.code, run.out, run.err) == (0, "", "")
    assert (tmp_path / "jadevectordb-cluster.fish").read_text().startswith("# fish completion for")


# -- what operators type: the cluster's IDs, field names, python cluster_cli.py, ./cluster_cli.py -------------

def test_bash_offers_the_ids_of_the_cluster_named_on_the_line(installed, sim):
    on = ["jadevectordb-cluster", "--host", "127.0.0.1", "--port", str(sim.port)]
    assert bash_completes(installed, *on, "node-health", "--node-id", "") == [
        "node-master-001", "node-worker-001", "node-worker-002"]
    assert bash_completes(installed, *on, "migrate-shard", "--shard-id", "shard-00", "--to-node", "node-w") == [
        "node-worker-001", "node-worker-002"]
    assert bash_completes(installed, *on, "shard-status", "--shard-id", "shard-1") == ["shard-10", "shard-11"]
    assert bash_completes(installed, "jadevectordb-cluster", "--url", sim.url, "drain-node", "--node-id", "node-m") == [
        "node-master-001"]
    assert bash_completes(installed, *on, "add-node", "--node-id", "") == []  # a new node: nothing to offer


def test_bash_asks_nothing_it_cannot_reach_and_says_nothing(installed):
    folder, env = installed
    assert bash_completes(installed, "jadevectordb-cluster", "--port", "1", "node-health", "--node-id", "") == []


def test_bash_offers_field_names_for_columns_and_sort_by(installed):
    import cluster_cli
    fields = list(cluster_cli.VIEWS["nodes"].fields)
    assert bash_completes(installed, "jadevectordb-cluster", "nodes", "--columns", "") == fields
    assert bash_completes(installed, "jadevectordb-cluster", "status", "--sort-by", "total_") == [
        "total_nodes", "total_shards"]
    assert "target_node" in bash_completes(installed, "jadevectordb-cluster", "rebalance", "--columns", "")


def test_bash_completes_contexts_use_with_the_names_in_the_file(installed):
    assert bash_completes(installed, "jadevectordb-cluster", "contexts", "u") == ["use"]
    assert bash_completes(installed, "jadevectordb-cluster", "contexts", "use", "") == ["prod", "staging"]
    assert bash_completes(installed, "jadevectordb-cluster", "contexts", "delete", "p") == ["prod"]


def test_bash_completes_python_cluster_cli_py_and_a_relative_path(installed, sim):
    from conftest import ROOT
    assert bash_completes(installed, "python", SCRIPT, "mig") == ["migrate-shard"]
    assert bash_completes(installed, "python3", SCRIPT, "--port", str(sim.port), "node-health", "--node-id",
                          "node-ma") == ["node-master-001"]
    assert bash_completes(installed, "python", "other.py", "x") == []  # not ours: python's own
    assert os.access(SCRIPT, os.X_OK)  # committed executable, as ./cluster_cli.py needs
    folder, env = installed
    program = ('cd "%s"\nsource "%s"\nCOMP_WORDS=(./cluster_cli.py --port %d shard-status --shard-id shard-0)\n'
               'COMP_CWORD=5\n_jadevectordb_cluster\nprintf "%%s\\n" "${COMPREPLY[@]}"\n') % (
        ROOT, folder / "completion.bash", sim.port)
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.stdout.split() == ["shard-0%d" % i for i in range(10)]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed")
def test_zsh_offers_ids_fields_and_python_cluster_cli_py(installed, sim):
    lines = zsh_completes(installed, 'jadevectordb-cluster --port %d node-health --node-id ""' % sim.port,
                          'jadevectordb-cluster status --columns ""',
                          'python "%s" --port %d shard-status --shard-id ""' % (SCRIPT, sim.port),
                          'python other.py ""', 'jadevectordb-cluster contexts use ""')
    assert lines[0] == "node-master-001 node-worker-001 node-worker-002 "
    assert lines[1].split() == ["cluster_name", "master_node", "total_nodes", "active_nodes", "total_shards",
                                "status", "replication_factor"]
    assert lines[2].split() == ["shard-%02d" % i for i in range(12)]
    assert lines[3:] == ["FILES ", "prod staging "]


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed")
def test_fish_completes_after_host_and_port_and_offers_ids_and_fields(installed, sim):
    folder, _ = installed

    def complete(line):
        return fish_completes(installed, line)

    assert complete("jadevectordb-cluster --host 127.0.0.1 --port %d mig" % sim.port) == ["migrate-shard"]
    assert complete("jadevectordb-cluster --host 127.0.0.1 --port %d node-health --node-id " % sim.port) == [
        "node-master-001", "node-worker-001", "node-worker-002"]
    assert complete("jadevectordb-cluster nodes --sort-by cpu") == ["cpu_usage"]
    assert complete("jadevectordb-cluster contexts use ") == ["prod", "staging"]


def test_each_tab_asks_the_command_which_answers_words_with_their_summaries(cli):
    """The protocol the three scripts share: the words after the command's name, the last being completed."""
    def asked(*words):
        run = cli("__complete", *words, target=False)
        assert (run.code, run.err) == (0, "")
        return run.out.splitlines()

    assert asked("migrate-sh") == ["migrate-shard\tMove a shard's primary copy to another node"]
    assert asked("status", "--ch") == ["--check\texit 4 unless the cluster is HEALTHY"]
    assert asked("--port", "1", "rebalance", "--plan", "") == [":files"]   # the shell's own file names
    assert asked("operations", "") == ["list", "show", "throttle", "stop"]
    assert asked("add-node", "--address", "") == []                        # free text: nothing to offer
