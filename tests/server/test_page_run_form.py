"""The status page's "Run a notebook" form in Chromium: typed fields checked before submit, server errors at their
field, re-runs and shared links that fill the form in and never start anything by themselves."""
from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.browser import ARTEFACTS, Watched
from tests.server.test_runs_api import finished, nb_server  # noqa: F401 - a fixture, used by name
from tests.server.test_status_page_states import HOSTILE

TOKEN = "test-token"


class FormPage(Watched):
    """The page, recording every POST it sends, with the notebooks loaded into the form."""

    def __init__(self, browser, url: str, **context) -> None:
        self.posts: list[str] = []
        super().__init__(browser, url, viewport={"width": 1280, "height": 900}, **context)
        self.page.on("request", lambda r: self.posts.append(r.url) if r.method == "POST" else None)
        self.page.wait_for_function("() => document.querySelectorAll('#run-notebook option').length > 1")

    def enter_token(self) -> None:
        self.page.fill("#token", TOKEN)
        self.page.click("#token-form button[type=submit]")
        self.wait_text("#token-state", "accepted")
        self.posts.clear()  # the check is a GET; nothing else was sent

    def choose(self, notebook: str) -> None:
        self.page.select_option("#run-notebook", notebook)
        self.page.wait_for_selector("#run-fields .field")

    def error_of(self, parameter: str) -> str:
        return self.page.text_content(f"#param-{parameter}-error")


def run_posts(page: FormPage) -> list[str]:
    return [url for url in page.posts if url.endswith("/runs")]


def test_a_typed_field_rejects_a_bad_value_before_submit_and_only_edits_are_sent(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    page = FormPage(browser, nb_server.url + "/")
    page.enter_token()
    page.choose("typed_parameters")
    # each parameter has the input of its type, its default filled in
    kinds = page.page.eval_on_selector_all(
        "#run-fields .field", "els => els.map(f => [f.dataset.param, f.querySelector('input,select,textarea').type])")
    assert dict(kinds) == {"count": "number", "ratio": "number", "name": "text", "flag": "select-one",
                           "items": "textarea", "options": "textarea"}
    assert page.page.input_value("#param-count") == "3" and page.page.input_value("#param-items") == '["a"]'
    assert "Default: 3." in page.page.text_content("[data-param='count'] .field-help")
    page.page.fill("#param-count", "2.5")
    page.page.fill("#param-items", '["b", ')
    page.page.click("#run-submit")
    page.page.wait_for_function("() => document.querySelector('#param-count-error').textContent !== ''")
    assert "whole number" in page.error_of("count")
    assert "not valid JSON" in page.error_of("items")
    assert page.error_of("ratio") == "" and page.error_of("name") == ""
    assert "Nothing was started" in page.page.text_content("#run-message")
    assert page.page.get_attribute("#param-count", "aria-invalid") == "true"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTEFACTS / "status_page_run_form_error.png"), full_page=True)
    page.page.fill("#param-items", '{"b": 1}')  # JSON, but not the list the notebook declares
    page.page.click("#run-submit")
    page.wait_text("#param-items-error", "list")
    assert run_posts(page) == [] and http.get("/runs").json()["count"] == 0  # nothing left the page
    # corrected: the run starts, with the values changed and nothing else (the notebook keeps its own defaults)
    page.page.fill("#param-count", "4")
    page.page.fill("#param-items", '["b"]')
    page.page.select_option("#param-flag", "true")
    page.page.click("#run-submit")
    page.wait_text("#run-message", "Started run")
    run_id = http.get("/runs").json()["runs"][0]["id"]
    assert run_id in page.page.text_content("#run-message")
    assert http.get(f"/runs/{run_id}").json()["parameters"] == {"count": 4, "items": ["b"], "flag": True}
    page.page.wait_for_selector(f"#runs li[data-run='{run_id}']")
    assert len(run_posts(page)) == 1
    assert page.errors == [], page.errors
    page.close()


def test_nothing_runs_without_the_token(browser, nb_server):  # noqa: F811
    page = FormPage(browser, nb_server.url + "/")
    page.choose("succeeds_with_a_figure")
    page.page.fill("#param-x", "5")
    page.page.click("#run-submit")
    page.wait_text("#run-message", "token")
    assert "Nothing was started" in page.page.text_content("#run-message")
    assert run_posts(page) == []
    page.close()


def test_a_month_gets_a_month_picker_and_a_time_is_checked(browser, nb_server):  # noqa: F811
    page = FormPage(browser, nb_server.url + "/")
    page.enter_token()
    page.choose("compliance_audit")
    assert page.page.get_attribute("#param-month", "type") == "month"
    assert page.page.input_value("#param-month") == ""  # "" (the previous month) is the notebook's default
    assert "YYYY-MM" in page.page.text_content("[data-param='month'] .field-help")
    page.page.fill("#param-month", "2026-11")
    page.page.fill("#param-scheduled_for", "next tuesday")
    page.page.click("#run-submit")
    page.page.wait_for_function("() => document.querySelector('#param-scheduled_for-error').textContent !== ''")
    assert "2026-12-01T09:00:00Z" in page.error_of("scheduled_for") and page.error_of("month") == ""
    assert run_posts(page) == []
    page.close()


def test_the_servers_error_appears_next_to_the_field_it_names(browser, nb_server):  # noqa: F811
    page = FormPage(browser, nb_server.url + "/")
    page.enter_token()
    page.choose("explore")
    page.page.fill("#param-cmdb", "../../etc/passwd")  # the page cannot know the server's data dir: the server says
    page.page.click("#run-submit")
    page.page.wait_for_function("() => document.querySelector('#param-cmdb-error').textContent !== ''")
    error = page.error_of("cmdb")
    assert error.startswith("The server refused this value") and "data dir" in error
    assert page.error_of("source") == ""
    assert "see the field marked below" in page.page.text_content("#run-message")
    assert page.page.evaluate("document.activeElement.id") == "param-cmdb"
    assert len(run_posts(page)) == 1  # it was sent, once, and refused
    page.close()


def make_run(http: httpx.Client, notebook: str, parameters: dict) -> dict:
    response = http.post("/runs", json={"notebook": notebook, "parameters": parameters},
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 201, response.text
    return finished(http, response.json()["id"])


def test_a_rerun_link_opens_the_form_prefilled_and_does_not_submit(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run = make_run(http, "typed_parameters", {"count": 7, "items": ["x", "y"], "flag": True})
    page = FormPage(browser, f"{nb_server.url}/#rerun={run['id']}")
    page.page.wait_for_function("() => document.querySelector('#run-notebook').value === 'typed_parameters'")
    page.page.wait_for_selector("#param-count")
    assert page.page.input_value("#param-count") == "7"
    assert page.page.input_value("#param-items") == '["x","y"]'
    assert page.page.input_value("#param-flag") == "true"
    assert page.page.input_value("#param-name") == "svc"  # not in the run: the notebook's default
    message = page.page.text_content("#run-message")
    assert f"run {run['id']}" in message and "nothing has run yet" in message
    assert run_posts(page) == [] and http.get("/runs").json()["count"] == 1
    # the runs list's "Copy link" gives that link, and "Re-run" fills the form the same way
    page.page.click(f"#runs li[data-run='{run['id']}'] button[data-run-action='copy']")
    link = page.page.wait_for_selector(f"#runs li[data-run='{run['id']}'] .share-link")
    assert link.input_value() == f"{nb_server.url}/#rerun={run['id']}"
    page.choose("succeeds_with_a_figure")
    page.page.click(f"#runs li[data-run='{run['id']}'] button[data-run-action='rerun']")
    page.page.wait_for_function("() => document.querySelector('#run-notebook').value === 'typed_parameters'")
    assert page.page.input_value("#param-count") == "7"
    # edited and run: the run's values go with the edit
    page.enter_token()
    page.page.fill("#param-count", "8")
    page.page.click("#run-submit")
    page.wait_text("#run-message", "Started run")
    newest = http.get("/runs").json()["runs"][0]
    assert newest["id"] != run["id"] and newest["parameters"] == {"count": 8, "items": ["x", "y"], "flag": True}
    assert page.errors == [], page.errors
    page.close()


def test_the_servers_rerun_address_opens_the_form_and_runs_nothing(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run = make_run(http, "succeeds_with_a_figure", {"x": 4, "label": "again"})
    if http.get(f"/runs/{run['id']}/rerun").status_code == 404:
        pytest.skip("GET /runs/{id}/rerun is not there yet")
    page = FormPage(browser, f"{nb_server.url}/runs/{run['id']}/rerun")
    page.page.wait_for_function("() => document.querySelector('#run-notebook').value === 'succeeds_with_a_figure'")
    page.page.wait_for_selector("#param-x")
    assert page.page.input_value("#param-x") == "4" and page.page.input_value("#param-label") == "again"
    assert run_posts(page) == [] and http.get("/runs").json()["count"] == 1
    page.close()


def test_a_run_link_with_hostile_values_is_inert(browser, nb_server):  # noqa: F811
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    script = quote("<script>window.__pwned=2</script>")
    link = f"{nb_server.url}/#run=succeeds_with_a_figure&label={quote(HOSTILE)}&x={script}&{quote('<b>bold</b>')}=1"
    page = FormPage(browser, link)
    page.enter_token()  # even with the token at hand, a link starts nothing
    page.page.wait_for_selector("#param-label")
    page.wait_text("#run-message", "Ignored")
    assert page.page.input_value("#param-label") == HOSTILE  # a value, as text
    assert "not a whole number" in page.error_of("x")  # the number field refused it, and says so
    assert "<b>bold</b>" in page.page.text_content("#run-message")  # the unknown name, shown as text
    assert page.page.query_selector_all("#run-card img, #run-card b, #run-card script") == []
    assert page.page.evaluate("window.__pwned") is None
    # a hostile notebook name: said, as text, and no form
    page.page.evaluate(f"location.hash = {('run=' + quote(HOSTILE))!r}")
    page.wait_text("#run-message", "does not have")
    assert "<img src=x onerror=" in page.page.text_content("#run-message")  # quoted, as text
    assert page.page.query_selector_all("#run-card img") == [] and page.page.evaluate("window.__pwned") is None
    assert run_posts(page) == [] and http.get("/runs").json()["count"] == 0
    assert page.errors == [], page.errors
    page.close()


def test_a_links_refused_value_stays_wrong_until_edited(browser, nb_server):  # noqa: F811
    """A number field cannot hold "abc": it shows empty, but Run must not read that as "use the default"."""
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    page = FormPage(browser, f"{nb_server.url}/#run=typed_parameters&count=abc&ratio=0.25")
    page.enter_token()
    page.page.wait_for_selector("#param-count")
    page.wait_text("#param-count-error", "not a whole number")
    assert page.page.input_value("#param-count") == ""  # the number input refused it
    page.page.click("#run-submit")
    page.wait_text("#run-message", "Nothing was started")
    assert "abc" in page.error_of("count") and page.error_of("ratio") == ""
    assert page.page.get_attribute("#param-count", "aria-invalid") == "true"
    page.page.click("#run-submit")  # again: still refused, still nothing sent
    page.wait_text("#run-message", "Nothing was started")
    assert "abc" in page.error_of("count")
    assert run_posts(page) == [] and http.get("/runs").json()["count"] == 0
    # the user edits it: the error goes, and the field is the user's again
    page.page.fill("#param-count", "6")
    page.page.wait_for_function("() => document.querySelector('#param-count-error').textContent === ''")
    assert page.page.evaluate("collectParameters().errors.size") == 0
    assert page.page.evaluate("collectParameters().parameters") == {"count": 6, "ratio": 0.25}
    # cleared by the user: now it is "use the notebook's default"
    page.page.fill("#param-count", "")
    assert page.page.evaluate("collectParameters().parameters") == {"ratio": 0.25}
    assert page.errors == [], page.errors
    page.close()


def test_the_help_reads_as_sentences_and_fits_the_field(browser, nb_server):  # noqa: F811
    import re

    page = FormPage(browser, nb_server.url + "/")
    page.choose("compliance_audit")
    help_of = {name: page.page.text_content(f"[data-param='{name}'] .field-help")
               for name in ("month", "source", "data_dir", "scheduled_for", "tz")}
    for name, text in help_of.items():  # no sentence runs into the next: "…month) Left empty", "…URL A file"
        assert not re.search(r"[a-z0-9)\]] (Left empty|A file|A folder|One of|Default:|Empty it)", text), (name, text)
    assert re.search(r"[.!?] Left empty, the notebook uses its default\.$", help_of["month"]), help_of["month"]
    assert "Prometheus URL. A file inside the server's data dir" in help_of["source"], help_of["source"]
    assert "A folder inside the server's data dir" in help_of["data_dir"] and "A file" not in help_of["data_dir"]
    # the time: an example as placeholder; no "UTC, as …Z" after help that already says ISO-8601 with an offset
    assert page.page.get_attribute("#param-scheduled_for", "placeholder") == "e.g. 2026-12-01T09:00:00Z"
    assert "ISO-8601" in help_of["scheduled_for"] and "UTC, as" not in help_of["scheduled_for"]
    # a field showing a value never says "Left empty…"
    assert page.page.input_value("#param-tz") == "UTC"
    assert help_of["tz"].endswith("Default: UTC.") and "Left empty" not in help_of["tz"]
    page.page.fill("#param-month", "2026-11")
    month_help = page.page.text_content("[data-param='month'] .field-help")
    assert "Left empty" not in month_help and "Empty it to let the notebook use its default." in month_help
    page.page.fill("#param-month", "")
    assert "Left empty" in page.page.text_content("[data-param='month'] .field-help")
    assert page.errors == [], page.errors
    page.close()
