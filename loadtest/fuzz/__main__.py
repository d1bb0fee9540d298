"""`python -m loadtest.fuzz`: the fuzzer of `make fuzz` (loadtest/fuzz/run.py)."""

import sys

from loadtest.fuzz.run import main

sys.exit(main())
