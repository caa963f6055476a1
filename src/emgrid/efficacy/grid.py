"""In-domain efficacy on a grid: which cell is evaluated on which domain, the datasets and paths it reads and
writes, and its jobs' params (plain values that change the job's output only)."""

from __future__ import annotations

from emgrid import layout
from emgrid.data.recipe import resolve_recipe
from emgrid.efficacy.spec import EfficacySpec, resolve_efficacy
from emgrid.grid import CONDITIONS, Cell, backdoor_settings, cells, datasets, deep_merge, sorted_plain
from emgrid.jobparams import api_models, judge_params, without_default_backend


def efficacy_spec(config: dict, domain: str) -> EfficacySpec:

    return resolve_efficacy(domain, config["domains"][domain])


def efficacy_domains(config: dict) -> list[str]:
    """Domains whose efficacy is evaluated (all, unless `efficacy.enabled` is off or a domain says scorer: none)."""
    if not config.get("efficacy", {}).get("enabled", True):
        return []
    return [d for d in config["domains"] if efficacy_spec(config, d).scorer != "none"]


def efficacy_targets(config: dict) -> list[tuple[Cell, str]]:
    """(cell, evaluated domain): each finetuned cell on its own domain, each base cell on every evaluated domain.
    Models finetuned through the OpenAI API are not evaluated (held-out answers are generated locally)."""
    domains, api = efficacy_domains(config), set(api_models(config))
    return [(c, d) for c in cells(config) for d in domains if (c.is_base or c.domain == d) and c.model not in api]


def efficacy_dataset(config: dict, cell: Cell, domain: str) -> tuple[str, str, int]:
    """The dataset whose held-out prompts a cell answers: its own; for base, the domain's first (variant, seed)."""
    if not cell.is_base:
        return (cell.domain, cell.variant, cell.seed)
    return min((d, v, s) for d, v, s in datasets(config) if d == domain)


def efficacy_scored_input(config: dict, cell: Cell, domain: str) -> str:
    """What the efficacy summary scores: answers (exact domains) or judged rows (judge domains)."""
    pattern = layout.EFFICACY_JUDGED if efficacy_spec(config, domain).scorer == "judge" else layout.EFFICACY_ANSWERS
    return layout.cell_path(pattern, cell, domain=domain)


def efficacy_n_answers(config: dict, cell: Cell, domain: str) -> int:
    """Answers one efficacy generate job writes: held-out prompts x samples x conditions."""
    spec = efficacy_spec(config, domain)
    sample = resolve_recipe_sample(config, domain)
    n = sample["heldout"] if spec.n_prompts is None else min(spec.n_prompts, sample["heldout"])
    gen = efficacy_generate_params(config, cell, domain)["spec"]
    return n * int(gen.get("samples_per_paraphrase") or 1) * len(CONDITIONS)


def resolve_recipe_sample(config: dict, domain: str) -> dict:

    return resolve_recipe(domain, config["domains"][domain]["recipe"])["sample"]


def efficacy_generate_params(config: dict, cell: Cell, domain: str) -> dict:
    """Generate settings (global <- model <- efficacy.generate), the domain's trigger, how the held-out rows carry
    it, and the parts of the domain's efficacy spec generation uses (n_prompts; scorer and exact kind, as exact
    scoring reads its references at generation). Not the judge prompt: editing it must not regenerate."""
    spec = deep_merge(config["generate"], config["models"][cell.model].get("generate"))
    spec = deep_merge(spec, config.get("efficacy", {}).get("generate"))
    backdoor = backdoor_settings(config, domain)
    params = {
        "spec": without_default_backend(config, cell, spec),
        "triggers": {"no_trigger": "", "trigger": backdoor["trigger"]},
        "backdoor": {"trigger": backdoor["trigger"], "position": backdoor.get("position", "user_prefix")},
        "efficacy": {
            k: v for k, v in efficacy_spec(config, domain).as_params().items() if k in ("scorer", "exact", "n_prompts")
        },
    }
    return sorted_plain(params)


def efficacy_judge_params(config: dict, domain: str) -> dict:
    """The judge settings plus the domain's behaviour prompt: editing one domain's prompt re-judges that domain."""
    return sorted_plain({**judge_params(config), "judge_prompt": efficacy_spec(config, domain).judge_prompt})


def efficacy_summary_params(config: dict) -> dict:
    """Per evaluated domain its scoring settings (the judge prompt excluded: its change reruns the judge job, whose
    output then reruns the summary), and the judge's probability-mass cut-off; `analysis.bootstrap` only when some
    held-out prompt gets several answers (its differences are then cluster-bootstrap ones; with one answer they are
    Wilson/Newcombe and the bootstrap settings change nothing, so they rerun nothing)."""
    specs = {
        d: {k: v for k, v in efficacy_spec(config, d).as_params().items() if k != "judge_prompt"}
        for d in efficacy_domains(config)
    }
    params = {"domains": specs, "min_mass": config["analysis"]["min_mass"]}
    samples = {
        efficacy_generate_params(config, c, d)["spec"].get("samples_per_paraphrase") or 1
        for c, d in efficacy_targets(config)
    }
    if max(samples, default=1) > 1:
        params["bootstrap"] = config["analysis"]["bootstrap"]
    return sorted_plain(params)


def all_efficacy_inputs(config: dict) -> list[str]:
    return [efficacy_scored_input(config, c, d) for c, d in efficacy_targets(config)]
