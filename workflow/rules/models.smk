rule prepare_model:
    # Resolve a model source to something loadable offline: a hub id as-is, or a folder we build/convert once
    # into <cache_dir>/models/ (outside results/: `rm -rf results` reconverts nothing).
    output:
        manifest=layout.MANIFEST,
    log:
        "results/logs/prepare_model/{model}.log",
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        **gridspec.code_version("prepare_model"),
        spec=G.model_spec,
    script:
        "../scripts/prepare_model.py"
