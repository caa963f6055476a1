"""Statistics for misalignment rates and mean scores.

- `intervals`: answer-level Wilson and Newcombe intervals (one cell, answers treated as independent).
- `cluster_t`: the primary interval of a cell's rate or mean score, cluster-robust over questions with a t quantile
  (quasi-score for rates, two-part for means; its estimand is stated there), because answers cluster within questions.
- `bootstrap`: the hierarchical (seed -> question -> answer) bootstrap with question draws shared across domains:
  rank intervals and the contrasts that need joint draws, and the fallback where a t interval is not defined.
- `paired`: the trigger effect within (seed, question) pairs, its t interval over questions and sign-flip test.
- `adjust`: Holm and Benjamini-Hochberg adjusted p-values across many tested domains.
- `power`: the minimum detectable trigger effect of a design (`emgrid plan`).

The package re-exports only what needs numpy alone (the bootstrap, answer-level intervals, adjustment): the
Snakefile's parse reads `BootstrapSpec` through `emgrid.scores`, and scipy stays out of every `snakemake` command;
`cluster_t`, `paired` and `power` are imported from their modules.
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

__all__ = [
    "BootstrapSpec",
    "ClusterLayout",
    "QuestionDraws",
    "bh_adjust",
    "hierarchical_bootstrap",
    "holm_adjust",
    "layout",
    "newcombe_diff_interval",
    "percentile_interval",
    "question_draws",
    "rank_intervals",
    "wilson_interval",
]
