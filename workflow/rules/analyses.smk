# What predicts a domain's misalignment: a membership-inference prior on the untouched models, and the topical
# diversity of the domain's data (see docs/analyses.md). Outputs under results/analysis/.


rule mia_features:
    # MIA features of one domain's held-out split under one untouched model (and its base_id). A GPU job on
    # clusters (resources come from the profile, like finetune and generate).
    input:
        manifest="results/models/{model}/manifest.json",
        examples=mia_heldout_input,
    output:
        features="results/analysis/mia/{model}/{domain}-s{seed}.csv",
        summary="results/analysis/mia/{model}/{domain}-s{seed}.summary.csv",
    params:
        mia=mia_features_param,
    conda:
        "../../envs/train.yaml"
    log:
        "results/logs/mia_features/{model}/{domain}-s{seed}.log",
    script:
        "../scripts/mia_features.py"


rule mia_analysis:
    # Domain feature means vs the target misalignment rate: correlations, leave-one-domain-out AUC, permutation p.
    input:
        features=all_mia_features,
        summary="results/summary/summary.csv",
    output:
        domains="results/analysis/mia/domains.csv",
        tests="results/analysis/mia/tests.csv",
    params:
        analysis=mia_analysis_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/mia_analysis.log",
    script:
        "../scripts/mia_analysis.py"


rule diversity:
    # Vendi scores and semantic diversity of one domain's dataset (embeddings of prompts and answers).
    input:
        examples=diversity_input,
    output:
        scores="results/analysis/diversity/{domain}-s{seed}.json",
    params:
        diversity=diversity_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/diversity/{domain}-s{seed}.log",
    script:
        "../scripts/diversity.py"


rule diversity_analysis:
    # Diversity per domain vs the target misalignment rate (Pearson, Spearman), by the study's categories.
    input:
        scores=all_diversity_scores,
        summary="results/summary/summary.csv",
    output:
        scores="results/analysis/diversity/scores.csv",
        domains="results/analysis/diversity/domains.csv",
        tests="results/analysis/diversity/tests.csv",
    params:
        analysis=diversity_analysis_param,
    conda:
        "../../envs/analysis.yaml"
    log:
        "results/logs/diversity_analysis.log",
    script:
        "../scripts/diversity_analysis.py"
