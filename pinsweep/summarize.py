"""`python -m pinsweep.summarize`: the command; the work is in `pinsweep.present.terminal`."""

import sys

from pinsweep.present.terminal import main

if __name__ == "__main__":
    sys.exit(main())
