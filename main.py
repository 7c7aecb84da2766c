"""TIRG's `python main.py --dataset=... --model=... ...`, run by this package: the same as `tirg train ...`.

Kept so the commands in the original READMEs run as written (TIRG's flag names, `--flag=value`).
"""

import sys

from tirg.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
