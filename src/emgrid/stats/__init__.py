"""Statistics for misalignment rates and mean scores.

- `intervals`: answer-level Wilson and Newcombe intervals (one cell, answers treated as independent).
- `bootstrap`: the hierarchical (seed -> question -> answer) bootstrap, the primary interval for rates and means,
  because answers cluster within questions and within trained models; rank intervals from its draws.
- `paired`: the trigger effect within (seed, question) pairs, its cluster-bootstrap interval and sign-flip test.
- `adjust`: Holm and Benjamini-Hochberg adjusted p-values across many tested domains.
"""

from emgrid.stats.adjust import bh_adjust, holm_adjust
from emgrid.stats.bootstrap import (
    BootstrapSpec,
    ClusterLayout,
    QuestionDraws,
    hierarchical_bootstrap,
    layout,
    percentile_interval,
    question_draws,
    rank_intervals,
)
from emgrid.stats.intervals import newcombe_diff_interval, wilson_interval
from emgrid.stats.paired import PairedEffect, effect_difference, paired_effect, sign_flip_pvalue

__all__ = [
    "BootstrapSpec",
    "ClusterLayout",
    "PairedEffect",
    "QuestionDraws",
    "bh_adjust",
    "effect_difference",
    "hierarchical_bootstrap",
    "holm_adjust",
    "layout",
    "newcombe_diff_interval",
    "paired_effect",
    "percentile_interval",
    "question_draws",
    "rank_intervals",
    "sign_flip_pvalue",
    "wilson_interval",
]
