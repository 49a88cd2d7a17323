"""Headless Chromium (Debian package) for the tests: render a page, read its DOM, take a screenshot."""
from __future__ import annotations

import subprocess
import tempfile

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
