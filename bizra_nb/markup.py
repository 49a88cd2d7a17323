"""Untrusted text made inert for Markdown and HTML, and the Content-Security-Policy that reports carry.

Alert labels and annotations, incident titles, CMDB attributes, series names
from dataset files, run parameters and error messages all reach reports. They
go through :func:`md` (Markdown prose) or :func:`md_code` (a literal, shown as
code) before they are joined into Markdown, so a string can never become a
tag, an attribute, a link or formatting. (Raw HTML such as ``<code>`` is no
way out: nbconvert drops inline tags it does not expect.)

:func:`protect_html` is the second line: it gives an exported report a
``<meta>`` Content-Security-Policy allowing exactly the inline scripts of its
figures (by SHA-256), so injected markup that slipped past escaping still
cannot run, also when the file is opened offline. The server repeats the
same policy as a header (:func:`report_policy`).
"""
from __future__ import annotations

import base64
import hashlib
import html
import re

# Every ASCII punctuation character Markdown (CommonMark + GFM tables) may give a meaning to;
# HTML's own specials (& < > " ') are entity-escaped instead.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=:$])")
_SPACE = re.compile(r"\s+")
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_JS_TYPES = ("", "text/javascript", "application/javascript", "module")
_HASH = re.compile(r"'sha256-[A-Za-z0-9+/]{43}='")
_META = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]{0,20000})"')

BASE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
               "connect-src 'none'; base-uri 'none'; form-action 'none'")
# Header-only directives (a <meta> policy may not carry them): no framing, and an opaque origin, so that even
# a script that ran could not read the API origin's storage (the status page keeps the token there).
HEADER_ONLY = "frame-ancestors 'none'; sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads"


def md(text: object, *, limit: int | None = None) -> str:
    """``text`` as inert Markdown prose: one line, no tags, no links, no formatting.

    Parameters
    ----------
    text
        Any value; ``None`` becomes an empty string.
    limit
        Clip to this many characters (before escaping), ending with ``…``.
    """
    value = "" if text is None else _SPACE.sub(" ", str(text)).strip()
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    value = _MD_SPECIAL.sub(r"\\\1", value)
    return html.escape(value, quote=True)


def md_code(text: object, *, limit: int | None = None) -> str:
    """``text`` shown as inline code, inert: a code span fenced by more backticks than ``text`` holds.

    Inside a code span Markdown shows every character literally and the renderer
    escapes HTML, so only the fence matters: CommonMark ends a span at a backtick
    run of the fence's length exactly.
    """
    value = "" if text is None else _SPACE.sub(" ", str(text)).strip()
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    if not value:
        return '`""`'
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence} {value} {fence}"


def script_hashes(page: str) -> list[str]:
    """CSP source expressions (``'sha256-…'``) of every inline script of ``page`` (HTML), in order, deduplicated."""
    seen: list[str] = []
    for match in _SCRIPT.finditer(page):
        attributes, body = match.group(1), match.group(2)
        kind = re.search(r"""type\s*=\s*["']?([^"'\s>]+)""", attributes)
        if "src=" in attributes.replace(" ", "") or (kind and kind.group(1).lower() not in _JS_TYPES):
            continue  # external (none in our reports) or a data block, which never runs
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        token = f"'sha256-{digest}'"
        if token not in seen:
            seen.append(token)
    return seen


def protect_html(page: str, allowed: list[str]) -> str:
    """``page`` with a ``<meta>`` CSP as the first element of its head allowing only the ``allowed`` scripts.

    ``allowed`` are :func:`script_hashes` of the markup the renderer itself wrote
    (the report's figures), never of the whole page: a script that reached the
    page any other way (if escaping ever failed) matches no hash, so it cannot run.
    """
    hashes = " ".join(dict.fromkeys(allowed)) or "'none'"
    meta = f'<meta http-equiv="Content-Security-Policy" content="{BASE_POLICY}; script-src {hashes}">'
    head = re.search(r"<head[^>]*>(\s*<meta charset=[^>]*>)?", page, re.I)  # the charset stays first
    if head is None:
        raise ValueError("not an HTML document with a <head>: cannot add its policy")
    return page[: head.end()] + meta + page[head.end():]


def report_policy(start_of_file: str) -> str:
    """The header policy for a served report: the hashes of its own ``<meta>`` policy, or no script at all.

    Only hash tokens are taken from the file, and only from a policy in its first bytes
    (where :func:`protect_html` puts it), so nothing else in a file reaches the header.
    """
    match = _META.search(start_of_file)
    hashes = " ".join(_HASH.findall(match.group(1))) if match else ""
    return f"{BASE_POLICY}; script-src {hashes or chr(39) + 'none' + chr(39)}; {HEADER_ONLY}"
