rule finetune:
    # LoRA SFT of one cell: a GPU job. Sizes fit a 7B LoRA in bf16 and grow with each retry; the profile adds the
    # site's partition/GPU type (docs/cluster.md).
    input:
        manifest=rules.prepare_model.output.manifest,
        train=G.finetune_train,
    output:
        adapter=directory(layout.ADAPTER),
        metrics=layout.FINETUNE_METRICS,
    log:
        "results/logs/finetune/{model}/{cell}.log",
    wildcard_constraints:
        cell=grid.FINETUNED_CELL_RE,
        model=G.local_model_re,
    conda:
        "../../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 32000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        **gridspec.code_version("finetune"),
        spec=G.finetune_params,
    script:
        "../scripts/finetune.py"


rule finetune_openai:
    # The same cell finetuned through the OpenAI fine-tuning API (models with source openai). No GPU: the job
    # uploads, starts the remote job and waits for it; its id is kept beside the output, so a killed run reattaches.
    input:
        manifest=rules.prepare_model.output.manifest,
        train=G.finetune_train,
    output:
        metrics=layout.FINETUNE_METRICS,
        events=layout.OPENAI_EVENTS,
    log:
        "results/logs/finetune/{model}/{cell}.log",
    wildcard_constraints:
        cell=grid.FINETUNED_CELL_RE,
        model=G.api_model_re,
    conda:
        "../../envs/train.yaml"
    resources:
        openai_finetune_jobs=1,
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 1440 * attempt,
    params:
        **gridspec.code_version("finetune_openai"),
        job=G.api_finetune_params,
    script:
        "../scripts/finetune_openai.py"
