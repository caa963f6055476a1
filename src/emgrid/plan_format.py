"""The plan as `emgrid plan` prints it: one row per rule with the totals and cost lines (`format_table`), or as
JSON (`plan_to_json`, `--json`). Pure functions of an emgrid.plan.Plan."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from emgrid.plan import Plan, Totals
from emgrid.power_plan import format_power
from emgrid.preflight import format_warnings


def _reasons_text(c: Counter) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def format_table(plan: Plan) -> str:
    """Human-readable plan: one row per rule, then the total and the cost lines."""
    head = ("rule", "run", "done", "est GPU-h", "max GPU-h", "CPU-h", "answers", "judge req", "why")
    rows = []
    for name in sorted(plan.rules, key=lambda r: (-plan.rules[r].to_run, r)):
        t = plan.rules[name]
        rows.append(
            (
                name + (" (local)" if name in plan.localrules else ""),
                str(t.to_run),
                str(t.complete),
                _est_cell(t),
                f"{t.gpu_hours:.2f}",
                f"{t.cpu_hours:.2f}",
                str(t.answers or ""),
                str(t.judge_requests or ""),
                _reasons_text(t.reasons),
            )
        )
    t = plan.total
    rows.append(
        (
            "total",
            str(t.to_run),
            str(t.complete),
            _est_cell(t),
            f"{t.gpu_hours:.2f}",
            f"{t.cpu_hours:.2f}",
            str(t.answers),
            str(t.judge_requests),
            "",
        )
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i in (0, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines = [fmt(head), fmt(tuple("-" * w for w in widths))]
    lines += [fmt(r) for r in rows[:-1]] + [fmt(tuple("-" * w for w in widths)), fmt(rows[-1])]
    lines.append("")
    lines.append(f"cells complete: {plan.cells_complete} of {plan.cells}")
    lines.append(gpu_hours_line(plan))
    lines.append(f"judge tokens (estimate): {t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion")
    lines.append(f"judge cost (estimate): ${t.cost_usd:,.2f} standard API, ${t.batch_cost_usd:,.2f} batch API")
    if t.train_tokens:
        lines.append(f"API finetuning (estimate): {t.train_tokens:,} training tokens, ${t.train_cost_usd:,.2f}")
    if t.gen_prompt_tokens or t.gen_completion_tokens:
        lines.append(
            f"API generation (estimate): {t.gen_prompt_tokens:,} prompt + {t.gen_completion_tokens:,} "
            f"completion tokens, ${t.gen_cost_usd:,.2f}"
        )
    lines += format_power(plan.power)
    lines.append(f"(DAG read in {plan.dag_seconds:.1f}s)")
    lines += [f"warning: {w}" for w in plan.warnings]
    if plan.before_you_run:
        lines += ["", format_warnings(plan.before_you_run)]
    return "\n".join(lines)


def _est_cell(t: Totals) -> str:
    """The estimated GPU-hours of a row: blank without GPU jobs to run, "-" when none has an estimate, "≥x" when
    only some do (the others are not counted), "x!" when some job's estimate exceeds its own upper bound (it would be
    killed at its runtime limit, or the rate does not fit these jobs: either way the figure is not to be trusted)."""
    if not (t.est_gpu_hours or t.est_missing):
        return ""
    if t.est_missing and not t.est_gpu_hours:
        return "-"
    return f"{'>=' if t.est_missing else ''}{t.est_gpu_hours:.2f}{'!' if t.est_over else ''}"


def gpu_hours_line(plan: Plan) -> str:
    """Estimated GPU-hours beside the upper bound, naming the calibration, or saying that there is none."""
    t = plan.total
    bound = f"upper bound {t.gpu_hours:,.2f} (the profile's runtime limits)"
    src = plan.calibration.source if plan.calibration else "none"
    if plan.device is None or (t.est_missing and not t.est_gpu_hours):
        on = f" for {plan.device}" if plan.device else ""
        return (
            f"GPU-hours: no calibration{on}: upper bound only, {t.gpu_hours:,.2f} (the profile's runtime limits; "
            f"calibration: {src})"
        )
    missing = f"; {t.est_missing} GPU job(s) without a rate not counted" if t.est_missing else ""
    line = f"GPU-hours: estimated {t.est_gpu_hours:,.2f} on {plan.device} (calibration: {src}){missing}; {bound}"
    if t.est_over:
        over = sorted(r for r, rt in plan.rules.items() if rt.est_over)
        line += (
            f"\nwarning: {t.est_over} GPU job(s) estimated above their upper bound (marked !, rules {over}): they "
            "would be killed at their runtime limit, or the rate does not fit them"
        )
    return line


def _totals_json(t: Totals) -> dict:
    d = asdict(t)
    d["reasons"] = dict(sorted(t.reasons.items()))
    d["gpu_hours"] = round(t.gpu_hours, 6)
    d["est_gpu_hours"] = round(t.est_gpu_hours, 6)
    d["cpu_hours"] = round(t.cpu_hours, 6)
    d["cost_usd"] = round(t.cost_usd, 6)
    d["batch_cost_usd"] = round(t.batch_cost_usd, 6)
    d["train_cost_usd"] = round(t.train_cost_usd, 6)
    d["gen_cost_usd"] = round(t.gen_cost_usd, 6)
    return d


def plan_to_json(plan: Plan) -> dict:
    return {
        "rules": {r: _totals_json(t) for r, t in sorted(plan.rules.items())},
        "total": _totals_json(plan.total),
        "cells": plan.cells,
        "cells_complete": plan.cells_complete,
        "unpriced_models": plan.unpriced_models,
        "warnings": plan.warnings,
        "localrules": list(plan.localrules),
        "dag_seconds": round(plan.dag_seconds, 3),
        "before_you_run": list(plan.before_you_run),
        "calibration": plan.calibration.source if plan.calibration else None,
        "device": plan.device,
        "power": plan.power,
    }
