"""``python -m convbench``: same as the ``convbench`` command."""

import sys

from .cli import main

sys.exit(main())
