from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.generate import GenerateSpec, generate_answers
from emgrid.io import write_jsonl
from emgrid.questions import load_questions

gen = snakemake.params.gen
rows = generate_answers(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    load_questions(snakemake.input.questions or snakemake.config["question_sets"][snakemake.wildcards.qset]["path"],
                   require_judge_prompts=False),
    GenerateSpec.from_dict(gen["spec"]),
    gen["triggers"],
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
    qset=snakemake.wildcards.qset,
)
write_jsonl(snakemake.output.answers, rows)
