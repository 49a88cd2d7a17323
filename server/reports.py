"""`/reports/…`: the report index and the reports themselves, served from the reports folder.

Reports hold untrusted text (alert labels, CMDB attributes, series names), so
every file here is served with a strict Content-Security-Policy: a report may
run only the inline scripts its exporter hashed into it
(:func:`bizra_nb.markup.report_policy`), in a sandbox whose origin is opaque,
so not even those can read the status page's storage on this origin.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tornado.web import HTTPError, RequestHandler

from bizra_nb import pdf
from bizra_nb.markup import report_policy
from bizra_server.base import ApiError, BaseHandler, StaticFiles

POLICY_BYTES = 4096  # protect_html puts the report's policy first in <head>


def report_headers(handler: RequestHandler, start: str) -> None:
    """A report page's headers: revalidated before reuse, no sniffing, no referrer, and the report's own policy
    (:func:`bizra_nb.markup.report_policy` of ``start``, the page's first :data:`POLICY_BYTES` characters)."""
    handler.set_header("Cache-Control", "no-cache")
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("Content-Security-Policy", report_policy(start[:POLICY_BYTES]))


class ReportsHandler(StaticFiles):
    """Static files under the reports folder; ``/reports/`` is its index.html."""

    def initialize(self, path: str | None = None, default_filename: str | None = "index.html") -> None:
        # make_services created the folder at start
        super().initialize(path=str(self.settings["services"].runner.reports_dir), default_filename=default_filename)

    async def get(self, path: str, include_body: bool = True) -> None:
        if hidden_file(path):
            raise HTTPError(404)
        await super().get(path, include_body=include_body)

    def set_extra_headers(self, path: str) -> None:
        start = ""
        if self.absolute_path.endswith(".html"):
            with open(self.absolute_path, encoding="utf-8", errors="replace") as handle:
                start = handle.read(POLICY_BYTES)
        report_headers(self, start)


PRIVATE_NAMES = ("run.log",)  # the worker's stderr: third-party messages, unclipped; for the operator's eyes


def hidden_file(path: str) -> bool:
    """Never served: dotfiles, unfinished files (a worker's ``.run.ipynb.partial``, ``write_atomic``'s
    ``.*.tmp``) and :data:`PRIVATE_NAMES`."""
    parts = path.split("/")
    return parts[-1] in PRIVATE_NAMES or any(
        part.startswith(".") or part.endswith((".partial", ".tmp")) for part in parts)


PRINT_THREADS = 2  # Chromium prints at most two at a time (each server's pool: Services.printers)
_printing: dict[str, list] = {}  # report.pdf path -> [its lock, requests holding or awaiting it]; gone when none
MAX_FAILURES = 500  # failed prints remembered (the least recently asked for forgotten first)
FAILURE_TTL = 3600.0  # seconds a failed print is remembered for when its report.html does not change
# report.html path -> (its state when printing failed, when, the message): answered from here, no new Chromium
_failures: OrderedDict[str, tuple[tuple, float, str]] = OrderedDict()


@contextlib.asynccontextmanager
async def _one_print(key: str):
    """Hold ``key``'s lock (one Chromium per file; the others wait, then read its print); the lock is forgotten
    when no request holds or awaits it (the IOLoop's thread only: no race)."""
    entry = _printing.setdefault(key, [asyncio.Lock(), 0])
    entry[1] += 1
    try:
        async with entry[0]:
            yield
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _printing[key]


def printers(services) -> ThreadPoolExecutor:
    """The services' threads for Chromium's prints, made on the first print (shut down by ``Services.stop``)."""
    if services.printers is None:
        services.printers = ThreadPoolExecutor(PRINT_THREADS, thread_name_prefix="bizra-pdf")
    return services.printers


class PdfHandler(BaseHandler):
    """``/reports/<run folder>/report.pdf``: the folder's report.html printed by headless Chromium
    (:mod:`bizra_nb.pdf`), made on the first request and kept next to it until report.html changes.

    404 JSON when the folder has no report.html; 503 JSON (code ``no_chromium``) when Chromium is not
    installed, or ``pdf_failed`` when it could not print. The path is confined to the reports folder
    as the rest of ``/reports`` (no hidden files, no way out through ``..`` or a link): a report.pdf that is
    a link, or no regular file, is never read but printed over (the link replaced, not what it names).
    A failed print is remembered for its report.html as it is (:data:`MAX_FAILURES`, :data:`FAILURE_TTL`):
    further requests get the same 503 ``pdf_failed`` without a new Chromium until report.html changes.
    """

    async def get(self, path: str) -> None:
        if not self.request.path.endswith("/report.pdf"):
            raise ApiError(404, "no such file")
        html = await self.blocking(self._report_html, path)  # resolving links touches the disk
        target = html.with_name("report.pdf")
        async with _one_print(str(target)):  # a second request for the same file waits for the first print
            if await self.blocking(pdf.is_fresh, target, html):
                data = await self.blocking(pdf.read_pdf, target)
            else:
                data = await self._print(html)
        if data is None:
            raise ApiError(404, "no such file")
        self.set_header("Content-Type", "application/pdf")
        self.set_header("Content-Disposition", 'inline; filename="report.pdf"')
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(data)

    async def _print(self, html: Path) -> bytes | None:
        """report.html printed (:func:`bizra_nb.pdf.ensure_pdf`, on the printers' threads) and read; a 503
        without Chromium, or when the print failed (now, or before for report.html as it is)."""
        if await self.blocking(pdf.chromium_path) is None:  # it looks through the PATH: off the IOLoop
            raise ApiError(503, f"no PDF without Chromium: {pdf.INSTALL_HINT}", code="no_chromium")
        state = await self.blocking(_state, html)
        failed = _failed(str(html), state)
        if failed is not None:
            raise ApiError(503, failed, code="pdf_failed")
        try:
            data = await asyncio.get_running_loop().run_in_executor(printers(self.services), pdf.ensure_pdf, html)
        except pdf.Unavailable as exc:
            _remember_failure(str(html), state, exc.message)
            raise ApiError(503, exc.message, code="pdf_failed") from None
        _failures.pop(str(html), None)
        return data

    def _report_html(self, path: str) -> Path:
        if any(ch < " " or ch == "\x7f" for ch in path):
            raise ApiError(400, "the path may not contain control characters")
        if hidden_file(path + "/report.pdf"):
            raise ApiError(404, "no such file")
        root = Path(self.services.runner.reports_dir).resolve()
        html = (root / path / "report.html").resolve()
        if root not in html.parents or not html.is_file():
            raise ApiError(404, "no report.html in this folder")
        return html


_read_pdf = pdf.read_pdf  # its name here before it moved to bizra_nb.pdf


def _state(html: Path) -> tuple:
    """What tells one version of report.html from another: device, inode, mtime (ns), size."""
    try:
        info = html.stat()
    except OSError:
        return ()
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def _failed(key: str, state: tuple) -> str | None:
    """The message of the remembered failed print of report.html ``key`` as it is now, if any."""
    entry = _failures.get(key)
    if entry is None:
        return None
    then, when, message = entry
    if then != state or time.monotonic() - when > FAILURE_TTL:
        _failures.pop(key, None)
        return None
    _failures.move_to_end(key)
    return message


def _remember_failure(key: str, state: tuple, message: str) -> None:
    _failures[key] = (state, time.monotonic(), message)
    _failures.move_to_end(key)
    while len(_failures) > MAX_FAILURES:
        _failures.popitem(last=False)


# "." in the pattern is any character (its template stays readable: /reports/{path}/report.pdf); get() checks it
handlers = [(r"/reports/(?P<path>.+)/report.pdf", PdfHandler), (r"/reports/(?P<path>.*)", ReportsHandler)]
