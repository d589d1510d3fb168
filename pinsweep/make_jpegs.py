"""`python -m pinsweep.make_jpegs`: the command; the work is in `pinsweep.input.jpegs`."""

import sys

from pinsweep.input.jpegs import main

if __name__ == "__main__":
    sys.exit(main())
