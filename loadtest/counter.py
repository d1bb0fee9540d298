"""MerchantCounter: a pharmacy or hospital counter, and what its visits need.

The holder's phone is simulated with the channel's own `TokenSigner` (as the channel app mints the
QR code); the counter verifies and settles through the SDK's `PharmacyClient`. Every Verify answer
goes through `verify_expecting`, which counts it by reason and reports a wrong verdict as a failed
request of type `verdict`, apart from transport errors (type `grpc`).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import ClassVar

from ecard import (
    Assurance,
    DrugClass,
    PharmacyClient,
    Purpose,
    Reason,
    SettlementStatus,
    TokenSigner,
    Verdict,
    generate_private_key,
    line_item,
)
from ecard.v1 import settlement_pb2, verifier_pb2
from loadtest.pacing import ScheduledUser, WrongAnswer

VERDICT_REQUEST_TYPE = "verdict"

# (code, name, drug class, unit price in fen): what a community pharmacy in Ningbo sells most.
PHARMACY_CATALOGUE = (
    ("XJ01CAA040A001", "阿莫西林胶囊 0.25g×24粒", "A", 1_250),
    ("XM01AEB074E001", "布洛芬缓释胶囊 0.3g×20粒", "A", 1_680),
    ("XA10BAE062A001", "盐酸二甲双胍片 0.5g×48片", "A", 890),
    ("XC08CAX005A010", "硝苯地平缓释片 20mg×30片", "A", 2_350),
    ("XA02BCA211E001", "奥美拉唑肠溶胶囊 20mg×14粒", "A", 1_560),
    ("XC08CAA005A001", "苯磺酸氨氯地平片 5mg×28片", "A", 1_980),
    ("ZA01BAL0062010", "连花清瘟胶囊 0.35g×24粒", "B", 1_480),
    ("XC10AAA189A001", "阿托伐他汀钙片 20mg×7片", "B", 3_650),
    ("XA07BCM081P001", "蒙脱石散 3g×10袋", "B", 1_820),
    ("ZA12HAF0043010", "复方丹参滴丸 27mg×180丸", "B", 2_760),
    ("XR03DCM176A001", "孟鲁司特钠片 10mg×5片", "B", 5_890),
    ("QT00000VC00001", "维生素C泡腾片 1g×20片", "C", 3_980),
    ("QT0000KZ000001", "医用外科口罩 ×50只", "C", 1_500),
    ("QT0000CTT00001", "创可贴 ×100片", "C", 650),
    ("QT0000GP000001", "碳酸钙D3片 ×60片", "C", 8_800),
)
HOSPITAL_CATALOGUE = (
    ("110200001", "普通门诊诊查费", "A", 1_000),
    ("250101015", "血常规（五分类）", "A", 2_500),
    ("250305001", "C反应蛋白测定", "A", 1_500),
    ("210300001", "胸部CT平扫", "B", 24_000),
    ("XJ01DDC181B001", "头孢克肟分散片 0.1g×6片", "B", 3_680),
    ("120400001", "静脉输液（第一组）", "A", 1_200),
    ("ZA09AAS0031010", "蒲地蓝消炎口服液 10ml×6支", "C", 3_200),
)
_CLASS = {"A": DrugClass.A, "B": DrugClass.B, "C": DrugClass.C}
_LINES_WEIGHTS = (30, 30, 20, 12, 8)  # baskets of 1..5 lines
_CLASS_WEIGHTS = {"A": 50, "B": 35, "C": 15}


def basket(catalogue: tuple[tuple[str, str, str, int], ...], rng: random.Random) -> list[settlement_pb2.LineItem]:
    """1-5 lines, mostly class A (covered), some B (covered after a self-pay share), a few C (not covered)."""
    lines = rng.choices(range(1, len(_LINES_WEIGHTS) + 1), _LINES_WEIGHTS)[0]
    picked = rng.choices(catalogue, [_CLASS_WEIGHTS[item[2]] for item in catalogue], k=lines)
    unique = {item[0]: item for item in picked}.values()
    return [
        line_item(code, name, _CLASS[cls], price, rng.choice((1, 1, 1, 2, 2, 3))) for code, name, cls, price in unique
    ]


def check_settlement(record: settlement_pb2.SettlementRecord, items: list[settlement_pb2.LineItem]) -> None:
    """Raises WrongAnswer unless the record settled exactly the basket and its parts add up."""
    total = sum(item.unit_price_fen * item.quantity for item in items)
    parts = record.fund_paid_fen + record.personal_account_paid_fen + record.self_pay_fen
    if record.status != SettlementStatus.SETTLED:
        raise WrongAnswer("settlement status is not SETTLED")
    if record.total_fen != total:
        raise WrongAnswer("settlement total differs from the basket")
    if parts != total or min(record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) < 0:
        raise WrongAnswer("settlement parts do not add up to the total")


class MerchantCounter(ScheduledUser):
    """Abstract: one counter at a seeded merchant (`merchant_kind`), with one PharmacyClient (one channel)."""

    abstract = True
    merchant_kind: ClassVar[str] = "pharmacy"
    client: PharmacyClient

    def prepare(self) -> None:
        self.rng = random.Random()
        merchants = self.seed.hospitals if self.merchant_kind == "hospital" else self.seed.pharmacies
        self.merchant_id = self.rng.choice(merchants)
        self.signers = [channel.signer() for channel in self.seed.channels]

    def connect(self, target: str) -> PharmacyClient:
        options = self.client_options(f"merchant:{self.merchant_id}")
        return PharmacyClient(target, merchant_id=self.merchant_id, options=options)

    # -- the holder's side ------------------------------------------------------------------------
    def holder(self) -> tuple[str, TokenSigner]:
        """A holder who can pay (e-card not lost), and one of the channel apps their e-card is bound to."""
        ecard_id, bound = self.rng.choice(self.seed.usable)
        return ecard_id, self.signers[self.rng.choice(bound)]

    def forger(self) -> TokenSigner:
        """A signer that claims the bank's key id but holds a key nobody registered."""
        bank = self.signers[0]
        return TokenSigner(generate_private_key(bank.algorithm), issuer_id=bank.issuer_id, kid=bank.kid)

    # -- the counter's side -----------------------------------------------------------------------
    def receipt_no(self) -> str:
        """The idempotency key of a settlement: the counter's receipt number."""
        return f"{self.merchant_id}-{uuid.uuid4().hex}"

    def verify_expecting(
        self,
        case: str,
        token: str,
        expected: Reason,
        *,
        purpose: Purpose = Purpose.IDENTITY,
        min_assurance: Assurance = Assurance.NONE,
    ) -> verifier_pb2.VerifyResponse:
        """Verifies and checks the verdict: REASON_OK means ACCEPTED, any other reason that rejection.

        Fires one `verdict` request named `<case> expects <ACCEPTED|REASON>`, failed when the answer differs, and
        raises WrongAnswer then. A transport error raises the SDK's error (the interceptor reported it).
        """
        started = time.perf_counter()
        answer = self.client.verify(token, purpose=purpose, min_assurance=min_assurance, terminal_id=self.merchant_id)
        elapsed_ms = (time.perf_counter() - started) * 1000
        verdict, reason = Verdict(answer.verdict).name, Reason(answer.reason).name
        tally = self.context.tally
        tally.record_verdict(verdict, reason)
        expected_verdict = Verdict.ACCEPTED if expected == Reason.OK else Verdict.REJECTED
        wrong = None
        if answer.verdict != expected_verdict or answer.reason != expected:
            description = f"{case}: expected {expected_verdict.name}/{expected.name}, got {verdict}/{reason}"
            tally.record_wrong(description)
            wrong = WrongAnswer(description)
        expectation = "ACCEPTED" if expected == Reason.OK else expected.name
        self.environment.events.request.fire(
            request_type=VERDICT_REQUEST_TYPE, name=f"{case} expects {expectation}", response_time=elapsed_ms,
            response_length=0, response=answer, context={}, exception=wrong,
        )
        if wrong is not None:
            raise wrong
        return answer

    def settle_checked(
        self, items: list[settlement_pb2.LineItem], **credential: str
    ) -> settlement_pb2.SettlementRecord:
        """Settles with a fresh receipt number and checks the record; wrong arithmetic counts as a wrong answer."""
        record = self.client.settle(items, idempotency_key=self.receipt_no(), **credential)
        try:
            check_settlement(record, items)
        except WrongAnswer as wrong:
            self.context.tally.record_wrong(f"{self.scenario}: {wrong}")
            raise
        return record
