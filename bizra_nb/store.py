"""The state store: SQLAlchemy Core over SQLite (WAL), portable to PostgreSQL; nothing else touches SQL.

The schema evolves through :data:`MIGRATIONS`, applied in order at open; the
version reached is kept in the ``meta`` table.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy import event

from bizra_nb.errors import Unavailable

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


def _v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[meta, violations])


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1]


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
        """Apply the migrations not yet applied; returns the schema version reached."""
        with self.engine.begin() as conn:
            metadata.create_all(conn, tables=[meta])
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else 0
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(conn)
                _put_meta(conn, "schema_version", str(number))
            return len(MIGRATIONS)

    def check_writable(self, *, timeout: float = 0.5) -> None:
        """Raise :class:`Unavailable` unless a write transaction commits within ``timeout`` seconds."""
        probe = sa.create_engine(self.url, connect_args=self._connect_args(self.url, timeout))
        try:
            with probe.begin() as conn:
                _put_meta(conn, "last_write_check", repr(time.time()))
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable(f"store is not writable: {exc.orig or exc}") from None
        finally:
            probe.dispose()

    # -- violations log ------------------------------------------------------------

    def log_violation(self, kind: str, detail: str = "", *, ts: float | None = None) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(violations.insert().values(ts=ts or time.time(), kind=kind, detail=detail[:2000]))

    def recent_violations(self, *, limit: int = 100, since: float | None = None) -> list[dict]:
        query = sa.select(violations).order_by(violations.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(violations.c.ts >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def close(self) -> None:
        self.engine.dispose()


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

