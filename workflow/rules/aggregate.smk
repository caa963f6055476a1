rule aggregate:
    # Scores, categories and misalignment rates from the judged rows; thresholds live here, so changing one
    # reruns only this rule and the report.
    input:
        judged=all_judged,
    output:
        scores="results/summary/scores.csv",
        summary=report(
            "results/summary/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary"},
        ),
    params:
        analysis=analysis_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"

