"""A notebook run by a runner whose store is PostgreSQL reads that store (the audit's incidents), not a SQLite file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import platform_month
from bizra_nb.runner import Runner
from bizra_nb.store import Store


def test_the_audit_counts_the_incidents_of_the_postgresql_store(postgres_url, tmp_path):
    data = tmp_path / "data"
    write_dataset(platform_month("2026-09"), data / "platform.parquet")
    store = Store.from_url(postgres_url, data_dir=data)
    start = pd.Timestamp("2026-09-10T12:00Z").timestamp()
    for hours in (0, 48):
        store.create_incident(title="t", severity="P2", source="api", opened_at=start + hours * 3600,
                              acknowledged_at=start + hours * 3600 + 60, resolved_at=start + hours * 3600 + 600,
                              status="resolved")
    runner = Runner(store, reports_dir=tmp_path / "reports", workers=1, cell_timeout=120, data_dir=data)
    try:
        run = runner.run("compliance_audit", {"month": "2026-09", "source": "platform.parquet"})
    finally:
        runner.close()
    assert run["summary"]["incidents"] == 2  # from PostgreSQL: the data dir holds no SQLite store
    assert not (data / "bizra.sqlite3").exists()
    assert "MTTA" in (Path(run["folder"]) / "report.html").read_text()
