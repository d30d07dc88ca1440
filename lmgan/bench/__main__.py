"""`python -m lmgan.bench`: the training-step benchmark (lmgan.bench.step), under the name the
docs and users have always run it by."""

import sys

from lmgan.bench.step import main

sys.exit(main())
