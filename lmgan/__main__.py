import sys

from lmgan.cli import main

sys.exit(main())
