"""``python -m memcontract.cli``."""

import sys

from . import main

sys.exit(main())
