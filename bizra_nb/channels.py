"""Delivery of notifications: email over SMTP (in a thread), Slack and generic webhooks (httpx), retried with backoff.

:meth:`Deliverer.deliver` sends one event to one channel: up to ``len(delays) + 1`` attempts, waiting
``delays[i]`` seconds before the next (:data:`RETRY_DELAYS`: 1 s, then 4 s); a permanent refusal (an
SMTP 5xx, an HTTP 4xx other than 408/429) is not retried. When the last attempt fails, the failure is
logged as an error and recorded as a ``silent_failure`` violation (the score, ``/health``): a
notification is never lost without a trace. Each delivery is its own coroutine: a slow channel delays
no other; SMTP's blocking calls run on the deliverer's own threads, never on the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx

from bizra_nb.errors import one_line
from bizra_nb.notify import Channel, Event, email_message, slack_body, webhook_body

log = logging.getLogger("bizra.notify")

RETRY_DELAYS = (1.0, 4.0)  # seconds before the 2nd and the 3rd attempt
WEBHOOK_TIMEOUT = 10.0  # seconds for one webhook request
SMTP_TIMEOUT = 30.0  # seconds for each SMTP command
MAX_ATTACHMENT = 15 << 20  # bytes: a larger report is linked, not attached
PDF_TIMEOUT = 60.0  # seconds Chromium may take to print an audit's report


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent``: retrying cannot help (a refusal, not an outage)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how email goes: ``--smtp-host``, ``--smtp-port``, login, STARTTLS, ``--smtp-from``.

    Port 465 speaks TLS from the start (SMTPS); other ports upgrade with STARTTLS when ``starttls``.
    ``tls_context``: the certificate check (default: the system's CAs).
    """

    host: str
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = True
    sender: str = "bizra-nb@localhost"
    timeout: float = SMTP_TIMEOUT
    tls_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings) -> "SmtpConfig | None":
        """The settings' SMTP server, None without ``--smtp-host``."""
        if not settings.smtp_host:
            return None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password,
                   settings.smtp_starttls, settings.smtp_from)


def send_email(message: EmailMessage, config: SmtpConfig) -> None:
    """Blocking: hand ``message`` to the SMTP server (STARTTLS and login as configured).

    Raises
    ------
    DeliveryFailed
        With the server's answer (``permanent`` for a 5xx), or the network error.
    """
    context = config.tls_context or ssl.create_default_context()
    try:
        if config.port == 465:
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with client:
            client.ehlo()
            if config.starttls and config.port != 465:
                client.starttls(context=context)
                client.ehlo()
            if config.user:
                client.login(config.user, config.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed(f"SMTP refused the recipients {', '.join(exc.recipients)}", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryFailed(f"SMTP {exc.smtp_code}: {text[:200]}", permanent=500 <= exc.smtp_code < 600) from None
    except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS offered: a configuration problem
        raise DeliveryFailed(f"SMTP {config.host}:{config.port}: {exc} (--no-smtp-starttls if the server offers no "
                             "STARTTLS, e.g. a relay on this network; --smtp-port 465 for TLS from the start)",
                             permanent=True) from None
    except ssl.SSLCertVerificationError as exc:  # a configuration problem: retrying cannot help
        raise DeliveryFailed(f"SMTP {config.host}:{config.port}: the server's certificate is not trusted: "
                             f"{exc.verify_message or exc}", permanent=True) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {config.host}:{config.port}: {type(exc).__name__}: {exc}"[:300]) from None


def report_attachment(report: Path, *, max_bytes: int = MAX_ATTACHMENT) -> tuple[str, bytes, str] | None:
    """Blocking: the audit's report to attach, ``(name, content, MIME type)``: a PDF when
    :func:`bizra_nb.pdf.ensure_pdf` can print it (Chromium is there) (made once, kept next to report.html, never
    printed by two at once nor read through a link), else the report.html; None when it is missing or larger
    than ``max_bytes`` (then only linked)."""
    try:
        from bizra_nb.pdf import ensure_pdf

        data = ensure_pdf(report, timeout=PDF_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - no pdf module, no Chromium, a print that failed: the HTML then
        log.info("attaching %s as HTML (no PDF: %s)", report, exc)
    else:
        if data is None or len(data) > max_bytes:  # a link put there, no file: not attached, as a read error
            return None
        return report.with_suffix(".pdf").name, data, "application/pdf"
    try:
        if report.stat().st_size > max_bytes:
            return None
        return report.name, report.read_bytes(), "text/html"
    except OSError:
        return None


class Deliverer:
    """Sends events to channels, each delivery retried on its own (see the module's docstring)."""

    def __init__(self, *, smtp: SmtpConfig | None = None, keeper=None, delays: tuple[float, ...] = RETRY_DELAYS,
                 timeout: float = WEBHOOK_TIMEOUT, threads: int = 4) -> None:
        self.smtp = smtp
        self.keeper = keeper
        self.delays = tuple(delays)
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._pool = ThreadPoolExecutor(threads, "bizra-notify")

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             headers={"User-Agent": "bizra-nb notifications"})
        return self._client

    async def deliver(self, event: Event, channel: Channel) -> bool:
        """Send ``event`` to ``channel``, retrying; True once delivered, False after the last failure (recorded).

        Parameters
        ----------
        event
            What to say.
        channel
            Where: email, slack or webhook.
        """
        reason = "not attempted"
        attachment = None  # made once for all the attempts: a PDF is printed (Chromium) at most once
        if channel.type == "email" and self.smtp is not None and event.attachment is not None:
            attachment = await asyncio.get_running_loop().run_in_executor(self._pool, report_attachment,
                                                                           event.attachment)
        for attempt in range(len(self.delays) + 1):
            if attempt:
                await asyncio.sleep(self.delays[attempt - 1])
            try:
                await self.send_once(event, channel, attachment=attachment)
                if attempt:
                    log.info("notification %s to %s delivered at attempt %d", event.name, channel.name, attempt + 1)
                return True
            except DeliveryFailed as exc:
                reason = exc.reason
                log.warning("notification %s to %s: attempt %d failed: %s", event.name, channel.name, attempt + 1, reason)
                if exc.permanent:
                    break
        detail = f"notification {event.name} to {channel.name} failed: {reason}"
        log.error("%s", detail)
        if self.keeper is not None:
            self.keeper.record_violation("silent_failure", detail)
        return False

    async def send_once(self, event: Event, channel: Channel, *,
                        attachment: tuple[str, bytes, str] | None = None) -> None:
        """One attempt; an email carries ``attachment`` (:func:`report_attachment`). Raises :class:`DeliveryFailed`."""
        if channel.type == "email":
            if self.smtp is None:
                raise DeliveryFailed("no SMTP server is configured (--smtp-host)", permanent=True)
            await asyncio.get_running_loop().run_in_executor(self._pool, self._send_email, event, channel, attachment)
            return
        body = slack_body(event) if channel.type == "slack" else webhook_body(event)
        try:
            response = await self.client.post(channel.url, json=body)
        except httpx.HTTPError as exc:  # the URL stays out of the reason: a Slack URL is a secret
            raise DeliveryFailed(f"{type(exc).__name__}: {str(exc)[:200] or 'no answer'}") from None
        except (httpx.InvalidURL, ValueError) as exc:  # a URL httpx cannot send to (idna's IDNAError): never will
            raise DeliveryFailed(f"the channel's URL is not valid: {type(exc).__name__}: {one_line(exc, 100)}",
                                 permanent=True) from None
        if response.is_success:
            return
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        raise DeliveryFailed(f"HTTP {response.status_code}: {one_line(response.text, 200)}", permanent=permanent)

    def _send_email(self, event: Event, channel: Channel, attachment: tuple[str, bytes, str] | None) -> None:
        message = email_message(event, sender=channel.sender or self.smtp.sender, to=channel.to, attachment=attachment)
        send_email(message, self.smtp)

    async def close(self) -> None:
        """Close the HTTP client and the SMTP threads (a send in progress finishes in its thread)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._pool.shutdown(wait=False, cancel_futures=True)
