"""Notifications against real receivers: an SMTP server (aiosmtpd, STARTTLS and AUTH) and local HTTP webhooks."""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bizra_nb.channels import Deliverer, SmtpConfig
from bizra_nb.cli import _configure_logging
from bizra_nb.errors import InvalidSetting
from bizra_nb.notify import (Channel, Event, email_message, incident_events, load_routes, parse_routes, run_events,
                             slack_body, webhook_body)
from bizra_nb.score import ScoreKeeper
from tests.conftest import need_binary

HOSTILE = "<img src=x onerror=alert(1)> & <!channel> *bold*"
FAST = (0.01, 0.02)  # retry delays for the tests

ROUTES = """
channels:
  oncall-email: {type: email, to: [oncall@example.com]}
  slack: {type: slack, url: https://hooks.slack.com/services/T/B/x}
  pager: {type: webhook, url: https://example.com/hook}
routes:
  - {event: run_failed, channel: slack}
  - {event: run_succeeded, kind: audit, channel: oncall-email}
  - {event: run_succeeded, kind: [benchmark, explore], channel: pager}
  - {event: incident_opened, severity: [P1, P2], channel: [slack, pager]}
  - {event: incident_resolved, channel: slack}
  - {event: audit_not_compliant, channel: [oncall-email, slack]}
"""


def audit_run(tmp_path: Path, *, compliant: bool, headline: str = "2026-11: not compliant, score 91.2 (B)") -> dict:
    folder = tmp_path / "reports" / "audit" / "2026-11-abc123"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
                                        "<body><h1>Audit 2026-11</h1></body></html>")
    return {"id": "abc123", "notebook": "/nb/compliance_audit.ipynb", "kind": "audit", "status": "succeeded",
            "parameters": {"month": "2026-11"}, "folder": str(folder), "error": None, "finished_at": 1.79e9,
            "summary": {"headline": headline, "compliant": compliant,
                        "verdict": "compliant" if compliant else "not compliant", "score": 91.2, "tier": "B",
                        "availability": 0.99912, "incidents": 4}}


def run_of(kind: str, status: str = "succeeded", **extra) -> dict:
    notebook = {"benchmark": "benchmark", "explore": "explore", "incident": "incident_diagnosis"}.get(kind, "x")
    return {"id": f"r-{kind}", "notebook": f"/nb/{notebook}.ipynb", "kind": kind, "status": status,
            "parameters": {}, "folder": None, "summary": {"headline": "P99 120 ms, pass"}, **extra}


# --- routes -------------------------------------------------------------------------------------------------------

def test_routes_match_by_event_kind_and_severity(tmp_path):
    routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")

    def sent(events):
        return sorted((e.name, c.name) for e, c in routes.deliveries(events))

    url = "https://bizra.example"
    assert sent(run_events(run_of("benchmark"), public_url=url)) == [("run_succeeded", "pager")]
    assert sent(run_events(run_of("explore"), public_url=url)) == [("run_succeeded", "pager")]
    assert sent(run_events(run_of("incident"), public_url=url)) == []  # kind not routed
    assert sent(run_events(run_of("incident", "failed", error="boom"), public_url=url)) == [("run_failed", "slack")]
    assert sent(run_events(run_of("benchmark", "cancelled"), public_url=url)) == []
    incident = {"id": 7, "title": "t", "service": "api", "opened_at": 1.79e9, "resolved_at": 1.79e9 + 600}
    for severity, channels in (("P0", []), ("P1", ["pager", "slack"]), ("P2", ["pager", "slack"]), ("P3", [])):
        events = incident_events({**incident, "severity": severity}, "opened", public_url=url)
        assert sent(events) == [("incident_opened", c) for c in channels], severity
    assert sent(incident_events({**incident, "severity": "P3"}, "resolved", public_url=url)) == [
        ("incident_resolved", "slack")]
    assert incident_events({**incident, "severity": "P1"}, "acknowledged", public_url=url) == []
    # a compliant audit: run_succeeded only; a non-compliant one: each channel once, the specific message
    assert sent(run_events(audit_run(tmp_path, compliant=True), public_url=url)) == [("run_succeeded", "oncall-email")]
    assert sent(run_events(audit_run(tmp_path, compliant=False), public_url=url)) == [
        ("audit_not_compliant", "oncall-email"), ("audit_not_compliant", "slack")]


def test_diagnosis_is_another_name_of_the_incident_kind():
    doc = {"channels": {"a": {"type": "slack", "url": "https://x"}, "b": {"type": "slack", "url": "https://y"}},
           "routes": [{"event": "run_failed", "kind": "diagnosis", "channel": "a"},
                      {"event": "run_succeeded", "kind": ["diagnosis", "incident", "audit"], "channel": "b"}]}
    routes = parse_routes(doc)
    assert [r.kinds for r in routes.routes] == [("incident",), ("incident", "audit")]
    url = "https://bizra.example"
    diagnosis = run_of("incident", "failed", error="boom")  # a diagnosis run: kind incident (runner.KINDS)
    assert [(e.name, c.name) for e, c in routes.deliveries(run_events(diagnosis, public_url=url))] == [("run_failed", "a")]
    assert routes.deliveries(run_events(run_of("benchmark", "failed", error="boom"), public_url=url)) == []
    assert [c.name for _, c in routes.deliveries(run_events(run_of("incident"), public_url=url))] == ["b"]


def test_messages_name_the_change_and_link_absolutely(tmp_path):
    url = "https://bizra.example/"
    not_compliant, succeeded = run_events(audit_run(tmp_path, compliant=False), public_url=url)
    assert not_compliant.title == "audit 2026-11: not compliant" == succeeded.title
    assert not_compliant.link == "https://bizra.example/reports/audit/2026-11-abc123/report.html"
    assert not_compliant.attachment == Path(audit_run(tmp_path, compliant=False)["folder"]) / "report.html"
    assert ("availability", "99.912 %") in not_compliant.figures and ("score", "91.2") in not_compliant.figures
    failed = run_events(run_of("benchmark", "failed", error="ValueError: no target"), public_url=url)[0]
    assert failed.title == "benchmark run failed" and failed.summary == "ValueError: no target"
    assert failed.attachment is None  # linked, not attached: not an audit
    opened = incident_events({"id": 3, "title": "API down", "severity": "P1", "service": "api",
                              "opened_at": 1.79e9, "source": "alertmanager"}, "opened", public_url=url)[0]
    assert opened.title == "P1 incident opened: API down" and opened.link == "https://bizra.example/#incident=3"
    body = webhook_body(opened)
    assert {k: body[k] for k in ("event", "kind", "severity", "title", "link")} == {
        "event": "incident_opened", "kind": None, "severity": "P1", "title": "P1 incident opened: API down",
        "link": "https://bizra.example/#incident=3"}
    assert body["incident"]["id"] == 3 and body["incident"]["opened_at_iso"].endswith("+00:00")
    assert "run" not in body and isinstance(body["sent_at"], float)
    assert webhook_body(failed)["run"]["id"] == "r-benchmark" and "incident" not in webhook_body(failed)


BAD_ROUTES = [
    ("routes: []", ["channels: required"]),
    ("channels: {a: {type: sms, url: https://x}}\nroutes: []", ["channels.a.type: 'sms' is not a channel type; "
                                                                 "allowed: email, slack, webhook"]),
    ("channels: {a: {type: slack}}\nroutes: []", ["channels.a.url: required for a slack channel"]),
    ("channels: {a: {type: webhook, url: ftp://x}}\nroutes: []", ["channels.a.url: must be an http:// or https:// URL"]),
    # URLs the pattern lets through but httpx cannot send to: one line each, naming the place, not the URL
    ("channels: {a: {type: webhook, url: 'http://[::1/x'}}\nroutes: []", ["channels.a.url: not a valid URL (Invalid port"]),
    ('channels: {a: {type: slack, url: "http://a\\0b/x"}}\nroutes: []',
     ["channels.a.url: not a valid URL (Invalid non-printable ASCII character"]),
    ("channels: {a: {type: webhook, url: 'http://xn--/x'}}\nroutes: []", ["channels.a.url: not a valid URL (Malformed A-label"]),
    ("channels: {a: {type: webhook, url: 'http://:80/x'}}\nroutes: []", ["channels.a.url: not a valid URL (no host)"]),
    ("channels: {a: {type: webhook, url: 'http://h:99999/x'}}\nroutes: []",
     ["channels.a.url: not a valid URL (port 99999 is out of range)"]),
    ("channels: {a: {type: webhook, url: https://x, token: s}}\nroutes: []",
     ["channels.a.token: unknown key for a webhook channel; allowed: type, url"]),
    ("channels: {m: {type: email, to: [not-an-address]}}\nroutes: []", ["channels.m.to: must be an email address"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: run_finished, channel: a}]",
     ["routes[0].event: 'run_finished' is not an event; allowed: run_failed, run_succeeded, incident_opened, "
      "incident_resolved, audit_not_compliant"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: run_failed, channel: b}]",
     ["routes[0].channel: 'b' is not a channel of this file; defined: a"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: run_failed}]", ["routes[0].channel: required"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: incident_opened, severity: [P1, P9], channel: a}]",
     ["routes[0].severity: 'P9' is not allowed; allowed: P0, P1, P2, P3"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: run_succeeded, kind: audits, channel: a}]",
     ["routes[0].kind: 'audits' is not allowed; allowed: incident, benchmark, audit, explore, other"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: incident_opened, kind: audit, channel: a}]",
     ["routes[0].kind: incident_opened has no kind; only run_failed, run_succeeded, audit_not_compliant do"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: [{event: run_failed, channel: a, when: never}]",
     ["routes[0].when: unknown key; allowed: event, channel, kind, severity"]),
    ("channels: {a: {type: slack, url: https://x}}\nroutes: {event: run_failed}", ["routes: required: a list"]),
    ("channels: [a\nroutes: []", ["not valid YAML"]),
    ("- just a list", ["the file must be a mapping with 'channels' and 'routes'"]),
    # several problems: one line each
    ("channels: {a: {type: slack}, b: {type: pager}}\nroutes: [{event: nope, channel: c}]",
     ["channels.a.url: required", "channels.b.type: 'pager'", "routes[0].event: 'nope'", "routes[0].channel: 'c'"]),
]


@pytest.mark.parametrize("text, fragments", BAD_ROUTES)
def test_a_bad_routes_file_names_each_problem(tmp_path, text, fragments):
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(InvalidSetting) as caught:
        load_routes(path)
    assert caught.value.field == "notify_routes"
    lines = caught.value.message.splitlines()
    assert len(lines) == len(fragments) or fragments == ["channels: required"], lines
    for fragment in fragments:
        assert any(str(path) in line and fragment in line for line in lines), (fragment, lines)


def test_email_channels_need_an_smtp_server(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    with pytest.raises(InvalidSetting, match=r"channels\.oncall-email: an email channel needs an SMTP server: set --smtp-host"):
        load_routes(path, email_ready=False)
    with pytest.raises(InvalidSetting, match="cannot read"):
        load_routes(tmp_path / "missing.yaml")


# --- an SMTP server with STARTTLS and AUTH ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    openssl = need_binary("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class Mailbox:
    """What the SMTP server received: parsed messages and the logins it saw."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []
        self.logins: list[tuple[str, bool]] = []  # (user, over TLS)
        self.refused: set = set()  # the connections (peers) whose login was refused

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server(certificate):
    """A real SMTP server on a free port that demands STARTTLS, then AUTH (user ``bizra``, password ``s3cret``)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    mailbox = Mailbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"bizra" and auth_data.password == b"s3cret"
        if ok:
            mailbox.logins.append((auth_data.login.decode(), session.ssl is not None))
        else:
            mailbox.refused.add(session.peer)
        return AuthResult(success=ok, handled=False)  # a failure answers 535

    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticate, auth_required=True, auth_require_tls=True)
    controller.start()
    mailbox.port = port
    yield mailbox
    controller.stop()


def client_tls(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def deliver(deliverer: Deliverer, event: Event, channel) -> bool:
    async def go():
        try:
            return await deliverer.deliver(event, channel)
        finally:
            await deliverer.close()
    return asyncio.run(go())


def test_an_audit_email_over_starttls_with_login_attaches_the_report(tmp_path, smtp_server, certificate, monkeypatch):
    monkeypatch.setenv("BIZRA_CHROMIUM", "none")  # no Chromium: the report.html is attached (the PDF: next test)
    routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")
    run = audit_run(tmp_path, compliant=False, headline=f"2026-11: not compliant {HOSTILE}")
    [(event, channel), _] = routes.deliveries(run_events(run, public_url="https://bizra.example"))
    keeper = ScoreKeeper(300)
    smtp = SmtpConfig("127.0.0.1", smtp_server.port, "bizra", "s3cret", True, "bizra@example.com",
                      tls_context=client_tls(certificate))
    assert deliver(Deliverer(smtp=smtp, keeper=keeper, delays=FAST), event, channel)
    assert smtp_server.logins == [("bizra", True)]  # logged in, over TLS
    [message] = smtp_server.messages
    assert message["Subject"] == "[bizra] audit 2026-11: not compliant"
    assert message["From"] == "bizra@example.com" and message["To"] == "oncall@example.com"
    assert smtp_server.envelopes[0].rcpt_tos == ["oncall@example.com"]
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;!channel&gt;" in html and "<img" not in html
    assert "<th" in html and ">availability</th>" in html and "99.912 %" in html
    assert HOSTILE in text and "availability: 99.912 %" in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.html" and attachment.get_content_type() == "text/html"
    assert "<h1>Audit 2026-11</h1>" in attachment.get_content()
    assert keeper.total_violations["silent_failure"] == 0


def test_an_audit_email_attaches_a_pdf_when_chromium_is_there(tmp_path, smtp_server, certificate):
    need_binary("chromium")
    routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")
    event, channel = routes.deliveries(run_events(audit_run(tmp_path, compliant=True), public_url="http://h")).pop()
    smtp = SmtpConfig("127.0.0.1", smtp_server.port, "bizra", "s3cret", True, "bizra@example.com",
                      tls_context=client_tls(certificate))
    assert deliver(Deliverer(smtp=smtp, delays=FAST), event, channel)
    [message] = smtp_server.messages
    assert message["Subject"] == "[bizra] audit 2026-11: compliant"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.pdf" and attachment.get_content_type() == "application/pdf"
    assert attachment.get_content().startswith(b"%PDF-")


def test_a_wrong_password_is_not_retried_and_is_recorded(tmp_path, smtp_server, certificate):
    routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")
    event, channel = routes.deliveries(run_events(audit_run(tmp_path, compliant=True), public_url="http://h")).pop()
    keeper = ScoreKeeper(300)
    smtp = SmtpConfig("127.0.0.1", smtp_server.port, "bizra", "wrong", True, "bizra@example.com",
                      tls_context=client_tls(certificate))
    assert not deliver(Deliverer(smtp=smtp, keeper=keeper, delays=FAST), event, channel)
    assert smtp_server.messages == [] and len(smtp_server.refused) == 1  # one connection: not retried
    assert keeper.total_violations["silent_failure"] == 1
    assert "wrong" not in repr(smtp)  # the password is never shown


def test_an_untrusted_certificate_is_refused(tmp_path, smtp_server):
    routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")
    event, channel = routes.deliveries(run_events(audit_run(tmp_path, compliant=True), public_url="http://h")).pop()
    keeper = ScoreKeeper(300)
    smtp = SmtpConfig("127.0.0.1", smtp_server.port, "bizra", "s3cret", True, "bizra@example.com")  # system CAs
    assert not deliver(Deliverer(smtp=smtp, keeper=keeper, delays=FAST), event, channel)
    assert smtp_server.messages == [] and smtp_server.logins == []
    assert keeper.total_violations["silent_failure"] == 1


def test_a_server_without_starttls_is_one_attempt_that_says_what_to_set(tmp_path, caplog):
    """STARTTLS is on by default; a relay that does not offer it is a configuration problem, not retried."""
    from aiosmtpd.controller import Controller

    mailbox, connections = Mailbox(), []

    class Counting(Mailbox):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
            connections.append(session.peer)
            session.host_name = hostname
            return responses

    port = free_port()
    controller = Controller(Counting(), hostname="127.0.0.1", port=port)  # no TLS context: no STARTTLS offered
    controller.start()
    try:
        routes = parse_routes(yaml.safe_load(ROUTES), source="routes.yaml")
        event, channel = routes.deliveries(run_events(audit_run(tmp_path, compliant=True), public_url="http://h")).pop()
        keeper = ScoreKeeper(300)
        smtp = SmtpConfig("127.0.0.1", port, "", "", True, "bizra@example.com")
        assert not deliver(Deliverer(smtp=smtp, keeper=keeper, delays=FAST), event, channel)
    finally:
        controller.stop()
    assert len(connections) == 1 and mailbox.messages == []  # not retried
    assert keeper.total_violations["silent_failure"] == 1
    assert "--no-smtp-starttls" in caplog.text


# --- webhooks -------------------------------------------------------------------------------------------------------

class Receiver:
    """A local HTTP server recording JSON bodies; answers ``statuses`` in order, then ``then`` (default 200)."""

    def __init__(self, statuses=(), then: int = 200, hold: threading.Event | None = None) -> None:
        self.bodies: list[dict] = []
        self.statuses = list(statuses)
        self.then = then
        self.hold = hold
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.hold is not None:
                    receiver.hold.wait(10)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                receiver.bodies.append({"path": self.path, "status": status, "body": body})
                receiver.got.set()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        return [b["body"] for b in self.bodies if b["status"] < 300]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def channels_for(**urls) -> dict:
    doc = {"channels": {name: {"type": name.split("_")[0], "url": url} for name, url in urls.items()},
           "routes": [{"event": e, "channel": list(urls)} for e in ("incident_opened", "run_failed")]}
    return parse_routes(doc).channels


def hostile_incident() -> Event:
    return incident_events({"id": 9, "title": HOSTILE, "severity": "P1", "service": "api<x>", "opened_at": 1.79e9,
                            "source": "alertmanager"}, "opened", public_url="http://bizra.example:8080")[0]


def test_slack_and_generic_webhooks_get_their_bodies_escaped(receivers):
    slack, generic = receivers(), receivers()
    channels = channels_for(slack=slack.url + "/slack", webhook=generic.url + "/hook")
    event = hostile_incident()
    assert deliver(Deliverer(delays=FAST), event, channels["slack"])
    assert deliver(Deliverer(delays=FAST), event, channels["webhook"])
    [body] = slack.delivered()
    assert set(body) == {"text", "blocks"} and body == json.loads(json.dumps(slack_body(event) | {"blocks": body["blocks"]}))
    escaped = "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;!channel&gt; *bold*"
    assert body["text"] == f"[bizra] P1 incident opened: {escaped}"
    assert body["blocks"][0]["text"]["text"].startswith(f"*P1 incident opened: {escaped}*\n")
    assert "api&lt;x&gt;" in body["blocks"][0]["text"]["text"]
    assert "<!channel>" not in json.dumps(body) and "<img" not in json.dumps(body)
    assert body["blocks"][-1]["elements"][0]["text"].startswith("<http://bizra.example:8080/#incident=9|Open the incident>")
    [hook] = generic.delivered()
    assert hook["event"] == "incident_opened" and hook["severity"] == "P1" and hook["title"] == event.title
    assert hook["incident"]["title"] == HOSTILE  # JSON carries the text as it is: the receiver escapes for its medium
    assert hook["link"] == "http://bizra.example:8080/#incident=9" and hook["sent_at_iso"].endswith("+00:00")


def test_a_receiver_that_fails_twice_gets_the_message_once(receivers):
    flaky = receivers(statuses=[503, 500])
    keeper = ScoreKeeper(300)
    channel = channels_for(webhook=flaky.url)["webhook"]
    assert deliver(Deliverer(keeper=keeper, delays=FAST), hostile_incident(), channel)
    assert [b["status"] for b in flaky.bodies] == [503, 500, 200]
    assert len(flaky.delivered()) == 1 and keeper.total_violations["silent_failure"] == 0


@pytest.fixture
def cli_logging(caplog):
    """Logging as ``bizra-nb serve`` configures it (level info), captured; the library loggers' levels restored."""
    names = ("httpx", "httpcore")
    levels = {name: logging.getLogger(name).level for name in names}
    _configure_logging("info")
    caplog.set_level(logging.INFO)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_webhook_urls_stay_out_of_the_log_at_info(receivers, cli_logging):
    """A Slack webhook's path is its secret, a query may carry a token, a URL a user:password: httpx logs
    each request's URL at INFO, so the server's logging keeps httpx (and httpcore) at WARNING."""
    slack, hook = receivers(), receivers(statuses=[500])
    channels = channels_for(slack=slack.url + "/services/T0/B0/SLACKSECRET?token=QUERYSECRET",
                            webhook=slack.url.replace("http://", "http://alice:PASSWORDSECRET@") + "/hook")
    channels["webhook"] = Channel("webhook", "webhook", url=hook.url.replace("http://", "http://alice:PASSWORDSECRET@")
                                  + "/hook?token=HOOKSECRET")
    logging.getLogger("bizra.notify").info("the log is captured at INFO")
    assert deliver(Deliverer(delays=FAST), hostile_incident(), channels["slack"])
    assert deliver(Deliverer(delays=FAST), hostile_incident(), channels["webhook"])  # a retry: logged at INFO
    assert [b["path"] for b in slack.bodies] == ["/services/T0/B0/SLACKSECRET?token=QUERYSECRET"]
    assert [b["status"] for b in hook.bodies] == [500, 200]
    text = cli_logging.text
    assert "the log is captured at INFO" in text and "delivered at attempt 2" in text
    for secret in ("SLACKSECRET", "QUERYSECRET", "PASSWORDSECRET", "HOOKSECRET", "/services/", "/hook", slack.url, hook.url):
        assert secret not in text, secret


@pytest.mark.parametrize("url", ["http://[::1/x", "http://a\x00b/x", "http://xn--/x"])
def test_a_url_httpx_cannot_send_to_is_a_recorded_failure_not_retried(url, caplog):
    """A Channel that did not come through the routes file's checks: the failure is recorded, not a crash."""
    caplog.set_level(logging.INFO)
    keeper = ScoreKeeper(300)
    channel = Channel("hook", "webhook", url=url)
    assert not deliver(Deliverer(keeper=keeper, delays=FAST), hostile_incident(), channel)
    assert keeper.total_violations["silent_failure"] == 1
    assert "notification incident_opened to hook failed: the channel's URL is not valid: " in caplog.text
    assert "attempt 1 failed" in caplog.text and "attempt 2" not in caplog.text  # never will: not retried


def test_a_receiver_that_always_fails_is_a_silent_failure(receivers, cli_logging):
    caplog = cli_logging  # the whole log at INFO, as the server writes it
    down, refusing = receivers(then=500), receivers(then=404)
    keeper = ScoreKeeper(300)
    channels = channels_for(webhook=down.url, slack=refusing.url)
    assert not deliver(Deliverer(keeper=keeper, delays=FAST), hostile_incident(), channels["webhook"])
    assert [b["status"] for b in down.bodies] == [500, 500, 500]  # three attempts
    assert keeper.total_violations["silent_failure"] == 1
    assert "notification incident_opened to webhook failed: HTTP 500: nope" in caplog.text
    assert not deliver(Deliverer(keeper=keeper, delays=(30.0, 30.0)), hostile_incident(), channels["slack"])
    assert [b["status"] for b in refusing.bodies] == [404]  # refused: not retried
    assert keeper.total_violations["silent_failure"] == 2
    closed = channels_for(webhook=f"http://127.0.0.1:{free_port()}")["webhook"]  # nobody listens
    assert not deliver(Deliverer(keeper=keeper, delays=FAST), hostile_incident(), closed)
    assert keeper.total_violations["silent_failure"] == 3
    assert "http://127.0.0.1" not in caplog.text.split("webhook failed:")[-1]  # the URL (a secret for Slack) is not told
    assert "attempt 3 failed" in caplog.text  # the log at INFO was captured, retries and all
    for url in (down.url, refusing.url, closed.url):  # nowhere in the log
        assert url.split("//")[1] not in caplog.text, url


def test_a_slow_channel_does_not_delay_another(receivers):
    hold = threading.Event()
    slow, fast = receivers(hold=hold), receivers()
    channels = channels_for(webhook=slow.url, slack=fast.url)

    async def go():
        deliverer = Deliverer(delays=FAST)
        slow_task = asyncio.ensure_future(deliverer.deliver(hostile_incident(), channels["webhook"]))
        fast_ok = await deliverer.deliver(hostile_incident(), channels["slack"])
        slow_pending = not slow_task.done()
        hold.set()
        slow_ok = await slow_task
        await deliverer.close()
        return fast_ok, slow_pending, slow_ok

    fast_ok, slow_pending, slow_ok = asyncio.run(go())
    assert fast_ok and slow_pending and slow_ok
    assert len(fast.delivered()) == 1 and len(slow.delivered()) == 1


def test_a_not_compliant_audit_says_why():
    run = {"id": "r1", "notebook": "/nb/compliance_audit.ipynb", "kind": "audit", "status": "succeeded",
           "parameters": {"month": "2026-11"}, "folder": None, "finished_at": 1.79e9,
           "summary": {"headline": "2026-11: not compliant.", "compliant": False,
                       "reasons": ["availability 99.80% is under the 99.900% SLO", "<b>p99</b>"] + [f"r{i}" for i in range(6)]}}
    not_compliant = run_events(run, public_url="https://bizra.example/")[0]
    assert not_compliant.name == "audit_not_compliant"
    assert not_compliant.summary.startswith("2026-11: not compliant. Why: availability 99.80% is under the 99.900% SLO; <b>p99</b>; r0; r1; r2")
    assert not_compliant.summary.endswith("; and 3 more")
    html = email_message(not_compliant, sender="b@x.example", to=["o@x.example"]).get_body(("html",)).get_content()
    assert "&lt;b&gt;p99&lt;/b&gt;" in html and "<b>p99</b>" not in html  # escaped where it becomes HTML
