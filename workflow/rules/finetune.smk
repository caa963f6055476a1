rule finetune:
    # LoRA SFT of one cell. A GPU job on clusters (resources come from the profile).
    input:
        manifest="results/models/{model}/manifest.json",
        train=finetune_train_input,
    output:
        adapter=directory("results/cells/{model}/{cell}/adapter"),
        metrics="results/cells/{model}/{cell}/finetune.json",
    params:
        spec=finetune_param,
    wildcard_constraints:
        cell=gridspec.FINETUNED_CELL_RE,
        model=LOCAL_MODEL_RE,
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/finetune/{model}/{cell}.log",
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
    params:
        job=api_finetune_param,
    wildcard_constraints:
        cell=gridspec.FINETUNED_CELL_RE,
        model=API_MODEL_RE,
    resources:
        openai_finetune_jobs=1,
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/finetune/{model}/{cell}.log",
    script:
        "../scripts/finetune_openai.py"
