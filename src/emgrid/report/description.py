"""The Snakemake report's global description, with the criterion and interval text from the code that defines them.

Snakemake renders `report:` with only the config in reach, so a template could restate the criterion but not derive
it: workflow.rst once read "coherent > None" under paper-exact and "Rates carry Wilson 95% intervals" while the
primary interval is the clustered one. The Snakefile hands Snakemake a copy of the template whose placeholders
`@CRITERION@` and `@INTERVAL@` are filled by `Criterion.describe()` and `emgrid.stats.describe.describe_interval()`.
"""

from __future__ import annotations

from pathlib import Path

from emgrid.scores import analysis_specs
from emgrid.stats.describe import describe_interval

#: Where the filled copy goes (Snakemake's own folder in the working directory: nothing of results/).
OUT = Path(".snakemake") / "emgrid" / "workflow.rst"


def workflow_description(config: dict, template: str | Path, out: str | Path = OUT) -> str:
    """Fill the template from the config's `analysis` settings, write it to `out` (only when it changed, so a dry
    run leaves the file untouched) and return its absolute path for Snakemake's `report:` directive."""
    criterion, _, bootstrap, _ = analysis_specs(config["analysis"])
    text = Path(template).read_text(encoding="utf-8")
    text = text.replace("@CRITERION@", criterion.describe()).replace("@INTERVAL@", describe_interval(bootstrap.level))
    out = Path(out).resolve()
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return str(out)
