"""Print emgrid's dependencies for the vLLM environment: pyproject.toml's list without the packages vLLM pins itself.

vLLM's wheel pins its CUDA torch and an older transformers (and, through its own dependencies, numpy), which conflict
with emgrid's CPU pins, so `pip install -e .` cannot go into an environment that has vLLM. `make install-vllm`
installs vLLM first, emgrid without dependencies, then this list under a constraint that keeps vLLM's versions.
"""

import re
import sys
import tomllib
from pathlib import Path

VLLM_PINNED = {"torch", "transformers", "numpy"}


def main() -> int:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        if name not in VLLM_PINNED:
            print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
