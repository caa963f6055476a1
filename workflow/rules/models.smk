rule prepare_model:
    # Resolve a model source to something loadable offline: a hub id as-is, or a folder we build/convert once.
    output:
        manifest="results/models/{model}/manifest.json",
    params:
        spec=model_spec_param,
    threads: 2
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/prepare_model/{model}.log",
    script:
        "../scripts/prepare_model.py"
