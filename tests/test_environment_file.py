"""environment.yml gives conda users what `make install` gives pip users: the same packages, the same bounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _makefile_extras() -> list[str]:
    """The extras `make install` installs: `-e ".[dev,notebooks,...]"` in the Makefile's $(INSTALLED) rule."""
    rule = re.search(r'^\$\(INSTALLED\):.*?-e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text(), re.S | re.M)
    assert rule is not None, "no `pip install -e .[...]` in the Makefile's $(INSTALLED) rule"
    return rule[1].split(",")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in _makefile_extras():
        lines += project["optional-dependencies"][extra]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, lines)}


def _environment_requirements() -> dict[str, str]:
    """Every `- name>=bound` line of environment.yml, conda and pip sections alike (python, pip and `-e .` aside)."""
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("\ndependencies:") :].splitlines():
        match = re.fullmatch(r"\s*- ([A-Za-z0-9][A-Za-z0-9_.-]*[^:]*)", line)  # not `- pip:` nor `- -e .`
        if match is None:
            continue
        requirement = Requirement(match[1].replace(" ", ""))
        if requirement.name not in ("python", "pip"):
            found[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return found


def test_environment_yml_lists_the_installed_packages_with_the_same_bounds() -> None:
    expected, listed = _pyproject_requirements(), _environment_requirements()
    assert {"torch", "pytest-xdist", "jupyterlab", "timm"} <= expected.keys()  # the parse found the extras
    missing = {name: bound for name, bound in expected.items() if name not in listed}
    assert not missing, f"environment.yml lacks what `make install` installs: {missing}"
    differ = {name: (bound, listed[name]) for name, bound in expected.items() if listed[name] != bound}
    assert not differ, f"bounds differ (pyproject.toml, environment.yml): {differ}"
    extra = sorted(listed.keys() - expected.keys())
    assert not extra, f"environment.yml lists what pyproject.toml does not: {extra}"
