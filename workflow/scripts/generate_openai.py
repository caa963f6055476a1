from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0])

from emgrid.api_generate import generate_answers_api
from emgrid.generate import GenerateSpec
from emgrid.io import write_jsonl
from emgrid.questions import load_questions

gen = snakemake.params.gen
rows = generate_answers_api(
    snakemake.input.manifest,
    snakemake.input.get("finetune"),
    load_questions(snakemake.input.questions, require_judge_prompts=False),
    GenerateSpec.from_dict(gen["spec"]),
    gen["triggers"],
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
    qset=snakemake.wildcards.qset,
    ledger_dir=snakemake.params.ledger_dir,
)
write_jsonl(snakemake.output.answers, rows)
