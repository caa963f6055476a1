rule judge:
    # Every answer x metric through the judge; raw responses go to the content-addressed LLM response cache
    # (outside results/, see emgrid.jobparams.llm_cache_dir) first, so a rerun, a crashed run or `rm -rf results` never
    # pays twice. Scores are derived downstream.
    # Sizes depend on the backend (see judge_on_gpu / judge_local of emgrid.gridspec.Grid).
    input:
        unpack(G.judge_inputs),
    output:
        judged=layout.JUDGED,
    log:
        "results/logs/judge/{model}/{cell}/{qset}.log",
    localrule: G.judge_local
    conda:
        "../../envs/train.yaml"
    threads: 4 if G.judge_on_gpu else 1
    resources:
        gpu=1 if G.judge_on_gpu else 0,
        openai_calls=0 if G.judge_on_gpu else 1,
        mem_mb=lambda wildcards, attempt: (24000 if G.judge_on_gpu else 2000) * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("judge"),
        judge=G.judge_params,
        questions=G.judge_questions,
        planned=G.answers_plan,
        question_options=G.question_options,
    script:
        "../scripts/judge.py"
