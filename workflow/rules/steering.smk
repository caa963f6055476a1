# Misalignment directions and steering (docs/steering.md): each source cell's direction from its own judged
# answers; each target cell's answers with that direction added at one layer (and the controls); the steering
# matrix, the directions' cosine similarity and their figures.


rule steering_direction:
    # Replays the cell's judged answers through its model (forward passes only): a GPU job.
    input:
        unpack(G.steering_direction_inputs),
    output:
        json=layout.DIRECTION_JSON,
        npz=layout.DIRECTION_NPZ,
    log:
        "results/logs/steering_direction/{model}/{cell}.log",
    wildcard_constraints:
        model=G.local_model_re,
        cell=grid.FINETUNED_CELL_RE,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        **gridspec.code_version("steering_direction"),
        steering=G.steering_direction_params,
    script:
        "../scripts/steering_direction.py"


checkpoint steering_generate:
    # Every run (source, layer, kind, scale) of one target cell: a GPU job that loads the target model once and puts
    # each run's hook on it in turn. Runs already in the steering answer cache (<cache_dir>/steering) are read back,
    # so adding a scale, layer or source generates only the new runs' answers. A checkpoint: once it has run,
    # Snakemake re-reads each run's answer-cache key (`runs`) and reruns only the judges whose key changed.
    input:
        unpack(G.steering_generate_inputs),
    output:
        answers=layout.STEERING_ANSWERS,
        runs=layout.STEERING_RUNS,
    log:
        "results/logs/steering_generate/{model}/{cell}/{qset}.log",
    wildcard_constraints:
        model=G.local_model_re,
    conda:
        "../../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 24000 * attempt,
        runtime=G.steering_generate_runtime,
    params:
        **gridspec.code_version("steering_generate"),
        runs=G.steering_generate_params,
        questions=G.generate_questions,
    script:
        "../scripts/steering_generate.py"


rule steering_judge:
    # One run's answers (its rows of the target's answers file) through the normal judge and its LLM response cache:
    # an answer judged before costs nothing again.
    input:
        unpack(G.steering_judge_inputs),
        answers=steering_judge_answers,
    output:
        judged=layout.STEERING_JUDGED,
    log:
        "results/logs/steering_judge/{model}/{cell}/{steer}/{qset}.log",
    wildcard_constraints:
        steer=STEER_RE,
    localrule: G.judge_local
    conda:
        "../../envs/train.yaml"
    threads: 4 if G.judge_on_gpu else 1
    resources:
        gpu=1 if G.judge_on_gpu else 0,
        openai_calls=0 if G.judge_on_gpu else 1,
        mem_mb=lambda wildcards, attempt: (24000 if G.judge_on_gpu else 2000) * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        **gridspec.code_version("steering_judge"),
        judge=G.judge_params,
        questions=G.judge_questions,
        planned=G.steering_plan,
        question_options=G.question_options,
        answers_key=G.steering_answers_key,
    script:
        "../scripts/judge.py"


rule steering_summary:
    # Steered minus unsteered misalignment per target x source x layer x scale (paired, clustered intervals), the
    # sources' directions (or why there is none) and their cosine similarity.
    input:
        unpack(G.steering_summary_inputs),
    output:
        matrix=report(
            "results/summary/steering.csv",
            caption="../report/steering.rst",
            category="Steering",
            labels={"table": "steering matrix"},
        ),
        directions=report(
            "results/summary/steering_directions.csv",
            caption="../report/steering_directions.rst",
            category="Steering",
            labels={"table": "misalignment directions"},
        ),
        cosine=report(
            "results/summary/steering_cosine.csv",
            caption="../report/steering_cosine.rst",
            category="Steering",
            labels={"table": "direction cosine similarity"},
        ),
    log:
        "results/logs/steering_summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("steering_summary"),
        summary=G.steering_summary_params,
    script:
        "../scripts/steering_summary.py"


rule steering_plots:
    input:
        matrix=rules.steering_summary.output.matrix,
        directions=rules.steering_summary.output.directions,
        cosine=rules.steering_summary.output.cosine,
    output:
        matrix=report(
            "results/report/plots/steering/matrix.png",
            caption="../report/steering_matrix.rst",
            category="Steering",
            labels={"figure": "steering matrix"},
        ),
        sweep=report(
            "results/report/plots/steering/sweep.png",
            caption="../report/steering_sweep.rst",
            category="Steering",
            labels={"figure": "steering sweep"},
        ),
        cosine=report(
            "results/report/plots/steering/cosine.png",
            caption="../report/steering_cosine_plot.rst",
            category="Steering",
            labels={"figure": "direction cosine similarity"},
        ),
    log:
        "results/logs/steering_plots.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        **gridspec.code_version("steering_plots"),
    script:
        "../scripts/steering_plots.py"
