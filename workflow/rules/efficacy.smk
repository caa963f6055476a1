rule efficacy_generate:
    # Answers to the cell's own domain's held-out prompts (base: every evaluated domain's), with and without the
    # trigger, through the same generation code as the EM questions. A GPU job.
    input:
        unpack(G.efficacy_generate_inputs),
    output:
        answers=layout.EFFICACY_ANSWERS,
    log:
        "results/logs/efficacy_generate/{model}/{cell}/{domain}.log",
    wildcard_constraints:
        model=G.local_model_re,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        **gridspec.code_version("efficacy_generate"),
        gen=G.efficacy_generate_params,
    script:
        "../scripts/efficacy_generate.py"


rule efficacy_judge:
    # Judge-scored domains only: "does this answer show the behaviour?" through the normal judge and its ledger.
    # Its params hold the domain's judge prompt, so editing one domain's prompt re-judges that domain only.
    input:
        unpack(G.efficacy_judge_inputs),
    output:
        judged=layout.EFFICACY_JUDGED,
    log:
        "results/logs/efficacy_judge/{model}/{cell}/{domain}.log",
    localrule: G.judge_local
    conda:
        "../../envs/train.yaml"
    threads: 4 if G.judge_on_gpu else 1
    resources:
        gpu=1 if G.judge_on_gpu else 0,
        openai_calls=0 if G.judge_on_gpu else 1,
        mem_mb=lambda wildcards, attempt: (24000 if G.judge_on_gpu else 2000) * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        **gridspec.code_version("efficacy_judge"),
        judge=G.efficacy_judge_params,
    script:
        "../scripts/efficacy_judge.py"


rule efficacy_summary:
    # Behaviour rates per cell x domain x condition, the trigger's gating, and "did the finetune take?" vs base.
    input:
        scored=G.all_efficacy_inputs,
    output:
        scores="results/summary/efficacy_scores.csv",
        table=report(
            layout.EFFICACY_CSV,
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
        efficacy=G.efficacy_summary_params,
    script:
        "../scripts/efficacy_summary.py"
