rule aggregate:
    # Scores, categories and misalignment rates from the judged rows; thresholds live here, so changing one
    # reruns only this rule and the report.
    input:
        judged=all_judged,
        answers=all_answers,  # to check that every answer has its judged rows
    output:
        scores="results/summary/scores.csv",
        summary=report(
            "results/summary/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary"},
        ),
        ranking="results/summary/ranking.csv",
        trigger_effect="results/summary/trigger_effect.csv",
        headline="results/summary/headline.csv",
        transfer="results/summary/transfer.csv",
        transfer_contrast="results/summary/transfer_contrast.csv",
    params:
        analysis=analysis_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"

