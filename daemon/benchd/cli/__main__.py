"""``python -m benchd.cli``: the ``benchd`` command."""

import sys

from benchd.cli import main

sys.exit(main())
