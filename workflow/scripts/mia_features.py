import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.analyses.mia import mia_features_file
from emgrid.analyses.spec import MiaSpec
from emgrid.throughput import record
from emgrid.throughput_model import forward_features

spec = MiaSpec.from_dict(snakemake.params.mia)
df = mia_features_file(
    snakemake.input.manifest,
    snakemake.input.examples,
    spec,
    snakemake.output.features,
    snakemake.output.summary,
    model=snakemake.wildcards.model,
    domain=snakemake.wildcards.domain,
    seed=int(snakemake.wildcards.seed),
)
# the forward passes' tokens: each example once under the model, once more under its base model when it has one
passes = 2 if any(c.startswith("base_") for c in df.columns) else 1
tokens = int((df["n_prompt_tokens"] + df["n_answer_tokens"]).sum()) * passes
# steps: batches of the examples, once per model scored
features = forward_features(len(df) * passes, spec.batch_size, 0, spec.dtype)
record(snakemake.rule, time.time() - t0, tokens, answers=len(df), **features)
