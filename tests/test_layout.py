"""The module's shape, as the issue that split it asked: two halves, the library never reaching into
the command line, no module name reused as a local, sections listed in the docstring in order."""
import ast
import re

import cluster_cli

with open(cluster_cli.__file__, encoding="utf-8") as source_file:
    SOURCE = source_file.read()
TREE = ast.parse(SOURCE)
BANNER = "# THE COMMAND LINE"
SPLIT = SOURCE[:SOURCE.index(BANNER)].count("\n") + 1


def defined(statement) -> set:
    """Return the module-level names a statement defines."""
    if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    targets = statement.targets if isinstance(statement, ast.Assign) else \
        [statement.target] if isinstance(statement, ast.AnnAssign) else []
    return {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}


def names_used(statement) -> set:
    return {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}


LIBRARY = [s for s in TREE.body if s.lineno < SPLIT]
COMMAND_LINE = [s for s in TREE.body if s.lineno > SPLIT]


def test_no_library_definition_refers_to_the_command_line():
    library_names = set().union(*map(defined, LIBRARY))
    command_line_names = set().union(*map(defined, COMMAND_LINE)) - library_names
    reaching = {getattr(s, "name", s.lineno): sorted(names_used(s) & command_line_names) for s in LIBRARY}
    assert {name: used for name, used in reaching.items() if used} == {}


def test_the_client_and_what_it_raises_are_in_the_library():
    library_names = set().union(*map(defined, LIBRARY))
    assert set(cluster_cli.__all__) - {"main"} <= library_names


def test_no_module_name_is_reused_as_a_local():
    module_names = set().union(*map(defined, TREE.body))
    reused = set()
    for function in ast.walk(TREE):
        if not isinstance(function, (ast.FunctionDef, ast.Lambda)):
            continue
        arguments = function.args
        local = {a.arg for a in arguments.args + arguments.kwonlyargs + arguments.posonlyargs}
        local |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a}
        for node in ast.walk(function):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                local.add(node.id)
            elif isinstance(node, ast.Global):
                local -= set(node.names)  # an assignment to the module's own name
        globals_declared = {n for node in ast.walk(function) if isinstance(node, ast.Global) for n in node.names}
        reused |= {(getattr(function, "name", "lambda"), name) for name in local & module_names - globals_declared}
    assert sorted(reused) == []


def test_the_docstring_lists_the_sections_in_their_order():
    banners = re.findall(r"^# -{90,}\n# ([A-Z][^:\n]*?)(?::.*)?\n# -{90,}$", SOURCE, re.M)
    listed = [line.strip()[:len(name)] for name in banners for line in cluster_cli.__doc__.splitlines()
              if line.strip().startswith(name + " ")]
    assert listed == banners
    assert len(banners) >= 15


def test_classes_are_nouns_and_docstrings_are_sentences():
    classes = [n.name for n in ast.walk(TREE) if isinstance(n, ast.ClassDef)]
    assert all(name[0].isupper() or name[1].isupper() for name in classes), classes
    # A docstring that is a verbless noun phrase ('The shard's holders.') reads as a label: a function's
    # says what it does or returns ("Return the shard's holders"), or shows it ("1.0 -> '1s'").
    labels = sorted(n.name for n in ast.walk(TREE) if isinstance(n, ast.FunctionDef) and ast.get_docstring(n)
                    and ast.get_docstring(n).split()[0] in ("A", "An", "The", "One", "What", "Whether", "Every"))
    assert labels == []


def test_each_definition_comes_after_what_it_uses():
    # The one exception: the planners and waits that take a ClusterCLI, which calls them back.
    first = {}
    for statement in TREE.body:
        for name in defined(statement):
            first.setdefault(name, statement.lineno)
    later = {(getattr(s, "name", s.lineno), name) for s in TREE.body for name in names_used(s)
             if first.get(name, 0) > s.lineno and name != "ClusterCLI"}
    assert sorted(later) == []
