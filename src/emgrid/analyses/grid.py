"""The analyses on a grid (MIA prior, diversity): their specs from the config, their jobs (one per model x domain x
dataset seed, resp. domain x dataset seed), paths and params (plain values that change the job's output only), and
the whole-config check."""

from __future__ import annotations

from dataclasses import asdict

from emgrid import layout
from emgrid.analyses.spec import DiversitySpec, MiaSpec, TargetSpec
from emgrid.errors import ConfigError
from emgrid.grid import analysis_domain_seeds, domain_variants, sorted_plain
from emgrid.jobparams import api_models


def mia_spec(config: dict) -> MiaSpec:

    return MiaSpec.from_dict(config.get("analyses", {}).get("mia"))


def diversity_spec(config: dict) -> DiversitySpec:

    return DiversitySpec.from_dict(config.get("analyses", {}).get("diversity"))


def mia_feature_path(model: str, domain: str, seed: int, summary: bool = False) -> str:
    pattern = layout.MIA_FEATURES_SUMMARY if summary else layout.MIA_FEATURES
    return pattern.format(model=model, domain=domain, seed=seed)


def mia_models(config: dict) -> list[str]:
    """Models the MIA features are computed for: those with local weights (an API model gives no token
    log-probabilities of arbitrary text)."""
    api = set(api_models(config))
    return [m for m in config["models"] if m not in api]


def all_mia_features(config: dict) -> list[str]:
    if not mia_spec(config).enabled:
        return []
    return [mia_feature_path(m, d, s) for m in mia_models(config) for d, s in analysis_domain_seeds(config)]


def all_diversity_scores(config: dict) -> list[str]:
    if not diversity_spec(config).enabled:
        return []
    return [layout.DIVERSITY_SCORES.format(domain=d, seed=s) for d, s in analysis_domain_seeds(config)]


def analysis_outputs(config: dict) -> list[str]:
    """The tables of the enabled analyses (targets of `rule all` and inputs of the report)."""
    return ([*layout.MIA_OUTPUTS] if mia_spec(config).enabled else []) + (
        [*layout.DIVERSITY_OUTPUTS] if diversity_spec(config).enabled else []
    )


def mia_feature_params(config: dict, domain: str) -> dict:
    spec = mia_spec(config)
    return sorted_plain({**spec.feature_params(), "variant": analysis_variant(config, spec, domain)})


def target_params(config: dict) -> dict:

    return sorted_plain(asdict(TargetSpec.from_dict(config.get("analyses", {}).get("target"))))


def mia_analysis_params(config: dict) -> dict:
    spec = mia_spec(config)
    return sorted_plain({"target": target_params(config), "n_permutations": spec.n_permutations, "seed": spec.seed})


def diversity_params(config: dict, domain: str) -> dict:
    spec = diversity_spec(config)
    return sorted_plain({**spec.job_params(), "variant": analysis_variant(config, spec, domain)})


def diversity_analysis_params(config: dict) -> dict:
    """Only the target rate: labels and categories are the report's (emgrid.jobparams.report_domains), so editing one
    redraws figures without recomputing the analysis."""
    return sorted_plain({"target": target_params(config)})


def analysis_variant(config: dict, spec, domain: str) -> str:
    """The dataset variant an analysis reads for `domain`: its configured one, or the domain's own first variant
    when the domain does not build that one (preflight warns)."""
    variants = domain_variants(config, domain)
    return spec.variant if spec.variant in variants else variants[0]


def check_analyses(config: dict) -> list[str]:
    """The analyses' settings (errors raise); returns warnings for domains read in another variant than configured."""

    TargetSpec.from_dict(config.get("analyses", {}).get("target"))
    target_q = config.get("analyses", {}).get("target", {}).get("qset")
    if target_q is not None and target_q not in config["question_sets"]:
        raise ConfigError(
            f"analyses.target.qset: no question set {target_q!r} (known: {sorted(config['question_sets'])})"
        )
    warnings = []
    for name, spec in (("mia", mia_spec(config)), ("diversity", diversity_spec(config))):
        for d in config["domains"] if spec.enabled else ():
            if spec.variant not in domain_variants(config, d):
                warnings.append(
                    f"analyses.{name}.variant: domain {d!r} does not build the {spec.variant!r} variant; "
                    f"its {analysis_variant(config, spec, d)!r} data is read instead"
                )
    return warnings
