"""`python -m loadtest.bench`: the benchmark of `make bench` (loadtest/bench/run.py)."""

import sys

from loadtest.bench.run import main

sys.exit(main())
