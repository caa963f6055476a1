rule generate:
    # Answers to one question set, with and without the trigger: a GPU job.
    input:
        unpack(generate_inputs),
    output:
        answers="results/cells/{model}/{cell}/answers/{qset}.jsonl",
    log:
        "results/logs/generate/{model}/{cell}/{qset}.log",
    wildcard_constraints:
        model=LOCAL_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("generate"),
        gen=generate_param,
        questions=question_generate_param,
    script:
        "../scripts/generate.py"


rule generate_openai:
    # Answers of an API model (source openai) through chat completions; every sample goes through the
    # content-addressed cache first, so a killed or rerun job never pays twice.
    input:
        unpack(generate_inputs),
    output:
        answers="results/cells/{model}/{cell}/answers/{qset}.jsonl",
    log:
        "results/logs/generate/{model}/{cell}/{qset}.log",
    wildcard_constraints:
        model=API_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    resources:
        openai_calls=1,
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("generate_openai"),
        gen=generate_param,
        questions=question_generate_param,
    script:
        "../scripts/generate.py"
