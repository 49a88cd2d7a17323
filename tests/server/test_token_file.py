"""The API token file: kept 0600; one that group or others could read is fixed to 0600 with a warning."""
from __future__ import annotations

import logging
import stat

import httpx

from bizra_server.auth import TOKEN_FILE, load_or_create_token


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_generated_token_file_is_0600(tmp_path):
    token, generated = load_or_create_token("", tmp_path)
    assert generated and mode_of(tmp_path / TOKEN_FILE) == 0o600
    assert load_or_create_token("", tmp_path) == (token, False)


def test_a_token_file_readable_by_others_is_fixed_with_a_warning(tmp_path, caplog):
    path = tmp_path / TOKEN_FILE
    path.write_text("an-old-token\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bizra.server"):
        assert load_or_create_token("", tmp_path) == ("an-old-token", False)
    assert mode_of(path) == 0o600
    assert any("readable by others" in r.getMessage() and "0600" in r.getMessage() for r in caplog.records)


def test_the_server_fixes_the_file_at_start(make_server, settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / TOKEN_FILE
    path.write_text("group-readable-token\n")
    path.chmod(0o640)
    running = make_server(api_token="")
    assert mode_of(path) == 0o600
    response = httpx.post(running.url + "/echo", json={"a": 1}, timeout=10,
                          headers={"Authorization": "Bearer group-readable-token"})
    assert response.status_code == 200
