"""The fuzzer (`make fuzz`, `python -m loadtest.fuzz`): hostile tokens against a real loopback server.

    run.py     the run: a fresh `ecard serve`, the cases over the public API, the verdict and the report
    cases.py   the hostile cases (bit flips, truncations, inserted bytes, huge varints, ...)
"""
