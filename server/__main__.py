"""``python -m server`` runs the ``kith`` command."""

import sys

from server.cli import main

sys.exit(main())
