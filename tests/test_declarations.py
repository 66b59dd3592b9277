"""What is declared once is what the README says and what the CLI does: the settings table against the
Setting records, the commands table against the command records, and each setting from each of its
sources, a flag not given never posing as given."""
import os
import re

import pytest

import cluster_cli
from conftest import ROOT, free_port

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
    README = readme.read()


def table_after(heading: str, first_cell: str) -> list:
    """Return the rows of the README's first table under `heading` whose header starts with `first_cell`."""
    section = README.split("\n%s\n" % heading, 1)[1]
    lines = section[section.index("| %s |" % first_cell):].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def plain(cell: str) -> str:
    return cell.replace("`", "")


# -- the settings table ---------------------------------------------------------------------------

SETTINGS_ROWS = table_after("## Usage", "option")


def flags_of(cell: str) -> list:
    """'`-o`, `--format FORMAT`' -> ['-o', '--format']."""
    return [word.split()[0] for word in re.findall(r"`([^`]+)`", cell)]


def test_every_global_option_has_one_row_in_the_order_of_help():
    options = [given.flags for given in cluster_cli.GLOBAL_OPTIONS]
    assert [tuple(flags_of(row[0])) for row in SETTINGS_ROWS if row[0]] == options


def test_each_setting_row_says_what_its_record_does():
    rows = {}
    for row in SETTINGS_ROWS:
        name = plain(row[1]) or (flags_of(row[0]) or [""])[-1].lstrip("-").replace("-", "_")
        rows[name] = row
    for setting in cluster_cli.SETTINGS:
        row = rows.pop(setting.name)
        flag, key, env, default = row[:4]
        assert flags_of(flag) == list(setting.option.flags if setting.option else []), setting.name
        assert plain(key) == (setting.name if setting.kind else ""), setting.name
        assert plain(env) == (setting.env or ""), setting.name
        assert plain(default) == (setting.shown or ""), setting.name
    # The rest are options that are not settings: no context key, and a variable only where the CLI reads one.
    assert {name: plain(row[2]) for name, row in rows.items() if row[1] or row[2]} == {"no_color": "NO_COLOR"}


def test_the_context_keys_are_the_records_that_have_a_kind():
    assert tuple(plain(row[1]) for row in SETTINGS_ROWS if row[1]) == cluster_cli.CONTEXT_SETTINGS


# -- the commands table ---------------------------------------------------------------------------

COMMAND_ROWS = {plain(row[0]): row[1:] for row in table_after("## Commands", "command")}


def test_every_command_has_its_row_with_the_request_it_sends():
    assert list(COMMAND_ROWS) == list(cluster_cli.COMMANDS)  # none missing, none left over, in --help's order
    for name, command in cluster_cli.COMMANDS.items():
        options, endpoint, method = COMMAND_ROWS[name]
        if command.sends:
            assert (method, endpoint) == (command.sends[0], "`%s`" % command.sends[1].replace("{}", "{id}")), name
        elif not command.local:
            assert "/api/v1/" in endpoint or endpoint == "`/health`", name


@pytest.mark.parametrize("name", list(cluster_cli.COMMANDS))
def test_a_commands_row_names_only_its_own_options_and_every_one_it_requires(name):
    parser = cluster_cli.build_parser([name]).subparsers[name]
    own = {flag for action in parser._actions for flag in action.option_strings}
    named = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", COMMAND_ROWS[name][0]))
    assert named - own == set()
    required = {action.option_strings[-1] for action in parser._actions if action.required and action.option_strings}
    assert required - named == set()


# -- each setting from each of its sources ---------------------------------------------------------

def tries(run) -> int:
    """How many times the command asked the cluster (its --verbose lines)."""
    return len(re.findall(r"^GET http", run.err, re.M))


@pytest.fixture
def dead(clean_env, tmp_path):
    """A port nothing listens on, and a contexts file whose context points at it with retries = 1."""
    port = free_port()
    path = tmp_path / "cluster.toml"
    path.write_text('[contexts.quiet]\nhost = "127.0.0.1"\nport = %d\nretries = 1\n' % port)
    path.chmod(0o600)
    clean_env.setenv("JADEVECTORDB_CONFIG", str(path))
    return port


def test_a_flag_not_given_leaves_a_setting_to_the_sources_below_it(cli, dead, clean_env):
    where = ["--host", "127.0.0.1", "--port", str(dead), "-v", "status"]
    clean_env.setenv("JADEVECTORDB_RETRIES", "0")
    assert tries(cli(*where, target=False)) == 1                           # the environment
    assert tries(cli("--retries", "2", *where, target=False)) == 3         # the flag beats it
    assert tries(cli("--context", "quiet", "-v", "status", target=False)) == 2  # a context named beats it
    clean_env.setenv("JADEVECTORDB_CONTEXT", "quiet")
    assert tries(cli("-v", "status", target=False)) == 1                   # a context chosen does not
    clean_env.delenv("JADEVECTORDB_RETRIES")
    assert tries(cli("-v", "status", target=False)) == 2


def test_no_flag_given_is_no_flag_in_the_resolved_sources(clean_env):
    args = cluster_cli.build_parser(["status"]).parse_args(["status"])
    resolved = cluster_cli.resolve(cluster_cli.setting_sources(cluster_cli.flag_source(args), None,
                                                               cluster_cli.environment_source({})))
    assert {name: resolved.sources[name] for name in ("retries", "max_response_size", "insecure", "timeout")} == \
        dict.fromkeys(("retries", "max_response_size", "insecure", "timeout"), "the defaults")


def test_a_bad_value_in_the_environment_is_named_by_its_variable(cli, clean_env):
    clean_env.setenv("JADEVECTORDB_RETRIES", "many")
    run = cli("status")
    assert (run.code, run.err) == (2, "error: JADEVECTORDB_RETRIES: 'many' is not a whole number\n")


def test_from_context_takes_the_contexts_setting_and_not_the_environment(dead, clean_env):
    clean_env.setenv("JADEVECTORDB_RETRIES", "5")
    clean_env.setenv("JADEVECTORDB_URL", "http://127.0.0.1:1")
    client = cluster_cli.ClusterCLI.from_context("quiet")
    assert (client.retries, client.base_urls) == (1, ["http://127.0.0.1:%d" % dead])
    assert cluster_cli.ClusterCLI.from_context("quiet", retries=0).retries == 0


def test_a_setting_without_a_check_takes_its_value_from_each_source_as_given(monkeypatch):
    probe = cluster_cli.setting("probe", ("--probe",), "a setting with no check", "JADEVECTORDB_PROBE", "text")
    monkeypatch.setattr(cluster_cli, "SETTINGS", cluster_cli.SETTINGS + (probe,))
    source = cluster_cli.environment_source({"JADEVECTORDB_PROBE": "as given"})
    assert cluster_cli.resolve([source, cluster_cli.DEFAULT_SOURCE])["probe"] == "as given"
