"""The original systems' `python main.py ...` command lines, run by this package as their READMEs write them.

TIRG's and ComposeAE's flags (--dataset, --model, --num_iters, --use_bert True, `--flag=value`, ...)
are `tirg train`'s; the DNNH hashing seed's (--dataset_name, --binary_bits, --margin, --lr, --ngpu, ...)
are `tirg hash train`'s. A line whose flags fit both commands, or neither, is refused, naming what
each reading makes of it. docs/seed_commands.md lists every seed command line and what it becomes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tirg.cli import command_flags, main

READINGS = {"tirg train": ("train",), "tirg hash train": ("hash", "train")}


class AmbiguousCommand(ValueError):
    """The flags fit both readings, or neither."""


def given_flags(argv: Sequence[str]) -> list[str]:
    """The option names in `argv` (`--flag=value` counts as --flag); values such as -1 are not options."""
    return [token.split("=", 1)[0] for token in argv if token.startswith("-") and not token[1:2].isdigit() and token[1:2] != "."]


def route(argv: Sequence[str]) -> list[str]:
    """`tirg` arguments for a main.py command line: the one reading whose command knows every flag given."""
    flags = given_flags(argv)
    unknown = {reading: [flag for flag in flags if flag not in command_flags(*command)] for reading, command in READINGS.items()}
    fitting = [reading for reading, missing in unknown.items() if not missing]
    if len(fitting) == 1:
        return [*READINGS[fitting[0]], *argv]
    if fitting:
        raise AmbiguousCommand(
            f"the flags {flags or '(none)'} fit both `tirg train` (TIRG/ComposeAE) and `tirg hash train` (DNNH); "
            "add a flag only one has (e.g. --dataset=css or --dataset_name CUB), or run that `tirg` command directly"
        )
    readings = "; ".join(
        f"as `{reading}`, {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} unknown" for reading, missing in unknown.items()
    )
    raise AmbiguousCommand(f"no command takes all of these flags: {readings} (see `tirg train --help` and `tirg hash train --help`)")


def run(argv: Sequence[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    try:
        arguments = route(argv)
    except AmbiguousCommand as error:
        print(f"main.py: error: {error}", file=sys.stderr)
        return 2
    return main(arguments)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
