"""Documents the project cites exist (config comments, docs and code once cited a docs/paper-method.md that did not)."""

from __future__ import annotations

import re

from tests.support.workflow_helpers import REPO

CITING = ["README.md", "Snakefile", "docs/*.md", "config/**/*.yaml", "workflow/**/*", "src/**/*.py"]


def test_every_cited_doc_exists():
    cited = {}
    for pattern in CITING:
        for path in REPO.glob(pattern):
            if path.is_file():
                for ref in re.findall(r"docs/[\w./-]+?\.md", path.read_text(encoding="utf-8", errors="replace")):
                    cited.setdefault(ref, path.relative_to(REPO).as_posix())
    missing = {ref: where for ref, where in cited.items() if not (REPO / ref).is_file()}
    assert "docs/method.md" in cited and not missing
