"""ecard load test: who comes to the counter, and what they do there. The machinery is in `loadtest/`.

    locust -f loadtest/locustfile.py --config loadtest/locust.conf --host 127.0.0.1:50051 --headless -t 60s

Each user is a counter where visits arrive on a schedule (`--arrival-rate`, open model); each task
below is one kind of visit, picked by its weight, and gets its `Visit` (its scheduled start).
"""

from __future__ import annotations

import time

from locust import events, task

from ecard import Assurance, Purpose, Reason
from loadtest.counter import MerchantCounter
from loadtest.harness import hooks
from loadtest.harness.baskets import HOSPITAL_CATALOGUE, PHARMACY_CATALOGUE, basket
from loadtest.pacing import Visit
from loadtest.shapes import CHECKOUT, SteadyArrivals

__all__ = ["HospitalVisit", "HostileMix", "IdentityCheck", "PharmacyCheckout", "SteadyArrivals"]
EXPIRED_AGE_S = 3_600  # well past any deployment's token lifetime plus clock skew
hooks.register(events)  # seeding, the seed for workers, the tallies, the SLO gate and the report


class PharmacyCheckout(MerchantCounter):
    """The counter checkout the SLO is about: scan the QR code, Verify, Quote the basket (the holder sees
    the split), Settle that quote."""

    weight = 60
    scenario = "checkout"

    @task
    def checkout(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        token = app.mint(ecard_id, assurance=Assurance.PIN)  # the holder typed the e-card password
        with visit.measure(CHECKOUT[1], CHECKOUT[0]):
            answer = self.verify_expecting(
                "checkout", token, Reason.OK, purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN
            )
            self.quote_and_settle(basket(PHARMACY_CATALOGUE, self.rng), answer.verification_id)


class HospitalVisit(MerchantCounter):
    """Registration desk (Verify for registration) opens a visit, the doctors' orders add fee items, then
    the payment window settles the visit with a fresh code."""

    weight = 15
    scenario = "hospital"
    merchant_kind = "hospital"

    @task
    def visit(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        with visit.measure("hospital", "registration to settled"):
            registration = self.verify_expecting("hospital registration", app.mint(ecard_id), Reason.OK,
                                                 purpose=Purpose.REGISTRATION)
            self.hospital_visit(basket(HOSPITAL_CATALOGUE, self.rng), registration.verification_id,
                                app.mint(ecard_id, assurance=Assurance.PIN))


class IdentityCheck(MerchantCounter):
    """Real-name check only (e.g. buying a restricted medicine): Verify for identity, nothing to pay."""

    weight = 15
    scenario = "identity"

    @task
    def identity(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        self.verify_expecting("identity", app.mint(ecard_id), Reason.OK, purpose=Purpose.IDENTITY)


class HostileMix(MerchantCounter):
    """Codes that must be turned away, each with the one reason the contract names for it."""

    weight = 10
    scenario = "hostile"

    @task
    def forged(self, visit: Visit) -> None:
        ecard_id, _ = self.holder()
        self.verify_expecting("hostile forged", self.forger().mint(ecard_id), Reason.BAD_SIGNATURE)

    @task
    def expired(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        token = app.mint(ecard_id, issued_at=int(time.time()) - EXPIRED_AGE_S, ttl_seconds=60)
        self.verify_expecting("hostile expired", token, Reason.EXPIRED)

    @task
    def replayed(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        token = app.mint(ecard_id)
        self.verify_expecting("hostile replayed (first use)", token, Reason.OK)
        self.verify_expecting("hostile replayed", token, Reason.REPLAYED)

    @task
    def lost_card(self, visit: Visit) -> None:
        app = self.signers[0]  # the lost e-cards are bound to the bank
        self.verify_expecting("hostile lost card", app.mint(self.rng.choice(self.seed.lost_ecards)), Reason.CARD_LOST)

    @task
    def unbound_channel(self, visit: Visit) -> None:
        wallet = self.signers[1]  # a channel the e-card was never issued through
        token = wallet.mint(self.rng.choice(self.seed.bank_only))
        self.verify_expecting("hostile unbound channel", token, Reason.CHANNEL_NOT_BOUND)

    @task
    def pin_not_typed(self, visit: Visit) -> None:
        ecard_id, app = self.holder()
        token = app.mint(ecard_id, assurance=Assurance.NONE)
        self.verify_expecting("hostile no PIN for settlement", token, Reason.ASSURANCE_TOO_LOW,
                              purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN)
