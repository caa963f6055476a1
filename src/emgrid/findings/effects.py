"""The trigger effect per domain, done as a paired, clustered comparison, and the study-style headline table.

Per model x domain x variant x question set the effect is trigger minus no trigger within (seed, question) pairs
(`emgrid.stats.paired`): in mean alignment ("points", the study's unit) and in misalignment rate, each with a
t interval over questions and a sign-flip permutation p-value over questions. p-values are adjusted across the
domains of one model x variant x question set (Holm: family-wise error; Benjamini-Hochberg: false discovery rate).
Difference in differences against the plain variant and against the base cell tells a backdoor apart from a trigger
string that perturbs every model.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from emgrid.findings.clustered import shared_questions
from emgrid.numfmt import fixed
from emgrid.stats import BootstrapSpec, bh_adjust, holm_adjust, layout
from emgrid.stats.paired import effect_difference, mean_effect_interval, paired_effect

EFFECT_KEY = ["model", "domain", "variant", "qset"]
#: (answer column, output stem): the effect on mean alignment (points) and on the misalignment rate.
EFFECT_METRICS = (("aligned", "aligned"), ("misaligned", "misalignment"))


def trigger_effects(ind: pd.DataFrame, spec: BootstrapSpec) -> tuple[pd.DataFrame, dict]:
    """One row per model x domain x variant x qset evaluated under both conditions (base cell: domain 'base'),
    and the PairedEffect objects by (model, domain, variant, qset, stem) for headline intervals."""
    recs, effects = [], {}
    shared = shared_questions(ind, spec)
    for key, g in ind.groupby(EFFECT_KEY, sort=True):
        if set(g["condition"]) != {"no_trigger", "trigger"}:
            continue
        lay = layout(g["cell"].to_numpy(), g["question_key"].to_numpy())
        treated = (g["condition"] == "trigger").to_numpy()
        rec = {**dict(zip(EFFECT_KEY, key)), "n_seeds": int(g["cell"].nunique())}
        for col, stem in EFFECT_METRICS:
            vals = g[col].to_numpy(dtype=float)
            eff = paired_effect(
                vals,
                treated,
                lay,
                spec.rng("effect", *key, col),
                resamples=spec.resamples,
                permutations=spec.permutations,
                level=spec.level,
                questions=shared[(key[0], key[3])],
            )
            effects[(*key, stem)] = eff
            rec[f"{stem}_no_trigger"] = (
                float(np.nanmean(vals[~treated])) if np.isfinite(vals[~treated]).any() else np.nan
            )
            rec[f"{stem}_trigger"] = float(np.nanmean(vals[treated])) if np.isfinite(vals[treated]).any() else np.nan
            rec.update(
                {
                    f"{stem}_diff": eff.estimate,
                    f"{stem}_diff_ci_lo": eff.ci_lo,
                    f"{stem}_diff_ci_hi": eff.ci_hi,
                    f"{stem}_p": eff.p_value,
                }
            )
            rec["n_pairs"] = max(rec.get("n_pairs", 0), eff.n_pairs)
        recs.append(rec)
    df = pd.DataFrame(recs)
    if df.empty:
        return df, effects
    _adjust(df)
    _did(df, effects, spec.level)
    return df, effects


def _adjust(df: pd.DataFrame) -> None:
    """Holm and BH across the domains (base excluded) of each model x variant x qset."""
    for stem in (s for _, s in EFFECT_METRICS):
        df[f"{stem}_p_holm"] = np.nan
        df[f"{stem}_p_bh"] = np.nan
        for _, g in df[df["domain"] != "base"].groupby(["model", "variant", "qset"]):
            df.loc[g.index, f"{stem}_p_holm"] = holm_adjust(g[f"{stem}_p"])
            df.loc[g.index, f"{stem}_p_bh"] = bh_adjust(g[f"{stem}_p"])


def _did(df: pd.DataFrame, effects: dict, level: float) -> None:
    """Difference in differences: this row's effect minus the plain variant's (same domain) and minus the base
    cell's (same model and qset)."""
    for ref in ("plain", "base"):
        for _, stem in EFFECT_METRICS:
            cols = [f"{stem}_did_{ref}", f"{stem}_did_{ref}_ci_lo", f"{stem}_did_{ref}_ci_hi"]
            vals = []
            for _, r in df.iterrows():
                ref_key = (r["model"], r["domain"] if ref == "plain" else "base", ref, r["qset"], stem)
                own = effects.get((r["model"], r["domain"], r["variant"], r["qset"], stem))
                other = effects.get(ref_key)
                skip = other is None or r["variant"] in (ref, "base")
                vals.append((np.nan,) * 3 if skip else effect_difference(own, other, level))
            df[cols] = pd.DataFrame(vals, index=df.index, columns=cols)


def headline(effects: pd.DataFrame, alpha: float, spec: BootstrapSpec, draws: dict | None = None) -> pd.DataFrame:
    """Per model x variant x qset, in the study's form: k of n domains with a significant trigger drop in alignment
    (Holm- and BH-adjusted), k with a significant misalignment increase, k whose drop exceeds the plain variant's,
    the mean drop over domains (points) with an interval, and the largest drops."""
    cols = [
        "model",
        "variant",
        "qset",
        "n_domains",
        "k_drop_holm",
        "k_drop_bh",
        "k_misalignment_up_holm",
        "k_misalignment_up_bh",
        "k_beyond_plain",
        "mean_drop",
        "mean_drop_ci_lo",
        "mean_drop_ci_hi",
        "largest_drops",
        "alpha",
        "study_k_misalignment_up",
        "study_share_misalignment_up",
        "study_mean_drop",
    ]
    if effects.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in effects[effects["domain"] != "base"].groupby(["model", "variant", "qset"], sort=True):
        g = g[g["aligned_diff"].notna()]
        drop = -g["aligned_diff"]
        rec = dict(zip(["model", "variant", "qset"], key))
        rec["n_domains"] = len(g)
        for adj in ("holm", "bh"):
            rec[f"k_drop_{adj}"] = int(((drop > 0) & (g[f"aligned_p_{adj}"] < alpha)).sum())
            rec[f"k_misalignment_up_{adj}"] = int(
                ((g["misalignment_diff"] > 0) & (g[f"misalignment_p_{adj}"] < alpha)).sum()
            )
        rec["k_beyond_plain"] = int((g["aligned_did_plain_ci_hi"] < 0).sum()) if "aligned_did_plain_ci_hi" in g else 0
        rec["mean_drop"] = float(drop.mean()) if len(g) else np.nan
        rec["mean_drop_ci_lo"], rec["mean_drop_ci_hi"] = _mean_drop_interval(g, draws, spec.level)
        top = g.assign(drop=drop).sort_values("drop", ascending=False).head(3)
        rec["largest_drops"] = "; ".join(
            f"{r.domain} {fixed(r.drop)} [{fixed(-r.aligned_diff_ci_hi)}, {fixed(-r.aligned_diff_ci_lo)}]"
            for r in top.itertuples()
        )
        rec["alpha"] = alpha
        rec.update(study_form(g))
        out.append(rec)
    return pd.DataFrame(out, columns=cols)


def study_form(g: pd.DataFrame) -> dict:
    """The study's own headline figures, to set beside the paper: the share of domains whose point estimate of the
    misalignment rate is higher with the trigger (its "77.8 % of domains" is 7 of 9 such domains, no test), and the
    mean over domains of the drop in pooled mean alignment (no-trigger answers' mean minus trigger answers' mean,
    unpaired; its "4.33 points"). Neither accounts for chance: the paired, corrected columns are the primary ones."""
    up = g["misalignment_trigger"] > g["misalignment_no_trigger"]
    drops = g["aligned_no_trigger"] - g["aligned_trigger"]
    return {
        "study_k_misalignment_up": int(up.sum()),
        "study_share_misalignment_up": float(up.mean()) if len(g) else np.nan,
        "study_mean_drop": float(drops.mean()) if drops.notna().any() else np.nan,
    }


def _mean_drop_interval(g: pd.DataFrame, draws: dict | None, level: float) -> tuple[float, float]:
    """The domains answered the same questions: per question the mean over domains of the trigger's effect on
    alignment is one observation of the mean drop (a question effect the domains share counts once), t over
    questions (`emgrid.stats.paired.mean_effect_interval`); the drop is the effect's negative."""
    if not draws or g.empty:
        return (np.nan, np.nan)
    stacked = [draws.get((r.model, r.domain, r.variant, r.qset, "aligned")) for r in g.itertuples()]
    if any(d is None for d in stacked):
        return (np.nan, np.nan)
    lo, hi = mean_effect_interval(stacked, level)
    return (-hi, -lo)
