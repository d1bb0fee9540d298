"""The Locust harness's machinery, behind the entry points on top of loadtest/.

    runner.py        `python -m loadtest steady|capacity|distributed`: a server on loopback, seeded, a
                     bounded Locust run, the verdict (make loadtest); its run helpers serve the failover rig
    settings.py      the harness's arguments (command line or loadtest/locust.conf), declared once
    seeding.py       issuers, keys, merchants, cards (EnrollCards) and e-cards through the public API
    run_context.py   what one run shares between the listeners and the users
    hooks.py         Locust event listeners: seeding, sharing the seed with workers, the gate, the report
    tally.py         verdicts by reason, wrong verdicts, late starts; summed on the master
    slo.py           thresholds and the gate: which threshold failed, if any
    baskets.py       the catalogues, baskets, and the check of a settlement's figures
    report.py        the text and JSON report beside Locust's CSV and HTML ones
    capacity_plot.py the capacity search's plot
"""
