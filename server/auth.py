"""The API token: configured, or generated at first start and kept in the data dir (mode 0600).

An existing token file that group or others may read is fixed to 0600 with a warning (as
Jupyter does with its secret files): the token stays valid, since whoever could read it may
already have it; the warning tells the operator to rotate it (delete the file and restart).
"""
from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

TOKEN_FILE = "api_token"
log = logging.getLogger("bizra.server")


def load_or_create_token(configured: str, data_dir: Path) -> tuple[str, bool]:
    """The token to demand, and whether it was generated just now (so the caller prints it)."""
    if configured:
        return configured, False
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        restrict_permissions(path)
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


def restrict_permissions(path: Path) -> None:
    """Make a secret file readable by its owner only, warning when it was not (group/others bits set)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("the API token file %s was readable by others (mode %o): its mode is now 0600; "
                    "consider rotating the token (delete the file and restart)", path, mode)
