rule aggregate:
    # Scores, categories and misalignment rates from the judged rows; thresholds live here, so changing one
    # reruns only this rule and the report.
    input:
        unpack(G.aggregate_inputs),
    output:
        scores=layout.SCORES_CSV,
        summary=report(
            layout.SUMMARY_CSV,
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary"},
        ),
        ranking=report(
            "results/summary/ranking.csv",
            caption="../report/ranking_stats.rst",
            category="Findings",
            labels={"table": "ranking with clustered intervals"},
        ),
        trigger_effect=report(
            "results/summary/trigger_effect.csv",
            caption="../report/trigger_stats.rst",
            category="Findings",
            labels={"table": "trigger effect (paired)"},
        ),
        headline=report(
            "results/summary/headline.csv",
            caption="../report/headline.rst",
            category="Findings",
            labels={"table": "headline"},
        ),
        transfer=report(
            "results/summary/transfer.csv",
            caption="../report/transfer.rst",
            category="Findings",
            labels={"table": "transfer matrix"},
        ),
        transfer_contrast=report(
            "results/summary/transfer_contrast.csv",
            caption="../report/transfer_contrast.rst",
            category="Findings",
            labels={"table": "transfer: diagonal contrast"},
        ),
    log:
        "results/logs/aggregate.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("aggregate"),
        analysis=G.analysis_params,
    script:
        "../scripts/aggregate.py"
