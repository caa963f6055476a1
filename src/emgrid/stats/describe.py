"""The primary interval in words, for the report page and the Snakemake report: one definition, beside the code that
computes it (`emgrid.stats.cluster_t`).

Its own module, importing nothing: the Snakefile fills the Snakemake report's description with it on every parse
(`emgrid.report.description`), and the interval's module would bring scipy into every `snakemake` command.
"""

from __future__ import annotations


def level_text(level: float) -> str:
    """An interval level as the reports write it (0.95 -> "95%", 0.975 -> "97.5%"), as the captions do."""
    return f"{level * 100:g}%"


def describe_interval(level: float = 0.95) -> str:
    """The primary interval in words, for the reports (one definition, beside the code that computes it)."""
    return (
        f"a {level_text(level)} cluster-robust t interval over questions (answers to one question pooled over seeds; "
        "Q - 1 degrees of freedom; for rates the quasi-score form, whose variance has a within-question binomial part "
        "and a between-question part, the larger of an overdispersed-binomial and a constant logit-scale spread; for "
        "mean scores the two-part form, the share of scores below the midpoint through that variance function), for "
        "the cell's rate or mean on the population of evaluation questions for the model(s) trained: seed-to-seed "
        "variation is not in it, and with one seed it cannot be measured; at a rate of exactly 0 or 1, Wilson's "
        "interval on the number of questions"
    )
