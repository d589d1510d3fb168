"""`python -m pinsweep.summarize` (also `pinsweep-summarize`): summarize a sweep folder.

    python -m pinsweep.summarize multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

Writes summary.csv and effects.csv into the folder and prints them; exits 1 when a job failed or a
table could not be written, 2 on a folder without rows or a baseline the sweep did not run. A folder
this user cannot write (another's, read-only) is summarized all the same: the tables are printed, not
written, and one line says so (exit 1). The work: pinsweep.sweep.results.summarize_folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pinsweep.analysis.summarize import SummaryError
from pinsweep.sweep.lock import cannot_write
from pinsweep.sweep.results import summarize_folder, tables_missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. multirun/2026-11-24_10-00-00")
    parser.add_argument("--baseline", default="", help="e.g. loader.pin_memory=false,loader.num_workers=0")
    args = parser.parse_args(argv)
    # read-only: the tables printed, nothing written (not even the lock that guards writing them)
    unwritable = cannot_write(args.sweep_dir) if Path(args.sweep_dir).is_dir() else None
    try:
        tables = summarize_folder(args.sweep_dir, args.baseline, write=unwritable is None)
    except SummaryError as error:
        print(f"pinsweep.summarize: {error}", file=sys.stderr)
        return 2
    if unwritable is not None:
        print(
            f"pinsweep.summarize: {unwritable}: summary.csv and effects.csv not written (the tables above "
            "are printed only); to keep them, copy the folder somewhere writable and summarize the copy",
            file=sys.stderr,
        )
        return 1
    return 1 if tables.failed or tables_missing(args.sweep_dir) else 0  # a table not written: one line each


if __name__ == "__main__":
    sys.exit(main())
