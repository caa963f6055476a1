"""Every findings table of one aggregate run, by the name its CSV has under results/summary/."""

from __future__ import annotations

import pandas as pd

from emgrid.findings.clustered import ranking, with_indicators
from emgrid.findings.effects import headline, trigger_effects
from emgrid.findings.transfer import transfer_tables
from emgrid.scores import Criterion
from emgrid.stats import BootstrapSpec
from emgrid.stats.adjust import DEFAULT_ALPHA

__all__ = ["FINDINGS", "findings"]

#: The findings tables `findings` returns and `aggregate_files` writes (one CSV each, under results/summary/).
FINDINGS = ("ranking", "trigger_effect", "headline", "transfer", "transfer_contrast")


def findings(
    scores: pd.DataFrame, criterion: Criterion, spec: BootstrapSpec, alpha: float = DEFAULT_ALPHA
) -> dict[str, pd.DataFrame]:
    """The clustered-statistics tables: ranking with rank intervals, paired trigger effects with adjusted p-values,
    the domain-level headline, and the transfer matrix with its diagonal contrast (see emgrid.findings.clustered,
    emgrid.findings.effects, emgrid.findings.transfer)."""
    ind = with_indicators(scores, criterion)
    effects, paired = trigger_effects(ind, spec)
    matrix, contrast = transfer_tables(ind, spec)
    return {
        "ranking": ranking(scores, criterion, spec),
        "trigger_effect": effects,
        "headline": headline(effects, alpha, spec, paired),
        "transfer": matrix,
        "transfer_contrast": contrast,
    }
