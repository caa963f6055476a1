from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.report import PageInputs, write_page

params = snakemake.params.report
files = {
    name: [Path(p) for p in ([paths] if isinstance(paths, str) else paths)] for name, paths in snakemake.input.items()
}
write_page(
    PageInputs(
        html=Path(snakemake.output.html),
        files=files,
        title=params["title"],
        notes=tuple(params["notes"]),
        cards={Path(c).parent.relative_to("results/datasets").as_posix(): Path(c) for c in snakemake.input.cards},
        config_snapshot=params,
    )
)
