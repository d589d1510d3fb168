"""`python -m pinsweep.report` (also `pinsweep-report`): the report of a sweep folder.

    python -m pinsweep.report multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

Writes report.html (self-contained), report.md and the plots into the folder, and prints the conclusion;
summarizes first when summary.csv is missing or older than a job's row. Exits 2 on a folder without
rows, 1 when a file could not be written (each named in one line: a full disk) or the folder cannot be
written at all (another user's, read-only: refused in one line, nothing drawn; `pinsweep.summarize`
prints the tables of such a folder). The work: pinsweep.sweep.results.report_command.
"""

from __future__ import annotations

import argparse
import sys

from pinsweep.analysis.summarize import SummaryError
from pinsweep.sweep.lock import FolderUnwritable
from pinsweep.sweep.results import report_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. multirun/2026-11-24_10-00-00")
    parser.add_argument("--baseline", default="", help="re-summarize against e.g. loader.num_workers=0")
    args = parser.parse_args(argv)
    try:
        unwritten = report_command(args.sweep_dir, args.baseline)
    except SummaryError as error:
        print(f"pinsweep.report: {error}", file=sys.stderr)
        return 2
    except FolderUnwritable as error:
        print(
            f"pinsweep.report: {error}: the report and plots are written into the sweep folder; copy it "
            f"somewhere writable and report the copy (python -m pinsweep.summarize {args.sweep_dir} prints "
            "the tables without writing)",
            file=sys.stderr,
        )
        return 1
    return 1 if unwritten else 0  # each file not written (a full disk) was named in one line


if __name__ == "__main__":
    sys.exit(main())
