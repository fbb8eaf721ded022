"""``python -m helpers.book``: see :mod:`helpers.book.cli`."""

import sys

from helpers.book.cli import main

sys.exit(main())
