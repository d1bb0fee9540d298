"""Locust load-test harness for ecard: a pharmacy checkout proven to take seconds under load.

The Locust entry points are on top:

    locustfile.py      the scenarios (tasks only): pharmacy checkout, hospital visit, identity check, hostile mix
    capacity.py        the same scenarios under the step shape that finds the highest arrival rate holding the SLO
    failover_probe.py  the plug-in of the failover run (every acknowledged settlement, written down)
    grpc_user.py       GrpcUser: gevent-ready gRPC, one SDK channel per user, an interceptor firing request events
    pacing.py          ScheduledUser: visits start on a schedule (open model), timed from their intended start
    counter.py         MerchantCounter: a pharmacy or hospital counter and what its visits need
    shapes.py          SteadyArrivals and StepArrivals (the capacity search)
    __main__.py        `python -m loadtest steady|capacity|distributed|failover` (the make targets)

and each tool has its subpackage: harness/ (the runner, settings, seeding, hooks, tally, SLO, report),
rig/ (replicas in network namespaces, failover, the throwaway CA), fuzz/ (`make fuzz`), measure/ (the
figures of docs/scaling.md), bench/ (`make bench`). loadtest is a client: it imports the SDK (ecard),
never the server (ecard_server), which it only starts as `ecard serve` processes.
"""
