"""Jinja2 rendering of the report's pages: the templates ship in `emgrid/report/templates/` (package data), and
autoescaping is on, because answers and questions are model output and may contain markup. The filters format
numbers the way every table of the report shows them (NaN and missing values as a dash)."""

from __future__ import annotations

import math
from typing import Any

import jinja2
from markupsafe import Markup

from emgrid.numfmt import fixed
from emgrid.report.plots import COND_LABELS

__all__ = ["render", "pct", "num", "signed", "ci", "usd", "count", "cond"]


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def pct(x: Any, digits: int = 1) -> str:
    v = _float(x)
    return "–" if v is None else f"{fixed(100 * v, digits)}%"


def num(x: Any, digits: int = 1) -> str:
    v = _float(x)
    return "–" if v is None else fixed(v, digits)


def signed(x: Any, digits: int = 1, as_pct: bool = False) -> str:
    v = _float(x)
    if v is None:
        return "–"
    return f"{fixed(100 * v, digits, sign=True)} pp" if as_pct else fixed(v, digits, sign=True)


def ci(lo: Any, hi: Any) -> Markup:
    a, b = _float(lo), _float(hi)
    return (
        Markup("")
        if a is None or b is None
        else Markup(f' <span class="ci">[{fixed(100 * a, 1)}, {fixed(100 * b, 1)}]</span>')
    )


def ci_pts(lo: Any, hi: Any) -> Markup:
    """An interval in the value's own units (alignment points), not scaled to percent like `ci`."""
    a, b = _float(lo), _float(hi)
    return Markup("") if a is None or b is None else Markup(f' <span class="ci">[{fixed(a)}, {fixed(b)}]</span>')


def usd(x: Any) -> str:
    v = _float(x) or 0.0
    return f"${v:.4f}" if v < 1 else f"${v:,.2f}"


def count(x: Any) -> str:
    v = _float(x)
    return "–" if v is None else f"{int(v):,}"


def cond(x: Any) -> str:
    return COND_LABELS.get(str(x), str(x))


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("emgrid.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(pct=pct, num=num, signed=signed, usd=usd, count=count, cond=cond)
_ENV.globals.update(ci=ci, ci_pts=ci_pts)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
