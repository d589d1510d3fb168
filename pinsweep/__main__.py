"""`pinsweep -m loader.pin_memory=true,false loader.num_workers=0,8`, also as `python -m pinsweep ...`."""

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pinsweep.config import misspelt_override
from pinsweep.job.start import start_job_server
from pinsweep.sweep.lock import cannot_write, refuse_if_in_use

PRINT_AND_EXIT = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion")


def _runs_jobs_here(arguments: list[str]) -> bool:
    """False when Hydra only prints, when jobs run in this process, or when a launcher runs them elsewhere."""
    for argument in arguments:
        if argument.split("=")[0] in PRINT_AND_EXIT or argument == "isolate=false":
            return False
        if argument.startswith("hydra/launcher="):
            return False
    return True


def _config_dir() -> Path:
    """conf/ as pinsweep.app finds it (in the package from a wheel, beside it in a checkout), without
    importing pinsweep.app (torch)."""
    package = Path(__file__).resolve().parent
    installed = package / "conf"
    return installed if (installed / "config.yaml").is_file() else package.parent / "conf"


def _override(arguments: list[str], key: str) -> str | None:
    """The last command-line value of `key` (also as `+key=` / `++key=`), its quotes removed."""
    value = None
    for argument in arguments:
        name, equals, text = argument.lstrip("+").partition("=")
        if equals and name == key:
            value = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
    return value


def _hydra_dirs(path: Path) -> dict[str, Any]:
    """A config file's `hydra:` node as written (mode, run.dir, sweep.dir), interpolations unresolved."""
    if not path.is_file():
        return {}
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return (node.get("hydra") or {}) if isinstance(node, dict) else {}


def _static(folder: str) -> str:
    """The folder a path names before its first interpolation (`multirun/${now:...}` -> `multirun`): the
    part that exists, or must be created, before Hydra resolves the rest."""
    if "${" not in folder:
        return folder
    prefix = folder.split("${", 1)[0]
    return (prefix.rstrip("/") if prefix.endswith("/") else os.path.dirname(prefix)) or "."


def output_folder(arguments: list[str]) -> tuple[str, str] | None:
    """(the folder this command line will write, the override that moves it): hydra.sweep.dir for a sweep
    (-m, hydra.mode=MULTIRUN, an experiment that sets it), else hydra.run.dir; from the command line,
    else the experiment file, else conf/config.yaml (`multirun/<time>`, `outputs/<time>`). None when
    Hydra only prints. A folder set in a config of the user's own (--config-dir) is checked as the
    sweep starts (pinsweep.sweep.lock.hold_until_exit)."""
    if any(argument.split("=")[0] in PRINT_AND_EXIT for argument in arguments):
        return None
    conf = _config_dir()
    experiment = _hydra_dirs(conf / "experiment" / f"{_override(arguments, 'experiment')}.yaml")
    defaults = _hydra_dirs(conf / "config.yaml")
    mode = _override(arguments, "hydra.mode") or experiment.get("mode")
    multirun = bool({"-m", "--multirun"} & set(arguments)) or str(mode).upper() == "MULTIRUN"
    kind = "sweep" if multirun else "run"
    key = f"hydra.{kind}.dir"
    folder = _override(arguments, key)
    for config in (experiment, defaults):
        folder = folder or (config.get(kind) or {}).get("dir")
    return (_static(str(folder)), key) if folder else None


def refuse_if_unwritable(arguments: list[str]) -> None:
    """Before Hydra writes anything (multirun.yaml, a job's log): exit 1 with one line when the output
    folder, or the nearest folder of it that exists, cannot be written."""
    if (found := output_folder(arguments)) is not None and (line := cannot_write(found[0])) is not None:
        sys.exit(f"pinsweep: {line}: choose another {found[1]}=")


def main() -> None:
    for argument in sys.argv[1:]:  # a misspelt key, refused at once with the nearest real one (not Hydra's "+key")
        if (line := misspelt_override(argument)) is not None:
            sys.exit(f"pinsweep: {line}")
    refuse_if_unwritable(sys.argv[1:])  # a folder this user cannot write: before anything is written there
    refuse_if_in_use(sys.argv[1:])  # a folder another sweep is running in: refuse before importing torch
    if _runs_jobs_here(sys.argv[1:]):
        try:
            start_job_server()  # it imports torch in the background while this process imports its own
        except ValueError as error:  # PINSWEEP_JOB_START names no start method
            sys.exit(f"pinsweep: {error}")
    from pinsweep.app import cli  # imports torch

    cli()


if __name__ == "__main__":
    main()
