"""The `tirg` command: data generation, training, evaluation, retrieval, indexes, hashing and the demo.

`tirg train` accepts TIRG's original `main.py` flag names (`--dataset`, `--num_iters`, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tirg.cli import checkpoints, data, demo, hashing, index, retrieve, train
from tirg.cli.runner import Runner

# Each family adds its commands to the parser, in the order `tirg --help` lists them.
FAMILIES = (data, train, checkpoints, retrieve, demo, hashing, index)


def _parser_and_runners() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """The `tirg` parser with every command, and the function that runs each command."""
    parser = argparse.ArgumentParser(prog="tirg", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    runners: dict[str, Runner] = {}
    for family in FAMILIES:
        runners.update(family.register(commands))
    return parser, runners


def build_parser() -> argparse.ArgumentParser:
    return _parser_and_runners()[0]


def command_flags(*command: str) -> set[str]:
    """The option strings `tirg <command...>` accepts, e.g. command_flags("hash", "train")."""
    parser = build_parser()
    for name in command:
        (subcommands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        parser = subcommands.choices[name]
    return {option for action in parser._actions for option in action.option_strings}


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = _parser_and_runners()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tirg.errors import TirgError

    try:
        return runners[args.command](args)
    except (TirgError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"tirg {args.command}: error: {error}", file=sys.stderr)
        return 2
