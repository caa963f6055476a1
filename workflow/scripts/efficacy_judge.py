from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.efficacy.evaluate import judge_efficacy
from emgrid.jobparams import judge_transport, llm_cache_dir
from emgrid.io import read_jsonl, write_jsonl

# transport settings are not params: concurrency, timeouts, retries and polling change no score
judge = {**snakemake.params.judge, **judge_transport(snakemake.config)}
judged = judge_efficacy(
    read_jsonl(snakemake.input.answers),
    judge.pop("judge_prompt"),
    judge,
    llm_cache_dir(snakemake.config),  # not a param: moving the cache reruns nothing
    model_manifest=snakemake.input.get("judge_manifest"),
)
write_jsonl(snakemake.output.judged, judged)
