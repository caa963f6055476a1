rule judge:
    # Every answer x metric through the judge; raw responses go to the content-addressed ledger first,
    # so a rerun or a crashed run never pays twice. Scores are derived downstream.
    input:
        unpack(judge_inputs),
    output:
        judged="results/cells/{model}/{cell}/judged/{qset}.jsonl",
    params:
        judge=judge_param,
        questions=question_judge_param,
        planned=answers_plan_param,
        question_options=question_options_param,
        ledger_dir=config["judge"]["ledger_dir"],
    resources:
        openai_calls=1,
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/judge/{model}/{cell}/{qset}.log",
    script:
        "../scripts/judge.py"
