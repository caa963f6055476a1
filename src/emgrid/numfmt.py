"""Fixed-point number text for tables, captions and the report page: one rule for every place a number is printed.

A value that rounds to zero prints as an unsigned zero ("0.00", never "-0.00" or "+0.00"): a change of -0.001 shown
as "-0.00" reads as a (tiny) drop when the table says there is none.
"""

from __future__ import annotations

__all__ = ["fixed"]


def fixed(v: float, digits: int = 2, sign: bool = False) -> str:
    """`v` with `digits` decimals; `sign` adds "+" to positive values. Zero after rounding has no sign."""
    r = round(float(v), digits)
    if r == 0:
        return f"{0.0:.{digits}f}"
    return f"{r:+.{digits}f}" if sign else f"{r:.{digits}f}"
