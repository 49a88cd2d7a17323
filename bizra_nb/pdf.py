"""A report as PDF, printed by headless Chromium with its plotly figures drawn.

Chromium loads the report from its file (``file://``), runs the report's own figure scripts (the
report's Content-Security-Policy still applies: nothing else runs), lets virtual time run so that the
figures finish drawing, and prints on A4 (a print stylesheet, :data:`PRINT_CSS`, is added to a copy of the
report in the print's own temporary folder: the report on disk is not changed). Each print gets a throwaway profile folder and is killed, with all
its processes, when it overruns its timeout. ``BIZRA_CHROMIUM`` names the binary (a path, or empty or
``none`` for "no Chromium here"); by default the first of :data:`NAMES` on the ``PATH``.

:func:`ensure_pdf` is what the server's ``/reports/…/report.pdf`` and the audit emails share: the report's
PDF kept next to it, printed again when report.html is newer, never two Chromiums on one file in the
process, and read without following a link.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

from bizra_nb.errors import InvalidInput, Unavailable

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV = "BIZRA_CHROMIUM"
INSTALL_HINT = ("install Chromium (Debian/Ubuntu: apt-get install chromium) or set BIZRA_CHROMIUM to its path")
FLAGS = ["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
         "--hide-scrollbars", "--mute-audio", "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer",
         # a report asks for nothing on the network; name resolution is cut off so it cannot
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"]
BUDGET_MS = 8000  # virtual time for the figures to draw (plotly draws at load; its transitions take less)
PAGE_MARGIN_MM = 12
PRINT_WIDTH_PX = round((210 - 2 * PAGE_MARGIN_MM) / 25.4 * 96)  # A4's printable width in CSS px (703)
PRINT_CSS = f"""
@page {{ size: A4; margin: {PAGE_MARGIN_MM}mm; }}
html, body {{ max-width: 100% !important; overflow: visible !important; }}
.modebar, .modebar-container {{ display: none !important; }}
table {{ table-layout: auto !important; width: 100% !important; max-width: 100% !important; }}
td, th {{ word-break: normal !important; overflow-wrap: break-word !important; white-space: normal !important;
          min-width: 0 !important; }}
.js-plotly-plot, .plot-container, .plotly-graph-div, .svg-container {{ max-width: 100% !important; }}
.jp-OutputArea-output, .output_html, .table-box, .bizra-table {{ overflow: visible !important; }}
"""
"""The print stylesheet added to the copy Chromium prints (never to the report on disk): A4, no plotly
toolbar, tables that wrap within the page. The figures fit because the window is as wide as the page's
printable width (:data:`PRINT_WIDTH_PX`): plotly draws them at the window's width."""


def chromium_path() -> str | None:
    """The Chromium binary to print with: ``$BIZRA_CHROMIUM`` when set (empty or ``none``: none), else the
    first of :data:`NAMES` found on the ``PATH``; None when there is none."""
    configured = os.environ.get(ENV)
    if configured is not None:
        configured = configured.strip()
        if configured.lower() in ("", "none"):
            return None
        found = shutil.which(configured)
        return found if found and os.access(found, os.X_OK) else None
    return next((path for path in map(shutil.which, NAMES) if path), None)


def sandbox_flags() -> list[str]:
    """Chromium's sandbox cannot start as root (a container): ``--no-sandbox`` then, as the tests do."""
    return ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 60) -> Path:
    """Print the HTML file ``html_path`` to ``pdf_path`` with headless Chromium, figures drawn.

    The PDF is written under a temporary name beside ``pdf_path`` and renamed when complete, so a
    reader never sees a half-written file.

    Parameters
    ----------
    html_path
        A report (self-contained HTML).
    pdf_path
        Where the PDF goes (its folder must exist).
    timeout
        Seconds; Chromium and its children are killed after that.

    Returns
    -------
    Path
        ``pdf_path``.

    Raises
    ------
    Unavailable
        No Chromium (:func:`chromium_path`), or it failed or overran ``timeout``, or ``pdf_path`` could not
        be written (a folder there).
    InvalidInput
        ``html_path`` is not a file.
    """
    binary = chromium_path()
    if binary is None:
        raise Unavailable(f"no Chromium to print the PDF with: {INSTALL_HINT}", field="chromium")
    source, target = Path(html_path).resolve(), Path(pdf_path)
    if not source.is_file():
        raise InvalidInput(f"no report at {str(html_path)!r}", field="html_path")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    with tempfile.TemporaryDirectory(prefix="bizra-pdf-") as work:
        profile, printed = Path(work) / "profile", Path(work) / "print.html"
        try:
            printed.write_text(print_html(source.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
        except OSError as exc:
            raise Unavailable(f"could not read {source.name}: {exc.strerror}", field="html_path") from None
        command = [binary, *FLAGS, *sandbox_flags(), f"--user-data-dir={profile}",
                   f"--window-size={PRINT_WIDTH_PX},1000", f"--virtual-time-budget={BUDGET_MS}",
                   f"--print-to-pdf={tmp}", printed.as_uri()]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)  # its own group, to kill all
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            tmp.unlink(missing_ok=True)
            raise Unavailable(f"Chromium did not print {source.name} within {timeout:g} s", field="chromium") \
                from None
        finally:
            _kill_group(process)  # a renderer left behind by a browser that exited
    if process.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        last = (stderr or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise Unavailable(f"Chromium could not print {source.name} (exit {process.returncode}): {last[0][:300]}",
                          field="chromium")
    try:
        tmp.replace(target)  # a link at ``target`` is replaced itself: what it names is never written
    except OSError as exc:  # ``target`` is a folder, or its folder went away
        tmp.unlink(missing_ok=True)
        raise Unavailable(f"could not write the PDF to {target.name}: {exc.strerror}", field="pdf_path") from None
    return target


_printing: dict[str, list] = {}  # PDF path -> [its lock, threads holding or awaiting it]; gone when none
_printing_guard = threading.Lock()


@contextlib.contextmanager
def _one_print(key: str):
    """Hold ``key``'s lock (one Chromium per file in the process, whoever asks); forgotten when no thread holds
    or awaits it."""
    with _printing_guard:
        entry = _printing.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _printing_guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _printing[key]


def ensure_pdf(html_path: str | Path, *, timeout: float | None = None) -> bytes | None:
    """Blocking: the bytes of ``html_path``'s PDF (``report.html`` → ``report.pdf`` beside it), printed by
    :func:`html_to_pdf` first when it is not :func:`is_fresh`, read with :func:`read_pdf` (never through a link).

    One print per PDF at a time in the process: a second caller for the same file waits, then reads the first
    one's print.

    Parameters
    ----------
    html_path
        A report (self-contained HTML).
    timeout
        Seconds for Chromium (None: :func:`html_to_pdf`'s default).

    Returns
    -------
    bytes or None
        The PDF; None when the file there is a link, not a regular file, or gone (put there since the print).

    Raises
    ------
    Unavailable, InvalidInput
        As :func:`html_to_pdf`, when the PDF had to be printed.
    """
    html = Path(html_path)
    target = html.with_suffix(".pdf")
    with _one_print(str(target.parent.resolve() / target.name)):
        if not is_fresh(target, html):
            html_to_pdf(html, target, **({} if timeout is None else {"timeout": timeout}))
        return read_pdf(target)


def is_fresh(pdf_path: str | Path, html_path: str | Path) -> bool:
    """Whether ``pdf_path`` was printed from the current ``html_path``: a non-empty regular file (not a link),
    not older than the HTML."""
    try:
        info = os.lstat(pdf_path)
        return stat.S_ISREG(info.st_mode) and info.st_mtime >= os.stat(html_path).st_mtime and info.st_size > 0
    except OSError:
        return False


def read_pdf(pdf_path: str | Path) -> bytes | None:
    """The bytes of ``pdf_path`` opened without following a link (O_NOFOLLOW); None when it is a link (one
    put there since :func:`is_fresh` looked), no regular file, or gone."""
    try:
        fd = os.open(pdf_path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


def print_html(page: str) -> str:
    """``page`` with :data:`PRINT_CSS` as its last stylesheet: appended at its end (a parser puts it in the
    body; last, it wins over the report's own styles; the reports' policy allows inline styles). Never
    searched for a ``</head>``: a script may hold that text."""
    return f"{page}\n<style>{PRINT_CSS}</style>\n"


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
