"""A Locust plug-in for the failover run (`-f loadtest/locustfile.py,loadtest/failover_probe.py`): every
settlement the load generator got an answer for is written to $ECARD_FAILOVER_ACKS, one JSON line each,
so that the run can check afterwards that none of them was lost. It defines no users."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from locust import events

SETTLE = "/ecard.v1.Settlement/Settle"
_lock = threading.Lock()


@events.request.add_listener
def _record_acknowledged_settlement(name: str, response: Any = None, exception: Any = None, **_: Any) -> None:
    path = os.environ.get("ECARD_FAILOVER_ACKS")
    if not path or name != SETTLE or exception is not None or response is None:
        return
    line = json.dumps({"settlement_id": response.settlement_id, "merchant_id": response.merchant_id,
                       "total_fen": response.total_fen, "fund_fen": response.fund_paid_fen,
                       "account_fen": response.personal_account_paid_fen})
    with _lock, open(path, "a", encoding="utf-8") as acks:
        acks.write(line + "\n")
