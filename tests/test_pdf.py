"""A real report printed to PDF by headless Chromium with its figures drawn; the CLI; /reports/…/report.pdf."""
from __future__ import annotations

import os
import re
import shutil
import threading
import zlib
from pathlib import Path

import httpx
import pytest

from bizra_nb import pdf
from bizra_nb.cli import main
from bizra_nb.errors import Unavailable
from tests.conftest import need_binary, wait_until

PLOTLY_FIRST_COLOUR = b".3882 .4314 .9804 rg"  # #636efa, plotly's first trace colour, as Chromium's PDF paints it


def painted(pdf_bytes: bytes) -> bytes:
    """The PDF's content streams, inflated: what is drawn, as PDF operators."""
    out = []
    for match in re.finditer(rb"stream\r?\n", pdf_bytes):
        try:
            out.append(zlib.decompressobj().decompress(pdf_bytes[match.end():match.end() + (16 << 20)]))
        except zlib.error:
            pass  # not a Flate stream (a font, an image)
    return b"\n".join(out)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real run's folder: the tiny notebook with two plotly figures, executed by papermill."""
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    root = tmp_path_factory.mktemp("pdf-run")
    runner = Runner(Store.open(root / "data"), reports_dir=root / "reports", workers=1, cell_timeout=120)
    try:
        run = runner.run(Path(__file__).parent / "notebooks" / "succeeds_with_a_figure.ipynb", {"x": 3})
    finally:
        runner.close()
    return Path(run["folder"])


def test_a_report_prints_with_its_figures_drawn(report, tmp_path):
    need_binary("chromium")
    out = pdf.html_to_pdf(report / "report.html", tmp_path / "report.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and PLOTLY_FIRST_COLOUR in painted(data), "the figure is not in the PDF"
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, renamed
    # the check tells a drawn figure from a missing one: the same report with its scripts refused prints none
    blocked = tmp_path / "blocked.html"
    blocked.write_text(re.sub(r"script-src [^\"]*\"", "script-src 'none'\"", (report / "report.html").read_text(),
                              count=1))
    without = pdf.html_to_pdf(blocked, tmp_path / "blocked.pdf").read_bytes()
    assert without.startswith(b"%PDF-") and PLOTLY_FIRST_COLOUR not in painted(without)


def test_no_chromium_is_a_clear_unavailable(monkeypatch, report, tmp_path):
    for value in ("none", "", str(tmp_path / "no-such-chrome")):
        monkeypatch.setenv(pdf.ENV, value)
        assert pdf.chromium_path() is None
        with pytest.raises(Unavailable, match="install Chromium"):
            pdf.html_to_pdf(report / "report.html", tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_a_hung_chromium_is_killed_with_its_children_at_the_timeout(monkeypatch, report, tmp_path):
    fake = tmp_path / "chromium"
    pids = tmp_path / "pids"
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pids}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv(pdf.ENV, str(fake))
    with pytest.raises(Unavailable, match="did not print"):
        pdf.html_to_pdf(report / "report.html", tmp_path / "x.pdf", timeout=1)
    child = int(pids.read_text())
    wait_until(lambda: not alive(child), timeout=10)  # the group was killed: the script's own child too
    assert not (tmp_path / "x.pdf").exists() and not list(tmp_path.glob(".*.tmp"))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_cli_report_pdf(report, tmp_path, capsys, monkeypatch):
    need_binary("chromium")
    out = tmp_path / "cli.pdf"
    assert main(["report", "pdf", str(report), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and PLOTLY_FIRST_COLOUR in painted(out.read_bytes())
    monkeypatch.setenv(pdf.ENV, "none")
    assert main(["report", "pdf", str(report), "--out", str(tmp_path / "no.pdf")]) == 2
    err = capsys.readouterr().err
    assert "bizra-nb report: error: no Chromium" in err and "apt-get install chromium" in err
    monkeypatch.delenv(pdf.ENV)
    assert main(["report", "pdf", str(tmp_path)]) == 2  # a folder that is no run's
    assert "bizra-nb report: error:" in capsys.readouterr().err


@pytest.fixture
def served(make_server, report):
    """A server whose reports folder holds the real run's folder (report.html, summary.json), and its URL."""
    server = make_server()
    folder = Path(server.services.runner.reports_dir) / "other" / report.name
    shutil.copytree(report, folder)
    return server, folder, f"{server.url}/reports/other/{report.name}/report.pdf"


def test_the_endpoint_prints_once_and_serves_the_cached_pdf(served, monkeypatch):
    need_binary("chromium")
    server, folder, url = served
    prints = []
    real = pdf.html_to_pdf

    def counted(*args, **kwargs):
        prints.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(pdf, "html_to_pdf", counted)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=120))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200], [a.text[:300] for a in answers]
    assert all(a.headers["Content-Type"] == "application/pdf" for a in answers)
    assert answers[0].content == answers[1].content and PLOTLY_FIRST_COLOUR in painted(answers[0].content)
    assert len(prints) == 1, "the second request started a second Chromium instead of waiting for the first"
    assert (folder / "report.pdf").read_bytes() == answers[0].content  # cached next to report.html
    assert httpx.get(url, timeout=60).content == answers[0].content and len(prints) == 1  # served from the cache
    stamp = (folder / "report.pdf").stat().st_mtime
    os.utime(folder / "report.html", (stamp + 10, stamp + 10))  # the report changed since: printed again
    assert httpx.get(url, timeout=120).status_code == 200 and len(prints) == 2
    from bizra_server import reports

    assert reports._printing == {}  # no lock kept per report ever asked for


def test_the_endpoint_without_chromium_is_503_no_chromium(served, monkeypatch):
    server, folder, url = served
    monkeypatch.setenv(pdf.ENV, str(folder / "not-a-chromium"))
    response = httpx.get(url, timeout=30)
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_chromium"
    assert "Chromium" in response.json()["error"]["message"] and not (folder / "report.pdf").exists()


@pytest.mark.parametrize("path", [
    "other/no-such-run/report.pdf", "other/report.pdf", "report.pdf", "../report.pdf", "%2e%2e/%2e%2e/report.pdf",
    "other/..%2F..%2F..%2Fetc/report.pdf", "other/.hidden/report.pdf",
])
def test_the_endpoint_is_confined_to_run_folders_with_a_report(served, path):
    server, folder, url = served
    response = httpx.get(f"{server.url}/reports/{path}", timeout=30)
    assert response.status_code in (400, 404), response.text
    assert "error" in response.json()


# -- a report.pdf that is a link is never read; a failed print is not tried again for the same report.html --------


def fake_chromium(folder: Path, *, prints: bool) -> tuple[Path, Path]:
    """A stand-in for Chromium that notes each start in a file and prints a tiny PDF or fails; (binary, starts)."""
    binary, starts = folder / "fake-chromium", folder / "starts"
    body = ('for a in "$@"; do case "$a" in --print-to-pdf=*) printf "%%PDF-fake" > "${a#--print-to-pdf=}";; '
            'esac; done\nexit 0\n') if prints else 'echo "it broke" >&2\nexit 1\n'
    binary.write_text(f"#!/bin/sh\necho started >> {starts}\n{body}")
    binary.chmod(0o755)
    return binary, starts


def started(starts: Path) -> int:
    return len(starts.read_text().splitlines()) if starts.exists() else 0


@pytest.fixture
def linked(make_server, tmp_path):
    """A server whose reports folder holds sym/report.html (older) and sym/report.pdf, a link to a secret
    outside the reports folder; (server, folder, url, secret)."""
    server = make_server()
    folder = Path(server.services.runner.reports_dir) / "sym"
    folder.mkdir()
    (folder / "report.html").write_text("<!DOCTYPE html><p>a report</p>")
    os.utime(folder / "report.html", (1.7e9, 1.7e9))
    secret = tmp_path / "x" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the secret")
    (folder / "report.pdf").symlink_to(secret)
    return server, folder, f"{server.url}/reports/sym/report.pdf", secret


def test_a_report_pdf_linking_out_of_the_reports_folder_is_never_served(linked, monkeypatch, tmp_path):
    server, folder, url, secret = linked
    monkeypatch.setenv(pdf.ENV, "none")
    response = httpx.get(url, timeout=30)
    assert "the secret" not in response.text
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_chromium"  # not fresh: a link
    binary, starts = fake_chromium(tmp_path, prints=True)
    monkeypatch.setenv(pdf.ENV, str(binary))
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.content == b"%PDF-fake" and started(starts) == 1
    assert not (folder / "report.pdf").is_symlink() and secret.read_text() == "the secret"  # the link replaced
    assert httpx.get(url, timeout=30).content == b"%PDF-fake" and started(starts) == 1  # now fresh: cached


def test_a_link_put_in_place_after_the_check_is_not_followed(tmp_path):
    from bizra_server.reports import _read_pdf

    secret, link = tmp_path / "secret.txt", tmp_path / "report.pdf"
    secret.write_text("the secret")
    link.symlink_to(secret)
    assert _read_pdf(link) is None and _read_pdf(tmp_path) is None and _read_pdf(tmp_path / "gone.pdf") is None
    secret.write_bytes(b"%PDF-1")
    assert _read_pdf(secret) == b"%PDF-1"


def test_a_print_onto_a_folder_is_unavailable_not_a_crash(tmp_path, monkeypatch):
    binary, starts = fake_chromium(tmp_path, prints=True)
    monkeypatch.setenv(pdf.ENV, str(binary))
    (tmp_path / "report.html").write_text("<p>a report</p>")
    (tmp_path / "report.pdf").mkdir()
    with pytest.raises(Unavailable, match="could not write the PDF"):
        pdf.html_to_pdf(tmp_path / "report.html", tmp_path / "report.pdf")
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_print_is_remembered_until_report_html_changes(linked, monkeypatch, tmp_path):
    server, folder, url, secret = linked
    (folder / "report.pdf").unlink()
    binary, starts = fake_chromium(tmp_path, prints=False)
    monkeypatch.setenv(pdf.ENV, str(binary))
    answers = [httpx.get(url, timeout=30) for _ in range(2)]
    assert [a.status_code for a in answers] == [503, 503]
    assert [a.json()["error"]["code"] for a in answers] == ["pdf_failed"] * 2
    assert answers[0].json()["error"]["message"] == answers[1].json()["error"]["message"]
    assert "it broke" in answers[0].json()["error"]["message"]
    assert started(starts) == 1, "the second request started Chromium again"
    threads = [threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=30))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers[2:]] == [503] * 3 and started(starts) == 1
    (folder / "report.html").write_text("<!DOCTYPE html><p>a report, changed</p>")  # printed again once
    assert httpx.get(url, timeout=30).status_code == 503 and started(starts) == 2
    assert httpx.get(url, timeout=30).status_code == 503 and started(starts) == 2
    binary.write_text(binary.read_text().replace('echo "it broke" >&2\nexit 1',
                                                 'for a in "$@"; do case "$a" in --print-to-pdf=*) '
                                                 'printf "%%PDF-fake" > "${a#--print-to-pdf=}";; esac; done'))
    os.utime(folder / "report.html", (1.8e9, 1.8e9))  # Chromium mended and the report changed: it prints
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.content == b"%PDF-fake" and started(starts) == 3


def test_the_memory_of_failed_prints_is_bounded_and_keyed_by_the_report_as_it_is(monkeypatch):
    from bizra_server import reports

    monkeypatch.setattr(reports, "_failures", reports.OrderedDict())
    monkeypatch.setattr(reports, "MAX_FAILURES", 3)
    for n in range(5):
        reports._remember_failure(f"/r/{n}/report.html", (1, n), f"failed {n}")
    assert list(reports._failures) == ["/r/2/report.html", "/r/3/report.html", "/r/4/report.html"]
    assert reports._failed("/r/0/report.html", (1, 0)) is None  # forgotten, the least recently asked for
    assert reports._failed("/r/2/report.html", (1, 2)) == "failed 2"  # asked for: now the most recent
    reports._remember_failure("/r/5/report.html", (1, 5), "failed 5")
    assert "/r/3/report.html" not in reports._failures and "/r/2/report.html" in reports._failures
    assert reports._failed("/r/4/report.html", (2, 4)) is None and "/r/4/report.html" not in reports._failures
    monkeypatch.setattr(reports, "FAILURE_TTL", -1.0)
    assert reports._failed("/r/2/report.html", (1, 2)) is None  # remembered for a while only


def test_a_timed_out_print_is_remembered_too(linked, monkeypatch, tmp_path):
    server, folder, url, secret = linked
    (folder / "report.pdf").unlink()
    binary, starts = fake_chromium(tmp_path, prints=False)
    binary.write_text(f"#!/bin/sh\necho started >> {starts}\nsleep 300 &\nwait\n")  # hangs, as in the test above
    monkeypatch.setenv(pdf.ENV, str(binary))
    real = pdf.html_to_pdf
    monkeypatch.setattr(pdf, "html_to_pdf", lambda html, target: real(html, target, timeout=1))
    answers = [httpx.get(url, timeout=60) for _ in range(2)]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(503, "pdf_failed")] * 2
    assert "did not print" in answers[1].json()["error"]["message"] and started(starts) == 1


MODEBAR_ICON = b".2667 .2667 .2667 rg"  # #444, plotly's toolbar icons, as Chromium's PDF paints them


def test_a_report_prints_on_a4_without_the_toolbar_and_wide_tables_wrap(report, tmp_path):
    need_binary("chromium")
    need_binary("pdftotext")
    import subprocess

    import pandas as pd

    from bizra_nb.tables import for_people

    # the real report with a report table (one line a row, in a scrolling box, as notebooks show them) wider than
    # any page appended: nine columns of words, a short marker in the last
    frame = pd.DataFrame([{**{f"column{i}": "service latency budget " * 3 for i in range(9)}, "last": "ZQ9"}])
    table = f'<div class="jp-RenderedHTMLCommon">{for_people(frame)._repr_html_()}</div>'
    page = (report / "report.html").read_text()
    wide = tmp_path / "wide.html"
    wide.write_text(page.replace("</body>", f"{table}</body>", 1))
    before = (report / "report.html").read_bytes()
    data = pdf.html_to_pdf(wide, tmp_path / "wide.pdf").read_bytes()
    assert (report / "report.html").read_bytes() == before  # the print stylesheet is never written to the report
    assert PLOTLY_FIRST_COLOUR in painted(data), "the figure is not in the PDF"
    assert MODEBAR_ICON not in painted(data), "plotly's toolbar was printed"
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert box and abs(float(box[1]) - 595.3) < 1 and abs(float(box[2]) - 841.9) < 1  # A4 in points, not Letter
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "wide.pdf"), "-"], capture_output=True,
                          check=True).stdout.decode()
    assert "ZQ9" in text and "Column8" in text  # on the page, the last column too
    # the check tells a printed toolbar from none: the same report printed without the stylesheet shows it
    plain = pdf.print_html
    try:
        pdf.print_html = lambda html: html
        without = pdf.html_to_pdf(wide, tmp_path / "plain.pdf").read_bytes()
    finally:
        pdf.print_html = plain
    assert MODEBAR_ICON in painted(without)
    cut = subprocess.run(["pdftotext", "-layout", str(tmp_path / "plain.pdf"), "-"], capture_output=True,
                         check=True).stdout.decode()
    assert "ZQ9" not in cut  # without it, the last column is cut off at the page's edge


def test_the_print_stylesheet_comes_last_and_names_a4():
    page = "<html><head><style>.modebar{display:block}</style></head><body><script>'</head>'</script></body></html>"
    out = pdf.print_html(page)
    assert out.startswith(page) and out.rstrip().endswith("</style>")  # after everything: it wins the cascade
    assert "size: A4" in out and ".modebar" in out.split(page)[1] and "display: none" in out
