rule generate:
    # Answers to one question set, with and without the trigger: a GPU job.
    input:
        unpack(G.generate_inputs),
    output:
        answers=layout.ANSWERS,
    log:
        "results/logs/generate/{model}/{cell}/{qset}.log",
    wildcard_constraints:
        model=G.local_model_re,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("generate"),
        gen=G.generate_params,
        questions=G.generate_questions,
    script:
        "../scripts/generate.py"


rule generate_openai:
    # Answers of an API model (source openai) through chat completions; every sample goes through the
    # content-addressed cache first, so a killed or rerun job never pays twice.
    input:
        unpack(G.generate_inputs),
    output:
        answers=layout.ANSWERS,
    log:
        "results/logs/generate/{model}/{cell}/{qset}.log",
    wildcard_constraints:
        model=G.api_model_re,
    conda:
        "../../envs/train.yaml"
    resources:
        openai_calls=1,
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("generate_openai"),
        gen=G.generate_params,
        questions=G.generate_questions,
    script:
        "../scripts/generate.py"
