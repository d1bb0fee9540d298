"""Measurement scripts whose figures docs/scaling.md quotes.

    propagation.py    card changes on one replica timed on the others (make cluster-propagation)
    nonce_memory.py   bytes of Redis memory per consumed nonce
    pg_size.py        PostgreSQL bytes per card
"""
