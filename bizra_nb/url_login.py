"""A URL's login, kept apart from the URL one shows and sends."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def public_url(url: str) -> str:
    """``url`` without its login (``http://user:password@host:9093/x`` → ``http://host:9093/x``), to show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def login(url: str) -> tuple[str, str] | None:
    """The (user, password) in ``url``, decoded; None when it has none."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")
