"""Property-based: no argv and no server answer makes the CLI crash or leave the documented exit codes."""
import json

from hypothesis import assume, given
from hypothesis import strategies as st

import cluster_cli
from conftest import commands_that, sample

DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4}
# Options that choose where requests go are fixed by the test, so traffic stays on 127.0.0.1.
NETWORK_OPTIONS = {"--host", "--url", "--port"}
FIELDS = sorted({name for table in (cluster_cli.STATUS_ROWS, cluster_cli.NODE_COLUMNS, cluster_cli.SHARD_COLUMNS,
                                    cluster_cli.NODE_ROWS, cluster_cli.SHARD_ROWS, cluster_cli.MIGRATION_ROWS,
                                    cluster_cli.METRIC_ROWS, cluster_cli.MIGRATION_PLAN_ROWS,
                                    cluster_cli.REMOVAL_PLAN_ROWS, cluster_cli.ERROR_COLUMNS)
                 for _, name, *_ in table}
                | {"checks", "migration", "nodes", "topology", "replication", "performance", "errors",
                   "shard_distribution", "passed", "name", "detail", "under_replicated_shards"})


def subcommands() -> dict:
    parser = cluster_cli.build_parser()
    return next(a for a in parser._actions if isinstance(a, cluster_cli.argparse._SubParsersAction)).choices


COMMANDS = sorted(subcommands())
OPTIONS = {name: sorted({o for action in sub._actions for o in action.option_strings} - NETWORK_OPTIONS)
           for name, sub in subcommands().items()}
VALUES = st.one_of(
    st.sampled_from(["node-worker-001", "node-worker-002", "node-master-001", "shard-00", "shard-05", "", " ",
                     "a/../b", "x?y#z", "192.168.1.13:8080", "[::1]:80", "h:0", "h:99999", "0", "-1", "1e9",
                     "nan", "0.01", "LIVE_COPY", "snapshot", "FAST", "HEALTHY", "degraded", "json", "table",
                     "compact", "WORKER", "UNREACHABLE", "products", "\x1b[2J", "ü", "1"]),
    st.text(max_size=10).filter(lambda t: not t.startswith("-")))


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(COMMANDS))
    tokens = draw(st.lists(st.one_of(st.sampled_from(OPTIONS[command]), VALUES), max_size=8))
    before = draw(st.lists(st.sampled_from(["--format", "json", "compact", "--retries", "0", "--verbose",
                                            "--no-color", "--timeout", "2"]), max_size=3))
    # Whatever was drawn, waits and watches end quickly: the last occurrence wins.
    tail = []
    if "--wait-timeout" in OPTIONS[command]:
        tail += ["--wait-timeout", "0.2", "--poll-interval", "0.05"]
    if "--watch" in OPTIONS[command]:
        tail += ["--count", "1"]
    return before + [command] + tokens + tail


@given(argv=argvs())
def test_any_argv_ends_in_a_documented_exit_code_without_a_traceback(cli, sim, argv):
    import os
    import tempfile
    sim.cluster.reset()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:  # '--output WORKER' writes there, not in the project
        os.chdir(scratch)
        try:
            run = cli(*argv)
        finally:
            os.chdir(here)
    assert run.code in DOCUMENTED_EXIT_CODES, (argv, run)
    assert "Traceback" not in run.err and "unexpected" not in run.err, (argv, run)
    for line in run.err.splitlines():
        assert line.startswith(("error: ", "warning: ", "GET ", "POST ", "DELETE ", "retrying ", "usage: ",
                                "migration ", "move ", "already balanced", "drained ")) \
            or line.endswith("nothing to move") or ("drain-node" in line and " holds " in line) \
            or "--verbose" in argv or "-v" in argv, (argv, run)
    if run.code in (2, 3):
        assert run.out == "" or "--help" in argv or "-h" in argv, (argv, run)


# Integers far past float range and non-finite floats included: servers send them.
NUMBERS = st.integers() | st.integers(min_value=-10 ** 400, max_value=10 ** 400) | st.floats()
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
KEYS = st.sampled_from(FIELDS + ["nodeId", "primaryNode", "vectorCount", "shardCount", "migrationId"])
SHAPED = st.recursive(JSON, lambda inner: st.dictionaries(KEYS, inner, max_size=8) | st.lists(inner, max_size=4),
                      max_leaves=30)


@given(data=SHAPED, view=st.sampled_from(sorted(cluster_cli.VIEWS)),
       fmt=st.sampled_from(sorted(cluster_cli.FORMATS)), color=st.booleans())
def test_no_server_answer_crashes_a_renderer(data, view, fmt, color):
    decoded = cluster_cli.decode(200, "OK", json.dumps(data).encode())
    if fmt == "prometheus" and not cluster_cli.VIEWS[view].samples:
        return  # an input error, exit 2: prometheus is for status, metrics, nodes and shards
    text = cluster_cli.rendered(view, decoded, cluster_cli.Output(fmt, color))
    assert isinstance(text, str)
    if fmt == "json":
        assert json.loads(text, parse_constant=reject) == decoded
    elif fmt == "ndjson":
        lines = [json.loads(line, parse_constant=reject) for line in text.splitlines()]
        assert lines == (decoded if isinstance(decoded, list) else [decoded])
    elif fmt in ("table", "compact"):
        assert all(len(line) < 20 * cluster_cli.MAX_CELL for line in text.splitlines())


def reject(constant):
    raise AssertionError("not strict JSON: %s" % constant)


@given(body=st.one_of(JSON.map(json.dumps), st.text(max_size=40)),
       command=st.sampled_from([" ".join(sample(name)) for name in commands_that(
           lambda declared: not declared.changes and not declared.local
           and declared.name not in ("explain", "report", "doctor", "bundle"))]),  # these ask several endpoints
       fmt=st.sampled_from(sorted(set(cluster_cli.FORMATS) - {"prometheus"})))
def test_any_body_from_the_server_is_rendered_or_reported(cli, sim, body, command, fmt):
    sim.fault(respond=[{"body": body}])
    run = cli("--retries", "0", *command.split(), "--format", fmt)
    assert run.code in (0, 1), run
    assert "Traceback" not in run.err and "unexpected" not in run.err, run
    # A failure prints nothing on stdout; a success prints something (ndjson: a line per item, maybe none).
    assert (run.out == "") == (run.code == 1) or (fmt == "ndjson" and run.code == 0), run


# Cells as the renderers make them: printable ASCII, spaces anywhere, empty ones; and with wide
# characters (CJK, two columns each) and combining marks (none).
CELLS = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
WIDE_CELLS = st.lists(st.sampled_from(list("ab -9") + ["\u4e2d", "\u6587", "\uff21", "e\u0301", "\u00e9"]),
                      max_size=10).map("".join)
FILL = "\u2800"  # one column wide, and not white space to the strip() tabulate gives each cell


def tabulated(specs: list, body: list) -> str:
    """tabulate's simple_outline of the grid, measured with wcwidth: the reference the grid is drawn to.
    The header is drawn as the first row, filled to the least width (tabulate pads headers by its own
    MIN_PADDING), and its rule put in after."""
    import tabulate
    assert tabulate.WIDE_CHARS_MODE  # wcwidth is installed: wide characters are measured as shown
    first = [spec.label + FILL * (max(spec.width - len(spec.label), 0)) for spec in specs]
    lines = tabulate.tabulate([first] + body, tablefmt="simple_outline", disable_numparse=True).split("\n")
    rule = lines[0].replace("┌", "├").replace("┬", "┼").replace("┐", "┤")
    return "\n".join([lines[0], lines[1].replace(FILL, " "), rule] + lines[2:])


@given(data=st.data(), columns=st.integers(min_value=1, max_value=6))
def test_the_grid_is_tabulates_simple_outline_measured_as_a_terminal_shows_it(data, columns):
    specs = [cluster_cli.Field(data.draw(st.sampled_from(["Node ID", "Address", "Detail", "N"])), "f%d" % i,
                               cluster_cli.fmt_text, data.draw(st.integers(0, 16))) for i in range(columns)]
    body = data.draw(st.lists(st.lists(st.one_of(CELLS, WIDE_CELLS).map(str.strip), min_size=columns,
                                       max_size=columns), max_size=8))
    rows = [{"f%d" % i: cell or None for i, cell in enumerate(line)} for line in body]
    shown = [[cell or "-" for cell in line] for line in body]
    assert cluster_cli.render_grid(specs, rows) == tabulated(specs, shown)


def test_a_grid_of_wide_characters_is_aligned_at_every_size():
    specs = [cluster_cli.labelled("Node ID", "node_id"), cluster_cli.labelled("Status", "status")]
    for count in (3, 2000, 2001, 5000):
        rows = [{"node_id": "\u8282\u70b9-%d" % i if i % 2 else "node-%d" % i, "status": "HEALTHY"}
                for i in range(count)]
        parts = []
        cluster_cli.write_grid(specs, rows, parts.append)
        lines = "".join(parts).splitlines()
        assert len(lines) == count + 4
        assert {cluster_cli.shown_len(line) for line in lines} == {cluster_cli.shown_len(lines[0])}, count


@given(data=JSON.map(lambda value: cluster_cli.decode(200, "OK", json.dumps(value).encode())))
def test_streamed_json_is_json_dumps_indented_to_the_byte(data):
    assert cluster_cli.rendered("shards", data, cluster_cli.Output("json")) == json.dumps(data, indent=2) + "\n"


@given(data=st.data(), columns=st.integers(min_value=1, max_value=6), width=st.integers(min_value=20, max_value=120))
def test_a_grid_fits_the_terminal_unless_only_numbers_and_headers_are_left(data, columns, width):
    """Every line is at most `width` wide, or every text column is down to its least (header or 8)
    and the rest kept whole; a clipped cell ends in '…' and starts as the whole cell did."""
    specs = [cluster_cli.Field(data.draw(st.sampled_from(["Node ID", "Address", "Detail", "N"])), "f%d" % i,
                               data.draw(st.sampled_from([cluster_cli.fmt_text, cluster_cli.fmt_count])),
                               data.draw(st.integers(0, 16))) for i in range(columns)]
    rows = data.draw(st.lists(st.fixed_dictionaries({"f%d" % i: CELLS.map(str.strip) if specs[i].fmt is
                                                     cluster_cli.fmt_text else st.integers(0, 10 ** 9)
                                                     for i in range(columns)}), max_size=6))
    full = cluster_cli.render_grid(specs, rows).split("\n")
    lines = cluster_cli.render_grid(specs, rows, width=width).split("\n")
    if len(full[0]) <= width:
        assert lines == full  # what fits is left as it is
        return
    text = [spec.fmt is cluster_cli.fmt_text for spec in specs]
    widths = [len(part) - 2 for part in lines[0][1:-1].split("┬")]
    assert len(lines[0]) <= width or all(w <= max(len(spec.label), 8) for w, spec, t in zip(widths, specs, text) if t)
    assert {len(line) for line in lines} == {len(lines[0])}
    for full_row, row in zip(full[3:-1], lines[3:-1]):
        for whole, shown in zip(full_row[2:-2].split(" │ "), row[2:-2].split(" │ ")):
            whole, shown = whole.strip(), shown.strip()
            assert shown == whole or (shown.endswith("…") and whole.startswith(shown[:-1]))


@given(data=st.data(), columns=st.integers(min_value=1, max_value=5),
       width=st.one_of(st.none(), st.integers(min_value=20, max_value=120)), headers=st.booleans())
def test_a_grid_written_in_batches_is_the_grid_written_at_once(data, columns, width, headers):
    """A grid is measured, then written a batch at a time: whatever the batch, the same text."""
    specs = [cluster_cli.Field(data.draw(st.sampled_from(["Node ID", "Address", "Detail", "N"])), "f%d" % i,
                               data.draw(st.sampled_from([cluster_cli.fmt_text, cluster_cli.fmt_count])),
                               data.draw(st.integers(0, 16)), data.draw(st.booleans())) for i in range(columns)]
    rows = data.draw(st.lists(st.fixed_dictionaries({"f%d" % i: st.one_of(st.none(), st.one_of(
        CELLS, WIDE_CELLS).map(str.strip) if specs[i].fmt is cluster_cli.fmt_text else st.integers(0, 10 ** 9))
        for i in range(columns)}), max_size=7))
    whole = cluster_cli.render_grid(specs, rows, width=width).split("\n")
    expected = "\n".join(whole if headers else whole[:1] + whole[3:]) + "\n"
    parts = []
    batch, cluster_cli.BATCH = cluster_cli.BATCH, 2  # two rows a batch
    try:
        cluster_cli.write_grid(specs, rows, parts.append, width=width, headers=headers)
    finally:
        cluster_cli.BATCH = batch
    assert "".join(parts) == expected


# -- the library: whatever it is given, only a ClusterError escapes ------------------------------------

ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=12), st.binary(max_size=4), st.lists(st.text(max_size=4), max_size=3),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                st.sampled_from(["node-worker-001", "shard-00", "LIVE_COPY", "h:1", "1", "64K", 1, 0.5,
                                 {"moves": []}, {"moves": [{"shard_id": "shard-00"}]}, 1 + 2j]))
METHODS = {  # name: how many arguments it takes (the rest of its parameters by keyword, drawn too)
    "health": (), "cluster_status": (), "diagnostics": (), "metrics": (), "list_nodes": (),
    "add_node": ("node_id", "address"), "remove_node": ("node_id",), "node_health": ("node_id",),
    "list_shards": ("database_id", "node_id", "status"), "shard_status": ("shard_id",),
    "migrate_shard": ("shard_id", "target_node", "source_node", "strategy"), "plan_rebalance": ("balance_by",),
    "plan_drain": ("node_id",), "stale_moves": ("plan",), "proxy_for": ("url",),
    "apply_plan": ("plan", "max_concurrent", "strategy", "timeout", "progress", "poll_interval"),
}


@given(method=st.sampled_from(sorted(METHODS)), data=st.data(),
       settings_=st.dictionaries(st.sampled_from(["timeout", "retries", "verify", "max_response_size", "api_key",
                                                  "port"]), ODD, max_size=2))
def test_only_a_cluster_error_escapes_a_library_call(sim, method, data, settings_):
    sim.cluster.reset()
    arguments = {name: data.draw(ODD, label=name) for name in METHODS[method]
                 if data.draw(st.booleans(), label="pass " + name)}
    try:
        client = cluster_cli.ClusterCLI(url=sim.url, **settings_)
        with client:
            getattr(client, method)(**arguments)
    except cluster_cli.ClusterError:
        pass
    except TypeError as exc:  # only for a required argument left out: Python's own rule, not ours to change
        assert "required positional argument" in str(exc), exc


# extra never repeats the named parameters: Python itself refuses that call, before the library runs.
@given(name=ODD, config=ODD, confirm=ODD,
       extra=st.dictionaries(st.text(max_size=6).filter(lambda key: key not in ("name", "config", "confirm")),
                             ODD, max_size=2))
def test_only_a_cluster_error_escapes_from_context(sim, name, config, confirm, extra):
    import sys
    stdout = sys.stdout
    try:
        cluster_cli.ClusterCLI.from_context(name, config=config, confirm=confirm, **extra).close()
    except cluster_cli.ClusterError:
        pass
    assert sys.stdout is stdout and not stdout.closed  # from_context(config=1) must not open and close fd 1


@given(a=st.text(), b=st.text())
def test_distinct_ids_never_share_a_prometheus_label(a, b):
    # node_exporter refuses a file with a series twice: two IDs must never be written as one label
    assume(a != b)
    assert cluster_cli.prometheus_label(a) != cluster_cli.prometheus_label(b)
    assert "\x1b" not in cluster_cli.prometheus_label(a) and "\n" not in cluster_cli.prometheus_label(a)


@given(st.text(alphabet="aZ09@%+=:,./-_ '\"$\n*é²ſK", max_size=12))
def test_a_value_repeated_in_a_hint_is_quoted_as_shlex_quotes_it(text):
    import shlex
    assert cluster_cli.shell_word(text) == shlex.quote(text)


@given(st.text(alphabet="-_ kKeyYTOKENtokenSecretPASSWauthx.=é²ſK\n\t", max_size=14))
def test_a_secret_option_is_found_however_it_is_spelled_as_the_pattern_found_it(arg):
    import re
    pattern = r"(?i)^--?[\w-]*(key|token|secret|passw|auth)[\w-]*$"  # what secrets_in tested with re before
    name = arg.partition("=")[0]
    assert (len(cluster_cli.secrets_in([arg, "the-value"])) == 2) is bool(re.match(pattern, name))


@given(st.lists(st.integers(), min_size=3, max_size=3), st.integers(0, 3), st.sampled_from(["a", "b", "c"]))
def test_a_tuple_class_behaves_as_the_namedtuple_it_replaces(values, given_count, changed):
    from collections import namedtuple
    ours, theirs = (make("T", "a b c", defaults=(7, 8)) for make in (cluster_cli.tuple_class, namedtuple))
    args = values[:max(given_count, 1)]
    assert ours(*args) == theirs(*args) and repr(ours(*args)) == repr(theirs(*args))
    assert ours(*args)._replace(**{changed: -1}) == theirs(*args)._replace(**{changed: -1})
    assert ours(**dict(zip("abc", args))).c == theirs(**dict(zip("abc", args))).c and ours._fields == theirs._fields
    import pickle  # a class of the module, as namedtuple's are, pickles by its name
    assert pickle.loads(pickle.dumps(cluster_cli.Output("json"))) == cluster_cli.Output("json")
    for wrong in (lambda: ours(), lambda: ours(1, 2, 3, 4), lambda: ours(1, d=2)):
        try:
            wrong()
        except TypeError:
            continue
        raise AssertionError("accepted")
    try:
        ours(*args)._replace(d=1)
    except ValueError:
        pass
    else:
        raise AssertionError("_replace took a field the class has not")
