"""Command-line flags declared from a config dataclass's field annotations.

Each flag's type comes from its field's annotation, never from its default value, so a field
annotated `int | None` with default None parses its value as an int, not as a string.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

_SCALARS: dict[Any, Any] = {int: int, float: float, str: str}


def parse_bool(value: str) -> bool:
    """True/False as ComposeAE's commands spell them (its argparse read any non-empty string, "False" too, as True)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def flag_kwargs(annotation: Any, name: str = "the field") -> dict[str, Any]:
    """`add_argument` keywords that parse one value of `annotation`.

    int, float, str; bool (True/False, and the bare flag means True); `X | None` (the flag parses
    X: None is what leaving the flag out gives); `Literal[...]` of one type (its values are the
    choices). Anything else raises TypeError naming `name`, so a new field needs a decision here.
    """
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(present) == 1 and len(typing.get_args(annotation)) == 2:
            return flag_kwargs(present[0], name)
    elif origin is Literal:
        choices = typing.get_args(annotation)
        kinds = {type(choice) for choice in choices}
        if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
            return {"type": _SCALARS[next(iter(kinds))], "choices": choices}
    elif annotation is bool:
        return {"type": parse_bool, "nargs": "?", "const": True, "metavar": "{True,False}"}
    elif annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    raise TypeError(f"no command-line type for {name}: {annotation!r} (supported: int, float, str, bool, X | None, Literal[...])")


def field_types(config_type: type) -> dict[str, Any]:
    """Each field's resolved annotation (string annotations under `from __future__ import annotations` evaluated)."""
    hints = typing.get_type_hints(config_type)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_type)}


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_type: type,
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    help_text: Mapping[str, str] | None = None,
    hyphen_aliases: bool = True,
) -> None:
    """One flag `--<field>` per field of the dataclass `config_type`, typed by its annotation.

    A flag not given is absent from the parsed namespace (SUPPRESS), so the dataclass's own default
    applies and a caller can tell a flag given at its default value from one not given.
    `aliases`: more option strings per field (the originals' spellings); `choices`: allowed values
    for a field whose annotation is a plain type; `help_text`: what a flag means, before its
    default; `hyphen_aliases`: also accept `--a-b` for `--a_b`.
    """
    aliases, choices, help_text = aliases or {}, choices or {}, help_text or {}
    annotations = field_types(config_type)
    for field in dataclasses.fields(config_type):
        kwargs = flag_kwargs(annotations[field.name], f"{config_type.__name__}.{field.name}")
        if field.name in choices:
            kwargs["choices"] = tuple(choices[field.name])
        names = [f"--{field.name}"]
        if hyphen_aliases and "_" in field.name:
            names.append(f"--{field.name.replace('_', '-')}")
        names += list(aliases.get(field.name, ()))
        text = " ".join(part for part in (help_text.get(field.name, ""), _default_text(field)) if part)
        text = text.replace("%", "%%")  # argparse %-formats help strings
        parser.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, help=text, **kwargs)


def _default_text(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"(default: {field.default!r})"
    if field.default_factory is not dataclasses.MISSING:
        return f"(default: {field.default_factory()!r})"
    return "(required)"
