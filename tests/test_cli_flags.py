"""`tirg train` and `tirg hash train` flags parse each value as its config field's annotated type."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, Optional, Union

import pytest

from tirg.cli import build_parser
from tirg.cli.flags import add_config_flags, field_types, flag_kwargs
from tirg.config import TrainConfig
from tirg.hashing.train import HashTrainConfig

COMMANDS = [(TrainConfig, ("train",)), (HashTrainConfig, ("hash", "train"))]


def _subparser(command: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        (sub,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def _plain(annotation: Any) -> Any:
    """The type a value of `annotation` has once given: X for `X | None`."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        (present,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return present
    return annotation


def _sample(kind: Any, action: argparse.Action) -> tuple[str, Any]:
    """A command-line string for a field of type `kind` and the value it must parse to.

    "1" for a float catches a flag typed as int; "7" for an int catches one typed as str."""
    if action.choices:
        choice = list(action.choices)[-1]
        return str(choice), choice
    return {int: ("7", 7), float: ("1", 1.0), str: ("some/value", "some/value"), bool: ("False", False)}[kind]


@pytest.mark.parametrize(("config_type", "command"), COMMANDS, ids=["train", "hash-train"])
def test_every_field_parses_as_its_annotated_type(config_type: type, command: tuple[str, ...]) -> None:
    parser = _subparser(command)
    actions = {action.dest: action for action in parser._actions}
    annotations = field_types(config_type)
    assert set(annotations) <= set(actions), f"fields without a flag: {sorted(set(annotations) - set(actions))}"
    for name, annotation in annotations.items():
        kind = _plain(annotation)
        text, expected = _sample(kind, actions[name])
        value = getattr(parser.parse_args([f"--{name}", text]), name)
        assert type(value) is type(expected) and value == expected, f"--{name} {text} parsed as {value!r}, expected {expected!r}"
        assert not hasattr(parser.parse_args([]), name), f"--{name} not given must leave the config's default"


def test_none_able_ints_parse_as_int() -> None:
    train = _subparser(("train",))
    hashing = _subparser(("hash", "train"))
    assert train.parse_args(["--image_size", "96", "--pairs_per_source", "1"]).image_size == 96
    assert type(train.parse_args(["--pairs_per_source", "1"]).pairs_per_source) is int
    assert type(hashing.parse_args(["--batches_per_epoch", "3"]).batches_per_epoch) is int
    assert type(hashing.parse_args(["--margin", "8"]).margin) is float
    assert type(train.parse_args(["--backbone_lr_factor", "1"]).backbone_lr_factor) is float


def test_bad_values_are_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    train = _subparser(("train",))
    for argv, flag in (
        (["--num_iters", "2.5"], "--num_iters"),
        (["--image_size", "big"], "--image_size"),
        (["--skip_missing_images", "maybe"], "--skip_missing_images"),
    ):
        with pytest.raises(SystemExit):
            train.parse_args(argv)
        assert flag in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _subparser(("hash", "train")).parse_args(["--optimizer_name", "RMSprop"])
    assert "--optimizer_name" in capsys.readouterr().err


def test_bool_flags_take_a_value_or_stand_alone() -> None:
    hashing = _subparser(("hash", "train"))
    assert hashing.parse_args(["--freeze_backbone"]).freeze_backbone is True  # the form the README and tests use
    assert hashing.parse_args(["--freeze_backbone", "False"]).freeze_backbone is False
    train = _subparser(("train",))
    assert train.parse_args(["--use_complete_text_query", "True"]).use_complete_text_query is True
    assert train.parse_args(["--use-bert", "false"]).use_bert is False


def test_the_originals_spellings_reach_their_fields() -> None:
    hashing = _subparser(("hash", "train"))
    args = hashing.parse_args(["--batchSize", "40", "--datapath_dog", "dogs"])
    assert (args.batch_size, args.dataset_path) == (40, "dogs")
    assert _subparser(("train",)).parse_args(["--num-iters", "5"]).num_iters == 5


@dataclasses.dataclass
class _Example:
    count: int = 1
    rate: Optional[float] = None  # noqa: UP045 (typing.Optional must work too, not only X | None)
    mode: Literal["a", "b"] = "a"
    size: Literal[16, 64] = 16
    flag: bool = False
    name: Union[str, None] = None  # noqa: UP007


def test_helper_maps_each_supported_annotation() -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser, _Example)
    args = parser.parse_args(["--count", "3", "--rate", "2", "--mode", "b", "--size", "64", "--flag", "--name", "x"])
    assert (args.count, args.rate, args.mode, args.size, args.flag, args.name) == (3, 2.0, "b", 64, True, "x")
    assert type(args.rate) is float and type(args.size) is int
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "32"])  # not one of the Literal's values


UNSUPPORTED = [list[int], tuple[int, ...], dict[str, int], Union[int, str], Literal["a", 1], int | str | None, bytes]  # noqa: UP007


@pytest.mark.parametrize("annotation", UNSUPPORTED)
def test_unsupported_annotations_fail_loudly(annotation: Any) -> None:
    with pytest.raises(TypeError, match="Config.field"):
        flag_kwargs(annotation, "Config.field")


def test_a_new_field_with_an_unsupported_type_stops_the_parser_being_built() -> None:
    @dataclasses.dataclass
    class WithList:
        sizes: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="WithList.sizes"):
        add_config_flags(argparse.ArgumentParser(), WithList)
