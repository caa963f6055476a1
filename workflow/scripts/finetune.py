import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid import grid
from emgrid import jobparams
from emgrid.finetune import FinetuneSpec, finetune
from emgrid.throughput import record
from emgrid.throughput_model import finetune_record

cell = grid.parse_cell(snakemake.wildcards.model, snakemake.wildcards.cell)
# the params plus the batching settings: they change speed, not the adapter, so they must not rerun the job
spec = {**snakemake.params.spec, **jobparams.finetune_batching(snakemake.config, cell)}
metrics = finetune(
    snakemake.input.manifest,
    snakemake.input.train,
    snakemake.output.adapter,
    FinetuneSpec.from_dict(spec),
    snakemake.output.metrics,
    # not a param: how often to checkpoint does not change the adapter, so it must not rerun the job
    checkpoint_every=jobparams.finetune_checkpoint_every(snakemake.config, cell),
)
# this process's seconds and tokens (a resumed run's tokens_seen also counts the steps before the kill), plus the
# tokens and features the planner counts for it (emgrid.throughput_model), which the plan's fit uses
plan_tokens, features = finetune_record(metrics["spec"], snakemake.input.train, metrics)
record(snakemake.rule, time.time() - t0, metrics["tokens_seen_this_run"], plan_tokens=plan_tokens, **features)
