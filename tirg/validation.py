"""Settings checked where a config dataclass is built (its __post_init__), so the command line and
notebooks get the same error, naming the flag, before any work starts."""

from __future__ import annotations

import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import fields
from typing import Any

from tirg.errors import ConfigError

# A field's rule: a test of its (non-None) value and what the message says is expected.
Rule = tuple[Callable[[Any], bool], str]
# The annotated types whose values are checked; a field of any other type is taken as given.
_CHECKED = (type(None), bool, int, float, str)
_WRONG_TYPE = object()


def at_least(minimum: int | float) -> Rule:
    return (lambda value: math.isfinite(value) and value >= minimum), f"a number >= {minimum}"


def greater_than(bound: int | float) -> Rule:
    return (lambda value: math.isfinite(value) and value > bound), f"a finite number > {bound}"


def one_of(choices: Collection[str], any_case: bool = False) -> Rule:
    """A name from `choices` (in any case with `any_case`)."""
    if any_case:
        lowered = {choice.lower() for choice in choices}
        return (lambda value: value.lower() in lowered), f"one of {sorted(choices)} (any case)"
    return (lambda value: value in choices), f"one of {sorted(choices)}"


def check_config(config: Any, rules: Mapping[str, Rule], flags: Mapping[str, str | None] | None = None) -> None:
    """Refuse the first field of dataclass `config` whose value is not of its annotated type, or
    whose value (when not None) breaks its rule in `rules`; the ConfigError names the field and its
    command-line flag (`--<name>` unless `flags` maps the name to another flag, or to None for none).

    Integral and real numbers become plain int and float (a numpy int64 would not save as JSON),
    and a path given for a string setting becomes its string.
    """
    flags = flags or {}
    hints = typing.get_type_hints(type(config))
    for field in fields(config):
        value = getattr(config, field.name)
        converted = _converted(value, hints[field.name])
        if converted is _WRONG_TYPE:
            _refuse(field.name, value, flags, f"{_type_name(hints[field.name])}, got {type(value).__name__}")
        if converted is not value:
            object.__setattr__(config, field.name, converted)  # also for a frozen dataclass
    for name, (test, expected) in rules.items():
        value = getattr(config, name)
        if value is not None and not test(value):
            _refuse(name, value, flags, expected)


def _converted(value: Any, hint: Any) -> Any:
    """`value` as type `hint` (a plain type or a union of them), or _WRONG_TYPE."""
    for kind in _members(hint):
        if kind not in _CHECKED:
            return value
        if kind is type(None) and value is None:
            return None
        if kind is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):  # a bool is an int to Python, never a number setting here
            continue
        if kind is int and isinstance(value, numbers.Integral):
            return int(value)
        if kind is float and isinstance(value, numbers.Real):
            return float(value)
        if kind is str and isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
    return _WRONG_TYPE


def _members(hint: Any) -> tuple[Any, ...]:
    """The types of a union annotation (`int | None`), or the annotation alone."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _type_name(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "True or False", type(None): "None"}
    return " or ".join(names[kind] for kind in _members(hint))


def _refuse(name: str, value: Any, flags: Mapping[str, str | None], expected: str) -> None:
    flag = flags.get(name, f"--{name}")
    raise ConfigError(f"{name}={value!r}" + (f" ({flag})" if flag else "") + f": expected {expected}")
