"""The throughput benchmark (a separate tool from the Locust harness around it).

    run.py       `make bench` (`python -m loadtest.bench`): Verify, VerifyBatch, VerifyStream and Settle
                 beside the limits of transport and signature, measured in the same run
    codec.py     the in-process, one-core figures: raw signature checks, the token codec, PyJWT
                 (`python -m loadtest.bench.codec`)
    workers.py   `make bench-workers` (`python -m loadtest.bench.workers`): `serve --workers N` beside one
"""
