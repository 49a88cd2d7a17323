"""Alertmanager silences (API v2): matchers from an incident's labels, durations, and a small async client.

::

    POST   /api/v2/silences            {"matchers", "startsAt", "endsAt", "createdBy", "comment"} -> {"silenceID"}
    GET    /api/v2/silences            every silence (active, pending, expired)
    GET    /api/v2/silence/{id}        one silence (404: unknown)
    DELETE /api/v2/silence/{id}        expire it

Every failure of the Alertmanager (refused, timed out, an error status, an answer that is not the
JSON expected) is an :class:`AlertmanagerError` carrying its message clipped to one safe line.

A login in the URL (``http://user:password@alertmanager:9093``) stays inside the client, sent as HTTP
basic auth: every URL shown (:func:`public_url`, :attr:`AlertmanagerClient.base_url`, messages) has none.
Regex matchers run on RE2, the engine of Go's ``regexp`` that the Alertmanager uses: the same
syntax and meaning, in time linear in the label value.
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import httpx
import re2

from bizra_nb.errors import BadGateway, InvalidInput, clip_message
from bizra_nb.url_login import login as _login, public_url  # public_url stays importable from here

MIN_DURATION = 60.0  # seconds
MAX_DURATION = 30 * 86400.0
MAX_COMMENT = 1000  # characters
MAX_MATCHERS = 30
MAX_VALUE = 1024  # characters of one matcher value
MAX_ANSWER = 8 << 20  # bytes of an Alertmanager answer read at most (the silence list)
PARSE_INLINE = 64 << 10  # bytes of an answer parsed on the caller's thread; a longer one is parsed on the executor
MATCH_BUDGET = 0.5  # seconds that matching silences with an incident's alerts may take, in all
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*)$|^((?:\d+(?:\.\d+)?[smhdw])+)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SHOWN_STATES = ("active", "pending")


class AlertmanagerError(BadGateway):
    """The Alertmanager failed or refused; ``status_code`` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Matcher:
    """One silence matcher: ``name`` = / != / =~ / !~ ``value``."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def operator(self) -> str:
        return ("=" if self.is_equal else "!=") if not self.is_regex else ("=~" if self.is_equal else "!~")

    @property
    def text(self) -> str:
        """As Alertmanager writes it: ``name="value"``, the value quoted with JSON escapes."""
        return f"{self.name}{self.operator}{json.dumps(self.value, ensure_ascii=False)}"

    def as_api(self) -> dict:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is the empty string, as in Alertmanager)."""
        return self.matches_value(labels.get(self.name, ""))

    def matches_value(self, value: str) -> bool:
        """Whether a label's value satisfies this matcher. A regex is anchored at both ends and runs on
        RE2 (linear time); one that is not valid matches nothing."""
        if self.is_regex:
            pattern = _pattern(self.value)
            found = pattern is not None and pattern.fullmatch(value) is not None
        else:
            found = value == self.value
        return found == self.is_equal


def _re2_options() -> "re2.Options":
    options = re2.Options()
    options.log_errors = False  # an invalid pattern is an answer to the caller, not a line on stderr
    return options


_OPTIONS = _re2_options()


def compile_regex(pattern: str) -> Any:
    """A matcher's regex compiled by RE2 (Go's syntax, as the Alertmanager reads it).

    Raises
    ------
    re2.error
        Not a valid RE2 pattern (its message in ``str(exc)``, readable).
    """
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "invalid"
        raise re2.error(detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)) from None


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> Any:
    """The compiled pattern of a regex matcher's value, None when it is not valid."""
    try:
        return compile_regex(value)
    except re2.error:
        return None


def parse_duration(value: Any, *, field: str = "duration") -> float:
    """``"30m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` or a number of seconds → seconds, from 1 minute to 30 days.

    Raises
    ------
    InvalidInput
        Naming ``field``: not a duration, or out of bounds.
    """
    hint = 'a duration such as "30m", "2h", "1d" or a number of seconds'
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f"{field} must be {hint}", field=field)
    if isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION.match(text) if len(text) <= 40 else None
        if not match:
            raise InvalidInput(f"{field}: {value[:40]!r} is not {hint}", field=field)
        if match.group(1) is not None:
            seconds = float(match.group(1))
        else:
            seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text))
    else:
        seconds = float(value)
    if not MIN_DURATION <= seconds <= MAX_DURATION:  # NaN fails too
        raise InvalidInput(f"{field} must be from 1 minute to 30 days, got {value!r}", field=field)
    return seconds


def parse_comment(value: Any, *, field: str = "comment") -> str:
    """A silence's comment: required, 1 to :data:`MAX_COMMENT` characters once trimmed."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: a non-empty text is required (why the alert is silenced)", field=field)
    text = value.strip()
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"{field} may be {MAX_COMMENT} characters at most, got {len(text)}", field=field)
    return text


def parse_matchers(value: Any, *, field: str = "matchers") -> list[Matcher]:
    """Matchers given by a user: ``[{"name", "value", "isRegex"?, "isEqual"?}, ...]`` (Alertmanager's form).

    At least one matcher must not match the empty string (Alertmanager's rule: a silence may not
    match every alert), and each regex must compile.
    """
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{field} must be a non-empty list of {{name, value, isRegex, isEqual}}", field=field)
    if len(value) > MAX_MATCHERS:
        raise InvalidInput(f"{field}: at most {MAX_MATCHERS} matchers, got {len(value)}", field=field)
    matchers = []
    for n, raw in enumerate(value):
        where = f"{field}[{n}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be an object {{name, value, isRegex, isEqual}}", field=where)
        unknown = sorted(set(raw) - {"name", "value", "isRegex", "isEqual"})
        if unknown:
            raise InvalidInput(f"{where}: unknown field(s) {', '.join(map(str, unknown))[:100]}", field=where)
        name, text = raw.get("name"), raw.get("value")
        if not isinstance(name, str) or not LABEL_NAME.match(name) or len(name) > 200:
            raise InvalidInput(f"{where}.name must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)", field=f"{where}.name")
        if not isinstance(text, str) or len(text) > MAX_VALUE:
            raise InvalidInput(f"{where}.value must be a text of at most {MAX_VALUE} characters",
                               field=f"{where}.value")
        flags = {}
        for key in ("isRegex", "isEqual"):
            flag = raw.get(key, key == "isEqual")
            if not isinstance(flag, bool):
                raise InvalidInput(f"{where}.{key} must be true or false", field=f"{where}.{key}")
            flags[key] = flag
        if flags["isRegex"]:
            try:
                compile_regex(text)
            except re2.error as exc:
                raise InvalidInput(f"{where}.value is not a valid regular expression: {exc}",
                                   field=f"{where}.value") from None
        matchers.append(Matcher(name, text, is_regex=flags["isRegex"], is_equal=flags["isEqual"]))
    if all(m.matches({}) for m in matchers):
        raise InvalidInput(f"{field}: at least one matcher must not match an empty label value "
                           "(a silence may not match every alert)", field=field)
    return matchers


def incident_label_sets(incident: dict) -> list[dict[str, str]]:
    """The label sets of an incident's alerts (and its common labels), each once; none for an incident
    opened through the API."""
    sets: list[dict[str, str]] = []
    for labels in [incident.get("labels") or {}, *((a or {}).get("labels") or {}
                                                   for a in (incident.get("alerts") or {}).values())]:
        labels = {str(k): str(v) for k, v in labels.items() if v not in (None, "")}
        if labels and labels not in sets:
            sets.append(labels)
    return sets


def incident_matchers(incident: dict) -> list[Matcher]:
    """Equality matchers for every label the incident's alerts share (its common labels, else the labels
    all its alerts have alike); empty when it has none (an incident opened through the API)."""
    common = {str(k): str(v) for k, v in (incident.get("labels") or {}).items() if v not in (None, "")}
    if not common:
        alert_sets = [{str(k): str(v) for k, v in ((a or {}).get("labels") or {}).items() if v not in (None, "")}
                      for a in (incident.get("alerts") or {}).values()]
        if alert_sets:
            common = dict(set.intersection(*(set(s.items()) for s in alert_sets)))
    return [Matcher(name, value) for name, value in sorted(common.items()) if LABEL_NAME.match(name)]


def silence_matches(silence: dict, label_sets: Iterable[dict[str, str]]) -> bool:
    """Whether a silence (as :func:`silence_json` gives it) mutes any of ``label_sets``: all its matchers match."""
    matched, _ = matching_silences([silence], label_sets, budget=float("inf"))
    return bool(matched)


def matching_silences(silences: Iterable[dict], label_sets: Iterable[dict[str, str]], *,
                      budget: float = MATCH_BUDGET,
                      clock: Callable[[], float] = time.monotonic) -> tuple[list[dict], bool]:
    """The silences (as :func:`silence_json` gives them) that mute any of ``label_sets``, within ``budget`` seconds.

    Each matcher is evaluated once per distinct value of its label (a cache shared by all the
    silences: many share matchers), and the clock is read before each evaluation: once ``budget``
    seconds have passed, matching stops.

    Parameters
    ----------
    silences
        Silences, each with ``matchers`` (``name, value, isRegex, isEqual``).
    label_sets
        The label sets of an incident's alerts.
    budget
        Seconds the whole matching may take.
    clock
        Monotonic seconds (a test passes its own).

    Returns
    -------
    tuple
        ``(matched, complete)``: the silences found to match, in their order, and whether every
        silence was checked (False: the budget ran out; the silences not reached are left out).
    """
    sets = [dict(s) for s in label_sets]
    deadline = clock() + budget
    known: dict[tuple[Matcher, str], bool] = {}
    matched: list[dict] = []
    for silence in silences:
        matchers = [Matcher(m["name"], m["value"], is_regex=m["isRegex"], is_equal=m["isEqual"])
                    for m in silence["matchers"]]
        candidates = sets if matchers else []
        for matcher in matchers:
            passing = set()
            for value in {labels.get(matcher.name, "") for labels in candidates}:
                key = (matcher, value)
                if key not in known:
                    if clock() >= deadline:
                        return matched, False
                    known[key] = matcher.matches_value(value)
                if known[key]:
                    passing.add(value)
            candidates = [labels for labels in candidates if labels.get(matcher.name, "") in passing]
            if not candidates:
                break
        if candidates:
            matched.append(silence)
    return matched, True


def iso(seconds: float | None) -> str | None:
    """Unix seconds as ISO-8601 UTC with a ``Z`` (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def silence_json(raw: Any) -> dict:
    """A silence as Alertmanager gives it (``gettableSilence``) → ours: ``id, status, matchers (name,
    value, isRegex, isEqual, text), starts_at, ends_at, updated_at`` (unix seconds, each with ``*_iso``),
    ``created_by, comment``.

    Raises
    ------
    AlertmanagerError
        The object is not a silence.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("matchers"), list):
        raise AlertmanagerError("the Alertmanager's answer is not a silence")
    matchers = []
    for m in raw["matchers"]:
        if not isinstance(m, dict):
            raise AlertmanagerError("the Alertmanager's answer has a matcher that is not an object")
        matcher = Matcher(str(m.get("name", "")), str(m.get("value", "")), is_regex=bool(m.get("isRegex")),
                          is_equal=m.get("isEqual", True) is not False)
        matchers.append({**matcher.as_api(), "text": matcher.text})
    state = (raw.get("status") or {}).get("state") if isinstance(raw.get("status"), dict) else None
    out = {"id": raw["id"], "status": str(state or "unknown"), "matchers": matchers,
           "created_by": str(raw.get("createdBy", "")), "comment": str(raw.get("comment", ""))}
    for ours, theirs in (("starts_at", "startsAt"), ("ends_at", "endsAt"), ("updated_at", "updatedAt")):
        out[ours] = _seconds(raw.get(theirs))
        out[f"{ours}_iso"] = iso(out[ours])
    return out


def check_silence_id(value: str, *, field: str = "silence_id") -> str:
    """A silence id as Alertmanager makes them (a UUID), or an :class:`InvalidInput` naming ``field``."""
    try:
        if len(value) <= 64:
            return str(uuid.UUID(value))
    except ValueError:
        pass
    raise InvalidInput(f"{field} must be a silence id (a UUID such as 5947eba9-c472-42c4-88fe-ad9b8cd781b0)",
                       field=field)


class AlertmanagerClient:
    """An async client of one Alertmanager's API v2; use as ``async with AlertmanagerClient(url) as am:``.

    Parameters
    ----------
    base_url
        The Alertmanager's URL (``http://alertmanager:9093``, or with a path prefix); a login in it
        (``http://user:password@host:9093``) is sent as HTTP basic auth and shown nowhere:
        :attr:`base_url` is the URL without it.
    timeout
        Seconds to connect, and to wait for each read, before the call fails; a whole call (an answer
        trickling in) may take three times as long.
    max_answer
        Bytes of an answer read at most; a longer one fails the call.
    executor
        Where an answer longer than :data:`PARSE_INLINE` bytes is parsed (None: asyncio's default
        executor), so that parsing a long silence list does not hold the event loop.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, max_answer: int = MAX_ANSWER,
                 executor: Executor | None = None) -> None:
        self.base_url = public_url(base_url).rstrip("/")
        self.max_answer = max_answer
        self.total_timeout = 3 * timeout
        self.executor = executor
        login = _login(base_url)
        self._secrets = [s for s in (login or ()) if len(s) >= 3]  # scrubbed from any message, to be sure
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout),
                                         auth=httpx.BasicAuth(*login) if login else None,
                                         follow_redirects=False, headers={"Accept": "application/json"})

    async def __aenter__(self) -> "AlertmanagerClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _read(self, method: str, path: str, body: Any) -> tuple[int, str]:
        """The status and text of ``method path``, the text read up to :attr:`max_answer` bytes."""
        async with self._client.stream(method, path, json=body) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_answer:
                    raise AlertmanagerError(f"the Alertmanager's answer to {method} {path} is larger than "
                                            f"{self.max_answer} bytes", status_code=response.status_code)
                chunks.append(chunk)
        return response.status_code, b"".join(chunks).decode("utf-8", errors="replace")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _call(self, method: str, path: str, *, body: Any = None, missing_ok: bool = False,
                    convert: Callable[[Any], Any] | None = None) -> Any:
        """JSON answer of ``method path`` (passed through ``convert``); None for a 404 when ``missing_ok``.
        Every failure is an :class:`AlertmanagerError`."""
        try:
            status, text = await asyncio.wait_for(self._read(method, path, body), self.total_timeout)
        except (httpx.TimeoutException, asyncio.TimeoutError):
            raise AlertmanagerError(f"the Alertmanager at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            detail = clip_message(self._scrub(str(exc)) or type(exc).__name__, limit=200)
            raise AlertmanagerError(f"the Alertmanager at {self.base_url} cannot be reached: {detail}") from None
        if status == 404 and missing_ok:
            return None
        if not 200 <= status < 300:
            raise AlertmanagerError(f"the Alertmanager refused {method} {path.split('?')[0]} "
                                    f"(HTTP {status}): {self._scrub(_their_message(text))}", status_code=status)

        def parse() -> Any:
            if not text.strip():
                answer = None
            else:
                try:
                    answer = json.loads(text)
                except ValueError:
                    raise AlertmanagerError(f"the Alertmanager's answer to {method} {path} is not JSON",
                                            status_code=status) from None
            return answer if convert is None else convert(answer)

        if len(text) <= PARSE_INLINE:
            return parse()
        return await asyncio.get_running_loop().run_in_executor(self.executor, parse)

    async def create_silence(self, matchers: list[Matcher], *, duration: float, created_by: str, comment: str,
                             starts_at: float | None = None) -> str:
        """Create a silence from now (or ``starts_at``) for ``duration`` seconds; returns its id."""
        start = time.time() if starts_at is None else starts_at
        body = {"matchers": [m.as_api() for m in matchers], "startsAt": iso(start), "endsAt": iso(start + duration),
                "createdBy": created_by, "comment": comment}
        answer = await self._call("POST", "/api/v2/silences", body=body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError("the Alertmanager created a silence but did not say its id")
        return silence_id

    async def silences(self) -> list[dict]:
        """Every silence the Alertmanager holds (active, pending and expired), as :func:`silence_json`."""
        return await self._call("GET", "/api/v2/silences", convert=_silence_list)

    async def silence(self, silence_id: str) -> dict | None:
        """One silence (:func:`silence_json`), None when the Alertmanager does not know it."""
        answer = await self._call("GET", f"/api/v2/silence/{check_silence_id(silence_id)}", missing_ok=True)
        return None if answer is None else silence_json(answer)

    async def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now (an expired one stays expired)."""
        await self._call("DELETE", f"/api/v2/silence/{check_silence_id(silence_id)}")


def _silence_list(answer: Any) -> list[dict]:
    if not isinstance(answer, list):
        raise AlertmanagerError("the Alertmanager's silence list is not a list")
    return [silence_json(raw) for raw in answer]


def _their_message(text: str) -> str:
    """The message of an Alertmanager error body (a JSON string, or ``{"code", "message"}``), clipped."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or json.dumps(value)[:200]
    return clip_message(str(value).strip() or "(no message)", limit=300)
