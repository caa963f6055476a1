rule build_dataset:
    # source -> transform -> filter -> sample -> variant; one dataset per (domain, variant, seed), shared by all models.
    input:
        sources=G.dataset_inputs,
    output:
        train=layout.TRAIN,
        heldout=layout.HELDOUT,
        card=layout.CARD,
    log:
        "results/logs/dataset/{domain}/{variant}-s{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("build_dataset"),
        spec=G.dataset_params,
    script:
        "../scripts/build_dataset.py"
