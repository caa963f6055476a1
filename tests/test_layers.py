"""The library's shape, derived from its source: the import graph of src/emgrid (from the AST, in-function imports
included) has no cycle between modules, a lower layer never imports a higher one (docs/design.md, "Layers"), few
emgrid imports hide inside functions, and no module or function outgrows its size limit; and, from a dry run, that a
parse of the workflow loads none of the heavy libraries the jobs import."""

from __future__ import annotations

import ast
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.workflow_helpers import snakemake_cmd, tiny_config, write_config

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "emgrid"

# docs/design.md, "Layers": a module may import its own layer and the layers below, never a higher one. Keys are
# module or package names under emgrid; a module takes the layer of its longest matching key.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: leaves and plumbing that know nothing of the study
    ("grid", "errors", "yamlio", "numfmt", "io", "runlog", "parent_watch", "chat", "layout", "registry"),
    # 1: LLM access, prices, the question files, config loading
    ("llm", "prices", "questions", "config"),
    # 2: the stages' engines and their throughput records
    (
        "data",
        "models",
        "generation",
        "judge",
        "finetune",
        "api_finetune",
        "integrity",
        "throughput",
        "throughput_model",
        "throughput_fit",
        "jobparams",
    ),  # jobparams: the stages' job params from the config (emgrid.gridspec.Grid hands them to the rules)
    # 3: answers to numbers
    ("scores", "stats"),
    # 4: what the numbers say
    ("findings", "efficacy", "analyses", "steering", "aggregate"),
    # 5: the report
    ("report",),
    # 6: the grid's params and estimates, the planner, checks and the command line
    (
        "gridspec",
        "estimates",
        "plan",
        "plan_format",
        "preflight",
        "config_checks",
        "missing_results",
        "power_plan",
        "cli",
        "workflow_files",
    ),
)
MAX_DEFERRED = 20
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The emgrid modules an import statement names (a `from pkg import mod` names the submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        parent = ".".join(base + ([node.module] if node.module else []))
    else:
        parent = node.module or ""
    found = []
    for alias in node.names:
        if f"{parent}.{alias.name}" in MODULES:
            found.append(f"{parent}.{alias.name}")
        elif parent in MODULES:
            found.append(parent)
    return found


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """(module -> the emgrid modules it imports, [(module, imported, line)] of the imports inside functions)."""
    edges: dict[str, set[str]] = defaultdict(set)
    deferred = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        inside = set()
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside |= {id(n) for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, module, path.name == "__init__.py"):
                if target == module or module.startswith(target + "."):
                    continue  # a package's own submodule importing the package (its __init__)
                edges[module].add(target)
                if id(node) in inside:
                    deferred.add((module, target, node.lineno))
    return edges, sorted(deferred)


EDGES, DEFERRED = _imports()


def layer(module: str) -> int:
    rel = module.removeprefix("emgrid").lstrip(".")
    best, best_len = None, -1
    for index, keys in enumerate(LAYERS):
        for key in keys:
            if (rel == key or rel.startswith(key + ".")) and len(key) > best_len:
                best, best_len = index, len(key)
    if best is None:
        raise KeyError(f"{module} has no layer: add it to LAYERS here and to docs/design.md")
    return best


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_has_a_layer():
    missing = []
    for module in MODULES:
        if module == "emgrid":
            continue
        try:
            layer(module)
        except KeyError as err:
            missing.append(str(err))
    assert not missing, missing


def test_no_import_cycle_between_modules():
    assert _cycles(EDGES) == []


def test_cycle_finder_finds_a_planted_cycle():
    edges = defaultdict(set, {"emgrid.grid": {"emgrid.io"}, "emgrid.io": {"emgrid.errors"}})
    edges["emgrid.errors"].add("emgrid.grid")
    assert _cycles(edges) == [["emgrid.errors", "emgrid.grid", "emgrid.io"]]


def test_a_lower_layer_never_imports_a_higher_one():
    upward = [
        f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
        for m, targets in EDGES.items()
        if m != "emgrid"
        for t in targets
        if t != "emgrid" and layer(t) > layer(m)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_few_emgrid_imports_inside_functions():
    """Deferring an emgrid import hides a cycle or a layering knot; heavy optional dependencies (torch, vllm, ...)
    are deferred inside the modules that need them, so importing such a module stays cheap."""
    listed = "\n".join(f"{m}:{line} imports {t}" for m, t, line in sorted(DEFERRED))
    assert len(DEFERRED) <= MAX_DEFERRED, f"{len(DEFERRED)} deferred emgrid imports:\n{listed}"


def test_layer_of_a_module_is_its_longest_matching_key():
    assert layer("emgrid.grid") == 0
    assert layer("emgrid.steering.grid") == 4
    assert layer("emgrid.throughput_model") == 2
    with pytest.raises(KeyError, match="no layer"):
        layer("emgrid.nowhere")


def test_no_module_over_its_line_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_over_its_line_limit():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                size = node.end_lineno - first + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {size} lines")
    assert not long, long


def test_common_smk_is_thin():
    common = SRC.parent / "workflow" / "rules" / "common.smk"
    assert len(common.read_text().splitlines()) <= 200


#: Libraries a parse of the workflow must not load. Snakemake parses the Snakefile on every `snakemake` command and
#: twice more inside every cluster job (the job step, then the job itself), so each of these costs its import time
#: (scipy ~0.6 s, matplotlib ~0.3 s, torch ~1.4 s) that many times over; the jobs import what they use. (pandas and
#: jinja2 are Snakemake's own imports.)
HEAVY_AT_PARSE = ("scipy", "matplotlib", "torch", "transformers", "peft", "sklearn", "sentence_transformers")


def test_parsing_the_workflow_loads_no_heavy_library(tmp_path):
    cfg = write_config(tmp_path, tiny_config())
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run(
        snakemake_cmd(tmp_path, cfg, "-n", "--quiet"), capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "emgrid" in imported and "snakemake" in imported  # the check reads what the parse imported
    assert not imported & set(HEAVY_AT_PARSE), sorted(imported & set(HEAVY_AT_PARSE))
