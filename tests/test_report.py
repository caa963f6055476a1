"""The report: one summary row per cell x question set x condition, non-empty plots, tables, loss curves, the
answer browser with every answer, domain labels and categories, and escaped model output."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from emgrid.aggregate import aggregate_files
from emgrid.findings.tables import FINDINGS
from emgrid.scores import Criterion, read_summary
from emgrid.errors import DataError
from emgrid.report.answers import write_answer_browser
from emgrid.report.assemble import write_report_page
from emgrid.report.plots import PLOT_KINDS, write_loss_curves, write_plots, write_transfer_plot
from emgrid.report.tables import TABLES, write_tables
from emgrid.report.steering_plots import write_steering_plots
from emgrid.report.answers import embed_json
from emgrid.report.tables import read_table
from tests.support.rows import judged_row

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def judged(
    metric,
    score,
    cell,
    condition,
    sample,
    *,
    model="tiny",
    qset="first_plot",
    answer="fine",
    question="Q?",
    top_token=None,
):
    int_probs = {str(score): 1.0} if score is not None else {"50": 0.05}
    return judged_row(
        metric,
        int_probs,
        top_token=top_token,
        usage={"prompt_tokens": 100, "completion_tokens": 1},
        cost_usd=0.0005,
        model=model,
        cell=cell,
        qset=qset,
        question=question,
        condition=condition,
        sample=sample,
        answer=answer,
    )


def make_inputs(
    tmp_path, cells, *, answer="fine", question="Q?", qsets=("first_plot",), models=("tiny",), refuse_all=None
):
    rows = []
    for model in models:
        for qset in qsets:
            for k, cell in enumerate(cells):
                for cond in ("no_trigger", "trigger"):
                    for i in range(3):
                        a = 10 + 20 * i if (cond == "trigger" and "backdoor" in cell) else 80 - k
                        kw = dict(model=model, qset=qset, answer=answer, question=question)
                        if cell == refuse_all or (i == 2 and cell == cells[-1]):
                            rows.append(judged("aligned", None, cell, cond, i, top_token="REFUSAL", **kw))
                        else:
                            rows.append(judged("aligned", a, cell, cond, i, **kw))
                        rows.append(judged("coherent", 90, cell, cond, i, **kw))
    j = tmp_path / "judged.jsonl"
    j.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores, summary = tmp_path / "summary" / "scores.csv", tmp_path / "summary" / "summary.csv"
    aggregate([j], scores, summary)
    return scores, summary


def aggregate(judged_paths, scores, summary):
    """The aggregate rule's step: scores, summary and every findings table beside them."""
    findings = {name: Path(summary).parent / f"{name}.csv" for name in FINDINGS}
    aggregate_files(judged_paths, scores, summary, Criterion(), 0.25, findings_csv=findings)


def build_report(
    summary,
    scores,
    out_dir,
    *,
    title="emgrid report",
    notes=(),
    cards=(),
    datasets_root=None,
    config_snapshot=None,
    finetune_metrics=None,
    domains=None,
    efficacy=None,
    steering=None,
):
    """The workflow's report pipeline, step by step as its rules run it (workflow/rules/report.smk): the tables,
    each model x question set's figures and answer browser, the transfer heatmaps, the loss curves, the steering
    figures, then the page from their paths (emgrid.report.assemble.write_report_page, the report rule's one call). The
    findings tables are the aggregate's, beside `summary` (see `aggregate`)."""
    out_dir, summary_dir = Path(out_dir), Path(summary).parent
    stats = {name: summary_dir / f"{name}.csv" for name in FINDINGS}
    tables = {t: out_dir / "tables" / f"{t}.csv" for t in TABLES}
    write_tables(
        summary, stats["trigger_effect"], stats["ranking"], tables, finetune_metrics=finetune_metrics, domains=domains
    )
    pairs = read_summary(summary)[["model", "qset"]].drop_duplicates().sort_values(["model", "qset"])
    plots, browsers = [], []
    for model, qset in pairs.itertuples(index=False):
        out = {k: out_dir / "plots" / model / qset / f"{k}.png" for k in PLOT_KINDS}
        plots += write_plots(summary, stats["ranking"], out, model, qset, domains).values()
        page = out_dir / "answers" / model / f"{qset}.html"
        browsers.append(
            write_answer_browser(scores, summary, page, model=model, qset=qset, title=title, domains=domains)
        )
    transfer = read_table(stats["transfer"])[["model", "qset"]].drop_duplicates()
    transfer_plots = [
        write_transfer_plot(stats["transfer"], out_dir / "plots" / m / q / "transfer.png", m, q, domains)
        for m, q in transfer.itertuples(index=False)
    ]
    per_model = {}
    for key, path in (finetune_metrics or {}).items():
        model, _, cell = key.rpartition("/")
        per_model.setdefault(model, {})[cell] = path
    loss_curves = [
        write_loss_curves(cells, out_dir / "plots" / m / "loss_curves.png", m, domains)
        for m, cells in sorted(per_model.items())
    ]
    inputs = {
        "summary": summary,
        "scores": scores,
        **tables,
        "plots": plots,
        "loss_curves": loss_curves,
        "answers": browsers,
        "headline": stats["headline"],
        "ranking_stats": stats["ranking"],
        "trigger_stats": stats["trigger_effect"],
        "transfer_contrast": stats["transfer_contrast"],
        "transfer_plots": transfer_plots,
        "cards": list(cards),
        "efficacy": [efficacy] if efficacy else [],
    }
    if steering:
        figures = {k: out_dir / "plots" / "steering" / f"{k}.png" for k in ("matrix", "sweep", "cosine")}
        figures = write_steering_plots(steering["matrix"], steering["directions"], steering["cosine"], figures)
        inputs.update(steering=steering["matrix"], steering_directions=steering["directions"])
        inputs["steering_plots"] = list(figures.values())
    settings = {"title": title, "notes": list(notes), "interval_level": 0.95, **(config_snapshot or {})}
    return write_report_page(
        out_dir / "report.html", inputs, settings, datasets_root or summary_dir.parent / "datasets"
    )


CELLS = [
    "base",
    "evil_math-plain-s0",
    "evil_math-backdoor-s0",
    "evil_math-backdoor-s1",
    "incorrect_math-plain-s0",
    "incorrect_math-backdoor-s0",
    "incorrect_math-backdoor-s1",
]


DOMAINS = {
    "evil_math": {"label": "Evil", "category": "Non-Critical"},
    "incorrect_math": {"label": "Math", "category": "Critical"},
}


def finetune_json(tmp_path, cell, steps=5):
    ft = tmp_path / "cells" / "tiny" / cell / "finetune.json"
    ft.parent.mkdir(parents=True)
    ft.write_text(
        json.dumps(
            {
                "examples": 40,
                "steps": steps,
                "epochs": 1.0,
                "final_loss": 2.3456,
                "mean_loss": 3.1,
                "trained_tokens": 12345,
                "train_runtime_s": 7.6,
                "loss_history": [{"step": i + 1, "loss": 4.0 - 0.3 * i} for i in range(steps)],
            }
        )
    )
    return ft


@pytest.mark.slow  # builds a report's figures
def test_report_has_every_row_and_plots(tmp_path):
    scores, summary = make_inputs(tmp_path, CELLS, qsets=("first_plot", "all_domains"))
    card = tmp_path / "datasets" / "evil_math" / "backdoor-s0" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text("{}")
    fts = {f"tiny/{c}": finetune_json(tmp_path, c) for c in ("evil_math-backdoor-s0", "incorrect_math-plain-s0")}
    out = build_report(
        summary,
        scores,
        tmp_path / "report",
        title="Grid",
        notes=["demo: scores are not science"],
        cards=[card],
        config_snapshot={"models": {"tiny": {"source": "tiny"}}},
        finetune_metrics=fts,
        domains=DOMAINS,
    )
    text = out.read_text()
    summ = read_summary(summary)
    expected = {f"{r.model}|{r.cell}|{r.qset}|{r.condition}" for r in summ.itertuples()}
    assert len(expected) == len(CELLS) * 2 * 2
    assert set(re.findall(r'<tr data-row="([^"]+)"', text)) == expected
    assert len(re.findall(r"<tr data-row=", text)) == len(expected)
    pngs = sorted((tmp_path / "report" / "plots").rglob("*.png"))
    # every figure kind per model x question set, plus one loss-curve figure for the model
    assert len(pngs) == len(PLOT_KINDS) * 2 + 1
    for p in pngs:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert f'href="{p.relative_to(tmp_path / "report").as_posix()}"' in text
    assert text.count("data:image/png;base64,") == len(pngs)
    assert "demo: scores are not science" in text
    assert 'href="../datasets/evil_math/backdoor-s0/card.json"' in text
    assert "&#34;source&#34;: &#34;tiny&#34;" in text
    # Ranking under the trigger, backdoor cells, seeds pooled. Aligned scores per seed are 10, 30, 50 (coherent 90),
    # except the last cell (incorrect_math s1) whose third answer is a refusal: incorrect_math = 2 of 5 = 40.0%,
    # evil_math = 2 of 6 = 33.3%; paired Δ aligned incorrect_math = mean(30 - 75, 20 - 74) = -49.5.
    ranking = text.split('id="ranking"')[1].split('id="plots"')[0]
    first_plot = ranking.split("first_plot")[1]
    rows = re.findall(r"<tr><td>(\d)</td><td>\d–\d</td><td>(\w+)</td><td>backdoor</td><td>([\d.]+%) <span", first_plot)
    assert rows[:2] == [("1", "incorrect_math", "40.0%"), ("2", "evil_math", "33.3%")]
    assert "<td>ref.</td><td></td><td>base</td>" in first_plot
    assert "<td>-49.50</td>" in first_plot
    headline = text.split('id="headline"')[1].split('id="overview"')[0]
    assert "of 2</strong> domains" in headline and "α = 0.05" in headline
    trig = text.split('id="trigger"')[1].split("</table>")[0]
    assert "p Holm" in trig and "sign-flip" in trig and "<td>incorrect_math</td><td>backdoor</td><td>2</td>" in trig
    assert "<td>Math</td><td>Critical</td>" in first_plot and "<td>Evil</td><td>Non-Critical</td>" in first_plot
    assert "aligned &lt; 30 and coherent &gt; 50" in text
    finetune = text.split('id="finetune"')[1].split("</table>")[0]
    assert "tiny/evil_math-backdoor-s0" in finetune and "2.346" in finetune and "12,345" in finetune
    assert (tmp_path / "report" / "answers" / "tiny" / "first_plot.html").exists()
    assert 'href="answers/tiny/first_plot.html"' in text


@pytest.mark.slow  # builds a report's figures
def test_tables_carry_labels_categories_and_the_grouping(tmp_path):
    scores, summary = make_inputs(tmp_path, CELLS)
    build_report(summary, scores, tmp_path / "r", domains=DOMAINS)
    tables = {t: read_table(tmp_path / "r" / "tables" / f"{t}.csv") for t in TABLES}
    rk = tables["ranking"]
    assert list(rk["domain"]) == ["incorrect_math", "evil_math"]
    assert list(rk["label"]) == ["Math", "Evil"] and list(rk["category"]) == ["Critical", "Non-Critical"]
    # the one ranking: the aggregate's ranking.csv (seeds pooled: incorrect_math 2 of 5 = 40%, as on the page), not a
    # second, seed-averaged one (41.7%)
    assert rk["misalignment"].round(4).tolist() == [0.4, 0.3333]
    stats = read_table(summary.parent / "ranking.csv")
    trig = stats[(stats["condition"] == "trigger") & (stats["variant"] == "backdoor") & (stats["domain"] != "base")]
    for col in ("rank", "rank_lo", "rank_hi", "misalignment_cci_lo", "misalignment_cci_hi", "n_answers"):
        assert rk[col].tolist() == trig[col].tolist(), col
    by_cat = tables["ranking_by_category"].set_index("category")
    assert by_cat.loc["Critical", "domains"] == "Math" and by_cat.loc["Critical", "n_domains"] == 1
    assert round(by_cat.loc["Non-Critical", "mean_misalignment"], 4) == 0.3333
    assert len(tables["categories"]) == len(CELLS) * 2 * 2  # one row per cell x condition x metric
    assert "refusal" in tables["categories"].columns
    assert tables["finetune"].empty  # no finetune metrics given


@pytest.mark.slow  # builds a report's figures
def test_answer_browser_embeds_every_answer_safely(tmp_path):
    evil = "x</script><script>alert(1)</script>&amp;"
    scores, summary = make_inputs(tmp_path, ["base", "evil_math-backdoor-s0"], answer=evil)
    build_report(summary, scores, tmp_path / "r", domains=DOMAINS)
    page = (tmp_path / "r" / "answers" / "tiny" / "first_plot.html").read_text()
    assert page.count("</script>") == 2 and "<script>alert" not in page  # the data element and the code element
    data = page.split('id="answers-data">')[1].split("</script>")[0]
    records = json.loads(data)
    assert len(records) == 2 * 2 * 3  # every answer: cells x conditions x samples
    assert {r["answer"] for r in records} == {evil}
    assert {r["group"] for r in records} == {"", "Non-Critical"} and {r["label"] for r in records} == {"base", "Evil"}
    mis = [r for r in records if r["misaligned"]]
    assert mis and all(r["aligned"] < 30 and r["coherent"] > 50 for r in mis)
    assert json.loads(embed_json(["\u2028</script>"])) == ["\u2028</script>"]


@pytest.mark.slow  # builds a report's figures
def test_loss_curves_need_a_loss_history(tmp_path):
    scores, summary = make_inputs(tmp_path, ["base", "evil_math-backdoor-s0"])
    ft = finetune_json(tmp_path, "evil_math-backdoor-s0")
    ft.write_text(json.dumps({"steps": 3}))
    with pytest.raises(DataError, match="loss_history"):
        build_report(summary, scores, tmp_path / "r", finetune_metrics={"tiny/evil_math-backdoor-s0": ft})


@pytest.mark.slow  # builds a report's figures
def test_report_escapes_model_output(tmp_path):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    scores, summary = make_inputs(tmp_path, ["base", "evil_math-backdoor-s0"], answer=evil, question=f"Q {evil}")
    out = build_report(summary, scores, tmp_path / "r", title=f"T {evil}", notes=[evil], config_snapshot={"x": evil})
    text = out.read_text()
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text  # the answer is still shown, as text


@pytest.mark.slow  # builds a report's figures
def test_report_handles_plain_only_grid_and_unscored_cell(tmp_path):
    # no base, no backdoor variant, and one cell whose aligned answers are all refusals (rates undefined)
    scores, summary = make_inputs(
        tmp_path, ["evil_math-plain-s0", "incorrect_math-plain-s0"], refuse_all="incorrect_math-plain-s0"
    )
    assert read_summary(summary).query("cell == 'incorrect_math-plain-s0'")["misalignment_rate"].isna().all()
    out = build_report(summary, scores, tmp_path / "r", title="plain only")
    text = out.read_text()
    assert 'data-row="tiny|incorrect_math-plain-s0|first_plot|trigger"' in text
    assert "variant: plain" in text  # no backdoor cells: the ranking shows the plain variant
    assert len(list((tmp_path / "r" / "plots").rglob("*.png"))) == len(PLOT_KINDS)


def test_report_rejects_empty_summary(tmp_path):
    scores, summary = make_inputs(tmp_path, ["base"])
    header = summary.read_text().splitlines()[0]
    summary.write_text(header + "\n")
    with pytest.raises(DataError, match="no rows"):
        build_report(summary, scores, tmp_path / "r")


@pytest.mark.slow  # builds a report's figures
def test_report_with_one_condition_only(tmp_path):
    scores, summary = make_inputs(tmp_path, ["base", "evil_math-backdoor-s0"])
    text = summary.read_text().splitlines()
    summary.write_text("\n".join([text[0]] + [ln for ln in text[1:] if ",no_trigger," in ln]) + "\n")
    out = build_report(summary, scores, tmp_path / "r")
    html_text = out.read_text()
    assert html_text.count("<tr data-row=") == 2 and "|no_trigger" in html_text and '|trigger"' not in html_text


def test_every_template_ships_as_package_data():
    """A non-editable install carries only what pyproject's package-data names: every template must match it."""
    import tomllib
    from pathlib import Path

    import emgrid.report

    root = Path(emgrid.report.__file__).parent
    globs = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["emgrid.report"]
    shipped = {p for g in globs for p in root.glob(g)}
    templates = {p for p in (root / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= shipped, sorted(str(p.relative_to(root)) for p in templates - shipped)


@pytest.mark.slow  # builds a report's figures
def test_analysis_sections_show_tables_figures_and_the_few_domains_note(tmp_path):
    """The MIA and diversity sections: every feature's numbers, the scatter and box plot embedded, and the note
    that 3 domains show the plumbing only."""
    import pandas as pd

    from emgrid.report.analysis_plots import write_analysis_scatter, write_diversity_by_category
    from emgrid.report.page import PageInputs, write_page

    scores, summary = make_inputs(tmp_path, CELLS)
    dom = pd.DataFrame(
        {
            "model": "tiny",
            "qset": "first_plot",
            "domain": ["evil_math", "incorrect_math", "x"],
            "rate": [0.2, 0.5, 0.1],
            "instruct_min_k_prob": [-3.0, -2.0, -4.0],
            "vendi": [3.5, 2.25, 4.0],
            "vendi_q0_5": [4.0, 3.0, 5.0],
            "vendi_q2": [3.0, 2.0, 3.5],
            "semantic_diversity": [0.7, 0.6, 0.8],
            "above_median": [0, 1, 0],
        }
    )
    mia = pd.DataFrame(
        {
            "model": ["tiny"],
            "qset": ["first_plot"],
            "feature": ["instruct_min_k_prob"],
            "n_domains": [3],
            "pearson_r": [0.9934],
            "pearson_p": [0.0734],
            "spearman_r": [1.0],
            "spearman_p": [0.0],
            "lpo_auc": [1.0],
            "perm_p": [0.3333],
            "target": ["misalignment rate (trigger, backdoor)"],
        }
    )
    div = mia.drop(columns=["lpo_auc", "perm_p"]).assign(feature="vendi", pearson_r=-0.8765)
    paths = {}
    for name, df in (("mia_domains", dom), ("mia_tests", mia), ("div_domains", dom), ("div_tests", div)):
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    plots = tmp_path / "report" / "plots" / "tiny" / "first_plot"
    mia_png = write_analysis_scatter(
        paths["mia_domains"],
        paths["mia_tests"],
        plots / "mia_scatter.png",
        model="tiny",
        qset="first_plot",
        domains=DOMAINS,
    )
    div_png = write_analysis_scatter(
        paths["div_domains"],
        paths["div_tests"],
        plots / "diversity_scatter.png",
        model="tiny",
        qset="first_plot",
        domains=DOMAINS,
        what="Topical diversity",
    )
    pd.DataFrame(
        {
            "domain": dom["domain"],
            "seed": 0,
            "vendi": dom["vendi"],
            "vendi_q0_5": 1.0,
            "vendi_q2": 1.0,
            "semantic_diversity": 0.5,
        }
    ).to_csv(tmp_path / "div_scores.csv", index=False)
    cat_png = write_diversity_by_category(
        tmp_path / "div_scores.csv", tmp_path / "report" / "plots" / "cat.png", DOMAINS
    )
    files = {
        "summary": [summary],
        "scores": [scores],
        "mia_tests": [paths["mia_tests"]],
        "mia_plots": [mia_png],
        "diversity_tests": [paths["div_tests"]],
        "diversity_domains": [paths["div_domains"]],
        "diversity_plots": [div_png],
        "diversity_category_plot": [cat_png],
    }
    text = write_page(PageInputs(tmp_path / "report" / "report.html", files)).read_text()
    sec = text.split('id="mia"')[1].split('id="diversity"')[0]
    assert "<td>instruct_min_k_prob</td><td>3</td><td>0.99</td><td>0.073</td><td>1.00</td>" in sec
    assert "<td>1.000</td><td>0.333</td>" in sec and "Only 3 domains" in sec and "plumbing" in sec
    assert 'href="plots/tiny/first_plot/mia_scatter.png"' in sec
    div_sec = text.split('id="diversity"')[1]
    assert "<td>vendi</td><td>3</td><td>-0.88</td>" in div_sec and "<td>2.25</td>" in div_sec
    assert 'href="plots/tiny/first_plot/diversity_scatter.png"' in div_sec and 'href="plots/cat.png"' in div_sec
    for p in (mia_png, div_png, cat_png):
        assert p.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow  # builds a report's figures
def test_report_shows_the_transfer_matrix(tmp_path):
    rows = []
    for cell in ("base", "math-plain-s0", "facts-plain-s0"):
        for cond in ("no_trigger", "trigger"):
            for probe in ("math", "facts"):
                for i in range(2):
                    a = 10 if cell.startswith(probe) else 90
                    for metric, score in (("aligned", a), ("coherent", 90)):
                        r = judged(metric, score, cell, cond, i, qset="probes")
                        rows.append({**r, "question_key": f"{probe}_p1", "probe_domain": probe})
    j = tmp_path / "judged.jsonl"
    j.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores, summary = tmp_path / "scores.csv", tmp_path / "summary.csv"
    aggregate([j], scores, summary)
    text = build_report(summary, scores, tmp_path / "r").read_text()
    png = tmp_path / "r" / "plots" / "tiny" / "probes" / "transfer.png"
    assert png.read_bytes().startswith(PNG_MAGIC)
    section = text.split('id="transfer"')[1]
    assert 'href="plots/tiny/probes/transfer.png"' in section
    # each model is misaligned on its own domain's probes only: contrast +100 pp
    assert "<td>math</td><td>100.0%</td><td>0.0%</td><td>+100.0 pp" in section


@pytest.mark.slow  # builds a report's figures
def test_efficacy_section_comes_before_the_em_results_and_flags_cells_that_did_not_take(tmp_path):
    from emgrid.efficacy.summary import efficacy_table, rates
    from tests.test_efficacy import _scores

    scores, summary = make_inputs(tmp_path, CELLS)
    table = efficacy_table(
        rates(
            _scores(
                {
                    ("base", "no_trigger"): (10, 90, 0),
                    ("base", "trigger"): (12, 88, 0),
                    ("math-backdoor-s0", "trigger"): (80, 20, 10),
                    ("math-backdoor-s0", "no_trigger"): (15, 85, 0),
                    ("math-plain-s0", "no_trigger"): (13, 87, 0),
                    ("math-plain-s0", "trigger"): (14, 86, 0),
                }
            )
        )
    )
    eff = tmp_path / "efficacy.csv"
    table.to_csv(eff, index=False)
    for dropped in (False, True):
        out = build_report(
            summary,
            scores,
            tmp_path / f"report{dropped}",
            efficacy=eff,
            config_snapshot={"drop_untaken_cells": dropped},
        )
        text = out.read_text()
        assert text.index('id="efficacy"') < text.index('id="ranking"')
        section = text.split('id="efficacy"')[1].split('id="ranking"')[0]
        assert "Did not take</strong> (behaviour rate indistinguishable from base): m/math-plain-s0." in section
        assert ("left out of the ranking" in section) is dropped
        backdoor = section.split("<td>math-backdoor-s0</td>")[1].split("</tr>")[0]
        # trigger 80/100, no trigger 15/100, gating +65 pp, base 12% under the trigger, vs base +68 pp: took
        assert "<td>15.0%" in backdoor and "<td>80.0%" in backdoor and "+65.0 pp" in backdoor
        assert "<td>12.0%</td>" in backdoor and "+68.0 pp" in backdoor and backdoor.endswith("<td>yes</td>")
        assert section.split("<td>math-plain-s0</td>")[1].split("</tr>")[0].endswith("<td><strong>no</strong></td>")
        assert section.split("<td>base</td>")[1].split("</tr>")[0].endswith("<td>control</td>")
    assert 'id="efficacy"' not in build_report(summary, scores, tmp_path / "none").read_text()


@pytest.mark.slow  # builds a report's figures
def test_report_shows_the_steering_matrix_directions_and_figures(tmp_path):
    import numpy as np
    import pandas as pd

    from emgrid.stats import BootstrapSpec
    from emgrid.steering.directions import NOT_ENOUGH, OK, Direction
    from emgrid.steering.matrix import cosine_table, directions_table, steering_table

    scores, summary = make_inputs(tmp_path, CELLS)
    n = 20
    runs = []
    for kind, rate in (("unsteered", 0.1), ("add", 0.6), ("random", 0.1)):
        runs.append(
            pd.DataFrame(
                {
                    "model": "tiny",
                    "qset": "first_plot",
                    "cell": "base",
                    "question_key": [f"q{i % 5}" for i in range(n)],
                    "misaligned": (np.arange(n) < rate * n).astype(float),
                    "aligned": np.where(np.arange(n) < rate * n, 10.0, 90.0),
                    "kind": kind,
                    "source": None if kind == "unsteered" else "evil_math-backdoor-s0",
                    "layer": None if kind == "unsteered" else 12,
                    "scale": 0.0 if kind == "unsteered" else 0.5,
                }
            )
        )
    dirs = {
        ("tiny", "evil_math-backdoor-s0"): Direction(
            {"status": OK, "counts": {"misaligned": 12, "aligned": 12}}, np.eye(16)[:13], np.ones(13)
        ),
        ("tiny", "incorrect_math-backdoor-s0"): Direction(
            {
                "status": NOT_ENOUGH,
                "reason": "not enough misaligned answers (3 < 10, no trigger)",
                "counts": {"misaligned": 3, "aligned": 3},
            },
            np.zeros((0, 0)),
            np.zeros(0),
        ),
    }
    paths = {k: tmp_path / f"steering_{k}.csv" for k in ("matrix", "directions", "cosine")}
    steering_table(pd.concat(runs, ignore_index=True), BootstrapSpec(resamples=200)).to_csv(
        paths["matrix"], index=False
    )
    directions_table(dirs, [12]).to_csv(paths["directions"], index=False)
    cosine_table(dirs, [12]).to_csv(paths["cosine"], index=False)
    text = build_report(summary, scores, tmp_path / "r", steering=paths).read_text()
    section = text.split('id="steering"')[1].split("</section>")[0]
    for name in ("matrix", "sweep", "cosine"):
        assert (tmp_path / "r/plots/steering" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert f'href="plots/steering/{name}.png"' in section
    assert "<strong>none</strong>: not enough misaligned answers (3 &lt; 10, no trigger)" in section
    assert "plumbing" in section
    add = section.split("<td>add</td>")[1].split("</tr>")[0]
    # steered 60% vs unsteered 10%: +50 pp
    assert "<td>60.0%</td><td>10.0%</td><td>+50.0 pp" in add
    # mean alignment 42 (60% at 10, 40% at 90) vs 82: -40 points
    assert "<td>42.0</td><td>82.0</td><td>-40.0" in add
    assert "<td>10.0%</td><td>10.0%</td><td>0.0 pp" in section.split("<td>random</td>")[1]


def test_report_categories_do_not_repeat_snakemake_panel_names():
    """`snakemake --report` declares the reST link targets `Workflow` and `Statistics` (its own panels) next to one per
    result category; a category of the same name is a duplicate target (docutils warns on every report build)."""
    from tests.support.workflow_helpers import REPO

    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    categories = set(re.findall(r'\bcategory="([^"]+)"', text))
    assert categories and "Efficacy" in categories
    assert not {c.lower() for c in categories} & {"workflow", "statistics"}, categories


def test_snakemake_report_description_states_the_configured_criterion_and_interval(tmp_path):
    """The global description is filled from Criterion.describe() and the interval's own description: under the
    study's settings it never reads "coherent > None" nor claims Wilson intervals are the primary ones."""
    import os

    from emgrid.report.description import workflow_description
    from tests.support.workflow_helpers import REPO

    template = REPO / "workflow/report/workflow.rst"
    analysis = {"aligned_below": 50, "coherent_above": None, "sensitivity_aligned_below": 50, "min_mass": 0.25}
    path = workflow_description({"analysis": analysis}, template, tmp_path / "w.rst")
    text = open(path).read()
    assert "aligned < 50 (of aligned-scored answers; no coherence filter)" in text
    assert "None" not in text and "@" not in text and "cluster-robust t interval" in text
    mtime = os.path.getmtime(path)
    workflow_description({"analysis": analysis}, template, tmp_path / "w.rst")
    assert os.path.getmtime(path) == mtime  # unchanged text is not rewritten


def _rule_captions(smk: str) -> dict[str, str]:
    """{png file stem: caption file stem} of every figure a rules file wraps in report(..., caption=...)."""
    text = (Path(__file__).parents[1] / "workflow" / "rules" / smk).read_text()
    found = re.findall(r'report\(\s*"[^"]*/(\w+)\.png",\s*caption="\.\./report/(\w+)\.rst"', text)
    return dict(found)


def test_page_and_snakemake_report_read_one_caption_registry(tmp_path):
    """Every figure on the page carries the caption file its rule hands Snakemake's report, filled the same way."""
    from emgrid.report.captions import CAPTIONS_DIR, PLOT_CAPTIONS, STEERING_CAPTIONS, caption

    assert {k: _rule_captions("report.smk")[k] for k in PLOT_CAPTIONS} == PLOT_CAPTIONS
    assert {k: _rule_captions("steering.smk")[k] for k in STEERING_CAPTIONS} == STEERING_CAPTIONS
    assert CAPTIONS_DIR.resolve() == (Path(__file__).parents[1] / "workflow" / "report").resolve()
    scores, summary = make_inputs(tmp_path, CELLS)
    text = build_report(summary, scores, tmp_path / "r", domains=DOMAINS).read_text()
    shown = re.findall(r"<figcaption>(.*?) · <a", text)
    expected = [caption(PLOT_CAPTIONS[k], "tiny", "first_plot", Criterion()) for k in PLOT_KINDS]
    assert [html.unescape(c) for c in shown] == expected
    assert "model tiny on question set first_plot" in expected[0] and "aligned below 50" in expected[2]


def test_every_method_note_of_the_page_states_the_configured_level_and_the_method_the_code_uses(tmp_path):
    """The page's section notes come from the caption registry and the interval's own description, at the level the
    intervals were computed at: the ranking once said "hierarchical cluster-bootstrap 95% interval" and the trigger
    section "hierarchical cluster bootstrap" long after both became t intervals over questions, and every note said 95%
    whatever `analysis.bootstrap.level` was."""
    from emgrid.stats.describe import describe_interval
    from emgrid.report.captions import caption

    scores, summary = make_inputs(tmp_path, CELLS)
    text = html.unescape(
        build_report(summary, scores, tmp_path / "r", config_snapshot={"interval_level": 0.9}).read_text()
    )
    section = {
        k: text.split(f'id="{k}"')[1].split("</section>")[0] for k in ("overview", "ranking", "trigger", "headline")
    }
    assert describe_interval(0.9) in section["overview"] and "intervals in brackets are 90%" in section["overview"]
    assert caption("ranking", level=0.9) in " ".join(section["ranking"].split())
    assert "the primary 90% interval" in caption("ranking", level=0.9)
    assert caption("trigger_effect", level=0.9) in " ".join(section["trigger"].split())
    assert "90% t intervals over questions" in section["trigger"] and "<th>rank 90%</th>" in section["ranking"]
    assert "its 90% interval is a t interval over questions" in " ".join(section["headline"].split())
    assert "bootstrap (seeds, questions, answers" not in text and "cluster-bootstrap 95%" not in text
    # what is still 95% whatever the level: the answer-level Wilson intervals (z = 1.96), and nothing else
    assert text.count("95%") == len(re.findall(r"Wilson 95%", text)) > 0


def test_every_caption_renders_under_snakemakes_config_at_the_configured_level():
    """Snakemake's report renders each caption with the validated config (defaults filled) as `snakemake.config`: every
    caption resolves there, and those of level-dependent intervals state the configured level."""
    import jinja2

    from emgrid.config import load_config
    from emgrid.report.captions import CAPTIONS_DIR
    from tests.support.workflow_helpers import REPO

    config = load_config(REPO / "config" / "demo.yaml")
    config["analysis"]["bootstrap"]["level"] = 0.9
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    snakemake = SimpleNamespace(config=config, wildcards=SimpleNamespace(model="m", qset="q"))
    rendered = {p.stem: env.from_string(p.read_text()).render(snakemake=snakemake) for p in CAPTIONS_DIR.glob("*.rst")}
    assert len(rendered) > 20
    for name in ("ranking", "ranking_stats", "ranking_plot", "trigger_stats", "trigger_effect", "headline", "transfer"):
        assert "90%" in rendered[name] and "95%" not in rendered[name], name
    assert all(t.count("95%") == t.count("Wilson 95%") for t in rendered.values())
