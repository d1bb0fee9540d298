"""Locust load-test harness for ecard: a pharmacy checkout proven to take seconds under load.

    locustfile.py    the scenarios (tasks only): pharmacy checkout, hospital visit, identity check, hostile mix
    capacity.py      the same scenarios under the step shape that finds the highest arrival rate holding the SLO
    grpc_user.py     GrpcUser: gevent-ready gRPC, one SDK channel per user, an interceptor firing request events
    pacing.py        ScheduledUser: visits start on a schedule (open model), timed from their intended start
    seeding.py       issuers, keys, merchants, cards (EnrollCards) and e-cards through the public API
    settings.py      the harness's arguments (command line or loadtest/locust.conf) and their typed view
    tally.py         verdicts by reason, wrong verdicts, late starts; summed on the master in distributed runs
    slo.py           thresholds and the gate: which threshold failed, if any
    shapes.py        SteadyArrivals and StepArrivals (the capacity search)
    hooks.py         Locust event listeners: seeding, sharing the seed with workers, the gate, the report
    report.py        the text and JSON report beside Locust's CSV and HTML ones
    __main__.py      `python -m loadtest`: server on loopback, seeded, a bounded run, the verdict (make loadtest)

`bench/` is the throughput benchmark (`make bench`, `make bench-workers`), a separate tool.
"""
