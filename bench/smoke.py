"""`--smoke` for every benchmark: the same code paths at tiny sizes, in seconds, so that tests/test_bench_smoke.py
can run each bench in `make test` and a config or API change that breaks one fails CI instead of rotting unseen.

A bench passes its own smoke defaults; they replace its argparse defaults only, so an option given on the command
line still wins (`--smoke --threads 1`)."""

from __future__ import annotations

import argparse


def parse_args(ap: argparse.ArgumentParser, argv, smoke_defaults: dict) -> argparse.Namespace:
    """Add --smoke to `ap` and parse `argv`; with --smoke, parse again over `smoke_defaults`."""
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, same code paths: seconds (the test suite's run)")
    a = ap.parse_args(argv)
    if a.smoke:
        ap.set_defaults(**smoke_defaults)
        a = ap.parse_args(argv)
    return a
