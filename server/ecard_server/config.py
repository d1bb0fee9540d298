"""Server settings: the contract's defaults, overridable by a TOML file (`ecard serve --config`)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path

from ecard.v1 import types_pb2

# Merchant kinds by the name the settings file and the command line use for them.
MERCHANT_KINDS: dict[str, int] = {
    "pharmacy": types_pb2.MERCHANT_KIND_PHARMACY,
    "hospital": types_pb2.MERCHANT_KIND_HOSPITAL,
}


def _ratio(value: object, name: str) -> Fraction:
    try:
        ratio = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}") from None
    if not 0 <= ratio <= 1:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
    return ratio


@dataclass(frozen=True)
class Settings:
    """Everything an operator may tune. Ratios are exact fractions (money is integer fen)."""

    max_token_lifetime_s: int = 300
    """Longest accepted `expires_at - issued_at`."""
    clock_skew_s: int = 30
    """Tolerance between the channel's clock and ours, both ways."""
    verification_window_s: int = 300
    """How long a verification_id may be used for one Settle."""
    quote_window_s: int = 180
    """How long a Quote's quote_id may be settled (never past its verification's own window)."""
    visit_ttl_s: int = 86_400
    """How long a hospital visit stays open after its registration; then it expires with nothing moved."""
    class_b_self_pay_ratio: Fraction = Fraction(1, 10)
    """Share of a class B line that the holder pays before coverage."""
    fund_ratio: dict[int, Fraction] = field(
        default_factory=lambda: {
            types_pb2.MERCHANT_KIND_PHARMACY: Fraction(0),
            types_pb2.MERCHANT_KIND_HOSPITAL: Fraction(1, 2),
        }
    )
    """Share of the covered amount the pooled fund pays, by merchant kind."""
    unknown_items_self_pay: frozenset[int] = frozenset()
    """Merchant kinds at which a line whose code the catalogue does not hold is priced as not covered
    (self-pay) instead of refused (UNKNOWN_ITEM): `unknown_items_self_pay = ["pharmacy"]`."""
    card_cache_size: int = 200_000
    """E-cards whose status and bindings are held in memory (LRU)."""
    nonce_capacity: int = 2_000_000
    """Consumed nonces held in memory (embedded default); past it Verify fails closed."""
    verification_records: int = 200_000
    """Answers of accepted Verify calls with a request_id kept in memory for GetVerification, all
    merchants together (embedded default); past it a merchant's own oldest record leaves, never another's."""
    verification_records_per_merchant: int = 50_000
    """Records one merchant may hold (in memory and in Redis, each kept verification_window_s): past it
    that merchant's own oldest record leaves, so no merchant can push out another's."""
    request_log_verify_ok_per_second: int = 20
    """Accepted Verify calls logged per second at most (every other call is logged)."""
    request_log_refused_per_second: int = 50
    """Refused calls (failures, UNAUTHENTICATED included, and rejected Verifies) logged per second at most,
    in one process; the next logged one counts those skipped."""
    redis_namespace: str = "ecard"
    """Prefix of every Redis key and channel, so that deployments can share one Redis."""
    principal_calls_per_s: int = 1000
    """Calls per second one principal may make, each batch and stream item counted (a token bucket, shared
    by every process with --redis; 0: no limit). Past it: RESOURCE_EXHAUSTED. The default is a quarter
    of what one server process verifies at most (make bench: about 4,200 Verify/s), so one merchant or
    channel cannot take a process from the others; a gateway relaying many counters gets its own."""
    principal_burst: int = 2000
    """Calls one principal may make at once above its rate (the bucket's size; at least 1)."""
    principal_max_in_flight: int = 256
    """Calls of one principal being served at once (0: no cap); one stream counts as one call."""
    max_in_flight: int = 4096
    """Calls being served at once in one server process (0: no cap)."""
    issue_failures_per_card: int = 5
    """Failed issuances one card number may see in issue_failure_window_s, from every channel together
    (unknown numbers too, so the throttle says nothing about which numbers exist)."""
    issue_failures_per_channel: int = 100
    """Failed issuances one channel may make in issue_failure_window_s, over all card numbers."""
    issue_failure_window_s: int = 86_400
    """The window of both issuance throttles, from a scope's first failure."""
    counter_binding_ttl_s: int = 300
    """How long a binding code a merchant's counter shows may be completed by a channel."""
    issue_assurance_max_age_s: int = 600
    """How old a channel's signed statement of a face check may be when it asks for an e-card."""
    max_batch: int = 1000
    max_connections: int = 1000
    """HTTP/2 connections one server process holds at once; more are refused at accept."""
    max_streams_per_connection: int = 1000
    """Calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): above what a gateway
    runs on one channel (the benchmark: 256); a grpc client queues the rest once it has the setting."""
    max_basket_items: int = 500
    max_enroll_errors: int = 100
    channel_event_retention_s: int = 30 * 86_400
    """How long a channel's events are kept for WatchEvents; a cursor older than that is refused."""
    key_expiry_warning_s: int = 7 * 86_400
    """A channel is told (KEY_EXPIRING) this long before one of its keys reaches its not_after."""
    channel_event_upkeep_s: int = 60
    """How often each server process looks for expiring keys and prunes old events (0: never)."""
    channel_event_poll_ms: int = 1000
    """An open WatchEvents stream reads the outbox at least this often, besides when a change notice wakes it."""
    max_keys_per_issuer: int = 16
    """Keys an issuer may hold that are neither revoked nor past their not_after: channels register
    their own keys, and every key is held in each process's memory."""

    @classmethod
    def from_toml(cls, path: str | Path) -> Settings:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
        return cls().with_overrides(data)

    def with_overrides(self, data: dict[str, object]) -> Settings:
        known = {f.name for f in fields(self)}
        changes: dict[str, object] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}")
            if key == "class_b_self_pay_ratio":
                changes[key] = _ratio(value, key)
            elif key == "fund_ratio":
                if not isinstance(value, dict):
                    raise ValueError("fund_ratio must be a table: pharmacy = 0.0, hospital = 0.5")
                ratios = dict(self.fund_ratio)
                for kind, ratio in value.items():
                    enum = MERCHANT_KINDS.get(str(kind))
                    if enum is None:
                        raise ValueError(f"fund_ratio.{kind}: merchant kind must be one of {sorted(MERCHANT_KINDS)}")
                    ratios[enum] = _ratio(ratio, f"fund_ratio.{kind}")
                changes[key] = ratios
            elif key == "unknown_items_self_pay":
                if not isinstance(value, list) or any(str(kind) not in MERCHANT_KINDS for kind in value):
                    raise ValueError(f"unknown_items_self_pay must be a list of {sorted(MERCHANT_KINDS)}")
                changes[key] = frozenset(MERCHANT_KINDS[str(kind)] for kind in value)
            elif key == "redis_namespace":
                if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
                    raise ValueError("redis_namespace must be 1 to 64 letters, digits or _ . : -")
                changes[key] = value
            else:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                changes[key] = value
        return replace(self, **changes)  # type: ignore[arg-type]
