rule build_dataset:
    # source -> transform -> filter -> sample -> variant; one dataset per (domain, variant, seed), shared by all models.
    input:
        sources=dataset_inputs,
    output:
        train="results/datasets/{domain}/{variant}-s{seed}/train.jsonl",
        heldout="results/datasets/{domain}/{variant}-s{seed}/heldout.jsonl",
        card="results/datasets/{domain}/{variant}-s{seed}/card.json",
    log:
        "results/logs/dataset/{domain}/{variant}-s{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("build_dataset"),
        spec=dataset_param,
    script:
        "../scripts/build_dataset.py"
