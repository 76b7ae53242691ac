"""``python -m imagerepo``: the same as the ``imagerepo`` command."""

import sys

from .cli import main

sys.exit(main())
