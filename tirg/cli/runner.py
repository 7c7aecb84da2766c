"""What every command family module hands the `tirg` parser: the function that runs each of its commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Runs one parsed `tirg <command>` and returns its exit status.
Runner = Callable[[argparse.Namespace], int]
