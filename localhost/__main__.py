"""``python -m localhost`` runs the command line."""

import sys

from localhost.cli import main

sys.exit(main())
