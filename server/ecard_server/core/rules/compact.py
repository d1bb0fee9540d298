"""Compact JSON as the digests, the quote ids and the stored lines are written, byte for byte what
json.dumps(form, separators=(",", ":"), ensure_ascii=...) writes: each encoder is made once (json.dumps
with options makes one per call, a Settle four times). Their forms are lists of plain values, never
circular, so the encoders skip that check. No I/O.
"""

from __future__ import annotations

import json

compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
"""Non-ASCII characters as they are."""
compact_ascii_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
"""Non-ASCII characters as \\u escapes (json.dumps's default)."""
