"""The API token: configured, or generated at first start and kept in the data dir (mode 0600)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "api_token"


def load_or_create_token(configured: str, data_dir: Path) -> tuple[str, bool]:
    """The token to demand, and whether it was generated just now (so the caller prints it)."""
    if configured:
        return configured, False
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, True
