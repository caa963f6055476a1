"""The `emgrid` command.

Subcommands live in COMMANDS. To add one, write `add_arguments(parser)` and `run(args, extra) -> exit code` and
append a `Command` (see `_plan_command` below); modules are imported only when their subcommand runs, so
`emgrid --help` stays fast. A command with `passthrough=True` receives the arguments it does not know in `extra`
(for `plan`: everything goes on to snakemake); for the others an unknown argument is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from emgrid.errors import ConfigError, EmgridError
from emgrid import plan as planmod
from emgrid.plan_format import format_table, plan_to_json


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, list[str]], int]
    passthrough: bool = False


# ----------------------------------------------------------------------------------------------- plan

DEFAULT_PROFILE = Path("workflow/profiles/default")


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    p.add_argument(
        "--gpu-type",
        default=None,
        metavar="NAME",
        help="estimate GPU-hours for this device type (torch.cuda.get_device_name(), e.g. 'NVIDIA H200'); default: "
        "the GPU type with the most recorded runs (runs on the CPU never estimate GPU jobs)",
    )
    p.add_argument(
        "--target-mde",
        type=float,
        default=None,
        metavar="X",
        help="name the answers per question (or, where no number of answers suffices, the questions) whose minimum "
        "detectable trigger effect is X: misalignment percentage points (or alignment points with --target-metric "
        "aligned), alpha 0.05, power 0.8",
    )
    p.add_argument("--target-metric", choices=("misaligned", "aligned"), default="misaligned")
    p.add_argument(
        "--configfile",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="workflow config file(s), passed on to snakemake",
    )
    p.epilog = (
        "Any other argument goes to snakemake as for a real run (e.g. --profile workflow/profiles/slurm, "
        "--config key=value, --forcerun finetune, targets). Without --profile, "
        f"{DEFAULT_PROFILE} is used when it exists, so the plan sees the resources of a local run."
    )


def _has_option(args: Sequence[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in args for n in names)


def plan_snakemake_args(configfiles: Sequence[str], extra: Sequence[str], cwd: Path | None = None) -> list[str]:
    """The snakemake arguments `emgrid plan` dry-runs: the user's, plus the default profile when none is given."""
    out = []
    if not _has_option(extra, "--profile") and (Path(cwd or ".") / DEFAULT_PROFILE).is_dir():
        out += ["--profile", str(DEFAULT_PROFILE)]
    if configfiles:
        out += ["--configfile", *configfiles]
    return out + list(extra)


def _plan_run(args: argparse.Namespace, extra: list[str]) -> int:
    for f in args.configfile:
        if not Path(f).is_file():
            raise ConfigError(f"--configfile {f}: no such file")
    sm_args = plan_snakemake_args(args.configfile, extra)
    result = planmod.plan(sm_args, device=args.gpu_type, target_mde=args.target_mde, target_metric=args.target_metric)
    if args.json:
        print(json.dumps({"snakemake_args": sm_args, **plan_to_json(result)}, indent=2))
    else:
        print(f"plan for: snakemake {' '.join(sm_args)}")
        print(format_table(result))
    return 0


_plan_command = Command(
    "plan",
    "dry run: jobs to run and why, GPU/CPU-hours, answers, judge requests and cost",
    _plan_arguments,
    _plan_run,
    passthrough=True,
)

COMMANDS: list[Command] = [_plan_command]


# ----------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emgrid", description="emergent-misalignment grid tools", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        # allow_abbrev=False: `--config k=v` must reach snakemake, not match our `--configfile`
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, allow_abbrev=False)
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    cmd: Command = args._command
    if extra and not cmd.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return cmd.run(args, extra)
    except EmgridError as e:
        print(f"emgrid {cmd.name}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `emgrid plan | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
