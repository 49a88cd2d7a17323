"""The slow packaging test: the wheel, installed into a fresh venv, works from an unrelated directory.

One test, about a minute and a half (marked ``slow``; deselect with ``-m "not slow"``): build the
wheel from a copy of the sources, check it carries the notebooks, static files, templates and
the OpenAPI document, install it with ``--no-deps`` into a fresh venv whose dependencies come
from this environment (a plain path line in a ``.pth`` file: nothing is downloaded again, and this
checkout's editable install is not seen), then, from an empty temporary working directory, run
``bizra-nb demo --out DIR``, ``bizra-nb run incident_diagnosis`` on the demo's files, and
``bizra-nb serve`` with a ``POST /runs``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "bizra_nb", "server", "notebooks", "monitoring")
TOKEN = "packaging-test-token"


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the sources (a build in the checkout would leave build/ there)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
        else:
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, text=True)
    return next((tmp / "dist").glob("bizra_nb-*.whl"))


def _expected_data_files() -> set[str]:
    """Every file the installed package needs besides its modules, as paths inside the wheel."""
    expected = {f"bizra_nb/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    expected |= {f"bizra_nb/{p.relative_to(ROOT / 'bizra_nb').as_posix()}"
                 for p in (ROOT / "bizra_nb" / "templates").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"}
    expected |= {f"bizra_server/static/{p.name}" for p in (ROOT / "server" / "static").iterdir() if p.is_file()}
    expected.add("bizra_server/openapi.yaml")
    expected |= {f"bizra_nb/slo_specs/{p.name}" for p in (ROOT / "monitoring" / "slo").glob("*.yaml")}
    return expected


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed (no deps); the dependencies are this environment's site-packages."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                    str(wheel)], check=True, capture_output=True, text=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: this environment's packages become importable, but its own .pth files (the
    # checkout's editable install among them) are not processed.
    (Path(purelib) / "_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The dependencies' data files (nbconvert's templates, ...), as their install would put them in the
    # venv; not kernels: the installed bizra-nb writes its own kernelspec, pointing at the fresh venv.
    shared = Path(sys.prefix) / "share" / "jupyter"
    (venv / "share" / "jupyter").mkdir(parents=True)
    for entry in shared.iterdir() if shared.is_dir() else ():
        if entry.name != "kernels":
            (venv / "share" / "jupyter" / entry.name).symlink_to(entry)
    return venv


def _environ() -> dict:
    """This process's environment without what would point the fresh venv back at the checkout."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZRA_") and k not in drop}
    return {**env, "PYTHONNOUSERSITE": "1"}


def test_the_wheel_works_installed_in_a_fresh_venv(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected_data_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"bizra_nb/notebooks/incident_diagnosis.ipynb", "bizra_server/static/index.html",
            "bizra_nb/templates/index.html.j2", "bizra_server/openapi.yaml"} <= names
    assert not any(name.startswith(("server/", "notebooks/")) for name in names)  # no generic top-level names

    venv = _fresh_venv(tmp_path, wheel)
    python, bizra = venv / "bin" / "python", venv / "bin" / "bizra-nb"
    env = _environ()
    cwd = tmp_path / "elsewhere"  # an unrelated working directory: no checkout above it
    cwd.mkdir()

    def sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                              timeout=timeout)

    where = sh(python, "-c", "import bizra_nb, bizra_server, pandas; from bizra_nb.runner import NOTEBOOKS_DIR; "
                             "print(bizra_nb.__file__); print(bizra_server.__file__); print(NOTEBOOKS_DIR)")
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(venv.resolve()), where.stdout  # not the checkout

    # the platform's default SLO spec is the packaged copy, and it loads
    slos = sh(python, "-c", "from bizra_nb.slo_spec import default_spec_path, load_specs; "
                            "print(default_spec_path()); print(' '.join(s.name for s in load_specs()))")
    assert slos.returncode == 0, slos.stderr
    spec_path, names = slos.stdout.splitlines()
    assert Path(spec_path).resolve().is_relative_to(venv.resolve()), slos.stdout
    assert names.split() == ["bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"]

    # bizra-nb demo --out DIR: the three reports and the index under DIR, nothing in the working directory
    out = tmp_path / "the-demo"
    demo = sh(bizra, "demo", "--out", out, "--port", "0", "--month", "2026-10")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    printed = {line.split()[0]: Path(line.split()[-1]) for line in demo.stdout.splitlines()
               if line.startswith("  ") and len(line.split()) == 2}
    for name in ("diagnosis", "benchmark", "audit", "index"):
        assert printed[name].is_file() and printed[name].resolve().is_relative_to(out.resolve()), demo.stdout
    assert printed["index"] == out.resolve() / "reports" / "index.html"
    assert list(cwd.iterdir()) == []

    # bizra-nb run incident_diagnosis on the demo's files
    fault = json.loads((out / "truth.json").read_text())[-1]
    start = pd.Timestamp(fault["start"])
    run = sh(bizra, "run", "incident_diagnosis", "-p", "source", out / "metrics.parquet", "-p", "cmdb",
             out / "cmdb.yaml", "-p", "start", (start - pd.Timedelta("1h")).isoformat(),
             "-p", "end", (start + pd.Timedelta("30min")).isoformat(),
             "--data-dir", tmp_path / "run-data", "--reports-dir", tmp_path / "run-reports")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(next((tmp_path / "run-reports").rglob("summary.json")).read_text())
    assert summary["status"] == "succeeded"
    assert summary["summary"]["top_causes"][0]["service"] == fault["service"]

    # bizra-nb serve + POST /runs: the run completes and its report answers
    serve = subprocess.Popen([str(bizra), "serve", "--port", "0", "--ws-port", "-1", "--data-dir", str(out),
                              "--reports-dir", str(tmp_path / "served-reports"), "--api-token", TOKEN,
                              "--audit-schedule", "", "--benchmark-schedule", "", "--log-level", "warning"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd, env=env)
    try:
        page = None
        for line in serve.stdout:
            found = re.match(r"status page: (http://127\.0\.0\.1:\d+)/$", line.strip())
            if found:
                page = found.group(1)
                break
        assert page, "serve printed no status page URL"
        http = httpx.Client(base_url=page, timeout=30)
        assert http.get("/").status_code == 200
        notebooks = http.get("/runs/notebooks").json()["notebooks"]
        assert set(notebooks) == {"incident_diagnosis", "benchmark", "compliance_audit", "explore"}
        created = http.post("/runs", headers={"Authorization": f"Bearer {TOKEN}"}, json={
            "notebook": "benchmark",
            "parameters": {"target_url": page, "duration": 1.0, "rate": 20.0, "concurrency": 2, "ws_clients": 0}})
        assert created.status_code == 201, created.text

        def finished():
            run = http.get(f"/runs/{created.json()['id']}").json()
            return run if run["status"] in ("succeeded", "failed", "cancelled") else None

        done = wait_until(finished, timeout=240, interval=0.5)
        assert done["status"] == "succeeded", done
        report = http.get(done["links"]["html"])
        assert report.status_code == 200 and "<html" in report.text.lower()
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert list(cwd.iterdir()) == []
