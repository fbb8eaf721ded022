"""``python -m helpers.audit``: see :mod:`helpers.audit`."""

import sys

from helpers.audit.cli import main

if __name__ == "__main__":
    sys.exit(main())
