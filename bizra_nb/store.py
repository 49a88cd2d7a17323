"""The state store: SQLAlchemy Core over SQLite (WAL) or PostgreSQL (psycopg 3); nothing else touches SQL
(but :mod:`bizra_nb.store_admin`, the operator's tools, which copy its tables as they are).

The schema evolves through :data:`MIGRATIONS`, applied in order at open under a lock
(PostgreSQL: an advisory lock; SQLite: the write lock, ``BEGIN IMMEDIATE``), so several
replicas may start at once; the version reached is kept in the ``meta`` table. Each
migration is frozen: it holds its own DDL (tables as they were at that version), never
today's table definitions, so a database at any version migrates to the same schema. A
database newer than this code is refused (:class:`~bizra_nb.errors.Unavailable`).

Several processes may share one database: whatever must happen once is a conditional
write (an incident's ``version``, a run's ``queued → running`` claim and its end by its owner, a meta
value's compare-and-set, the unique active alert group, one unfinished run per incident). An id no
``INTEGER`` key can hold names nothing (:class:`~bizra_nb.errors.NotFound` on both backends). A database
that does not answer (down, locked, unreachable) raises :class:`~bizra_nb.errors.Unavailable`, reads and writes
alike, with the URL shown without its password.
"""
from __future__ import annotations

import contextlib
import functools
import json
import operator
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy import event

from bizra_nb.errors import InvalidInput, Conflict, InvalidSetting, NotFound, Unavailable, clip_message, excerpt

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

violations = sa.Table(
    "violations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)


cmdb_items = sa.Table(
    "cmdb_items",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("doc", sa.Text, nullable=False),  # the whole item as JSON, extra attributes kept
)

cmdb_relations = sa.Table(
    "cmdb_relations",
    metadata,
    sa.Column("source", sa.String(128), primary_key=True),
    sa.Column("target", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(32), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("severity", sa.String(2), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("service", sa.String(128), nullable=True, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("group_key", sa.Text, nullable=True, index=True),
    sa.Column("doc", sa.Text, nullable=False),  # labels, annotations, fingerprints, alerts, window
    sa.Column("opened_at", sa.Float, nullable=False, index=True),
    sa.Column("acknowledged_at", sa.Float, nullable=True),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("diagnosis", sa.Text, nullable=True),  # the last diagnosis (ranked causes) as JSON
    sa.Column("report_url", sa.Text, nullable=True),
    # = group_key while the incident is not resolved, NULL once resolved: unique (v4), so one active
    # incident per alert group even under concurrent deliveries (NULLs never collide)
    sa.Column("active_group_key", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, default=0),  # +1 at each change: compare-and-swap (v5)
)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("notebook", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("progress", sa.Text, nullable=True),  # {"cell": i, "cells": n}
    sa.Column("folder", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    # at most one queued or running run per incident: the unique partial index ux_runs_active_incident (v6)
    sa.Column("incident_id", sa.Integer, nullable=True),
    sa.Column("owner", sa.Text, nullable=True),  # the replica executing it (v5)
)

replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),  # its last heartbeat
    sa.Column("doc", sa.Text, nullable=False),  # what it says about itself, JSON
)


incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    sa.Column("doc", sa.Text, nullable=False),  # the event's detail as JSON (v7)
)


def _v0_meta(conn: sa.Connection) -> None:
    """The ``meta`` table that records the schema version (frozen: it never changes)."""
    frozen = sa.MetaData()
    sa.Table("meta", frozen, sa.Column("key", sa.String(64), primary_key=True),
             sa.Column("value", sa.Text, nullable=False))
    frozen.create_all(conn)


def _v1(conn: sa.Connection) -> None:
    """The violations log."""
    frozen = sa.MetaData()
    sa.Table("violations", frozen,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("ts", sa.Float, nullable=False, index=True),
             sa.Column("kind", sa.String(32), nullable=False),
             sa.Column("detail", sa.Text, nullable=False, default=""))
    frozen.create_all(conn)


def _v2(conn: sa.Connection) -> None:
    """The CMDB (items, relations) and incidents."""
    frozen = sa.MetaData()
    sa.Table("cmdb_items", frozen,
             sa.Column("id", sa.String(128), primary_key=True),
             sa.Column("kind", sa.String(64), nullable=False),
             sa.Column("doc", sa.Text, nullable=False))
    sa.Table("cmdb_relations", frozen,
             sa.Column("source", sa.String(128), primary_key=True),
             sa.Column("target", sa.String(128), primary_key=True),
             sa.Column("type", sa.String(32), primary_key=True),
             sa.Column("doc", sa.Text, nullable=False))
    sa.Table("incidents", frozen,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("title", sa.Text, nullable=False),
             sa.Column("severity", sa.String(2), nullable=False),
             sa.Column("status", sa.String(16), nullable=False, index=True),
             sa.Column("service", sa.String(128), nullable=True, index=True),
             sa.Column("source", sa.String(32), nullable=False),
             sa.Column("group_key", sa.Text, nullable=True, index=True),
             sa.Column("doc", sa.Text, nullable=False),
             sa.Column("opened_at", sa.Float, nullable=False, index=True),
             sa.Column("acknowledged_at", sa.Float, nullable=True),
             sa.Column("resolved_at", sa.Float, nullable=True),
             sa.Column("updated_at", sa.Float, nullable=False),
             sa.Column("diagnosis", sa.Text, nullable=True),
             sa.Column("report_url", sa.Text, nullable=True))
    frozen.create_all(conn)


def _v3(conn: sa.Connection) -> None:
    """Notebook runs."""
    frozen = sa.MetaData()
    sa.Table("runs", frozen,
             sa.Column("id", sa.String(32), primary_key=True),
             sa.Column("notebook", sa.Text, nullable=False),
             sa.Column("kind", sa.String(32), nullable=False, index=True),
             sa.Column("status", sa.String(16), nullable=False, index=True),
             sa.Column("trigger", sa.String(32), nullable=False),
             sa.Column("parameters", sa.Text, nullable=False),
             sa.Column("created_at", sa.Float, nullable=False, index=True),
             sa.Column("started_at", sa.Float, nullable=True),
             sa.Column("finished_at", sa.Float, nullable=True),
             sa.Column("progress", sa.Text, nullable=True),
             sa.Column("folder", sa.Text, nullable=True),
             sa.Column("error", sa.Text, nullable=True),
             sa.Column("summary", sa.Text, nullable=True),
             sa.Column("incident_id", sa.Integer, nullable=True))
    frozen.create_all(conn)


def _v4(conn: sa.Connection) -> None:
    """One active incident per alert group: ``active_group_key`` (unique; NULL once resolved).

    Groups that already have several active incidents (the race this closes) keep the newest active.
    """
    conn.execute(sa.text("ALTER TABLE incidents ADD COLUMN active_group_key TEXT"))
    conn.execute(sa.text(
        "UPDATE incidents SET active_group_key = group_key WHERE group_key IS NOT NULL AND status <> 'resolved' "
        "AND id = (SELECT MAX(newer.id) FROM incidents newer "
        "WHERE newer.group_key = incidents.group_key AND newer.status <> 'resolved')"))
    conn.execute(sa.text("CREATE UNIQUE INDEX ux_incidents_active_group_key ON incidents (active_group_key)"))


def _v5(conn: sa.Connection) -> None:
    """Several replicas on one database: ``incidents.version``, ``runs.owner``, the ``replicas`` heartbeats.

    On PostgreSQL the bounded text columns become ``TEXT``, as SQLite stores them: what one backend
    accepts, the other does too (``store copy`` moves a SQLite install without a length error).
    """
    conn.execute(sa.text("ALTER TABLE incidents ADD COLUMN version INTEGER NOT NULL DEFAULT 0"))
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN owner TEXT"))
    frozen = sa.MetaData()
    sa.Table("replicas", frozen,
             sa.Column("name", sa.Text, primary_key=True),
             sa.Column("started_at", sa.Float, nullable=False),
             sa.Column("seen_at", sa.Float, nullable=False),
             sa.Column("doc", sa.Text, nullable=False))
    frozen.create_all(conn)
    if conn.dialect.name == "postgresql":
        for table, columns in (("meta", ("key",)), ("violations", ("kind",)), ("cmdb_items", ("id", "kind")),
                               ("cmdb_relations", ("source", "target", "type")),
                               ("incidents", ("severity", "status", "service", "source")),
                               ("runs", ("id", "kind", "status", "trigger"))):
            for column in columns:
                conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT"))


def _v6(conn: sa.Connection) -> None:
    """One unfinished run per incident: the unique partial index ``ux_runs_active_incident``.

    An incident that already has several queued or running runs (requests that raced) keeps one: the
    newest running one, else the newest queued one; the others end ``failed``, their error
    ``superseded by run <kept>``.
    """
    unfinished = conn.execute(sa.text(
        "SELECT id, incident_id FROM runs WHERE incident_id IS NOT NULL AND status IN ('queued', 'running') "
        "ORDER BY incident_id, CASE WHEN status = 'running' THEN 0 ELSE 1 END, created_at DESC, id DESC")).all()
    kept: dict[int, str] = {}
    for run_id, incident_id in unfinished:
        newest = kept.setdefault(incident_id, run_id)
        if newest != run_id:
            conn.execute(sa.text("UPDATE runs SET status = 'failed', error = :error, finished_at = :now "
                                 "WHERE id = :id"),
                         {"error": f"superseded by run {newest}", "now": time.time(), "id": run_id})
            conn.execute(sa.text("DELETE FROM meta WHERE key = :key"), {"key": f"cancel:{run_id}"})
    conn.execute(sa.text("CREATE UNIQUE INDEX ux_runs_active_incident ON runs (incident_id) "
                         "WHERE incident_id IS NOT NULL AND status IN ('queued', 'running')"))


def _v7(conn: sa.Connection) -> None:
    """The incidents' timelines: ``incident_events`` (one row per event, its detail as JSON)."""
    frozen = sa.MetaData()
    sa.Table("incident_events", frozen,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("incident_id", sa.Integer, nullable=False, index=True),
             sa.Column("ts", sa.Float, nullable=False),
             sa.Column("kind", sa.Text, nullable=False),
             sa.Column("actor", sa.Text, nullable=True),
             sa.Column("doc", sa.Text, nullable=False))
    frozen.create_all(conn)


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
MIGRATION_LOCK = 0x62697A7261  # pg_advisory_xact_lock key of the migrations ("bizra")
CAS_ATTEMPTS = 20  # tries of a compare-and-swap that keeps losing its race before Unavailable
RUN_JSON_COLUMNS = ("parameters", "progress", "summary")
INCIDENT_COLUMNS = ("title", "severity", "status", "service", "source", "group_key", "opened_at",
                    "acknowledged_at", "resolved_at", "updated_at", "report_url")
SCHEMES = ("sqlite:///PATH", "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB")
# the database does not answer: down, unreachable, locked (sqlite3's own: the BEGIN IMMEDIATE of a write)
UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, sqlite3.OperationalError)
ACTIVE_RUN = ("queued", "running")
# the predicate of ux_runs_active_incident (v6): an INSERT ... ON CONFLICT names it to infer that index
_ACTIVE_INCIDENT_RUN = sa.text("incident_id IS NOT NULL AND status IN ('queued', 'running')")
EVENT_TEXT_LIMIT = 4000  # characters of one text value of an incident event's detail (a note's text)
EVENT_DETAIL_LIMIT = 16_000  # characters of an incident event's detail as JSON
MAX_ID = 2**31 - 1  # the largest INTEGER key on PostgreSQL: a larger id names no row


def _guarded(method):
    """A store call whose database does not answer (down, locked, unreachable) raises Unavailable."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            raise Unavailable(f"the store {self.shown_url} is unavailable ({self._reason(exc)}); retry shortly",
                              field=self.setting) from None
        except sa.exc.DataError:  # PostgreSQL: an integer out of its column's range, a NUL character in text...
            raise InvalidInput("a value the database cannot hold: out of range, or a NUL character") from None

    return wrapper


class Store:
    """The platform's persistent state.

    Parameters
    ----------
    url
        A SQLAlchemy URL: ``sqlite:///PATH`` (see :meth:`open` for the usual file in a data dir) or
        ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB`` (``postgresql://`` means the same).
    busy_timeout
        Seconds a write waits for a lock held by another writer before failing (PostgreSQL: ``lock_timeout``).
    connect_timeout
        PostgreSQL: seconds a connection attempt may take; an outage fails fast instead of hanging.

    Raises
    ------
    InvalidSetting
        ``url`` is neither SQLite nor PostgreSQL.
    Unavailable
        The database does not answer, or it is at a schema version newer than this code.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0, connect_timeout: float = 3.0,
                 data_dir: str | Path | None = None) -> None:
        parsed = parse_url(url)
        self.url = url
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.shown_url = parsed.render_as_string(hide_password=True)
        self.setting = "data_dir" if data_dir is not None and parsed.get_backend_name() == "sqlite" else "store_url"
        self._password = parsed.password
        self.engine = _engine(parsed, busy_timeout, connect_timeout)
        self.dialect = self.engine.dialect.name
        # one writer at a time in this process for SQLite (its lock is per database anyway); none for PostgreSQL
        self._write_lock: Any = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        self._busy_timeout = busy_timeout
        self._connect_timeout = connect_timeout
        self._probe: sa.Engine | None = None
        self._probe_timeout = 0.0
        self.migrate()

    @classmethod
    def open(cls, data_dir: str | Path, **kwargs: Any) -> "Store":
        """The SQLite store ``bizra.sqlite3`` in ``data_dir`` (created when missing)."""
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path / 'bizra.sqlite3'}", data_dir=path, **kwargs)

    @classmethod
    def from_url(cls, url: str | None, *, data_dir: str | Path | None = None, **kwargs: Any) -> "Store":
        """The store at ``url`` (the ``--store-url`` setting), or SQLite in ``data_dir`` when ``url`` is empty.

        Parameters
        ----------
        url
            A SQLAlchemy URL, or empty/None for :meth:`open` of ``data_dir``.
        data_dir
            The data dir; kept as :attr:`data_dir` with any URL (notebooks' relative paths).
        """
        if not url:
            if data_dir is None:
                raise InvalidSetting("no store: give --store-url or --data-dir", field="store_url")
            return cls.open(data_dir, **kwargs)
        return cls(url, data_dir=data_dir, **kwargs)

    @classmethod
    def configured(cls, data_dir: str | Path) -> "Store":
        """The installation's store as a notebook or a command sees it: ``$BIZRA_STORE_URL`` when set (the
        server gives it to notebook workers when its store is a database server), else SQLite in ``data_dir``."""
        return cls.from_url(os.environ.get("BIZRA_STORE_URL", "").strip() or None, data_dir=data_dir)

    def _reason(self, exc: Exception) -> str:
        reason = clip_message(str(getattr(exc, "orig", None) or exc), limit=300)
        return reason.replace(self._password, "***") if self._password else reason

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """A write transaction: SQLite takes its write lock at BEGIN (IMMEDIATE), so a read-then-write never
        fails on a snapshot another process changed meanwhile (as :func:`writer_of`, without an event
        listener's cost on the hot path: the BEGIN goes straight to the driver)."""
        with self._write_lock, self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
            yield conn

    @property
    @_guarded
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
        return int(row[0]) if row else 0

    @_guarded
    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version reached.

        Safe when several processes migrate one database at once: on PostgreSQL the transaction takes
        an advisory lock first, on SQLite the write lock (``BEGIN IMMEDIATE``); the others wait, then
        find the work done.

        Raises
        ------
        Unavailable
            The database is at a schema version newer than this code knows (written by a newer bizra-nb).
        """
        with self._transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            _v0_meta(conn)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise Unavailable(f"the database {self.shown_url} is at schema version {version}, this code "
                                  f"knows up to {len(MIGRATIONS)}: upgrade bizra-nb", field=self.setting)
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(conn)
                _put_meta(conn, "schema_version", str(number))
            return len(MIGRATIONS)

    @_guarded
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first()
        return row[0] if row else None

    @_guarded
    def put_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            _put_meta(conn, key, value)

    @_guarded
    def claim_meta(self, key: str, expected: str | None, new: str) -> bool:
        """Compare-and-set ``key``: True when this call changed it from ``expected`` to ``new``.

        Parameters
        ----------
        key
            The meta key, e.g. a schedule's last due time.
        expected
            The value this caller read; None: the key must be absent (then it is inserted).
        new
            The value to store.

        Returns
        -------
        bool
            False when another process changed the key first (or ``expected`` is stale): exactly one of
            several callers with the same ``expected`` wins.
        """
        with self._transaction() as conn:
            if expected is None:
                return conn.execute(_insert(conn, meta).values(key=key, value=new)
                                    .on_conflict_do_nothing(index_elements=["key"])
                                    .returning(meta.c.key)).first() is not None
            return conn.execute(meta.update().where(meta.c.key == key, meta.c.value == expected)
                                .values(value=new)).rowcount == 1

    def check_writable(self, *, timeout: float = 0.5) -> None:
        """Raise :class:`Unavailable` unless a write transaction commits within ``timeout`` seconds."""
        if self._probe is None or self._probe_timeout != timeout:  # its own engine: a short lock wait
            self._probe = writer_of(_engine(parse_url(self.url), timeout, max(timeout, 1.0)))
            self._probe_timeout = timeout
        try:
            with self._probe.begin() as conn:
                _put_meta(conn, "last_write_check", repr(time.time()))
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable(f"store is not writable: {self._reason(exc)}", field=self.setting) from None

    # -- violations log ------------------------------------------------------------

    @_guarded
    def log_violation(self, kind: str, detail: str = "", *, ts: float | None = None) -> None:
        with self._transaction() as conn:
            conn.execute(violations.insert().values(ts=ts or time.time(), kind=kind, detail=detail[:2000]))

    @_guarded
    def recent_violations(self, *, limit: int = 100, since: float | None = None) -> list[dict]:
        query = sa.select(violations).order_by(violations.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(violations.c.ts >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # -- CMDB ----------------------------------------------------------------------------

    @_guarded
    def load_cmdb(self) -> dict:
        """The stored CMDB document (``items``, ``relations``); empty lists when none is stored."""
        with self.engine.connect() as conn:
            items = [json.loads(r.doc) for r in conn.execute(sa.select(cmdb_items.c.doc).order_by(cmdb_items.c.id))]
            relations = [json.loads(r.doc) for r in conn.execute(
                sa.select(cmdb_relations.c.doc).order_by(cmdb_relations.c.source, cmdb_relations.c.target,
                                                         cmdb_relations.c.type))]
        return {"items": items, "relations": relations}

    @_guarded
    def save_cmdb(self, doc: dict) -> None:
        """Replace the stored CMDB with ``doc`` in one transaction (validate it first)."""
        with self._transaction() as conn:
            conn.execute(cmdb_relations.delete())
            conn.execute(cmdb_items.delete())
            if doc["items"]:
                conn.execute(cmdb_items.insert(), [{"id": i["id"], "kind": i["kind"], "doc": _dumps(i)}
                                                   for i in doc["items"]])
            if doc["relations"]:
                conn.execute(cmdb_relations.insert(), [{"source": r["source"], "target": r["target"],
                                                        "type": r["type"], "doc": _dumps(r)} for r in doc["relations"]])

    # -- incidents ---------------------------------------------------------------------

    @_guarded
    def create_incident(self, **fields: Any) -> dict:
        """Insert an incident; a second active incident of one alert group is a :class:`Conflict`."""
        row = _incident_row(fields)
        with self._transaction() as conn:
            try:
                new_id = conn.execute(incidents.insert().values(**row)).inserted_primary_key[0]
            except sa.exc.IntegrityError:
                raise Conflict(f"alert group {row['group_key']!r} already has an active incident",
                               field="group_key") from None
        return self.get_incident(new_id)

    @_guarded
    def open_or_change_group_incident(self, group_key: str, *, create: dict | None,
                                      change: Callable[[dict], dict | None]) -> tuple[str, dict | None]:
        """The one active incident of an alert group, opened or changed exactly once.

        Parameters
        ----------
        group_key
            The alert group; at most one incident with it is active (not resolved), enforced by a
            unique index, so concurrent deliveries (threads or processes) cannot open two.
        create
            The incident's fields to insert when the group has no active incident; None: never insert.
        change
            ``change(active_incident)`` → the fields to update, or None to leave it as it is. Called with
            the incident as stored; the update applies only if nobody changed it meanwhile (its
            ``version``), else ``change`` is called again with the fresh incident.

        Returns
        -------
        (action, incident)
            ``("opened", new)``, ``("changed", updated)``, ``("unchanged", active)``, or
            ``("none", latest_of_group_or_None)`` when nothing is active and ``create`` is None.
        """
        for attempt in range(CAS_ATTEMPTS):
            with self._transaction() as conn:
                if create is not None:
                    insert = _insert(conn, incidents).values(**_incident_row({**create, "group_key": group_key}))
                    new_id = conn.execute(insert.on_conflict_do_nothing(index_elements=["active_group_key"])
                                          .returning(incidents.c.id)).scalar()
                    if new_id is not None:
                        return "opened", _incident(_incident_by_id(conn, new_id))
                active = conn.execute(sa.select(incidents).where(incidents.c.active_group_key == group_key)).first()
                if active is None:
                    if create is not None:  # resolved between the insert and the select: insert again
                        continue
                    latest = conn.execute(sa.select(incidents).where(incidents.c.group_key == group_key)
                                          .order_by(incidents.c.id.desc()).limit(1)).first()
                    return "none", _incident(latest) if latest is not None else None
                current = _incident(active)
                fields = change(current)
                if fields is None:
                    return "unchanged", current
                if _compare_and_swap(conn, active, _incident_changes(active, dict(fields))):
                    return "changed", _incident(_incident_by_id(conn, active.id))
            _backoff(attempt)
        raise Unavailable(f"alert group {group_key!r}: its incident keeps changing under this write; retry",
                          field="group_key")

    @_guarded
    def update_incident(self, incident_id: int, *, transition: Callable[[dict], dict | None] | None = None,
                        **fields: Any) -> dict:
        """Change columns and merge the rest into the incident's document; returns the incident.

        A compare-and-swap on the incident's ``version``: the change applies to the row it was computed
        from, or is computed again (no lost update between processes).

        Parameters
        ----------
        incident_id
            The incident.
        transition
            ``transition(incident)`` → the fields to change, or None for no change; called with the
            incident as stored, again at each retry, so a change that depends on the current state is
            race-free. It may raise (e.g. :class:`Conflict`). Not with ``fields``.
        **fields
            The fields to change, whatever the current state.

        Raises
        ------
        NotFound
            No such incident.
        Conflict
            Reopening an incident of an alert group that has another active incident (or what
            ``transition`` raises).
        """
        if transition is not None and fields:
            raise TypeError("update_incident: give either transition or fields, not both")
        for attempt in range(CAS_ATTEMPTS):
            with self._transaction() as conn:
                row = _incident_by_id(conn, incident_id)
                if row is None:
                    raise NotFound(f"no incident {incident_id}", field="id")
                changes = transition(_incident(row)) if transition is not None else fields
                if changes is None:
                    return _incident(row)
                try:
                    swapped = _compare_and_swap(conn, row, _incident_changes(row, dict(changes)))
                except sa.exc.IntegrityError:
                    raise Conflict(f"alert group {row.group_key!r} has another active incident; resolve it first",
                                   field="status") from None
                if swapped:
                    return _incident(_incident_by_id(conn, incident_id))
            _backoff(attempt)
        raise Unavailable(f"incident {incident_id} keeps changing under this write; retry", field="id")

    @_guarded
    def get_incident(self, incident_id: int) -> dict:
        with self.engine.connect() as conn:
            row = _incident_by_id(conn, incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id}", field="id")
        return _incident(row)

    @_guarded
    def list_incidents(self, *, status: str | None = None, severity: str | None = None, service: str | None = None,
                       group_key: str | None = None, since: float | None = None, limit: int = 100) -> list[dict]:
        """Incidents newest first: by id, or by resolution time for ``status="resolved"`` (the recently resolved)."""
        order = ((incidents.c.resolved_at.desc(), incidents.c.id.desc()) if status == "resolved"
                 else (incidents.c.id.desc(),))
        query = sa.select(incidents).order_by(*order).limit(limit)
        for column, value in (("status", status), ("severity", severity), ("service", service),
                              ("group_key", group_key)):
            if value is not None:
                query = query.where(incidents.c[column] == value)
        if since is not None:
            query = query.where(incidents.c.opened_at >= since)
        with self.engine.connect() as conn:
            return [_incident(row) for row in conn.execute(query)]

    # -- incident timelines ------------------------------------------------------------

    @_guarded
    def add_incident_event(self, incident_id: int, kind: str, *, actor: str | None = None,
                           detail: dict | None = None, ts: float | None = None) -> dict:
        """Append an event to an incident's timeline; returns it as :meth:`incident_timeline` shows it.

        Parameters
        ----------
        incident_id
            The incident.
        kind
            What happened: ``opened``, ``alert_updated``, ``diagnosis_started``, ``diagnosis_finished``,
            ``diagnosis_failed``, ``acknowledged``, ``note``, ``silence_created``, ``silence_expired``,
            ``resolved``, ``reopened`` (clipped to 64 characters).
        actor
            Who or what did it (the operator's name, ``alertmanager``...); None when nobody in particular.
        detail
            JSON-able facts of the event, bounded: a text longer than :data:`EVENT_TEXT_LIMIT` characters is
            clipped, and a detail whose JSON exceeds :data:`EVENT_DETAIL_LIMIT` characters keeps the shortest
            values that fit (``truncated``: true).
        ts
            When it happened (unix seconds); now when None.

        Raises
        ------
        NotFound
            No such incident.
        """
        doc = _event_doc(detail)
        values = {"incident_id": incident_id, "ts": ts if ts is not None else time.time(), "kind": str(kind)[:64],
                  "actor": str(actor)[:200] if actor is not None else None, "doc": doc}
        with self._transaction() as conn:
            if _incident_by_id(conn, incident_id) is None:
                raise NotFound(f"no incident {incident_id}", field="id")
            event_id = conn.execute(incident_events.insert().values(**values)).inserted_primary_key[0]
        return {"id": event_id, "incident_id": incident_id, "ts": values["ts"], "kind": values["kind"],
                "actor": values["actor"], "detail": json.loads(doc)}

    @_guarded
    def incident_timeline(self, incident_id: int, *, limit: int = 1000, first: int = 0) -> list[dict]:
        """The incident's events, oldest first (the newest ``limit`` when there are more).

        Each event is ``{"id", "incident_id", "ts", "kind", "actor", "detail"}``. An unknown incident has
        no events (an empty list: callers that must tell it apart read the incident first).

        ``first`` > 0: also the ``first`` oldest events (where an incident's story begins); when events
        between them and the newest ``limit`` are left out, one entry ``{"kind": "omitted", "id": None,
        "detail": {"count": N}}`` stands for them, between the two (its ``ts`` that of the last old one).
        """
        if not _storable_id(incident_id):
            return []
        where = incident_events.c.incident_id == incident_id
        query = (sa.select(incident_events).where(where)
                 .order_by(incident_events.c.ts.desc(), incident_events.c.id.desc()).limit(max(int(limit), 0)))
        with self.engine.connect() as conn:
            rows = list(reversed(list(conn.execute(query))))
            head: list = []
            total = len(rows)
            if int(first) > 0 and len(rows) >= max(int(limit), 0):
                head = list(conn.execute(sa.select(incident_events).where(where).order_by(
                    incident_events.c.ts, incident_events.c.id).limit(int(first))))
                total = conn.execute(sa.select(sa.func.count()).select_from(incident_events).where(where)).scalar()
        shown = {r.id for r in rows}
        head = [r for r in head if r.id not in shown]

        def event(r) -> dict:
            return {"id": r.id, "incident_id": r.incident_id, "ts": r.ts, "kind": r.kind, "actor": r.actor,
                    "detail": json.loads(r.doc)}

        out = [event(r) for r in head]
        hidden = int(total or 0) - len(head) - len(rows)
        if hidden > 0:
            out.append({"id": None, "incident_id": incident_id, "ts": head[-1].ts if head else None,
                        "kind": "omitted", "actor": None, "detail": {"count": hidden}})
        return out + [event(r) for r in rows]

    # -- notebook runs -------------------------------------------------------------------

    @_guarded
    def create_run(self, **fields: Any) -> dict:
        """Insert a run; a queued or running run of the same ``incident_id`` is returned instead, once for all.

        The unique partial index ``ux_runs_active_incident`` (v6) decides, so concurrent requests (threads,
        processes, replicas) for one incident's diagnosis make exactly one run and all get its id.

        Parameters
        ----------
        **fields
            The run's columns (``id``, ``notebook``, ``kind``, ``status``, ``incident_id``...).

        Returns
        -------
        dict
            The new run; or the incident's unfinished run, with the extra key ``existing`` (True).
        """
        row = {k: (_dumps(v) if k in RUN_JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        for attempt in range(CAS_ATTEMPTS):
            with self._transaction() as conn:  # SQLite: BEGIN IMMEDIATE, so the insert-or-select is atomic
                # only a clash on that index is skipped: any other (the id) raises as before
                created = conn.execute(_insert(conn, runs).values(**row).on_conflict_do_nothing(
                    index_elements=["incident_id"], index_where=_ACTIVE_INCIDENT_RUN).returning(*runs.c)).first()
                if created is not None:
                    return _run(created)
                existing = conn.execute(sa.select(runs).where(runs.c.incident_id == row.get("incident_id"),
                                                              runs.c.status.in_(ACTIVE_RUN))).first()
                if existing is not None:
                    return {**_run(existing), "existing": True}
            _backoff(attempt)  # PostgreSQL: it ended between the insert and the select: insert again
        raise Unavailable(f"incident {fields.get('incident_id')}: its runs keep changing under this write; retry",
                          field="incident_id")

    @_guarded
    def update_run(self, run_id: str, **fields: Any) -> dict:
        values = {k: (_dumps(v) if k in RUN_JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        with self._transaction() as conn:
            if not conn.execute(runs.update().where(runs.c.id == run_id).values(**values)).rowcount:
                raise NotFound(f"no run {run_id!r}", field="id")
        return self.get_run(run_id)

    @_guarded
    def claim_run(self, run_id: str, owner: str) -> dict | None:
        """Take a queued run to execute it: ``queued → running`` with ``owner`` and ``started_at``, once.

        Returns
        -------
        dict or None
            The run, now running and owned by ``owner``; None when another replica claimed it first, or
            it is no longer queued (cancelled, failed), or it does not exist.
        """
        with self._transaction() as conn:
            claimed = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued")
                                   .values(status="running", owner=owner, started_at=time.time())).rowcount
        return self.get_run(run_id) if claimed else None

    @_guarded
    def finish_run(self, run_id: str, *, owner: str | None, **fields: Any) -> dict | None:
        """End a run its owner executed: write ``fields`` only if it is still queued or running and ``owner``'s.

        One conditional ``UPDATE … WHERE id = :id AND status IN ('queued', 'running') AND owner IS NOT
        DISTINCT FROM :owner``: a run the reaper already failed, or that was cancelled, or that another
        replica owns, is left as it is. Its cancel request (:meth:`request_cancel`) is deleted.

        Parameters
        ----------
        run_id
            The run.
        owner
            The replica that executed it; None matches a run without an owner (one process owns the store).
        **fields
            The run's columns to write (``status``, ``error``, ``summary``, ``folder``...); ``finished_at``
            is now unless given.

        Returns
        -------
        dict or None
            The run as written; None when nothing was written (it had ended, or it is another owner's,
            or it does not exist).
        """
        values = {k: (_dumps(v) if k in RUN_JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        values.setdefault("finished_at", time.time())
        with self._transaction() as conn:
            row = conn.execute(runs.update()
                               .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE_RUN),
                                      runs.c.owner.is_not_distinct_from(owner))
                               .values(**values).returning(*runs.c)).first()
            if row is None:
                return None
            _forget_cancel_requests(conn, [run_id])
        return _run(row)

    @_guarded
    def cancel_queued_run(self, run_id: str) -> dict | None:
        """``queued → cancelled`` (``finished_at`` now, error ``cancelled``), only if the run is still queued.

        Returns
        -------
        dict or None
            The cancelled run; None when it is not queued (claimed meanwhile, ended) or does not exist.
        """
        with self._transaction() as conn:
            row = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued")
                               .values(status="cancelled", error="cancelled", finished_at=time.time())
                               .returning(*runs.c)).first()
            if row is None:
                return None
            _forget_cancel_requests(conn, [run_id])
        return _run(row)

    @_guarded
    def request_cancel(self, run_id: str) -> None:
        """Ask the run's owner (any replica) to cancel it: a request it sees with :meth:`cancel_requested`.

        Kept in the ``meta`` table (key ``cancel:<run_id>``) until the run ends (:meth:`finish_run`,
        :meth:`cancel_queued_run`, a failure by the reaper). A run that has already ended is left alone.

        Raises
        ------
        NotFound
            No such run.
        """
        with self._transaction() as conn:
            status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise NotFound(f"no run {run_id!r}", field="id")
            if status in ACTIVE_RUN:
                _put_meta(conn, _cancel_key(run_id), repr(time.time()))

    @_guarded
    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel of the run was requested (:meth:`request_cancel`) and the run has not ended since."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta.c.key).where(meta.c.key == _cancel_key(run_id))).first() is not None

    @_guarded
    def fail_runs_of_owners(self, owners: list[str], reason: str) -> list[str]:
        """Fail the queued or running runs of ``owners`` (replicas found dead): ``failed``, ``finished_at``
        now, ``error`` ``reason``; returns their ids. Runs that ended already are left as they are."""
        if not owners:
            return []
        return self._fail_runs(sa.and_(runs.c.status.in_(ACTIVE_RUN), runs.c.owner.in_(list(owners))), reason)

    @_guarded
    def get_run(self, run_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run {run_id!r}", field="id")
        return _run(row)

    @_guarded
    def list_runs(self, *, status: str | None = None, kind: str | None = None, since: float | None = None,
                  until: float | None = None, incident_id: int | None = None, limit: int = 100,
                  trigger: str | tuple[str, ...] | None = None, notebook: str | None = None) -> list[dict]:
        """Runs newest first; ``since`` inclusive, ``until`` exclusive (``created_at``, unix seconds);
        ``notebook``: a notebook's name (``benchmark``: the stored path's stem) or the very path stored."""
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if notebook is not None:
            query = query.where(sa.or_(runs.c.notebook == notebook,
                                       runs.c.notebook.endswith(f"/{notebook}.ipynb", autoescape=True)))
        if trigger is not None:  # one trigger, or any of several (a schedule's scheduled and manual runs)
            query = query.where(runs.c.trigger.in_([trigger] if isinstance(trigger, str) else list(trigger)))
        if status is not None:
            query = query.where(runs.c.status == status)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        if until is not None:
            query = query.where(runs.c.created_at < until)
        if incident_id is not None:
            if not _storable_id(incident_id):  # no run names it (PostgreSQL would refuse the comparison)
                return []
            query = query.where(runs.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query)]

    @_guarded
    def fail_unfinished_runs(self, reason: str, *, owner: str | None = None) -> list[str]:
        """Mark queued or running runs failed (their process died); returns their ids.

        Parameters
        ----------
        reason
            The runs' error.
        owner
            Only the runs of this replica (at its restart); None: every run (one process owns the store).
        """
        condition = runs.c.status.in_(ACTIVE_RUN)
        if owner is not None:
            condition = sa.and_(condition, runs.c.owner == owner)
        return self._fail_runs(condition, reason)

    @_guarded
    def heartbeat_replica(self, name: str, info: dict, *, started_at: float | None = None) -> None:
        """Record that replica ``name`` is alive now (``seen_at``), with what it says about itself.

        Parameters
        ----------
        name
            The replica's name (``--replica-name``).
        info
            JSON-able facts shown by :meth:`list_replicas` (version, pid, URL...).
        started_at
            When it started; kept from its first heartbeat when None.
        """
        now = time.time()
        with self._transaction() as conn:
            insert = _insert(conn, replicas).values(name=name, started_at=started_at or now, seen_at=now,
                                                    doc=_dumps(info))
            update = {"seen_at": now, "doc": _dumps(info)}
            if started_at is not None:
                update["started_at"] = started_at
            conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_=update))

    @_guarded
    def list_replicas(self) -> list[dict]:
        """The replicas that ever sent a heartbeat: ``name``, ``started_at``, ``seen_at``, ``info``; newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(replicas).order_by(replicas.c.seen_at.desc(), replicas.c.name))
            return [{"name": r.name, "started_at": r.started_at, "seen_at": r.seen_at, "info": json.loads(r.doc)}
                    for r in rows]

    @_guarded
    def fail_runs_of_stale_replicas(self, max_age: float, reason: str) -> list[str]:
        """Fail the queued or running runs whose owner's last heartbeat is older than ``max_age`` seconds.

        A run whose owner never sent a heartbeat counts as stale too (so a replica heartbeats before
        it claims); runs without an owner are left alone. Returns the ids failed.
        """
        alive = sa.select(replicas.c.name).where(replicas.c.seen_at >= time.time() - max_age)
        return self._fail_runs(sa.and_(runs.c.status.in_(ACTIVE_RUN), runs.c.owner.is_not(None),
                                       runs.c.owner.not_in(alive.scalar_subquery())), reason)

    def _fail_runs(self, condition, reason: str) -> list[str]:
        with self._transaction() as conn:
            failed = list(conn.execute(runs.update().where(condition)
                                       .values(status="failed", error=reason, finished_at=time.time())
                                       .returning(runs.c.id)).scalars())
            _forget_cancel_requests(conn, failed)
        return failed

    def close(self) -> None:
        self.engine.dispose()
        if self._probe is not None:
            self._probe.dispose()


def parse_url(url: str, *, parameter: str = "--store-url (BIZRA_STORE_URL)") -> sa.URL:
    """``url`` parsed; ``postgresql://`` means psycopg 3; anything else is an :class:`InvalidSetting`.

    Parameters
    ----------
    url
        A SQLAlchemy URL.
    parameter
        What the messages call the URL (``--store-url``, ``--from``...).

    Raises
    ------
    InvalidSetting
        Not a SQLite or PostgreSQL URL, or one SQLAlchemy cannot read (a port that is not a number from
        1 to 65535...); the message names ``parameter``, shows the URL without its password and the
        expected form; ``field`` is ``store_url``.
    """
    expected = " or ".join(SCHEMES)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:  # no scheme://
        shown = url.split("://", 1)[0] + "://…" if "://" in url else excerpt(url[:40])
        raise InvalidSetting(f"{parameter}: must be {expected}, not {shown}", field="store_url") from None
    except ValueError:  # a part SQLAlchemy converts: the port
        raise InvalidSetting(f"{parameter}: {excerpt(masked_url(url), 120)} is not a valid URL (the port must be "
                             f"a number from 1 to 65535): expected {expected}", field="store_url") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "postgresql+psycopg"):
        raise InvalidSetting(f"{parameter}: must be {expected}, not {parsed.drivername}://…", field="store_url")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise InvalidSetting(f"{parameter}: {parsed.render_as_string(hide_password=True)} is not a valid URL (the "
                             f"port must be a number from 1 to 65535): expected {expected}", field="store_url")
    return parsed


def masked_url(url: str) -> str:
    """``url`` as written, its password (between the user's ``:`` and the last ``@``) shown as ``***``.

    For a URL that does not parse, so cannot be rendered by SQLAlchemy: it masks more rather than less.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def engine_for(url: str, *, busy_timeout: float = 5.0, connect_timeout: float = 3.0) -> sa.Engine:
    """An engine on ``url`` configured as the store's (no migration): for operator tools that read a store as is.

    Its reads run one statement at a time on SQLite; see :func:`writer_of` and :func:`snapshot_of`.
    """
    return _engine(parse_url(url), busy_timeout, connect_timeout)


def writer_of(engine: sa.Engine) -> sa.Engine:
    """``engine`` for write transactions: on SQLite each takes the write lock at its start (``BEGIN IMMEDIATE``,
    waiting up to the busy timeout), so it is atomic, DDL included, and serialised with other processes'."""
    return _beginning(engine, "BEGIN IMMEDIATE")


def snapshot_of(engine: sa.Engine) -> sa.Engine:
    """``engine`` for read transactions that see one snapshot on SQLite too (``BEGIN``)."""
    return _beginning(engine, "BEGIN")


def _beginning(engine: sa.Engine, begin: str) -> sa.Engine:
    """An option engine (same pool) whose SQLite transactions start with ``begin``; the listener is on it alone,
    so the plain engine's reads pay no event dispatch."""
    derived = engine.execution_options()
    if engine.dialect.name == "sqlite":
        event.listen(derived, "begin", lambda conn: conn.exec_driver_sql(begin))
    return derived


def _engine(url: sa.URL, busy_timeout: float, connect_timeout: float) -> sa.Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False})
        event.listen(engine, "connect", lambda dbapi_conn, _record: _sqlite_connect(dbapi_conn, busy_timeout))
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, pool_timeout=max(connect_timeout, 1.0) * 2,
        connect_args={"connect_timeout": max(int(round(connect_timeout)), 1),
                      "options": f"-c lock_timeout={int(busy_timeout * 1000)}",
                      "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3})


def _backoff(attempt: int) -> None:
    """A short random pause before retrying a lost compare-and-swap (racers spread out)."""
    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _event_doc(detail: dict | None) -> str:
    """An event's detail as bounded JSON: long texts clipped; an oversized detail keeps its shortest values that fit
    (``truncated``: true)."""
    def clipped(value: Any) -> Any:
        if isinstance(value, str) and len(value) > EVENT_TEXT_LIMIT:
            return value[:EVENT_TEXT_LIMIT - 1] + "…"
        return value

    detail = {str(k): clipped(v) for k, v in (detail or {}).items()}
    doc = _dumps(detail)
    if len(doc) > EVENT_DETAIL_LIMIT:  # keep the shortest values while they fit
        kept, room = {"truncated": True}, EVENT_DETAIL_LIMIT - 32
        for size, key in sorted((len(_dumps(k)) + len(_dumps(v)) + 2, k) for k, v in detail.items()):
            if size > room:
                break
            kept[key], room = detail[key], room - size
        doc = _dumps(kept)
    return doc


def _incident_row(fields: dict) -> dict:
    """The columns of a new incident from ``fields`` (the rest goes to its JSON document)."""
    fields = dict(fields)
    now = time.time()
    row = {c: fields.pop(c, None) for c in INCIDENT_COLUMNS}
    row.update(status=row["status"] or "open", opened_at=row["opened_at"] or now, updated_at=now)
    row["active_group_key"] = row["group_key"] if row["status"] != "resolved" else None
    diagnosis = fields.pop("diagnosis", None)
    row.update(doc=_dumps(fields), diagnosis=_dumps(diagnosis) if diagnosis is not None else None)
    return row


def _incident_changes(row, fields: dict) -> dict:
    """The column values that apply ``fields`` to the stored incident ``row``."""
    fields = {k: v for k, v in fields.items() if k not in ("id", "version")}  # the store's own
    values = {c: fields.pop(c) for c in list(fields) if c in INCIDENT_COLUMNS}
    if "diagnosis" in fields:
        values["diagnosis"] = _dumps(fields.pop("diagnosis"))
    if fields:
        values["doc"] = _dumps({**json.loads(row.doc), **fields})
    if "status" in values:
        values["active_group_key"] = None if values["status"] == "resolved" else values.get("group_key",
                                                                                             row.group_key)
    values.setdefault("updated_at", time.time())
    return values


def _insert(conn: sa.Connection, table: sa.Table):
    """An ``INSERT`` of the connection's dialect: it has ``on_conflict_do_nothing`` / ``_do_update``."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _incident_by_id(conn: sa.Connection, incident_id: int):
    """The incident's row, or None; an id no INTEGER column holds is None too, on both backends."""
    if not _storable_id(incident_id):
        return None
    return conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()


def _storable_id(value: Any) -> bool:
    """Whether ``value`` is an id an INTEGER key can hold (1..2**31-1: PostgreSQL's ``integer``); others
    name nothing (PostgreSQL would fail on them, SQLite overflow beyond 2**63)."""
    try:
        number = operator.index(value)
    except TypeError:  # not an integer: the database compares it as it is
        return True
    return 1 <= number <= MAX_ID


def _compare_and_swap(conn: sa.Connection, row, values: dict) -> bool:
    """Update the incident ``row`` was read from, only if it is still at ``row.version``; True when it was."""
    return conn.execute(incidents.update().where(incidents.c.id == row.id, incidents.c.version == row.version)
                        .values(**values, version=row.version + 1)).rowcount == 1


def _incident(row) -> dict:
    out = {c: getattr(row, c) for c in ("id",) + INCIDENT_COLUMNS}
    out.update(json.loads(row.doc))
    out["diagnosis"] = json.loads(row.diagnosis) if row.diagnosis else None
    out["version"] = row.version
    return out


def _run(row) -> dict:
    out = dict(row._mapping)
    for key in RUN_JSON_COLUMNS:
        out[key] = json.loads(out[key]) if out[key] else ({} if key == "parameters" else None)
    return out


def _cancel_key(run_id: str) -> str:
    """The meta key of a run's cancel request."""
    return f"cancel:{run_id}"


def _forget_cancel_requests(conn: sa.Connection, run_ids: list[str]) -> None:
    """Delete the cancel requests of runs that ended."""
    if run_ids:
        conn.execute(meta.delete().where(meta.c.key.in_([_cancel_key(r) for r in run_ids])))


def _put_meta(conn: sa.Connection, key: str, value: str) -> None:
    conn.execute(_insert(conn, meta).values(key=key, value=value)
                 .on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def _sqlite_connect(dbapi_conn, busy_timeout: float) -> None:
    """WAL; and transactions begun by the store itself (see :func:`writer_of`), not by the driver: a read runs
    in autocommit, one statement at a time, as before."""
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    _switch_to_wal(cursor, busy_timeout)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _switch_to_wal(cursor, busy_timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to ``busy_timeout`` while another connection holds a lock.

    Switching a new (rollback-journal) file to WAL upgrades a shared lock to an exclusive one; when another
    process holds its write lock meanwhile (several replicas creating the store at once), SQLite answers
    "database is locked" at once, without its busy handler (which would deadlock), so this waits here.
    """
    deadline = time.monotonic() + busy_timeout
    attempt = 0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            _lock_pause(attempt)
            attempt += 1


def _lock_pause(attempt: int) -> None:
    """A short pause before asking again for a lock another connection holds (growing, capped at 50 ms)."""
    time.sleep(min(0.001 * 2 ** attempt, 0.05) * random.uniform(0.5, 1.0))


