"""Connection URLs in messages: never with their password, however malformed the URL is."""

from __future__ import annotations

import re

# scheme://user:password@..., read off the raw text: a URL that does not parse still has its password found
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^@/?#:]*:(?P<password>[^@/?#]*)@")
_PASSWORD_PARAM = re.compile(r"(?i)password=(?P<password>[^&;\s\"']*)")


def passwords(url: str) -> list[str]:
    """The passwords a URL holds: in its user info, and in `password=` parameters."""
    found = _USERINFO.match(url)
    words = [found.group("password")] if found else []
    words += [m.group("password") for m in _PASSWORD_PARAM.finditer(url)]
    return [word for word in words if word]


def redacted(text: str, url: str | None = None) -> str:
    """`text` (a URL, or a message that may quote `url`) with every password of `url` replaced by `***`."""
    for word in sorted(passwords(text if url is None else url), key=len, reverse=True):
        text = text.replace(word, "***")
    return text
