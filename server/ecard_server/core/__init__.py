"""The domain core: no gRPC, no SQL, no Redis. Cut by kind, each importing only the kinds above it:

    records.py     plain data (cards, keys, merchants, settlements, refunds, audit events)
    rules/         pure rules: the settlement split and its drafts, refunds, input checks, idempotency
    ports.py       the interfaces storage implements (stores, ledger, nonce store, records, change bus)
    the services   verification.py, settlement.py, cards.py, admin.py, with what they share:
                   audit.py, caches.py, handles.py, identity.py, limits.py, nonces.py, events.py,
                   principals.py

`ecard_server.storage` implements the ports (SQL, Redis, and in memory: storage.memory); `rpc/`
calls the services. tests/unit/test_layers.py holds the core to this (no cycle, no grpc, no storage).
"""
