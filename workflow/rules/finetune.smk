rule finetune:
    # LoRA SFT of one cell: a GPU job. Sizes fit a 7B LoRA in bf16 and grow with each retry; the profile adds the
    # site's partition/GPU type (docs/cluster.md).
    input:
        manifest="results/models/{model}/manifest.json",
        train=finetune_train_input,
    output:
        adapter=directory("results/cells/{model}/{cell}/adapter"),
        metrics="results/cells/{model}/{cell}/finetune.json",
    log:
        "results/logs/finetune/{model}/{cell}.log",
    wildcard_constraints:
        cell=gridspec.FINETUNED_CELL_RE,
        model=LOCAL_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 32000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        **gridspec.code_version("finetune"),
        spec=finetune_param,
    script:
        "../scripts/finetune.py"


rule finetune_openai:
    # The same cell finetuned through the OpenAI fine-tuning API (models with source openai). No GPU: the job
    # uploads, starts the remote job and waits for it; its id is kept beside the output, so a killed run reattaches.
    input:
        manifest="results/models/{model}/manifest.json",
        train=finetune_train_input,
    output:
        metrics="results/cells/{model}/{cell}/finetune.json",
        events="results/cells/{model}/{cell}/openai_events.jsonl",
    log:
        "results/logs/finetune/{model}/{cell}.log",
    wildcard_constraints:
        cell=gridspec.FINETUNED_CELL_RE,
        model=API_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    resources:
        openai_finetune_jobs=1,
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 1440 * attempt,
    params:
        **gridspec.code_version("finetune_openai"),
        job=api_finetune_param,
    script:
        "../scripts/finetune_openai.py"
