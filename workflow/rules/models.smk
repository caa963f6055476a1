rule prepare_model:
    # Resolve a model source to something loadable offline: a hub id as-is, or a folder we build/convert once
    # into <cache_dir>/models/ (outside results/: `rm -rf results` reconverts nothing).
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
