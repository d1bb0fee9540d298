"""ecard capacity search: the scenarios of locustfile.py under a rising arrival rate.

    locust -f loadtest/capacity.py --config loadtest/locust.conf --host 127.0.0.1:50051 --headless -t 10m

Each step holds a rate for --step-duration seconds and is judged against the SLO thresholds; the
run stops at the first step that breaks them and reports the highest rate that held.
"""

from __future__ import annotations

from loadtest.locustfile import HospitalVisit, HostileMix, IdentityCheck, PharmacyCheckout
from loadtest.shapes import StepArrivals

__all__ = ["HospitalVisit", "HostileMix", "IdentityCheck", "PharmacyCheckout", "StepArrivals"]
