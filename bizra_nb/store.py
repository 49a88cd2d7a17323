"""The state store: SQLAlchemy Core over SQLite (WAL), portable to PostgreSQL; nothing else touches SQL.

The schema evolves through :data:`MIGRATIONS`, applied in order at open; the
version reached is kept in the ``meta`` table. Each migration is frozen: it
holds its own DDL (tables as they were at that version), never today's table
definitions, so a database at any version migrates to the same schema. A
database newer than this code is refused (:class:`~bizra_nb.errors.Unavailable`).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy import event

from bizra_nb.errors import Conflict, NotFound, Unavailable

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
    sa.Column("incident_id", sa.Integer, nullable=True),
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


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1, _v2, _v3, _v4]
RUN_JSON_COLUMNS = ("parameters", "progress", "summary")
INCIDENT_COLUMNS = ("title", "severity", "status", "service", "source", "group_key", "opened_at",
                    "acknowledged_at", "resolved_at", "updated_at", "report_url")


def _writes(method):
    """A store write that cannot get its lock (or its disk) raises Unavailable, not a driver error."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sa.exc.OperationalError as exc:
            raise Unavailable(f"the store is unavailable ({exc.orig}); retry shortly") from None

    return wrapper


class Store:
    """The platform's persistent state.

    Parameters
    ----------
    url
        A SQLAlchemy URL; see :meth:`open` for the usual SQLite file in a data dir.
    busy_timeout
        Seconds a write waits for a lock held by another writer before failing.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self.url = url
        self.engine = sa.create_engine(url, connect_args=self._connect_args(url, busy_timeout))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()
        self._probe: sa.Engine | None = None
        self._probe_timeout = 0.0
        self.migrate()

    @staticmethod
    def _connect_args(url: str, busy_timeout: float) -> dict:
        if url.startswith("sqlite"):
            return {"timeout": busy_timeout, "check_same_thread": False}
        return {}

    @classmethod
    def open(cls, data_dir: str | Path, **kwargs: Any) -> "Store":
        """The SQLite store ``bizra.sqlite3`` in ``data_dir`` (created when missing)."""
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path / 'bizra.sqlite3'}", **kwargs)

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version reached.

        Raises
        ------
        Unavailable
            The database is at a schema version newer than this code knows (written by a newer bizra-nb).
        """
        with self.engine.begin() as conn:
            _v0_meta(conn)
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise Unavailable(f"the database {self.engine.url.render_as_string(hide_password=True)} is at "
                                  f"schema version {version}, this code knows up to {len(MIGRATIONS)}: "
                                  "upgrade bizra-nb", field="data_dir")
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(conn)
                _put_meta(conn, "schema_version", str(number))
            return len(MIGRATIONS)

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first()
        return row[0] if row else None

    @_writes
    def put_meta(self, key: str, value: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            _put_meta(conn, key, value)

    def check_writable(self, *, timeout: float = 0.5) -> None:
        """Raise :class:`Unavailable` unless a write transaction commits within ``timeout`` seconds."""
        if self._probe is None or self._probe_timeout != timeout:  # its own engine: a short lock wait
            self._probe = sa.create_engine(self.url, connect_args=self._connect_args(self.url, timeout))
            self._probe_timeout = timeout
        try:
            with self._probe.begin() as conn:
                _put_meta(conn, "last_write_check", repr(time.time()))
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable(f"store is not writable: {exc.orig or exc}") from None

    # -- violations log ------------------------------------------------------------

    @_writes
    def log_violation(self, kind: str, detail: str = "", *, ts: float | None = None) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(violations.insert().values(ts=ts or time.time(), kind=kind, detail=detail[:2000]))

    def recent_violations(self, *, limit: int = 100, since: float | None = None) -> list[dict]:
        query = sa.select(violations).order_by(violations.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(violations.c.ts >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # -- CMDB ----------------------------------------------------------------------------

    def load_cmdb(self) -> dict:
        """The stored CMDB document (``items``, ``relations``); empty lists when none is stored."""
        with self.engine.connect() as conn:
            items = [json.loads(r.doc) for r in conn.execute(sa.select(cmdb_items.c.doc).order_by(cmdb_items.c.id))]
            relations = [json.loads(r.doc) for r in conn.execute(
                sa.select(cmdb_relations.c.doc).order_by(cmdb_relations.c.source, cmdb_relations.c.target))]
        return {"items": items, "relations": relations}

    @_writes
    def save_cmdb(self, doc: dict) -> None:
        """Replace the stored CMDB with ``doc`` in one transaction (validate it first)."""
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(cmdb_relations.delete())
            conn.execute(cmdb_items.delete())
            if doc["items"]:
                conn.execute(cmdb_items.insert(), [{"id": i["id"], "kind": i["kind"], "doc": _dumps(i)}
                                                   for i in doc["items"]])
            if doc["relations"]:
                conn.execute(cmdb_relations.insert(), [{"source": r["source"], "target": r["target"],
                                                        "type": r["type"], "doc": _dumps(r)} for r in doc["relations"]])

    # -- incidents ---------------------------------------------------------------------

    @_writes
    def create_incident(self, **fields: Any) -> dict:
        """Insert an incident; a second active incident of one alert group is a :class:`Conflict`."""
        row = _incident_row(fields)
        with self._write_lock, self.engine.begin() as conn:
            try:
                new_id = conn.execute(incidents.insert().values(**row)).inserted_primary_key[0]
            except sa.exc.IntegrityError:
                raise Conflict(f"alert group {row['group_key']!r} already has an active incident",
                               field="group_key") from None
        return self.get_incident(new_id)

    @_writes
    def open_or_change_group_incident(self, group_key: str, *, create: dict | None,
                                      change: Callable[[dict], dict | None]) -> tuple[str, dict | None]:
        """The one active incident of an alert group, opened or changed atomically (one transaction).

        Parameters
        ----------
        group_key
            The alert group; at most one incident with it is active (not resolved), enforced by a
            unique index, so concurrent deliveries (threads or processes) cannot open two.
        create
            The incident's fields to insert when the group has no active incident; None: never insert.
        change
            ``change(active_incident)`` → the fields to update, or None to leave it as it is.

        Returns
        -------
        (action, incident)
            ``("opened", new)``, ``("changed", updated)``, ``("unchanged", active)``, or
            ``("none", latest_of_group_or_None)`` when nothing is active and ``create`` is None.
        """
        with self._write_lock, self.engine.begin() as conn:
            if create is not None:
                insert = _insert_ignoring_conflict(conn, _incident_row({**create, "group_key": group_key}))
                new_id = conn.execute(insert.returning(incidents.c.id)).scalar()
                if new_id is not None:
                    return "opened", _incident(conn.execute(sa.select(incidents).where(incidents.c.id == new_id)).first())
            active = conn.execute(sa.select(incidents).where(incidents.c.active_group_key == group_key)).first()
            if active is None:
                latest = conn.execute(sa.select(incidents).where(incidents.c.group_key == group_key)
                                      .order_by(incidents.c.id.desc()).limit(1)).first()
                return "none", _incident(latest) if latest is not None else None
            current = _incident(active)
            fields = change(current)
            if fields is None:
                return "unchanged", current
            values = _incident_changes(active, dict(fields))
            conn.execute(incidents.update().where(incidents.c.id == active.id).values(**values))
            return "changed", _incident(conn.execute(sa.select(incidents).where(incidents.c.id == active.id)).first())

    @_writes
    def update_incident(self, incident_id: int, **fields: Any) -> dict:
        """Change columns and merge the rest into the incident's document; returns the incident.

        Reopening an incident of an alert group that has another active incident is a :class:`Conflict`.
        """
        with self._write_lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}", field="id")
            values = _incident_changes(row, fields)
            try:
                conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))
            except sa.exc.IntegrityError:
                raise Conflict(f"alert group {row.group_key!r} has another active incident; resolve it first",
                               field="status") from None
        return self.get_incident(incident_id)

    def get_incident(self, incident_id: int) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"no incident {incident_id}", field="id")
        return _incident(row)

    def list_incidents(self, *, status: str | None = None, severity: str | None = None, service: str | None = None,
                       group_key: str | None = None, since: float | None = None, limit: int = 100) -> list[dict]:
        query = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        for column, value in (("status", status), ("severity", severity), ("service", service),
                              ("group_key", group_key)):
            if value is not None:
                query = query.where(incidents.c[column] == value)
        if since is not None:
            query = query.where(incidents.c.opened_at >= since)
        with self.engine.connect() as conn:
            return [_incident(row) for row in conn.execute(query)]

    # -- notebook runs -------------------------------------------------------------------

    @_writes
    def create_run(self, **fields: Any) -> dict:
        row = {k: (_dumps(v) if k in RUN_JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(runs.insert().values(**row))
        return self.get_run(fields["id"])

    @_writes
    def update_run(self, run_id: str, **fields: Any) -> dict:
        values = {k: (_dumps(v) if k in RUN_JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        with self._write_lock, self.engine.begin() as conn:
            if not conn.execute(runs.update().where(runs.c.id == run_id).values(**values)).rowcount:
                raise NotFound(f"no run {run_id!r}", field="id")
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run {run_id!r}", field="id")
        return _run(row)

    def list_runs(self, *, status: str | None = None, kind: str | None = None, since: float | None = None,
                  until: float | None = None, incident_id: int | None = None, limit: int = 100) -> list[dict]:
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(runs.c.status == status)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        if until is not None:
            query = query.where(runs.c.created_at < until)
        if incident_id is not None:
            query = query.where(runs.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query)]

    @_writes
    def fail_unfinished_runs(self, reason: str) -> list[str]:
        """Mark every queued or running run failed (their process died); returns their ids."""
        with self._write_lock, self.engine.begin() as conn:
            ids = [r.id for r in conn.execute(sa.select(runs.c.id).where(runs.c.status.in_(("queued", "running"))))]
            if ids:
                conn.execute(runs.update().where(runs.c.id.in_(ids)).values(
                    status="failed", error=reason, finished_at=time.time()))
        return ids

    def close(self) -> None:
        self.engine.dispose()
        if self._probe is not None:
            self._probe.dispose()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


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
    fields = dict(fields)
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


def _insert_ignoring_conflict(conn: sa.Connection, row: dict):
    """``INSERT … ON CONFLICT (active_group_key) DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(incidents).values(**row).on_conflict_do_nothing(index_elements=["active_group_key"])


def _incident(row) -> dict:
    out = {c: getattr(row, c) for c in ("id",) + INCIDENT_COLUMNS}
    out.update(json.loads(row.doc))
    out["diagnosis"] = json.loads(row.diagnosis) if row.diagnosis else None
    return out


def _run(row) -> dict:
    out = dict(row._mapping)
    for key in RUN_JSON_COLUMNS:
        out[key] = json.loads(out[key]) if out[key] else ({} if key == "parameters" else None)
    return out


def _put_meta(conn: sa.Connection, key: str, value: str) -> None:
    updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value)).rowcount
    if not updated:
        conn.execute(meta.insert().values(key=key, value=value))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

