"""Change notices that keep every process's caches fresh.

The core's services publish ("card", ecard_id), ("key", issuer_id), ("merchant", merchant_id),
("issuer", id) or ("catalogue", version) after the store's transaction commits; ("card", ALL) or
(ALL, ALL) drop a whole cache.
The bus is core.ports.ChangeBus: the local bus (storage.memory.LocalChangeBus) delivers at once to
this process; the Redis bus (storage.redis_bus.RedisChangeBus) also delivers to every other
process sharing the deployment, and (ALL, ALL) to this process's caches while Redis is out of
reach, since notices may have been missed.
"""

from __future__ import annotations

CARD = "card"
KEY = "key"
ISSUER = "issuer"
MERCHANT = "merchant"
CHANNEL_EVENTS = "channel-events"  # key: an issuer id whose outbox has new events
CERTIFICATE = "certificate"  # the deny list of client certificates (key: a fingerprint)
CATALOGUE = "catalogue"  # key: the new version
POLICY = "policy"  # the benefit policy (key: the new version)
COUNTER_BINDING = "counter-binding"  # key: a counter binding's code, just completed
ALL = "*"  # key meaning "everything of this kind"
