"""emgrid: emergent-misalignment grids (domain x trigger x model), as a library the Snakemake workflow calls."""

__version__ = "0.1.0"
