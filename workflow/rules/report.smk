# The report: every figure and table is a declared output of its own rule, wrapped in report() so that
# `snakemake --report results/report.zip` shows it with its caption; the HTML page rule then assembles them into one
# self-contained page. Library: emgrid.report (docs/design.md "The report" has the recipe for adding a section).


rule plots:
    # The figures of one model x question set; re-drawn when the summary or a domain's label/category changes.
    input:
        summary=rules.aggregate.output.summary,
        ranking=rules.aggregate.output.ranking,
    output:
        ranking=report(
            "results/report/plots/{model}/{qset}/ranking.png",
            caption="../report/ranking_plot.rst",
            category="Ranking",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "ranking"},
        ),
        misalignment=report(
            "results/report/plots/{model}/{qset}/misalignment.png",
            caption="../report/misalignment.rst",
            category="Plots",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "misalignment rate"},
        ),
        sensitivity=report(
            "results/report/plots/{model}/{qset}/sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Plots",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "sensitivity rate"},
        ),
        alignment_trigger=report(
            "results/report/plots/{model}/{qset}/alignment_trigger.png",
            caption="../report/alignment_trigger.rst",
            category="Plots",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "alignment with vs without trigger"},
        ),
        categories=report(
            "results/report/plots/{model}/{qset}/categories.png",
            caption="../report/categories_plot.rst",
            category="Plots",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "judge outcome categories"},
        ),
    log:
        "results/logs/report/plots/{model}/{qset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("plots"),
        domains=G.report_domains,
    script:
        "../scripts/report_plots.py"


rule loss_curves:
    # Finetuning loss per cell of one model; depends only on the finetunes, so a threshold change never redraws it.
    input:
        metrics=G.model_finetune_metrics,
    output:
        png=report(
            "results/report/plots/{model}/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Finetuning",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "loss curves"},
        ),
    log:
        "results/logs/report/loss_curves/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("loss_curves"),
        domains=G.report_domains,
    script:
        "../scripts/report_loss_curves.py"


rule transfer_plot:
    # The transfer heatmap of one model x question set whose questions carry a `domain` (docs/statistics.md).
    input:
        transfer=rules.aggregate.output.transfer,
    output:
        png=report(
            "results/report/plots/{model}/{qset}/transfer.png",
            caption="../report/transfer_plot.rst",
            category="Transfer",
            subcategory="{model} · {qset}",
            labels={"model": "{model}", "question set": "{qset}", "figure": "transfer matrix"},
        ),
    log:
        "results/logs/report/transfer/{model}/{qset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("transfer_plot"),
        domains=G.report_domains,
    script:
        "../scripts/report_transfer.py"


rule report_tables:
    input:
        summary=rules.aggregate.output.summary,
        trigger=rules.aggregate.output.trigger_effect,
        ranking=rules.aggregate.output.ranking,
        finetune=G.all_finetune_metrics,
    output:
        ranking=report(
            "results/report/tables/ranking.csv",
            caption="../report/ranking.rst",
            category="Ranking",
            subcategory="tables (all models)",
            labels={"table": "ranking"},
        ),
        ranking_by_category=report(
            "results/report/tables/ranking_by_category.csv",
            caption="../report/ranking_by_category.rst",
            category="Ranking",
            subcategory="tables (all models)",
            labels={"table": "ranking by domain category"},
        ),
        trigger_effect=report(
            "results/report/tables/trigger_effect.csv",
            caption="../report/trigger_effect.rst",
            category="Tables",
            labels={"table": "trigger effect"},
        ),
        categories=report(
            "results/report/tables/categories.csv",
            caption="../report/categories.rst",
            category="Tables",
            labels={"table": "judge outcome categories"},
        ),
        cost=report(
            "results/report/tables/cost.csv",
            caption="../report/cost.rst",
            category="Tables",
            labels={"table": "judge cost"},
        ),
        finetune=report(
            "results/report/tables/finetune.csv",
            caption="../report/finetune.rst",
            category="Finetuning",
            subcategory="tables (all models)",
            labels={"table": "finetune metrics"},
        ),
    log:
        "results/logs/report/tables.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("report_tables"),
        domains=G.report_domains,
    script:
        "../scripts/report_tables.py"


rule answer_browser:
    # Every answer of one model x question set, searchable and filterable, as one static page.
    input:
        scores=rules.aggregate.output.scores,
        summary=rules.aggregate.output.summary,
    output:
        html=report(
            "results/report/answers/{model}/{qset}.html",
            caption="../report/answers.rst",
            category="Answers",
            labels={"model": "{model}", "question set": "{qset}"},
        ),
    log:
        "results/logs/report/answers/{model}/{qset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("answer_browser"),
        domains=G.report_domains,
        title=G.report_title,
    script:
        "../scripts/answer_browser.py"


rule report:
    # The self-contained HTML page: assembles the declared figures and tables (names match emgrid.report.page).
    input:
        unpack(report_page_inputs),
    output:
        html=report(layout.REPORT_PAGE, caption="../report/report.rst", category="Report"),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("report"),
        report=G.report_params,
    script:
        "../scripts/report.py"
