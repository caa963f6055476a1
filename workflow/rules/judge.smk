rule judge:
    # Every answer x metric through the judge; raw responses go to the content-addressed LLM response cache
    # (outside results/, see gridspec.llm_cache_dir) first, so a rerun, a crashed run or `rm -rf results` never
    # pays twice. Scores are derived downstream.
    # Sizes depend on the backend (see JUDGE_ON_GPU / JUDGE_LOCAL in common.smk).
    input:
        unpack(judge_inputs),
    output:
        judged="results/cells/{model}/{cell}/judged/{qset}.jsonl",
    log:
        "results/logs/judge/{model}/{cell}/{qset}.log",
    localrule: JUDGE_LOCAL
    conda:
        "../../envs/train.yaml"
    threads: 4 if JUDGE_ON_GPU else 1
    resources:
        gpu=1 if JUDGE_ON_GPU else 0,
        openai_calls=0 if JUDGE_ON_GPU else 1,
        mem_mb=lambda wildcards, attempt: (24000 if JUDGE_ON_GPU else 2000) * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("judge"),
        judge=judge_param,
        questions=question_judge_param,
        planned=answers_plan_param,
        question_options=question_options_param,
    script:
        "../scripts/judge.py"
