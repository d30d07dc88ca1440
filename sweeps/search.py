#!/usr/bin/env python
"""Hyperparameter sweep of lmgan on one video: `python sweeps/search.py --video quintet`.

Options: `python sweeps/search.py --help`; the code lives in lmgan/sweep/ (driver.py).
"""

import sys

from lmgan.sweep.driver import main

if __name__ == "__main__":
    sys.exit(main())
