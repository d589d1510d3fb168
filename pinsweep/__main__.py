"""`pinsweep -m loader.pin_memory=true,false loader.num_workers=0,8`, also as `python -m pinsweep ...`."""

import sys

from pinsweep.config import misspelt_override
from pinsweep.job.start import start_job_server
from pinsweep.sweep.lock import refuse_if_in_use

PRINT_AND_EXIT = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion")


def _runs_jobs_here(arguments: list[str]) -> bool:
    """False when Hydra only prints, when jobs run in this process, or when a launcher runs them elsewhere."""
    for argument in arguments:
        if argument.split("=")[0] in PRINT_AND_EXIT or argument == "isolate=false":
            return False
        if argument.startswith("hydra/launcher="):
            return False
    return True


def main() -> None:
    for argument in sys.argv[1:]:  # a misspelt key, refused at once with the nearest real one (not Hydra's "+key")
        if (line := misspelt_override(argument)) is not None:
            sys.exit(f"pinsweep: {line}")
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
