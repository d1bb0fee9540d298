"""The replica rig: `ecard serve` replicas on their own addresses (needs root for ip netns).

    cluster.py        three replicas in network namespaces on a bridge, mTLS, a fresh PostgreSQL database
                      and the machine's Redis (make cluster-demo: python -m loadtest.rig.cluster)
    netns.py          the namespaces, the bridge and the Unix-socket relay
    failover.py       the SLO load on the replicas, one SIGKILLed and restarted (python -m loadtest failover)
    replay_probe.py   replayed tokens sent at every replica during the failover
    pki.py            the throwaway CA (the rig's and the tests' mTLS certificates)
"""
