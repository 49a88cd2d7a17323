"""Headless Chromium (Debian package) for the tests: render a page, read its DOM, take a screenshot; Playwright pages.

The ``browser`` fixture (tests/conftest.py) drives the same Chromium with Playwright; :class:`Watched`
opens a page on it recording console errors and request hosts.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from tests.conftest import need_binary

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]


def chromium() -> str:
    return need_binary("chromium")


def dump_dom(url: str, *, budget_ms: int = 10000, offline: bool = True) -> str:
    """The page's DOM after its scripts ran (with the network cut off, by default)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([chromium(), *FLAGS, *(OFFLINE if offline else []), f"--user-data-dir={profile}",
                                 f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                                capture_output=True, text=True, timeout=120)
    return result.stdout


def screenshot(url: str, path: str, *, width: int = 1280, height: int = 2400, budget_ms: int = 10000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *FLAGS, *OFFLINE, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url],
                       capture_output=True, timeout=120, check=True)


ARTEFACTS = Path(__file__).parent.parent / "build" / "test-artefacts"  # screenshots, for people to look at
PLAYWRIGHT_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic"]


class Watched:
    """A Playwright page with its console errors and every request host recorded."""

    def __init__(self, browser, url: str, **context) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.hosts.add(urlparse(r.url).hostname or urlparse(r.url).scheme))
        self.page.goto(url)

    def dot(self, colour: str, timeout: float = 15000) -> None:
        self.page.wait_for_selector(f"#connection.{colour}", timeout=timeout)

    def wait_text(self, selector: str, text: str, timeout: float = 15000) -> str:
        """Wait until the element ``selector`` names exists and its text contains ``text``; its whole text."""
        self.page.wait_for_function(
            "([s, t]) => { const e = document.querySelector(s); return !!e && e.textContent.includes(t); }",
            arg=[selector, text], timeout=timeout)
        return self.page.text_content(selector)

    def close(self) -> None:
        self.context.close()
