"""Statistics for misalignment rates and mean scores.

- `intervals`: answer-level Wilson and Newcombe intervals (one cell, answers treated as independent).
- `cluster_t`: the primary interval of a cell's rate or mean score, cluster-robust over questions with a t quantile
  (quasi-score for rates, two-part for means; its estimand is stated there), because answers cluster within questions.
- `bootstrap`: the hierarchical (seed -> question -> answer) bootstrap with question draws shared across domains:
  rank intervals and the contrasts that need joint draws, and the fallback where a t interval is not defined.
- `paired`: the trigger effect within (seed, question) pairs, its t interval over questions and sign-flip test.
- `adjust`: Holm and Benjamini-Hochberg adjusted p-values across many tested domains.
- `power`: the minimum detectable trigger effect of a design (`emgrid plan`).
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
