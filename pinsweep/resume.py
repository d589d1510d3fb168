"""`python -m pinsweep.resume`: the command; the work is in `pinsweep.sweep.resume`."""

import sys

from pinsweep.sweep.resume import main

if __name__ == "__main__":
    sys.exit(main())
