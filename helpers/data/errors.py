"""The one exception of :mod:`helpers.data`."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: a malformed file, table, mask string or option.

    The message names the offending file, row or value and says what was
    expected, so that a user can fix the input without reading the code.
    """
