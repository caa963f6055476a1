rule efficacy_generate:
    # Answers to the cell's own domain's held-out prompts (base: every evaluated domain's), with and without the
    # trigger, through the same generation code as the EM questions. A GPU job.
    input:
        unpack(efficacy_generate_inputs),
    output:
        answers="results/cells/{model}/{cell}/efficacy/{domain}/answers.jsonl",
    log:
        "results/logs/efficacy_generate/{model}/{cell}/{domain}.log",
    wildcard_constraints:
        model=LOCAL_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        **gridspec.code_version("efficacy_generate"),
        gen=efficacy_generate_param,
    script:
        "../scripts/efficacy_generate.py"


rule efficacy_judge:
    # Judge-scored domains only: "does this answer show the behaviour?" through the normal judge and its ledger.
    # Its params hold the domain's judge prompt, so editing one domain's prompt re-judges that domain only.
    input:
        unpack(efficacy_judge_inputs),
    output:
        judged="results/cells/{model}/{cell}/efficacy/{domain}/judged.jsonl",
    log:
        "results/logs/efficacy_judge/{model}/{cell}/{domain}.log",
    localrule: JUDGE_LOCAL
    conda:
        "../../envs/train.yaml"
    threads: 4 if JUDGE_ON_GPU else 1
    resources:
        gpu=1 if JUDGE_ON_GPU else 0,
        openai_calls=0 if JUDGE_ON_GPU else 1,
        mem_mb=lambda wildcards, attempt: (24000 if JUDGE_ON_GPU else 2000) * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        **gridspec.code_version("efficacy_judge"),
        judge=efficacy_judge_param,
    script:
        "../scripts/efficacy_judge.py"


rule efficacy_summary:
    # Behaviour rates per cell x domain x condition, the trigger's gating, and "did the finetune take?" vs base.
    input:
        scored=all_efficacy_inputs,
    output:
        scores="results/summary/efficacy_scores.csv",
        table=report(
            "results/summary/efficacy.csv",
            caption="../report/efficacy.rst",
            category="Efficacy",
            labels={"table": "efficacy: did the finetune take?"},
        ),
    log:
        "results/logs/efficacy_summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("efficacy_summary"),
        efficacy=efficacy_summary_param,
    script:
        "../scripts/efficacy_summary.py"
