"""Baskets as a counter rings them up, and the arithmetic a settlement record must satisfy.

Pure: no Locust, no network (tests import it without gevent patching anything).
"""

from __future__ import annotations

import random

from ecard import DrugClass, SettlementStatus, line_item
from ecard.v1 import settlement_pb2
from loadtest.harness.slo import WrongAnswer

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
