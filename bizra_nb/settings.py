"""Every setting declared once: type, default, help, check; overridable as BIZRA_<NAME> and --<name>.

Precedence, lowest first: the default here, the environment variable
``BIZRA_<NAME>`` (e.g. ``BIZRA_PORT``, ``BIZRA_HEARTBEAT_INTERVAL``), then the
command-line flag ``--<name-with-dashes>``. Deployment scripts rely on these
names: rename none of them.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from bizra_nb.errors import InvalidSetting


def _setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None):
    return field(default=default, metadata={"help": help, "check": check})


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number 0..65535 (0 picks a free port)"


def _ws_port(value: int) -> str | None:
    return None if -1 <= value <= 65535 else "must be -1 (off), 0 (free port) or a port number"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _cron(value: str) -> str | None:
    if not value:
        return None
    from bizra_nb.schedule import CronError, parse_cron

    try:
        parse_cron(value)
    except CronError as exc:
        return f"is not a cron expression ({exc})"
    return None


def _time_zone(value: str) -> str | None:
    from bizra_nb.schedule import CronError, parse_zone

    try:
        parse_zone(value)
    except CronError:
        return "must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York"
    return None


def _web_url(value: str) -> str | None:
    return None if not value or value.startswith(("http://", "https://")) else "must be an http:// or https:// URL (or empty)"


def _store_url(value: str) -> str | None:
    if not value or value.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
        return None
    return "must be a SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB (or empty: SQLite in --data-dir)"


def _redis_url(value: str) -> str | None:
    problem = "must be a redis://HOST:PORT/DB, rediss:// or unix:// URL (or empty: one process, no Redis)"
    if not value:
        return None
    if not value.startswith(("redis://", "rediss://", "unix://")):
        return problem
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        database = parts.path.strip("/")
    except ValueError:
        return problem
    return None if parts.scheme == "unix" or not database or database.isdigit() else problem


def _dask_scheduler(value: str) -> str | None:
    """A Dask scheduler address: ``tcp://host:port`` or ``tls://host:port``."""
    if not value:
        return None
    from urllib.parse import urlsplit

    problem = "must be a Dask scheduler address tcp://HOST:PORT or tls://HOST:PORT (or empty: runs on this machine)"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return problem
    return None if parts.scheme in ("tcp", "tls") and parts.hostname and port and not parts.path.strip("/") else problem


def _replica_name(value: str) -> str | None:
    if len(value) <= 100 and value.isprintable():
        return None
    return "must be at most 100 printable characters (no line breaks or control characters)"


def _pool_size(value: int) -> str | None:
    return None if -1 <= value <= 64 else "must be -1 (one per run worker, at most 2), 0 (off) or a number of warm workers up to 64"


def _processes(value: int) -> str | None:
    return None if 1 <= value <= 64 else "must be 1 to 64 (about one per core)"


MASKED = re.compile(r"(//[^/:@]*:)[^/@]*@")  # the password of a URL (user:password@host)


def mask_password(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    return MASKED.sub(r"\1***@", text)


def _operator_name(value: str) -> str | None:
    return None if value.strip() and len(value) <= 100 and value.isprintable() else "must be 1 to 100 printable characters"


def _email_address(value: str) -> str | None:
    return None if re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value) else "must be an email address such as bizra@example.com"


def _log_level(value: str) -> str | None:
    allowed = ("debug", "info", "warning", "error")
    return None if value in allowed else f"must be one of {', '.join(allowed)}"


@dataclass(frozen=True)
class Settings:
    """The platform's settings; build with :func:`load_settings`."""

    host: str = _setting("127.0.0.1", "address the API and WebSocket listen on")
    port: int = _setting(8080, "HTTP API port", _port)
    ws_port: int = _setting(8081, "extra WebSocket-only port (-1: off); /ws/live-updates is also on --port", _ws_port)
    data_dir: Path = _setting(Path("data"), "folder of the SQLite store and the generated API token")
    score_window: float = _setting(300.0, "Ahsan score sliding window, seconds", _positive)
    controller_interval: float = _setting(5.0, "controller cycle interval, seconds", _positive)
    heartbeat_interval: float = _setting(30.0, "WebSocket heartbeat message and ping interval, seconds", _positive)
    api_token: str = _setting("", "bearer token for state-changing endpoints; empty: generated at first start and kept in the data dir")
    operator_name: str = _setting("bizra-nb", "who holds the API token, as people see it: the author of incident notes and the creator of Alertmanager silences made through the API", _operator_name)
    ws_origins: tuple = _setting((), "comma-separated extra Origins allowed on the WebSocket ('*': any); the server's own pages and non-browser clients are always allowed")
    ws_require_token: bool = _setting(False, "demand the API token on the WebSocket (bearer header or ?token=)")
    ws_max_buffer: int = _setting(1 << 20, "bytes a WebSocket client may leave unread before it is dropped as too slow", _positive)
    allowed_hosts: tuple = _setting((), "comma-separated host names the server answers to besides localhost, --host and IP addresses "
                                         "(a request with another Host header is refused: DNS rebinding); behind a reverse proxy, "
                                         "its public name (or have the proxy check Host and give '*': any)")
    idle_timeout: float = _setting(60.0, "seconds a client may take to send a request's headers, or stay idle between requests, before it is disconnected", _positive)
    body_timeout: float = _setting(30.0, "seconds a client may take to send a request body before it is disconnected", _positive)
    prometheus_url: str = _setting("", "Prometheus (or compatible) HTTP API base URL; empty: no metric backend")
    alertmanager_url: str = _setting("", "Alertmanager base URL (http://alertmanager:9093) where silences made from an incident go; empty: silences off", _web_url)
    dataset: str = _setting("", "metrics dataset file (CSV/Parquet) used for diagnoses when no Prometheus URL is set")
    diagnosis_lookback: float = _setting(3600.0, "seconds of metrics before an incident's start that a diagnosis reads", _positive)
    workers: int = _setting(2, "threads for CPU-bound work (diagnoses) off the IOLoop", _positive)
    reports_dir: Path = _setting(Path("reports"), "folder of the generated reports and their index.html")
    run_workers: int = _setting(os.cpu_count() or 2, "notebook runs executing at once (default: the number of cores)", _positive)
    kernel_pool: int = _setting(-1, "warm notebook workers kept ready in each server process (kernel started, pandas, plotly and bizra_nb imported): a run takes one instead of starting its kernel; about 300 MB of memory each, in total --processes x this many; -1 (default): one per --run-workers, at most 2; 0: off; runs on --dask-scheduler always start their own", _pool_size)
    dask_scheduler: str = _setting("", "Dask scheduler (tcp://host:8786) whose workers execute the notebook runs; empty: --run-workers processes on this machine", _dask_scheduler)
    cell_timeout: float = _setting(600.0, "seconds one notebook cell may run before its run fails", _positive)
    run_timeout: float = _setting(3600.0, "seconds a whole notebook run may take before it is stopped", _positive)
    diagnose_with_notebook: bool = _setting(True, "an incident opened by an alert also runs incident_diagnosis.ipynb")
    audit_source: str = _setting("", "platform metrics for scheduled audits: dataset file or Prometheus URL (default: --prometheus-url)")
    slo_spec: str = _setting("", "SLO spec file (OpenSLO v1, one document per SLO, or Sloth prometheus/v1) that GET /slo, the deploy gate, the status page's budget bars and scheduled audits use; empty: the platform's own monitoring/slo/bizra.yaml")
    run_allowed_urls: tuple = _setting((), "comma-separated URLs that POST /runs may pass to a notebook's URL parameters, besides --prometheus-url, --dataset and --audit-source (paths: files inside --data-dir only)")
    audit_schedule: str = _setting("0 6 1 * *", "cron schedule of the monthly audit (previous month), in --audit-schedule-tz (default UTC); empty: off", _cron)
    benchmark_schedule: str = _setting("0 3 * * 1", "cron schedule of the weekly benchmark, in --benchmark-schedule-tz (default UTC); empty: off", _cron)
    audit_schedule_tz: str = _setting("UTC", "time zone (IANA name, e.g. Europe/Berlin) in which --audit-schedule's cron is evaluated and the audited previous month is taken; on a daylight-saving change a fixed time the clocks skip runs at the first minute after the gap, one they repeat runs once", _time_zone)
    benchmark_schedule_tz: str = _setting("UTC", "time zone (IANA name, e.g. America/New_York) in which --benchmark-schedule's cron is evaluated; on a daylight-saving change a fixed time the clocks skip runs at the first minute after the gap, one they repeat runs once", _time_zone)
    schedule_grace: float = _setting(300.0, "seconds after its time a scheduled run may still start before it counts as missed", _positive)
    store_url: str = _setting("", "SQLAlchemy URL of the store, e.g. postgresql+psycopg://bizra:PASSWORD@db:5432/bizra for several replicas; empty: SQLite in --data-dir", _store_url)
    redis_url: str = _setting("", "Redis URL (redis://host:6379/0) shared by the replicas: live events, the platform's score, the leader's lease; empty: this process alone", _redis_url)
    replica_name: str = _setting("", "this replica's name in /health, /metrics and run ownership (default: host:port, plus /N under --processes)", _replica_name)
    processes: int = _setting(1, "server processes on this machine sharing the listening ports (more than 1 needs --redis-url)", _processes)
    leader_lease: float = _setting(10.0, "seconds the leader's lease lasts: when the leader dies, another replica takes over within it", _positive)
    schedule_check_interval: float = _setting(30.0, "seconds between the leader's checks for due scheduled runs", _positive)
    grafana_url: str = _setting("", "Grafana (dashboards) URL the status page links to; empty: no link", _web_url)
    public_url: str = _setting("", "the server's address as people reach it (https://bizra.example.com), for links in notifications; empty: the server's own base URL", _web_url)
    notify_routes: str = _setting("", "YAML file of notification channels (email, Slack, webhooks) and the routes of events to them (see docs/deploy.md); empty: no notifications")
    smtp_host: str = _setting("", "SMTP server that sends email notifications; empty: no email")
    smtp_port: int = _setting(587, "SMTP server port", _port)
    smtp_user: str = _setting("", "SMTP login user; empty: no authentication")
    smtp_password: str = field(default="", repr=False, metadata={"help": "SMTP login password: give it as BIZRA_SMTP_PASSWORD (ps shows command lines); never shown or logged", "check": None})
    smtp_starttls: bool = _setting(True, "upgrade the SMTP connection with STARTTLS before logging in (the certificate is checked)")
    smtp_from: str = _setting("bizra-nb@localhost", "sender address of email notifications", _email_address)
    log_level: str = _setting("info", "log level: debug, info, warning, error", _log_level)

    def replace(self, **changes: Any) -> "Settings":
        return load_settings(changes, environ={}, base=self)


_PROJECT_FOLDERS = ("data_dir", "reports_dir")


def _in_project(path: Path) -> Path:
    """A relative folder taken from the project directory (see :mod:`bizra_nb.paths`); a flag typed in
    a shell is not passed through here: it stays relative to the working directory."""
    from bizra_nb.paths import project_dir

    return path if path.is_absolute() else project_dir() / path


def setting_fields() -> list[dataclasses.Field]:
    """The declared settings, in declaration order."""
    return list(dataclasses.fields(Settings))


def env_name(name: str) -> str:
    return "BIZRA_" + name.upper()


def _convert(f: dataclasses.Field, raw: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if not isinstance(raw, str):
        value = tuple(raw) if kind == "tuple" else raw
        if kind == "Path":
            value = Path(raw)
        return value
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "tuple":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind == "Path":
            return Path(raw).expanduser()
        return raw
    except ValueError:
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false"}[kind]
        raise InvalidSetting(f"{f.name}: expected {expected}, got {raw!r}", field=f.name) from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Settings from defaults (or ``base``), then ``BIZRA_*`` variables, then ``overrides``.

    Parameters
    ----------
    overrides
        Values by setting name, e.g. from command-line flags; ``None`` values are ignored.
    environ
        Where to read ``BIZRA_*`` variables; defaults to ``os.environ``.
    base
        Starting values instead of the declared defaults.

    Raises
    ------
    InvalidSetting
        Naming the setting, its environment variable and what it accepts.
    """
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in setting_fields()}
    unknown = set(overrides or {}) - set(known)
    if unknown:
        raise InvalidSetting(
            f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}",
            field=sorted(unknown)[0],
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        value = getattr(base, name) if base is not None else f.default
        source = "default"
        if env_name(name) in environ:
            value, source = environ[env_name(name)], env_name(name)
        if overrides and overrides.get(name) is not None:
            value, source = overrides[name], f"--{name.replace('_', '-')}"
        try:
            value = _convert(f, value)
        except InvalidSetting as exc:
            raise InvalidSetting(f"{exc.message} (from {source})", field=name) from None
        if name in _PROJECT_FOLDERS and source != "default" and not source.startswith("--"):
            value = _in_project(value)  # a relative BIZRA_DATA_DIR follows bizra_nb.paths' rule
        elif name in _PROJECT_FOLDERS and source == "default" and base is None:
            value = _in_project(value)  # data/ and reports/ of the project folder, from any subfolder
        check = f.metadata["check"]
        problem = check(value) if check else None
        if problem:
            shown = mask_password(repr(value)) if isinstance(value, str) else repr(value)
            raise InvalidSetting(f"{name} {problem}, got {shown} (from {source})", field=name)
        values[name] = value
    return Settings(**values)
