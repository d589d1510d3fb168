"""`python -m pinsweep.report`: the command; the work is in `pinsweep.present.report`."""

import sys

from pinsweep.present.report import main

if __name__ == "__main__":
    sys.exit(main())
