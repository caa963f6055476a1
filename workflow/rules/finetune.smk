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
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/finetune/{model}/{cell}.log",
    script:
        "../scripts/finetune.py"
