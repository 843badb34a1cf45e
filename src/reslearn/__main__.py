"""``python -m reslearn``: the command line (what ``torchrun -m reslearn`` runs)."""

import sys

from .cli import main

sys.exit(main())
