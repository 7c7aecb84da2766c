"""`python -m tirg ...`: the `tirg` command, as torchrun starts it (`torchrun --nproc_per_node=N -m tirg train ...`)."""

import sys

from tirg.cli import main

sys.exit(main())
