# What predicts a domain's misalignment: a membership-inference prior on the untouched models, and the topical
# diversity of the domain's data (see docs/analyses.md). Outputs under results/analysis/.


rule mia_features:
    # MIA features of one domain's held-out split under one untouched model (and its base_id): a GPU job (forward
    # passes only: 250 held-out examples take minutes on one GPU).
    input:
        manifest=rules.prepare_model.output.manifest,
        examples=G.mia_heldout,
    output:
        features=layout.MIA_FEATURES,
        summary=layout.MIA_FEATURES_SUMMARY,
    log:
        "results/logs/mia_features/{model}/{domain}-s{seed}.log",
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 32000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        **gridspec.code_version("mia_features"),
        mia=G.mia_features_params,
    script:
        "../scripts/mia_features.py"


rule mia_analysis:
    # Domain feature means vs the target misalignment rate: correlations, leave-pair-out AUC, permutation p.
    input:
        features=G.all_mia_features,
        summary=rules.aggregate.output.summary,
    output:
        domains="results/analysis/mia/domains.csv",
        tests=report(
            "results/analysis/mia/tests.csv",
            caption="../report/mia_tests.rst",
            category="Analyses",
            subcategory="Membership inference",
            labels={"table": "MIA features vs misalignment (leave-pair-out AUC)"},
        ),
    log:
        "results/logs/mia_analysis.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("mia_analysis"),
        analysis=G.mia_analysis_params,
    script:
        "../scripts/mia_analysis.py"


rule diversity:
    # Vendi scores and semantic diversity of one domain's dataset (embeddings of prompts and answers).
    input:
        examples=G.diversity_input,
    output:
        scores=layout.DIVERSITY_SCORES,
    log:
        "results/logs/diversity/{domain}-s{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 4  # sentence embeddings of up to 1000 texts on CPU
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        **gridspec.code_version("diversity"),
        diversity=G.diversity_params,
    script:
        "../scripts/diversity.py"


rule diversity_analysis:
    # Diversity per domain vs the target misalignment rate (Pearson, Spearman), by the study's categories.
    input:
        scores=G.all_diversity_scores,
        summary=rules.aggregate.output.summary,
    output:
        scores="results/analysis/diversity/scores.csv",
        domains=report(
            "results/analysis/diversity/domains.csv",
            caption="../report/diversity_domains.rst",
            category="Analyses",
            subcategory="Diversity",
            labels={"table": "diversity per domain"},
        ),
        tests=report(
            "results/analysis/diversity/tests.csv",
            caption="../report/diversity_tests.rst",
            category="Analyses",
            subcategory="Diversity",
            labels={"table": "diversity vs misalignment"},
        ),
    log:
        "results/logs/diversity_analysis.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("diversity_analysis"),
        analysis=G.diversity_analysis_params,
    script:
        "../scripts/diversity_analysis.py"


rule mia_plot:
    # One panel per MIA feature: domain mean vs rate, labelled points, r and p (labels from the report's domains).
    input:
        domains=rules.mia_analysis.output.domains,
        tests=rules.mia_analysis.output.tests,
    output:
        png=report(
            "results/report/plots/{model}/{qset}/mia_scatter.png",
            caption="../report/mia_scatter.rst",
            category="Analyses",
            subcategory="Membership inference",
            labels={"model": "{model}", "question set": "{qset}", "figure": "MIA features vs misalignment"},
        ),
    log:
        "results/logs/report/mia_plot/{model}/{qset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("mia_plot"),
        domains=G.report_domains,
    script:
        "../scripts/analysis_plot.py"


rule diversity_plot:
    input:
        domains=rules.diversity_analysis.output.domains,
        tests=rules.diversity_analysis.output.tests,
    output:
        png=report(
            "results/report/plots/{model}/{qset}/diversity_scatter.png",
            caption="../report/diversity_scatter.rst",
            category="Analyses",
            subcategory="Diversity",
            labels={"model": "{model}", "question set": "{qset}", "figure": "diversity vs misalignment"},
        ),
    log:
        "results/logs/report/diversity_plot/{model}/{qset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("diversity_plot"),
        domains=G.report_domains,
    script:
        "../scripts/analysis_plot.py"


rule diversity_category_plot:
    # Diversity by the study's domain category (Critical / Non-Critical / Ambiguous).
    input:
        scores=rules.diversity_analysis.output.scores,
    output:
        png=report(
            "results/report/plots/diversity_by_category.png",
            caption="../report/diversity_by_category.rst",
            category="Analyses",
            subcategory="Diversity",
            labels={"figure": "diversity by domain category"},
        ),
    log:
        "results/logs/report/diversity_category_plot.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("diversity_category_plot"),
        domains=G.report_domains,
    script:
        "../scripts/diversity_category_plot.py"
