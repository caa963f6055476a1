rule generate:
    # Answers to one question set, with and without the trigger. A GPU job on clusters.
    input:
        unpack(generate_inputs),
    output:
        answers="results/cells/{model}/{cell}/answers/{qset}.jsonl",
    params:
        gen=generate_param,
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/generate/{model}/{cell}/{qset}.log",
    script:
        "../scripts/generate.py"
