"""The audit trail: every record's kind, actor and detail are composed here, and nowhere else.

A write that changes a card or moves money stores its record inside its own transaction (the store
is handed an AuditEvent built by one of the functions below); a Verify only appends to the queue of
an AuditTrail, whose writer thread stores the queue every `interval` seconds.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ecard.errors import Unavailable
from ecard_server.core.records import AuditEvent, Shares
from ecard_server.logs import event

if TYPE_CHECKING:
    from ecard_server.core.rules.settlement import Draft

log = logging.getLogger("ecard.audit")


def ecard_issued(
    at: int, issuer_id: str, ecard_id: str, new_binding: bool = True, bound: Sequence[str] = (), vouched: str = ""
) -> AuditEvent:
    """An issuance: whether it bound a channel new to the e-card (and which were bound before, so the
    card's other channels can see it), and the signed statement it was made on (`vouched`)."""
    detail = f"{'new channel' if new_binding else 'again'} bound_before={','.join(bound) or '-'} {vouched}"
    return AuditEvent(at, "ECARD_ISSUED", f"channel:{issuer_id}", ecard_id, detail.strip())


def issue_refused(at: int, issuer_id: str, ecard_id: str, card_no_masked: str) -> AuditEvent:
    """A refused issuance (no enrolled card matches the holder details given): the subject is the
    e-card when the number names one, so its channels see who tried."""
    return AuditEvent(at, "ISSUE_REFUSED", f"channel:{issuer_id}", ecard_id, f"card {card_no_masked}")


def issuer_disabled(at: int, actor: str, issuer_id: str, keys: int) -> AuditEvent:
    return AuditEvent(at, "ISSUER_DISABLED", actor, issuer_id, f"keys_revoked={keys}")


def certificate_listed(at: int, kind: str, actor: str, fingerprint: str, reason: str = "") -> AuditEvent:
    """CERTIFICATE_DENIED or CERTIFICATE_ALLOWED (taken off the deny list), by whom, why."""
    return AuditEvent(at, kind, actor, fingerprint, reason)


def card_status(at: int, actor: str, ecard_id: str, status: int) -> AuditEvent:
    return AuditEvent(at, "CARD_STATUS", actor, ecard_id, str(status))


def binding_changed(at: int, actor: str, ecard_id: str, issuer_id: str, change: str) -> AuditEvent:
    """BINDING_SUSPEND, BINDING_RESUME or BINDING_UNBIND of one channel's binding, by whom."""
    return AuditEvent(at, f"BINDING_{change}", actor, ecard_id, issuer_id)


def card_replaced(at: int, ecard_id: str, moved_fen: int) -> AuditEvent:
    """The e-card moved to a replacement card with the balance it had (card numbers stay out of the trail)."""
    return AuditEvent(at, "CARD_REPLACED", "admin", ecard_id, f"moved={moved_fen}")


def events_watched(at: int, actor: str, issuer_id: str, after: int) -> AuditEvent:
    """A WatchEvents stream opened: whose events, from which cursor."""
    return AuditEvent(at, "EVENTS_WATCHED", actor, issuer_id, f"after={after}")


def usage_listed(at: int, actor: str, ecard_id: str) -> AuditEvent:
    """A page of an e-card's usage history read (ListUsage), by whom."""
    return AuditEvent(at, "USAGE_LISTED", actor, ecard_id, "")


def counter_binding_started(at: int, merchant_id: str, code: str, terminal_id: str) -> AuditEvent:
    return AuditEvent(at, "COUNTER_BINDING_STARTED", f"merchant:{merchant_id}", code, terminal_id)


def counter_binding_completed(at: int, issuer_id: str, ecard_id: str, code: str, merchant_id: str) -> AuditEvent:
    """An issuance that completed a counter binding: which channel, e-card, code and merchant."""
    return AuditEvent(at, "COUNTER_BINDING_COMPLETED", f"channel:{issuer_id}", ecard_id,
                      f"code={code} merchant={merchant_id}")


def counter_binding_read(at: int, actor: str, code: str, ecard_id: str) -> AuditEvent:
    return AuditEvent(at, "COUNTER_BINDING_READ", actor, code, ecard_id)


def account_credit(at: int, ecard_id: str, amount_fen: int) -> AuditEvent:
    return AuditEvent(at, "ACCOUNT_CREDIT", "admin", ecard_id, str(amount_fen))


def settled(at: int, draft: Draft, shares: Shares) -> AuditEvent:
    return AuditEvent(
        at, "SETTLE", f"merchant:{draft.merchant_id}", draft.ecard_id,
        f"{draft.settlement_id} total={draft.split.total_fen} fund={shares.fund_fen} "
        f"account={shares.account_fen} self_pay={shares.self_pay_fen}",
    )


def refunded(at: int, merchant_id: str, ecard_id: str, settlement_id: str, part: Shares) -> AuditEvent:
    """One refund, whole or partial: what it gave back to each share."""
    return AuditEvent(at, "REFUND", f"merchant:{merchant_id}", ecard_id,
                      f"{settlement_id} amount={part.total_fen} fund={part.fund_fen} account={part.account_fen} "
                      f"self_pay={part.self_pay_fen}")


def reversal(at: int, merchant_id: str, ecard_id: str, settle_key: str, settlement_id: str | None,
             part: Shares) -> AuditEvent:
    """A reversal by the Settle's key: what it gave back, or that nothing was settled under the key."""
    what = f"{settlement_id} amount={part.total_fen} fund={part.fund_fen} account={part.account_fen} " \
           f"self_pay={part.self_pay_fen}" if settlement_id else "unsettled"
    return AuditEvent(at, "REVERSAL", f"merchant:{merchant_id}", ecard_id, f"key={settle_key} {what}")


def visit(at: int, kind: str, merchant_id: str, ecard_id: str, visit_id: str, detail: str) -> AuditEvent:
    """VISIT_OPENED (detail: the department), VISIT_ITEMS, VISIT_SETTLED (the settlement), VISIT_CANCELLED."""
    return AuditEvent(at, kind, f"merchant:{merchant_id}", ecard_id, f"{visit_id} {detail}".rstrip())


def key_changed(at: int, kind: str, actor: str, issuer_id: str, kid: str, detail: str = "") -> AuditEvent:
    """KEY_REGISTERED, KEY_RETIRING (a rotation ends its window) or KEY_REVOKED, by whom."""
    return AuditEvent(at, kind, actor, f"{issuer_id}/{kid}", detail)


def merchant_changed(at: int, merchant_id: str, kind: int, designated: bool) -> AuditEvent:
    return AuditEvent(at, "MERCHANT_CHANGED", "admin", merchant_id, f"kind={kind} designated={designated}")


def catalogue_imported(at: int, version: str, items: int) -> AuditEvent:
    return AuditEvent(at, "CATALOGUE_IMPORTED", "admin", f"catalogue/{version}", f"items={items}")


def policy_imported(at: int, version: str, name: str) -> AuditEvent:
    return AuditEvent(at, "POLICY_IMPORTED", "admin", f"policy/{version}", f"name={name}")


class AuditTrail:
    """The queue of Verify records, written in batches by one thread."""

    def __init__(
        self,
        write: Callable[[Sequence[AuditEvent]], None],
        *,
        interval: float = 0.5,
        max_pending: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._pending: collections.deque[AuditEvent] = collections.deque(maxlen=max_pending)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecard-audit", daemon=True)
        self._thread.start()
        self.dropped = 0

    def verified(self, merchant_id: str, ecard_id: str, terminal_id: str, reason: int) -> None:
        """One Verify (or batch item): who asked, about which e-card, from which terminal, the reason."""
        pending = self._pending
        if len(pending) == pending.maxlen:
            self.dropped += 1  # the store has been down for long; counting beats blocking Verify
        pending.append(AuditEvent(int(self._clock()), "VERIFY", merchant_id, ecard_id, f"{terminal_id} {reason}"))

    def record(self, row: AuditEvent) -> None:
        """Any other row written in the background (a read worth recording: events watched, usage listed)."""
        pending = self._pending
        if len(pending) == pending.maxlen:
            self.dropped += 1
        pending.append(row)

    def flush(self) -> None:
        pending = self._pending
        batch = [pending.popleft() for _ in range(len(pending))]
        if not batch:
            return
        try:
            self._write(batch)
        except Unavailable:
            pending.extendleft(reversed(batch))
            event(log, "audit_deferred", rows=len(batch), level=logging.WARNING)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
