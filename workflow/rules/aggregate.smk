rule aggregate:
    # Scores, categories and misalignment rates from the judged rows; thresholds live here, so changing one
    # reruns only this rule and the report.
    input:
        judged=all_judged,
    output:
        scores="results/summary/scores.csv",
        summary="results/summary/summary.csv",
    params:
        analysis=analysis_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule report:
    input:
        summary="results/summary/summary.csv",
        scores="results/summary/scores.csv",
        cards=all_cards,
        finetune=all_finetune_metrics,
    output:
        html="results/report/report.html",
    params:
        report=report_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/report.log",
    script:
        "../scripts/report.py"
