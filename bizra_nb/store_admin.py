"""Operator commands for the store: migrate, copy, backup.

::

    bizra-nb store migrate [--store-url URL | --data-dir DIR]   bring a store to this code's schema version
    bizra-nb store copy --from URL --to URL [--force]          move every table (SQLite → PostgreSQL...), counts verified
    bizra-nb store backup --to FILE [--store-url URL | --data-dir DIR] [--force]
                                                              SQLite: the online backup API (safe while serving);
                                                              PostgreSQL: says the pg_dump command to run

A store is named by ``--store-url`` (a SQLAlchemy URL) or ``--data-dir`` (its ``bizra.sqlite3``), else by
``BIZRA_STORE_URL`` / ``BIZRA_DATA_DIR``, as ``bizra-nb serve`` finds it.
"""
from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from bizra_nb.errors import BizraError, InvalidInput, InvalidSetting, Unavailable
from bizra_nb.store import (MIGRATIONS, UNAVAILABLE, Store, engine_for, metadata, parse_url, snapshot_of,
                            writer_of)

BATCH = 1000
EXIT_FAILED = 1


# -- the library functions ------------------------------------------------------------------------------


def store_url_of(store_url: str | None, data_dir: str | Path | None) -> str:
    """The URL of the store named by ``--store-url`` or ``--data-dir``, else by the settings (environment)."""
    from bizra_nb.settings import load_settings

    if store_url and data_dir:
        raise InvalidInput("give --store-url or --data-dir, not both", field="store_url")
    settings = load_settings({"store_url": store_url, "data_dir": Path(data_dir) if data_dir else None})
    if settings.store_url and not data_dir:
        return _checked_url(settings.store_url, "--store-url", folder_may_be_missing=True)  # migrate creates it
    return f"sqlite:///{Path(settings.data_dir) / 'bizra.sqlite3'}"


def migrate(url: str, *, parameter: str = "--store-url") -> int:
    """Apply the migrations ``url``'s store lacks (creating it when new); returns the schema version reached."""
    parsed = parse_url(_checked_url(url, parameter, folder_may_be_missing=True))
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    store = Store(url)
    try:
        return store.schema_version
    finally:
        store.close()


def copy_store(source: str, target: str, *, force: bool = False, batch: int = BATCH,
               report: Callable[[str], None] = lambda line: None) -> dict[str, tuple[int, int]]:
    """Copy every table of the store at ``source`` into the store at ``target``; row counts per table.

    The source is read in one snapshot (a server may keep writing to it) and left unchanged; it must be
    at this code's schema version (``store migrate`` it first). The target is created or migrated, and
    written in one transaction: all rows or none.

    Parameters
    ----------
    source, target
        Store URLs (``sqlite:///PATH``, ``postgresql+psycopg://…``).
    force
        Replace what the target already holds; without it a target with data is refused.
    batch
        Rows read and inserted at a time.
    report
        Called with a line of progress per table.

    Returns
    -------
    dict
        ``{table: (rows in source, rows in target)}`` after the copy, in copy order; equal when it worked.

    Raises
    ------
    InvalidInput
        A bad URL, a missing SQLite file, a source at another schema version, a target with data.
    Unavailable
        A database does not answer.
    """
    source = _checked_url(source, "--from", must_exist=True)
    target = _checked_url(target, "--to")
    if parse_url(source) == parse_url(target):
        raise InvalidInput("--to: is the same store as --from", field="to")
    tables = [t for t in metadata.sorted_tables]  # no foreign keys: the declared order is a dependency order
    src = engine_for(source)
    try:
        with _unavailable(source, "--from"):
            src_version = _schema_version(src)
        if src_version != len(MIGRATIONS):
            hint = (f"run `bizra-nb store migrate --store-url {_shown(source)}` first" if src_version < len(MIGRATIONS)
                    else "upgrade bizra-nb")
            raise InvalidInput(f"--from: the store is at schema version {src_version}, this bizra-nb copies "
                               f"version {len(MIGRATIONS)}: {hint}", field="from")
        with _unavailable(target, "--to"):
            dst = Store(target)
        try:
            with _unavailable(target, "--to"):
                held = {t.name: n for t, n in _counts(dst.engine, tables).items() if n and t.name != "meta"}
            if held and not force:
                listed = ", ".join(f"{name}: {n}" for name, n in held.items())
                raise InvalidInput(f"--to: the target store already holds data ({listed}); give --force to "
                                   "replace it", field="to")
            with _unavailable(source, "--from"), snapshot_of(src).connect() as read:
                if src.dialect.name == "postgresql":
                    read = read.execution_options(isolation_level="REPEATABLE READ")
                with read.begin():
                    with _unavailable(target, "--to"), \
                            writer_of(dst.engine).begin() as write:
                        replaced = _replace(read, write, tables, batch)
                    source_counts = _counts(read, tables)
            with _unavailable(target, "--to"):
                target_counts = _counts(dst.engine, tables)
        finally:
            dst.close()
    finally:
        src.dispose()
    counts = {t.name: (source_counts[t], target_counts[t]) for t in tables}
    for name, (n_source, n_target) in counts.items():
        report(f"  {name:<16} {n_source:>8} → {n_target}" + ("" if n_source == n_target else "  DIFFERENT"))
    for name, n in replaced.items():
        report(f"  {name}: {n} value{'s' if n != 1 else ''} held a NUL character, which PostgreSQL cannot store: "
               "copied with U+FFFD (�) in its place")
    return counts


def backup_sqlite(url: str, to: str | Path, *, force: bool = False, parameter: str = "--store-url") -> dict:
    """Back up the SQLite store at ``url`` into the file ``to`` with SQLite's online backup API.

    Consistent while a server writes to the store: one step, which reads one snapshot (the store is in
    WAL mode, so writers go on meanwhile; copied in several steps, a write between two would restart
    the copy, for ever under a steady stream of writes),
    written to a temporary file, checked (``PRAGMA integrity_check``), then renamed into place.

    Returns
    -------
    dict
        ``path``, ``bytes``, ``schema_version`` and ``incidents`` of the backup.

    Raises
    ------
    InvalidInput
        A PostgreSQL store (the message gives the ``pg_dump`` command), no store, an existing ``to``
        without ``force``, a missing folder.
    """
    parsed = parse_url(_checked_url(url, parameter, must_exist=True))
    if parsed.get_backend_name() == "postgresql":
        raise InvalidInput(f"{parameter}: a PostgreSQL store is backed up with pg_dump: {pg_dump_command(url, to)}",
                           field="store_url")
    source = Path(parsed.database)
    target = Path(to)
    if not target.parent.is_dir():
        raise InvalidInput(f"--to: no such folder: {target.parent}", field="to")
    if target.exists() and not force:
        raise InvalidInput(f"--to: {target} exists; give --force to replace it", field="to")
    if target.resolve() == source.resolve():
        raise InvalidInput("--to: is the store itself", field="to")
    partial = target.with_name(f".{target.name}.partial")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=-1)  # one step, one snapshot: never restarted by a concurrent write
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            version = dst.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            incidents = dst.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] if version and int(version[0]) >= 2 else 0
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise Unavailable(f"{parameter}: the backup of {source} failed: {exc}", field="store_url") from None
    finally:
        src.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise Unavailable(f"the backup of {source} is damaged ({check}); nothing written", field="to")
    os.replace(partial, target)
    return {"path": str(target), "bytes": target.stat().st_size, "schema_version": int(version[0]) if version else 0,
            "incidents": incidents}


def pg_dump_command(url: str, to: str | Path) -> str:
    """The ``pg_dump`` command that backs up the PostgreSQL store at ``url`` into ``to`` (password not shown)."""
    parsed = parse_url(url)
    plain = sa.URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                          database=parsed.database)  # libpq's form, without the password
    return (f"PGPASSWORD=… pg_dump --format=custom --file {to} '{plain.render_as_string(hide_password=False)}' "
            f"(restore: pg_restore --clean --if-exists --single-transaction --dbname URL {to})")


# -- the command line ----------------------------------------------------------------------------------


def add_commands(subparsers) -> None:
    """Add ``store`` (``migrate``, ``copy``, ``backup``) to the CLI's sub-commands; each sets ``func(args) -> int``."""
    store = subparsers.add_parser("store", help="operate the store: migrate, copy to another database, back up",
                                  description=__doc__.split("\n\n")[0])
    commands = store.add_subparsers(dest="store_command", required=True, metavar="STORE_COMMAND",
                                    parser_class=type(store))

    migrate_cmd = commands.add_parser("migrate", help="bring the store to this code's schema version; print it")
    _add_where(migrate_cmd)
    migrate_cmd.set_defaults(func=cmd_migrate)

    copy_cmd = commands.add_parser("copy", help="copy every table to another store, row counts verified",
                                   description="Copy a store (e.g. a laptop's SQLite) into another (e.g. "
                                               "PostgreSQL): every table, in one transaction, counts verified.")
    copy_cmd.add_argument("--from", dest="source", required=True, metavar="URL",
                          help="the store to copy: sqlite:///PATH or postgresql+psycopg://… (left unchanged)")
    copy_cmd.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to fill")
    copy_cmd.add_argument("--force", action="store_true", help="replace what the target already holds")
    copy_cmd.set_defaults(func=cmd_copy)

    backup_cmd = commands.add_parser("backup", help="SQLite: an online backup into a file; PostgreSQL: use pg_dump")
    _add_where(backup_cmd)
    backup_cmd.add_argument("--to", dest="target", required=True, metavar="FILE", help="the backup file to write")
    backup_cmd.add_argument("--force", action="store_true", help="replace FILE when it exists")
    backup_cmd.set_defaults(func=cmd_backup)


def _add_where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store-url", metavar="URL", help="the store's SQLAlchemy URL (default: BIZRA_STORE_URL)")
    where.add_argument("--data-dir", metavar="DIR", help="the data dir of a SQLite store (default: BIZRA_DATA_DIR, data)")


def _where(args: argparse.Namespace) -> tuple[str, str]:
    """The store a command names, and the parameter that named it (for its errors)."""
    return store_url_of(args.store_url, args.data_dir), "--data-dir" if args.data_dir else "--store-url"


def cmd_migrate(args: argparse.Namespace) -> int:
    url, parameter = _where(args)
    version = migrate(url, parameter=parameter)
    print(f"store {_shown(url)} at schema version {version}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    _checked_url(args.source, "--from", must_exist=True)
    _checked_url(args.target, "--to")
    print(f"copying {_shown(args.source)} → {_shown(args.target)}")
    counts = copy_store(args.source, args.target, force=args.force, report=print)
    different = [name for name, (a, b) in counts.items() if a != b]
    if different:
        print(f"bizra-nb store copy: error: row counts differ in {', '.join(different)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"copied {sum(a for a, _ in counts.values())} rows in {len(counts)} tables; counts verified")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    url, parameter = _where(args)
    done = backup_sqlite(url, args.target, force=args.force, parameter=parameter)
    print(f"backed up to {done['path']}: {done['bytes']} bytes, schema version {done['schema_version']}, "
          f"{done['incidents']} incidents (restore: stop the server, copy the file to DATA_DIR/bizra.sqlite3)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bizra_nb.store_admin …``: the ``store`` commands alone, errors on one line (exit 2)."""
    from bizra_nb.cli import Parser

    parser = Parser(prog="bizra-nb")
    add_commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BizraError as exc:
        print(f"bizra-nb store {args.store_command}: error: {exc.message}", file=sys.stderr)
        return 2


# -- helpers --------------------------------------------------------------------------------------------


def _checked_url(url: str, parameter: str, *, must_exist: bool = False, folder_may_be_missing: bool = False) -> str:
    """``url`` when it names a store (a SQLite file that exists when ``must_exist``); else InvalidInput naming ``parameter``."""
    field = parameter.lstrip("-").replace("-", "_")
    try:
        parsed = parse_url(url, parameter=parameter)
    except InvalidSetting as exc:
        raise InvalidInput(exc.message, field=field) from None
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput(f"{parameter}: a SQLite store is a file: sqlite:///PATH", field=field)
        if must_exist and not path.is_file():
            raise InvalidInput(f"{parameter}: no such SQLite file: {path}", field=field)
        if not path.parent.is_dir() and not folder_may_be_missing:
            raise InvalidInput(f"{parameter}: no such folder: {path.parent}", field=field)
    return url


def _shown(url: str) -> str:
    return parse_url(url).render_as_string(hide_password=True)


class _unavailable:
    """Database errors of one side of a copy as :class:`Unavailable` naming its parameter (no password)."""

    def __init__(self, url: str, parameter: str) -> None:
        self.url, self.parameter = url, parameter

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, Unavailable) and not exc.message.startswith("--"):
            raise Unavailable(f"{self.parameter}: {exc.message}", field=exc.field) from None
        if isinstance(exc, UNAVAILABLE):
            password = parse_url(self.url).password
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            reason = reason.replace(password, "***") if password else reason
            raise Unavailable(f"{self.parameter}: the store {_shown(self.url)} is unavailable ({reason})",
                              field=self.parameter.lstrip("-")) from None
        return False


def _schema_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("meta"):
            return 0
        row = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    return int(row[0]) if row else 0


def _counts(bind, tables: list[sa.Table]) -> dict[sa.Table, int]:
    def count(conn) -> dict[sa.Table, int]:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in tables}

    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            return count(conn)
    return count(bind)


def _replace(read: sa.Connection, write: sa.Connection, tables: list[sa.Table], batch: int) -> dict[str, int]:
    """Empty the target's tables (its own ``schema_version`` kept) and insert the source's rows, in batches.

    Into PostgreSQL, a NUL character in a text value (SQLite holds it, PostgreSQL refuses it) is replaced
    by U+FFFD. Returns ``{table: values so replaced}`` for the tables that had any. A row the target
    refuses anyway is an :class:`InvalidInput` naming the table, never showing the row.
    """
    for table in tables:
        if table.name == "meta":
            write.execute(table.delete().where(table.c.key != "schema_version"))
        else:
            write.execute(table.delete())
    replaced: dict[str, int] = {}
    strip_nul = write.dialect.name == "postgresql"
    for table in tables:
        query = sa.select(table).order_by(*table.primary_key.columns)
        if table.name == "meta":
            query = query.where(table.c.key != "schema_version")
        rows = read.execution_options(yield_per=batch).execute(query)
        for part in rows.partitions(batch):
            values = [dict(row._mapping) for row in part]
            if strip_nul:
                n = _replace_nul(values)
                if n:
                    replaced[table.name] = replaced.get(table.name, 0) + n
            try:
                write.execute(table.insert(), values)
            except (sa.exc.DataError, sa.exc.IntegrityError) as exc:  # its message would show the rows: not shown
                kind = type(getattr(exc, "orig", None) or exc).__name__
                raise InvalidInput(f"--to: the target refuses a row of the table {table.name} ({_words(kind)}); "
                                   "nothing was copied", field="to") from None
        rows.close()
    if write.dialect.name == "postgresql":
        _reset_sequences(write, tables)
    return replaced


def _replace_nul(values: list[dict]) -> int:
    """Replace each NUL character of the text values in ``values`` (in place) by U+FFFD; the values changed."""
    changed = 0
    for row in values:
        for key, value in row.items():
            if isinstance(value, str) and "\x00" in value:
                row[key] = value.replace("\x00", "\ufffd")
                changed += 1
    return changed


def _words(name: str) -> str:
    """``NumericValueOutOfRange`` → ``numeric value out of range`` (a driver error's class, shown without its data)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


def _reset_sequences(write: sa.Connection, tables: list[sa.Table]) -> None:
    """PostgreSQL: explicit ids were inserted, so each table's sequence goes on after them."""
    for table in tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True or (column.autoincrement == "auto" and isinstance(column.type, sa.Integer)):
                write.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"))


if __name__ == "__main__":
    sys.exit(main())
