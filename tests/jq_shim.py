"""A `jq` command for the README's shell examples, on libjq (the PyPI `jq` package).

The examples need only -r, -e and --arg NAME VALUE, a program and an
optional input file; with it they run the same on a machine without jq.
"""
import json
import sys

import jq


def main(argv) -> int:
    raw = exit_status = False
    variables, rest = {}, []
    args = iter(argv)
    for arg in args:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 and set(arg[1:]) <= set("re"):
            raw = raw or "r" in arg
            exit_status = exit_status or "e" in arg
        elif arg == "--arg":
            name = next(args)
            variables[name] = next(args)
        else:
            rest.append(arg)
    program, files = rest[0], rest[1:]
    if files:
        with open(files[0]) as source:
            text = source.read()
    else:
        text = sys.stdin.read()
    outputs = jq.compile(program, args=variables).input_text(text).all() if text.strip() else []
    for value in outputs:
        print(value if raw and isinstance(value, str) else json.dumps(value, indent=2))
    if exit_status:
        return 4 if not outputs else (1 if outputs[-1] in (None, False) else 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
