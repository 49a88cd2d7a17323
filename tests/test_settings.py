"""Settings: declared once, overridden by BIZRA_* variables and flags, validated with clear messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from bizra_nb.cli import main
from bizra_nb.errors import InvalidSetting
from bizra_nb.paths import project_dir
from bizra_nb.settings import Settings, env_name, load_settings, setting_fields


def test_defaults():
    s = load_settings(environ={})
    assert (s.host, s.port, s.ws_port) == ("127.0.0.1", 8080, 8081)
    assert s.score_window == 300 and s.controller_interval == 5 and s.heartbeat_interval == 30
    assert s.data_dir == project_dir() / "data" and s.api_token == "" and s.ws_origins == ()
    assert s.reports_dir == project_dir() / "reports"


def test_every_setting_has_help_and_an_environment_variable():
    for f in setting_fields():
        assert f.metadata["help"], f.name
        assert env_name(f.name) == "BIZRA_" + f.name.upper()


def test_environment_then_flags():
    env = {"BIZRA_PORT": "9000", "BIZRA_HEARTBEAT_INTERVAL": "2.5", "BIZRA_WS_ORIGINS": "https://a, https://b",
           "BIZRA_WS_REQUIRE_TOKEN": "yes"}
    s = load_settings(environ=env)
    assert s.port == 9000 and s.heartbeat_interval == 2.5
    assert s.ws_origins == ("https://a", "https://b") and s.ws_require_token is True
    assert load_settings({"port": 9001}, environ=env).port == 9001


@pytest.mark.parametrize("env, fragment", [
    ({"BIZRA_PORT": "eighty"}, "port: expected a whole number, got 'eighty' (from BIZRA_PORT)"),
    ({"BIZRA_PORT": "70000"}, "port must be a port number"),
    ({"BIZRA_SCORE_WINDOW": "0"}, "score_window must be greater than 0"),
    ({"BIZRA_LOG_LEVEL": "loud"}, "must be one of debug, info, warning, error"),
    ({"BIZRA_WS_REQUIRE_TOKEN": "maybe"}, "expected true or false"),
])
def test_bad_values_name_the_setting_and_its_source(env, fragment):
    with pytest.raises(InvalidSetting) as info:
        load_settings(environ=env)
    assert fragment in info.value.message


def test_unknown_setting():
    with pytest.raises(InvalidSetting, match="unknown setting"):
        load_settings({"colour": "red"}, environ={})


def test_replace_keeps_other_values():
    s = load_settings({"port": 1234}, environ={}).replace(ws_port=-1)
    assert isinstance(s, Settings) and s.port == 1234 and s.ws_port == -1


def test_cli_rejects_a_bad_flag_value_with_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("BIZRA_DATA_DIR", "/tmp/unused")
    assert main(["serve", "--port", "nope"]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "--port" in err and "Traceback" not in err


def test_relative_data_and_reports_dirs_follow_the_project_folder_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    s = load_settings(environ={})
    assert (s.data_dir, s.reports_dir) == (tmp_path / "data", tmp_path / "reports")
    assert load_settings(environ={"BIZRA_DATA_DIR": "elsewhere"}).data_dir == tmp_path / "elsewhere"
    assert load_settings({"data_dir": "typed"}, environ={}).data_dir == Path("typed")  # a flag: from the cwd
    assert load_settings(environ={"BIZRA_DATA_DIR": "/abs/d"}).data_dir == Path("/abs/d")
    assert s.replace(port=1).data_dir == tmp_path / "data"
