"""Versioned schema migrations, shared by every SQL backend.

Each entry is (version, statements). `{blob}` and `{serial}` are filled in by the dialect. Applied in
order by `SqlStore.migrate()` on start; never edit an applied entry, add a new one. A statement that
starts with the line `-- only sqlite` or `-- only postgresql` runs on that backend only.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value {blob} NOT NULL)",
            """CREATE TABLE issuers (
                issuer_id TEXT PRIMARY KEY,
                display_name TEXT NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE issuer_keys (
                issuer_id TEXT NOT NULL REFERENCES issuers (issuer_id),
                kid TEXT NOT NULL,
                algorithm INTEGER NOT NULL,
                public_key_pem TEXT NOT NULL,
                not_before BIGINT,
                not_after BIGINT,
                revoked BOOLEAN NOT NULL DEFAULT FALSE,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (issuer_id, kid))""",
            """CREATE TABLE merchants (
                merchant_id TEXT PRIMARY KEY,
                display_name TEXT NOT NULL,
                kind INTEGER NOT NULL,
                region TEXT NOT NULL,
                designated BOOLEAN NOT NULL,
                updated_at BIGINT NOT NULL)""",
            """CREATE TABLE cards (
                card_no TEXT PRIMARY KEY,
                holder_name TEXT NOT NULL,
                id_hash {blob} NOT NULL,
                region TEXT NOT NULL,
                status INTEGER NOT NULL,
                balance_fen BIGINT NOT NULL CHECK (balance_fen >= 0),
                ecard_id TEXT UNIQUE,
                issued_at BIGINT,
                enrolled_at BIGINT NOT NULL)""",
            """CREATE TABLE ecard_channels (
                ecard_id TEXT NOT NULL,
                issuer_id TEXT NOT NULL,
                bound_at BIGINT NOT NULL,
                PRIMARY KEY (ecard_id, issuer_id))""",
            """CREATE TABLE ledger (
                entry_id {serial},
                card_no TEXT NOT NULL,
                delta_fen BIGINT NOT NULL,
                balance_after_fen BIGINT NOT NULL CHECK (balance_after_fen >= 0),
                kind TEXT NOT NULL,
                ref TEXT NOT NULL,
                created_at BIGINT NOT NULL)""",
            "CREATE INDEX ledger_by_card ON ledger (card_no)",
            """CREATE TABLE credits (
                idempotency_key TEXT PRIMARY KEY,
                request_hash {blob} NOT NULL,
                card_no TEXT NOT NULL,
                amount_fen BIGINT NOT NULL,
                created_at BIGINT NOT NULL)""",
            """CREATE TABLE audit (
                event_id {serial},
                at BIGINT NOT NULL,
                kind TEXT NOT NULL,
                actor TEXT NOT NULL,
                subject TEXT NOT NULL,
                detail TEXT NOT NULL)""",
        ],
    ),
    (
        2,
        [
            # Settlements: one row per settled basket; the unique keys are what make Settle idempotent
            # and a verification single-use, whatever runs at once.
            """CREATE TABLE settlements (
                settlement_id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash {blob} NOT NULL,
                ecard_id TEXT NOT NULL,
                card_no TEXT NOT NULL,
                status INTEGER NOT NULL,
                total_fen BIGINT NOT NULL CHECK (total_fen > 0),
                fund_fen BIGINT NOT NULL CHECK (fund_fen >= 0),
                account_fen BIGINT NOT NULL CHECK (account_fen >= 0),
                self_pay_fen BIGINT NOT NULL CHECK (self_pay_fen >= 0),
                balance_after_fen BIGINT NOT NULL CHECK (balance_after_fen >= 0),
                items TEXT NOT NULL,
                verification_nonce {blob},
                settled_at BIGINT NOT NULL,
                refunded_at BIGINT,
                CHECK (fund_fen + account_fen + self_pay_fen = total_fen),
                UNIQUE (merchant_id, idempotency_key),
                UNIQUE (ecard_id, verification_nonce))""",
            """CREATE TABLE refunds (
                merchant_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash {blob} NOT NULL,
                settlement_id TEXT NOT NULL UNIQUE REFERENCES settlements (settlement_id),
                reason TEXT NOT NULL,
                account_fen BIGINT NOT NULL CHECK (account_fen >= 0),
                fund_fen BIGINT NOT NULL CHECK (fund_fen >= 0),
                balance_after_fen BIGINT NOT NULL CHECK (balance_after_fen >= 0),
                created_at BIGINT NOT NULL,
                PRIMARY KEY (merchant_id, idempotency_key))""",
            # What the pooled fund paid (positive) and got back on refunds (negative), per settlement.
            """CREATE TABLE fund_ledger (
                entry_id {serial},
                settlement_id TEXT NOT NULL,
                merchant_id TEXT NOT NULL,
                delta_fen BIGINT NOT NULL,
                kind TEXT NOT NULL,
                created_at BIGINT NOT NULL)""",
            "CREATE INDEX fund_ledger_by_settlement ON fund_ledger (settlement_id)",
        ],
    ),
    (
        3,
        [
            # The audit trail is insert-only, enforced by the database itself.
            "-- only sqlite\nCREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
            "BEGIN SELECT RAISE(ABORT, 'audit rows are insert-only'); END",
            "-- only sqlite\nCREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
            "BEGIN SELECT RAISE(ABORT, 'audit rows are insert-only'); END",
            "-- only postgresql\nCREATE FUNCTION audit_insert_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit rows are insert-only'; END $$",
            "-- only postgresql\nCREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_insert_only()",
            "-- only postgresql\nCREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only()",
        ],
    ),
    (
        4,
        [
            # Partial refunds. A settlement keeps what its refunds gave back so far, per share; the
            # database itself refuses a total above what the share paid.
            "-- only sqlite\nALTER TABLE settlements ADD COLUMN fund_refunded_fen BIGINT NOT NULL DEFAULT 0 "
            "CHECK (fund_refunded_fen BETWEEN 0 AND fund_fen)",
            "-- only sqlite\nALTER TABLE settlements ADD COLUMN account_refunded_fen BIGINT NOT NULL DEFAULT 0 "
            "CHECK (account_refunded_fen BETWEEN 0 AND account_fen)",
            "-- only sqlite\nALTER TABLE settlements ADD COLUMN self_pay_refunded_fen BIGINT NOT NULL DEFAULT 0 "
            "CHECK (self_pay_refunded_fen BETWEEN 0 AND self_pay_fen)",
            """-- only postgresql
            ALTER TABLE settlements
                ADD COLUMN fund_refunded_fen BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN account_refunded_fen BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN self_pay_refunded_fen BIGINT NOT NULL DEFAULT 0,
                ADD CONSTRAINT settlements_refunded_within_paid CHECK (
                    fund_refunded_fen BETWEEN 0 AND fund_fen
                    AND account_refunded_fen BETWEEN 0 AND account_fen
                    AND self_pay_refunded_fen BETWEEN 0 AND self_pay_fen)""",
            "UPDATE settlements SET fund_refunded_fen = fund_fen, account_refunded_fen = account_fen, "
            "self_pay_refunded_fen = self_pay_fen WHERE refunded_at IS NOT NULL",
            # Several refunds per settlement (no more UNIQUE settlement_id), numbered in the order they
            # were made; each with its amount, its self-pay part and its lines ([[line index, quantity]]).
            """CREATE TABLE refunds_v4 (
                refund_no {serial},
                merchant_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash {blob} NOT NULL,
                settlement_id TEXT NOT NULL REFERENCES settlements (settlement_id),
                reason TEXT NOT NULL,
                amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
                fund_fen BIGINT NOT NULL CHECK (fund_fen >= 0),
                account_fen BIGINT NOT NULL CHECK (account_fen >= 0),
                self_pay_fen BIGINT NOT NULL CHECK (self_pay_fen >= 0),
                balance_after_fen BIGINT NOT NULL CHECK (balance_after_fen >= 0),
                lines TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                CHECK (fund_fen + account_fen + self_pay_fen = amount_fen),
                UNIQUE (merchant_id, idempotency_key))""",
            # A refund made before this version gave back the whole settlement.
            """INSERT INTO refunds_v4 (merchant_id, idempotency_key, request_hash, settlement_id, reason, amount_fen,
                fund_fen, account_fen, self_pay_fen, balance_after_fen, lines, created_at)
                SELECT r.merchant_id, r.idempotency_key, r.request_hash, r.settlement_id, r.reason, s.total_fen,
                    r.fund_fen, r.account_fen, s.self_pay_fen, r.balance_after_fen, '[]', r.created_at
                FROM refunds r JOIN settlements s ON s.settlement_id = r.settlement_id ORDER BY r.created_at""",
            "DROP TABLE refunds",
            "ALTER TABLE refunds_v4 RENAME TO refunds",
            "CREATE INDEX refunds_by_settlement ON refunds (settlement_id, refund_no)",
        ],
    ),
    (
        5,
        [
            # Cards keep the holder's masked name and a hash sealing the full name to the identity
            # number's hash; rows enrolled before are sealed on the next start (Store.seal_holders).
            "ALTER TABLE cards ADD COLUMN holder_sealed BOOLEAN NOT NULL DEFAULT FALSE",
        ],
    ),
    (
        6,
        [
            # A channel suspends its own binding (suspended_at set) or unbinds (the row goes).
            "ALTER TABLE ecard_channels ADD COLUMN suspended_at BIGINT",
            # Card replacement: the e-card moves to the new card, which keeps when (tokens minted before
            # are refused); one row per replacement answers a repeated request with the same key.
            "ALTER TABLE cards ADD COLUMN replaced_at BIGINT",
            """CREATE TABLE card_replacements (
                idempotency_key TEXT PRIMARY KEY,
                request_hash {blob} NOT NULL,
                old_card_no TEXT NOT NULL UNIQUE,
                new_card_no TEXT NOT NULL,
                ecard_id TEXT NOT NULL,
                moved_fen BIGINT NOT NULL,
                created_at BIGINT NOT NULL)""",
        ],
    ),
    (
        7,
        [
            # A binding keeps the channel's signed statement of the holder check it was made on
            # (core.assurance), so that every binding is attributable to a channel key.
            "ALTER TABLE ecard_channels ADD COLUMN assurance_statement {blob}",
            # Issuance attempts per scope (a channel, or a keyed hash of a card number) in a window
            # that starts at the scope's first attempt: what throttles guessing across every process.
            """CREATE TABLE issue_attempts (
                scope TEXT PRIMARY KEY,
                window_start BIGINT NOT NULL,
                attempts INTEGER NOT NULL)""",
        ],
    ),
    (
        8,
        [
            # The channels' outbox: events written in the transaction of the change they tell of. Each
            # channel's events are numbered without gaps by its head row, taken last in the transaction
            # (so events commit in the order of their numbers and a reader never skips one).
            """CREATE TABLE channel_event_heads (
                issuer_id TEXT PRIMARY KEY,
                last_seq BIGINT NOT NULL)""",
            """CREATE TABLE channel_events (
                issuer_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                kind TEXT NOT NULL,
                ecard_id TEXT NOT NULL,
                detail TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (issuer_id, seq))""",
            "CREATE INDEX channel_events_by_age ON channel_events (created_at)",
            # One warning per key and end of validity, whichever replica notices first.
            """CREATE TABLE key_expiry_warnings (
                issuer_id TEXT NOT NULL,
                kid TEXT NOT NULL,
                not_after BIGINT NOT NULL,
                warned_at BIGINT NOT NULL,
                PRIMARY KEY (issuer_id, kid, not_after))""",
        ],
    ),
    (
        9,
        [
            # Usage history (Cards.ListUsage) and the audit query by subject read an e-card's rows.
            "CREATE INDEX audit_by_subject ON audit (subject, event_id)",
            "CREATE INDEX settlements_by_ecard ON settlements (ecard_id, settled_at)",
        ],
    ),
    (
        10,
        [
            # Shut-off channels (Admin.DisableIssuer: every key revoked in the same transaction).
            "ALTER TABLE issuers ADD COLUMN disabled_at BIGINT",
            # The operator's deny list of client certificates (SHA-256 of the DER, hex).
            """CREATE TABLE denied_certificates (
                fingerprint TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                denied_by TEXT NOT NULL,
                denied_at BIGINT NOT NULL)""",
        ],
    ),
    (
        11,
        [
            # The drug catalogue, versioned: an import writes a whole new version; the current one is
            # the highest. Old versions stay, so a settlement's catalogue_version always names its items.
            """CREATE TABLE catalogue_versions (
                version {serial},
                items BIGINT NOT NULL,
                imported_at BIGINT NOT NULL)""",
            """CREATE TABLE catalogue_items (
                version BIGINT NOT NULL,
                code TEXT NOT NULL,
                name TEXT NOT NULL,
                drug_class INTEGER NOT NULL,
                price_limit_fen BIGINT NOT NULL CHECK (price_limit_fen > 0),
                valid_from TEXT NOT NULL,
                valid_to TEXT NOT NULL,
                PRIMARY KEY (version, code))""",
            # What a settlement was priced with ('' before: the POS's classes, the settings' ratios).
            "ALTER TABLE settlements ADD COLUMN catalogue_version TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE settlements ADD COLUMN policy_version TEXT NOT NULL DEFAULT ''",
        ],
    ),
    (
        12,
        [
            # Counter bindings a merchant started; completed (ecard_id, issuer_id) in the transaction
            # of the issuance that names the code.
            """CREATE TABLE counter_bindings (
                code TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL,
                terminal_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                ecard_id TEXT,
                issuer_id TEXT,
                completed_at BIGINT)""",
            "CREATE INDEX counter_bindings_by_expiry ON counter_bindings (expires_at)",
        ],
    ),
    (
        13,
        [
            # Reconciliation: the till and the cashier of each Settle and Refund, and the Settle's key
            # reversals. A settlement keeps its refund count and what a reversal gave back, so that a
            # day's totals are one indexed aggregate of its settlements.
            "ALTER TABLE settlements ADD COLUMN terminal_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE settlements ADD COLUMN operator_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE settlements ADD COLUMN refund_count INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE settlements ADD COLUMN reversed_fen BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE settlements ADD COLUMN reversed_at BIGINT",
            "UPDATE settlements SET refund_count = (SELECT COUNT(*) FROM refunds r "
            "WHERE r.settlement_id = settlements.settlement_id)",
            "ALTER TABLE refunds ADD COLUMN terminal_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE refunds ADD COLUMN operator_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE refunds ADD COLUMN reversal BOOLEAN NOT NULL DEFAULT FALSE",
            # One row per reversed Settle key; settlement_id is NULL when nothing was settled under it.
            """CREATE TABLE reversals (
                merchant_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                settlement_id TEXT REFERENCES settlements (settlement_id),
                terminal_id TEXT NOT NULL,
                operator_id TEXT NOT NULL,
                reversed_at BIGINT NOT NULL,
                PRIMARY KEY (merchant_id, idempotency_key))""",
            # Statements read a merchant's settlements by time: a listing pages on (settled_at, id).
            "CREATE INDEX settlements_by_merchant_time ON settlements (merchant_id, settled_at, settlement_id)",
        ],
    ),
    (
        14,
        [
            # Bindings a channel (or the operator) ended with Unbind: the signed statement each was made
            # on stays attributable after the binding is gone.
            """CREATE TABLE ecard_bindings_ended (
                ecard_id TEXT NOT NULL,
                issuer_id TEXT NOT NULL,
                bound_at BIGINT NOT NULL,
                ended_at BIGINT NOT NULL,
                assurance_statement {blob})""",
            "CREATE INDEX ecard_bindings_ended_by_ecard ON ecard_bindings_ended (ecard_id)",
        ],
    ),
    (
        15,
        [
            # Benefit policies (deductible, fund ratio, yearly cap per person category and merchant kind),
            # versioned like the catalogue: the current one is the highest; its canonical JSON is kept.
            """CREATE TABLE benefit_policies (
                version {serial},
                name TEXT NOT NULL,
                body TEXT NOT NULL,
                imported_at BIGINT NOT NULL)""",
            # The holder's person category (employee, retiree, resident): what the policy's benefits follow.
            "ALTER TABLE cards ADD COLUMN person_category TEXT NOT NULL DEFAULT 'employee'",
            # Yearly accumulators per card (calendar year, Asia/Shanghai): the deductible met and what the
            # fund paid, changed only in the transactions of settlements and refunds.
            """CREATE TABLE benefit_accumulators (
                card_no TEXT NOT NULL,
                year INTEGER NOT NULL,
                deductible_fen BIGINT NOT NULL CHECK (deductible_fen >= 0),
                fund_fen BIGINT NOT NULL CHECK (fund_fen >= 0),
                PRIMARY KEY (card_no, year))""",
            # What a settlement added to its year's accumulators (refunds take it back from that year).
            "ALTER TABLE settlements ADD COLUMN benefit_year INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE settlements ADD COLUMN deductible_fen BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    (
        16,
        [
            # Hospital visits: one row per registration (its key and its verification each open one
            # visit), fee items kept in order with a revision that a settlement checks, and each
            # addition's key so that a retried AddVisitItems adds nothing twice.
            """CREATE TABLE visits (
                visit_id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash {blob} NOT NULL,
                ecard_id TEXT NOT NULL,
                verification_nonce {blob} NOT NULL,
                status INTEGER NOT NULL,
                items TEXT NOT NULL,
                revision INTEGER NOT NULL,
                opened_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                closed_at BIGINT,
                settlement_id TEXT REFERENCES settlements (settlement_id),
                terminal_id TEXT NOT NULL,
                operator_id TEXT NOT NULL,
                department TEXT NOT NULL,
                UNIQUE (merchant_id, idempotency_key),
                UNIQUE (ecard_id, verification_nonce))""",
            """CREATE TABLE visit_additions (
                visit_id TEXT NOT NULL REFERENCES visits (visit_id),
                idempotency_key TEXT NOT NULL,
                request_hash {blob} NOT NULL,
                added_at BIGINT NOT NULL,
                PRIMARY KEY (visit_id, idempotency_key))""",
        ],
    ),
    (
        17,
        [
            # A day's totals (DailyTotals, SettlementDayTotals) from the index alone (an index-only scan):
            # 1,000,000 settlements of one merchant's day in about 0.4 s (loadtest.bench.statements).
            "-- only postgresql\nCREATE INDEX settlements_day_totals ON settlements (merchant_id, settled_at) "
            "INCLUDE (terminal_id, total_fen, fund_fen, account_fen, self_pay_fen, refund_count, fund_refunded_fen, "
            "account_refunded_fen, self_pay_refunded_fen, reversed_at, reversed_fen)",
        ],
    ),
    (
        18,
        [
            # PostgreSQL numbers a channel's events after they commit (storage.outbox): a Settle writes
            # its event unnumbered, in the order of `written` (a sequence), and never takes the channel's
            # head row, so settlements of cards bound to one channel commit side by side. A reader (or
            # the upkeep) numbers the committed ones in one short transaction holding the head row.
            "-- only postgresql\nALTER TABLE channel_events ADD COLUMN written BIGSERIAL",
            "-- only postgresql\nALTER TABLE channel_events DROP CONSTRAINT channel_events_pkey",
            "-- only postgresql\nALTER TABLE channel_events ALTER COLUMN seq DROP NOT NULL",
            "-- only postgresql\nALTER TABLE channel_events ADD PRIMARY KEY (written)",
            "-- only postgresql\nCREATE UNIQUE INDEX channel_events_numbered ON channel_events (issuer_id, seq)",
            "-- only postgresql\nCREATE INDEX channel_events_unnumbered ON channel_events (issuer_id, written) "
            "WHERE seq IS NULL",
        ],
    ),
]
