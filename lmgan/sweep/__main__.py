"""`python -m lmgan.sweep`: the sweep command, as `lmgan sweep` and `python sweeps/search.py`."""

import sys

from lmgan.sweep.driver import main

sys.exit(main())
