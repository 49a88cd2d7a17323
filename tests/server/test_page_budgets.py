"""The status page's error budgets in Chromium: one bar per SLO from a real GET /slo, coloured and worded by its state,
hostile spec text kept inert, grey bars without a source, refreshed after an audit without overlapping fetches."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
import yaml

from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, platform_month
from tests.browser import ARTEFACTS, Watched

HOSTILE = "<img src=x onerror=window.__pwned=1>"
RED, GREEN = "rgb(198, 40, 40)", "rgb(46, 125, 50)"  # --bad, --ok in style.css


@pytest.fixture(scope="module")
def broken_month(tmp_path_factory):
    """Last month of the platform's own metrics with one 10× error burst: the availability budget is exhausted
    (~150 % used), latency and the Ahsan score keep most of theirs; the month ends quiet (no burn now)."""
    month = str(pd.Timestamp.now(tz="UTC").tz_localize(None).to_period("M") - 1)
    burst = Fault(service="bizra", kind="error_burst", start=pd.Timestamp(f"{month}-03T10:00Z"), magnitude=10)
    frame = platform_month(month, seed=3, faults=[burst])
    return write_dataset(frame, tmp_path_factory.mktemp("slo") / "platform.parquet")


def slo_body(url: str, **params) -> dict:
    response = httpx.get(url + "/slo", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def month_start() -> str:  # where the fixture's month of data ends: /slo?at= this is fresh, whatever the day
    return f"{pd.Timestamp.now(tz='UTC').tz_localize(None).to_period('M').start_time:%Y-%m-%dT%H:%M:%SZ}"


def serve(page: Watched, answer: dict) -> None:
    """The page's GET /slo answered with ``answer`` (a real answer of the server), then reloaded with it."""
    page.page.route("**/slo", lambda route: route.fulfill(status=200, content_type="application/json",
                                                          body=json.dumps(answer)))
    page.page.reload()
    page.dot("green")
    page.page.wait_for_selector("#budgets li[data-slo]")


def open_page(browser, url: str, width: int = 1280) -> Watched:
    page = Watched(browser, url, viewport={"width": width, "height": 900}, is_mobile=width < 600)
    page.dot("green")
    page.page.wait_for_selector("#budgets li[data-slo]")
    return page


def rows(page: Watched) -> list[dict]:
    """Each bar as the browser shows it: its SLO, state, texts, link, fill width (% of the bar) and colour."""
    return page.page.eval_on_selector_all("#budgets li[data-slo]", """els => els.map(li => {
        const bar = li.querySelector('.budget-bar'), fill = li.querySelector('.budget-fill');
        const style = getComputedStyle(fill);
        const how = li.querySelector('details.budget-how'), period = li.querySelector('.budget-period');
        const gate = li.querySelector('.budget-gate'), old = li.querySelector('.budget-old-note');
        return {slo: li.dataset.slo, state: li.dataset.state, cls: li.className, title: li.getAttribute('title'),
                how: how ? [...how.querySelectorAll('p')].map(p => p.textContent) : null,
                howSummary: how ? how.querySelector('summary').textContent : null, howOpen: how ? how.open : null,
                period: period ? period.textContent : null, gate: gate ? gate.textContent : null,
                stale: li.dataset.stale, staleNote: old ? old.textContent : null,
                error: (li.querySelector('.budget-error') || {}).textContent || null,
                barFilter: getComputedStyle(bar).filter,
                name: li.querySelector('.budget-name').textContent, word: li.querySelector('.budget-state').textContent,
                left: li.querySelector('.budget-left').textContent, text: li.textContent,
                burn: (li.querySelector('.budget-burn') || {}).textContent || null,
                target: li.querySelector('.budget-target').textContent,
                href: li.querySelector('a.budget-audit').getAttribute('href'),
                width: 100 * fill.getBoundingClientRect().width / bar.clientWidth,
                colour: style.backgroundColor, image: style.backgroundImage};
    })""")


def percent(ratio: float) -> str:  # as the page writes a share of the budget
    return f"{ratio * 100:.0f} %"


def times(rate: float) -> str:  # as the page writes a burn rate
    return f"{round(rate, 1):g}×" if rate < 10 else f"{round(rate)}×"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def shot(page: Watched, tmp_path, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTEFACTS):
        page.page.evaluate("window.scrollTo(0, 0)")  # the card's screenshot scrolls it into view
        page.page.screenshot(path=str(folder / name))  # the first screen: what one sees on waking up
        page.page.locator("#budgets-card").screenshot(path=str(folder / name.replace(".png", "_card.png")))


def test_each_slo_has_a_bar_worded_and_coloured_by_its_budget(browser, make_server, broken_month, tmp_path):
    """Twice: the answer of now (the month's data over an hour old: stale, grey) and the answer at the data's end
    (`?at=` the first of this month: fresh on any day), so the coloured, worded bars are checked every day."""
    running = make_server(audit_source=str(broken_month))
    running.services.store.create_run(  # last month's audit: what "audit" links to
        id="ab12cd0009", notebook="/srv/notebooks/compliance_audit.ipynb", kind="audit", status="succeeded",
        trigger="schedule:audit", parameters={}, created_at=time.time() - 60,
        folder="/srv/reports/2026-11/compliance_audit-ab12cd0009")
    body = slo_body(running.url)
    fresh = slo_body(running.url, at=month_start())  # the same numbers, asked for at the data's end: not stale
    report = "/reports/2026-11/compliance_audit-ab12cd0009/report.html"
    assert {s["audit_url"] for s in body["slos"]} == {report}
    assert {s["audit_url"] for s in fresh["slos"]} == {report}
    by_name = {s["slo"]: s for s in body["slos"]}
    stale = by_name["bizra-api-availability"]["stale"]  # the month's data ended over 1 h ago (not in its first hour)
    assert {s["stale"] for s in body["slos"]} == {stale}
    # what the dataset was made for; old data has no state to judge by: unknown (its numbers greyed, said old)
    assert by_name["bizra-api-availability"]["state"] == ("unknown" if stale else "exhausted")
    assert {s["state"] for s in body["slos"] if s["slo"] != "bizra-api-availability"} == {"unknown" if stale else "ok"}
    # at the data's end, whatever the day: fresh, and the states the dataset was made for
    assert [(s["slo"], s["stale"], s["state"]) for s in fresh["slos"]] == [
        ("bizra-api-availability", False, "exhausted"), ("bizra-api-latency", False, "ok"),
        ("bizra-ahsan-score", False, "ok")]
    month_words = f"{pd.Timestamp(by_name['bizra-api-availability']['period_start']):%B %Y}"
    branches = []  # (answer, width, SLO, branch) of every row checked: which checks ran
    for answer, width in ((body, 1280), (body, 390), (fresh, 1280), (fresh, 390)):
        which = "now" if answer is body else "fresh"
        by_name = {s["slo"]: s for s in answer["slos"]}
        page = open_page(browser, running.url + "/", width)
        if answer is fresh:
            serve(page, fresh)  # the page shows the server's answer at the data's end
        shown = rows(page)
        assert [r["slo"] for r in shown] == [s["slo"] for s in answer["slos"]]  # one bar per SLO, in the API's order
        # "is anything burning?" first: right after the overall status, above the incidents, on a phone too
        top = {sel: page.page.evaluate(f"document.querySelector('{sel}').getBoundingClientRect().top")
               for sel in ("#overall", "#budgets-card", "#incidents-card", "#score-card")}
        assert top["#overall"] < top["#budgets-card"] < top["#incidents-card"], (width, top)
        assert top["#budgets-card"] < top["#score-card"], (width, top)
        for row in shown:
            slo = by_name[row["slo"]]
            assert row["name"] == slo["display_name"] and row["title"] is None  # no hover-only text
            # the arithmetic without hover: a collapsed "How counted", the API's plain sentence as it is
            assert row["howSummary"] == "How counted" and row["howOpen"] is False
            assert row["how"][0] == slo["explanation"] and "bad" in row["how"][0]  # "… allows 103,677.1 bad …"
            assert row["href"] == report
            target = f"{slo['target'] * 100:.3f}".rstrip("0").rstrip(".")
            assert row["target"] == f"{target} % · {slo['window']}"  # "99.9 % · calendar month"
            assert row["period"] == month_words  # the numbers are for last month: "November 2026"
            assert row["stale"] == str(bool(slo.get("stale"))).lower()
            if slo["stale"]:  # the month is over and its data ended more than 1 h ago: not a deploy's judge
                assert row["staleNote"] == f"data ends {utc(slo['end']):%Y-%m-%d %H:%M} UTC — too old to judge deploys"
                assert row["gate"] == "deploys blocked: data too old"
            else:
                assert row["staleNote"] is None
            if slo["stale"]:  # unknown: a grey bar, no burn, the old numbers said to be old
                assert row["state"] == "unknown" and row["word"] == "unknown" and "budget-unknown" in row["cls"]
                assert row["left"] == (f"exhausted on old data ({percent(slo['consumed'])} used)" if slo["remaining"] <= 0
                                       else f"{percent(slo['remaining'])} left on old data") and row["burn"] is None
                branches.append((which, width, row["slo"], "stale"))
                continue
            assert row["burn"] == f"burning {times(slo['burn_rates']['1h'])} (1 h)"
            assert row["error"] is None and row["barFilter"] == "none"  # a number of now: not greyed, no error
            if row["slo"] == "bizra-api-availability":  # exhausted: empty, red, and said so with how much was used
                assert row["state"] == "exhausted" and "budget-bad" in row["cls"] and row["word"] == "exhausted"
                assert row["width"] == 0 and row["colour"] == RED
                assert row["left"] == f"exhausted, {slo['consumed'] * 100:.0f} % used" and slo["consumed"] > 1
                assert row["left"] == f"exhausted, {percent(slo['consumed'])} used"
                assert "deploys blocked" in row["text"] and row["gate"] == "deploys blocked: budget exhausted"
                assert row["how"][-1] == f"Deploy gate: {slo['reason']}"  # the gate's own words, one tap away
            else:  # the others: green, as wide as what is left
                assert row["state"] == "ok" and row["word"] == "ok" and row["colour"] == GREEN
                assert "budget-ok" in row["cls"] and row["gate"] is None and "deploys blocked" not in row["text"]
                assert abs(row["width"] - 100 * slo["remaining"]) <= 1, (row, slo["remaining"])
                assert 0 < slo["remaining"] < 1  # a partly full bar: its width says how much
                assert row["left"] == f"{slo['remaining'] * 100:.0f} % left"
            branches.append((which, width, row["slo"], "coloured"))
        # the answer is from now (or the time asked), the dataset's numbers from up to its end: both said
        as_of, end = utc(answer["as_of"]), max(utc(s["end"]) for s in answer["slos"])
        if answer is body:
            assert end < as_of - timedelta(minutes=5)
            up_to = "" if stale else f", from data up to {end:%Y-%m-%d %H:%M} UTC"  # unknown rows have no numbers' end
        else:
            assert end == as_of  # asked for at the data's end: nothing behind to say
            up_to = ""
        assert page.page.text_content("#budgets-as-of") == f"Numbers as of {as_of:%Y-%m-%d %H:%M} UTC{up_to}."
        assert page.page.text_content("#budgets-note") == ""
        assert page.page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll on a phone
        shot(page, tmp_path, f"budgets_{width}.png" if answer is body else f"budgets_fresh_{width}.png")
        assert page.errors == [], page.errors
        page.close()
    # the colour, width, "exhausted, N % used", "N % left" and burn checks ran for every SLO at both widths
    names = [s["slo"] for s in fresh["slos"]]
    assert [b for b in branches if b[0] == "fresh"] == [("fresh", w, n, "coloured") for w in (1280, 390) for n in names]
    assert len(branches) == 4 * 3


def hostile_spec(path) -> str:
    """The default spec with every SLO's display name (and the service's) replaced by markup."""
    from bizra_nb.slo_spec import default_spec_path

    documents = list(yaml.safe_load_all(default_spec_path().read_text()))
    for document in documents:
        document["metadata"]["displayName"] = f"{document['metadata']['name']} {HOSTILE}"
        for objective in (document.get("spec") or {}).get("objectives") or []:
            objective["displayName"] = HOSTILE
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def test_hostile_spec_text_and_links_stay_inert(browser, make_server, broken_month, tmp_path):
    running = make_server(audit_source=str(broken_month), slo_spec=hostile_spec(tmp_path / "hostile.yaml"))
    body = slo_body(running.url)
    assert all(HOSTILE in s["display_name"] for s in body["slos"])
    page = Watched(browser, running.url + "/", viewport={"width": 1280, "height": 900})
    # what a tampered answer could add: links to scripts and other origins' paths, markup in every text
    tampered = {**body, "slos": [{**s, "audit_url": url, "explanation": HOSTILE, "error": HOSTILE + " error", "window": HOSTILE,
                                  "reason": HOSTILE + " reason", "period_start": HOSTILE, "stale": True,
                                  "end": HOSTILE}
                                 for s, url in zip(body["slos"], ["javascript:window.__pwned=1", "//evil.example/x",
                                                                  "https://audits.example/2026-11.html"])]}
    page.page.route("**/slo", lambda route: route.fulfill(status=200, content_type="application/json",
                                                          body=json.dumps(tampered)))
    page.page.reload()
    page.dot("green")
    page.page.wait_for_selector("#budgets li[data-slo]")
    shown = rows(page)
    assert [r["name"] for r in shown] == [s["display_name"] for s in body["slos"]]  # text, as written
    assert all(r["how"] == [HOSTILE, f"Deploy gate: {HOSTILE} reason"] and HOSTILE in r["target"] for r in shown)
    assert all(r["period"] is None for r in shown)  # not a time: no period rather than a wrong one
    assert all(r["staleNote"] == "the data is old — too old to judge deploys" for r in shown)
    page.page.click("#budgets li[data-slo] details.budget-how summary")  # shown open: still text

    assert [r["href"] for r in shown] == ["/reports/", "/reports/", "https://audits.example/2026-11.html"]
    assert page.page.query_selector_all("#budgets-card img, a[href^='javascript']") == []
    assert page.page.evaluate("window.__pwned") is None
    assert page.errors == [], page.errors
    page.close()


def test_without_a_source_the_bars_are_grey_and_say_why(browser, make_server, tmp_path):
    running = make_server()  # no --audit-source, no --prometheus-url
    body = slo_body(running.url)
    assert body["slos"] and all(s["state"] == "unknown" and s["error"] for s in body["slos"])
    page = open_page(browser, running.url + "/", 390)
    shown = rows(page)
    assert [r["slo"] for r in shown] == [s["slo"] for s in body["slos"]]
    for row, slo in zip(shown, body["slos"]):
        assert row["state"] == "unknown" and row["word"] == "unknown" and "budget-unknown" in row["cls"]
        assert "repeating-linear-gradient" in row["image"] and RED not in row["colour"] and GREEN not in row["colour"]
        assert row["left"] == "budget unknown" and row["burn"] is None
        assert row["href"] == "/reports/"  # no audit yet: the reports' index
        assert slo["error"][:250] in row["text"]  # "no metric source: …"
        assert row["how"] is None  # no "How counted" repeating that error
    shot(page, tmp_path, "budgets_unknown_390.png")
    assert page.errors == [], page.errors
    page.close()


def audit_event(run_id: str, status: str = "succeeded", kind: str = "audit") -> dict:
    """A `run` event as the server sends it for a run of the audit notebook."""
    now = time.time()
    return {"id": run_id, "kind": kind, "status": status, "progress": None, "error": None, "incident_id": None,
            "trigger": "schedule:audit", "created_at": now - 60, "started_at": now - 50, "finished_at": now,
            "notebook": "compliance_audit", "links": {}, "headline": None}


def wait_held(page: Watched, held: list, count: int, timeout: float = 15) -> None:
    """Until ``count`` GET /slo are held by the route (Playwright calls the route's callback while the page waits)."""
    deadline = time.monotonic() + timeout
    while len(held) < count and time.monotonic() < deadline:
        page.page.wait_for_timeout(20)
    assert len(held) == count, f"{len(held)} GET /slo held, expected {count}"


def minute() -> str:  # the page writes the last good answer's time as "2026-12-01 04:10 UTC"
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def test_an_audit_refreshes_the_bars_one_fetch_at_a_time_and_a_failure_keeps_them(browser, make_server, broken_month):
    running = make_server(audit_source=str(broken_month))
    page = open_page(browser, running.url + "/")
    before = rows(page)
    log: list[str] = []  # "start" and "end" of every GET /slo, in order
    page.page.on("request", lambda r: log.append("start") if r.url.endswith("/slo") else None)
    page.page.on("requestfinished", lambda r: log.append("end") if r.url.endswith("/slo") else None)
    page.page.on("requestfailed", lambda r: log.append("end") if r.url.endswith("/slo") else None)
    page.page.evaluate("""() => {  // GET /slo the page started, and the most it ever had in flight at once
        const fetch = window.fetch;
        window.__slo = {calls: 0, now: 0, most: 0};
        window.fetch = async (...args) => {
            const slo = String(args[0]).endsWith('/slo');
            if (slo) { window.__slo.calls += 1; window.__slo.now += 1; }
            window.__slo.most = Math.max(window.__slo.most, window.__slo.now);
            try { return await fetch(...args); } finally { if (slo) window.__slo.now -= 1; }
        };
    }""")
    calls = lambda: page.page.evaluate("window.__slo.calls")  # noqa: E731 - counted as the page calls fetch
    held: list = []
    page.page.route("**/slo", lambda route: held.append(route))  # answered when the test says so
    publish = lambda data: running.call(running.services.hub.publish, "run", data)  # noqa: E731
    # a running audit and a succeeded benchmark change no budget: handled (listed), and no fetch
    publish(audit_event("ab12cd0001", status="running"))
    publish(audit_event("ab12cd0002", kind="benchmark"))
    page.page.wait_for_selector("#runs li[data-run='ab12cd0002']")
    assert calls() == 0
    # a succeeded audit does
    publish(audit_event("ab12cd0003"))
    page.page.wait_for_selector("#runs li[data-run='ab12cd0003']")  # handled: its fetch has started
    assert calls() == 1
    wait_held(page, held, 1)
    # two more audits while that fetch is out: no second fetch meanwhile, one after it for both
    publish(audit_event("ab12cd0004"))
    publish(audit_event("ab12cd0005"))
    page.page.wait_for_selector("#runs li[data-run='ab12cd0005']")
    assert calls() == 1 and log == ["start"], log
    answered = minute()
    held[0].continue_()
    wait_held(page, held, 2)
    assert log == ["start", "end", "start"] and calls() == 2, log
    # that one fails: the last bars stay, and the page says since when they are not updated
    failed = minute()
    held[1].abort()
    note = page.wait_text("#budgets-note", "Not updated since")
    kept = lambda shown: [(r["slo"], r["state"], r["width"], r["left"]) for r in shown]  # noqa: E731
    assert kept(rows(page)) == kept(before)
    assert note.startswith((f"Not updated since {answered}:", f"Not updated since {failed}:")), note
    assert "may be out of date" in note
    assert page.page.evaluate("window.__slo.most") == 1  # never two at once
    assert page.page.evaluate("document.querySelector('#budgets-card').classList.contains('budgets-stale')")
    assert [e for e in page.errors if "ERR_FAILED" not in e] == [], page.errors
    page.close()


def test_old_data_is_said_in_words_greyed_and_blocks_deploys(browser, make_server, broken_month, tmp_path):
    """An SLO whose data ends too long before now (`stale`): the row says until when in words, is greyed, and its
    "deploys blocked" says why; a fresh exhausted one says its own reason; a fresh ok one says nothing of the kind."""
    running = make_server(audit_source=str(broken_month))
    body = slo_body(running.url)
    avail, latency = (next(s for s in body["slos"] if s["slo"] == name)
                      for name in ("bizra-api-availability", "bizra-api-latency"))
    old_reason = f"data ends {avail['end']}: more than 1 h before now, too old to judge deploys"
    answer = {**body, "slos": [  # a stale SLO's state is unknown (bizra_server.slo.budget_state)
        {**avail, "stale": True, "deploy_allowed": None, "reason": old_reason, "state": "unknown"},
        {**avail, "slo": "fresh-availability", "stale": False, "deploy_allowed": False, "state": "exhausted"},
        {**latency, "stale": False, "deploy_allowed": True, "reason": None, "state": "ok"}]}
    page = Watched(browser, running.url + "/", viewport={"width": 390, "height": 900}, is_mobile=True, has_touch=True)
    page.page.route("**/slo", lambda route: route.fulfill(status=200, content_type="application/json",
                                                          body=json.dumps(answer)))
    page.page.reload()
    page.dot("green")
    page.page.wait_for_selector("#budgets li[data-slo]")
    old, fresh, ok = rows(page)
    end = utc(avail["end"])
    assert old["stale"] == "true" and "budget-old" in old["cls"]
    assert old["staleNote"] == f"data ends {end:%Y-%m-%d %H:%M} UTC — too old to judge deploys"
    assert old["gate"] == "deploys blocked: data too old"
    assert "grayscale(1)" in old["barFilter"] and old["state"] == "unknown"  # no colour to judge by, shown grey
    assert "budget-unknown" in old["cls"] and old["left"] == f"exhausted on old data ({percent(avail['consumed'])} used)"
    assert old["error"] is None  # stale is not "no number": the old numbers are said to be old
    assert old["how"] == [avail["explanation"], f"Deploy gate: {old_reason}"]
    for row in (fresh, ok):
        assert row["stale"] == "false" and "budget-old" not in row["cls"]
        assert row["staleNote"] is None and row["barFilter"] == "none"
    assert fresh["gate"] == "deploys blocked: budget exhausted" and ok["gate"] is None
    assert ok["how"] == [latency["explanation"]]  # allowed: no gate sentence
    # fresh and exhausted: an empty red bar saying how much was used; fresh and ok: green, as wide as what is left
    assert fresh["state"] == "exhausted" and fresh["word"] == "exhausted" and "budget-bad" in fresh["cls"]
    assert fresh["colour"] == RED and fresh["width"] == 0 and avail["consumed"] > 1
    assert fresh["left"] == f"exhausted, {percent(avail['consumed'])} used" and fresh["error"] is None
    assert ok["state"] == "ok" and ok["word"] == "ok" and "budget-ok" in ok["cls"] and ok["error"] is None
    assert ok["colour"] == GREEN and 0 < latency["remaining"] < 1
    assert abs(ok["width"] - 100 * latency["remaining"]) <= 1, (ok, latency["remaining"])
    assert ok["left"] == f"{percent(latency['remaining'])} left"
    # a touch screen cannot hover: the arithmetic opens with a tap
    sentence = "#budgets li[data-slo='bizra-api-latency'] details.budget-how p"
    assert not page.page.is_visible(sentence)
    page.page.tap("#budgets li[data-slo='bizra-api-latency'] details.budget-how summary")
    page.page.wait_for_selector(sentence, state="visible")
    assert page.page.text_content(sentence) == latency["explanation"]
    assert page.page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, tmp_path, "budgets_stale_390.png")
    assert page.errors == [], page.errors
    page.close()


def rolling_spec(path, days: int = 28) -> str:
    """The default spec with every SLO on a rolling window of ``days`` days."""
    from bizra_nb.slo_spec import default_spec_path

    documents = list(yaml.safe_load_all(default_spec_path().read_text()))
    for document in documents:
        if (document.get("spec") or {}).get("timeWindow"):
            document["spec"]["timeWindow"] = [{"duration": f"{days}d", "isRolling": True}]
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def test_a_rolling_window_names_its_days_and_end(browser, make_server, broken_month, tmp_path):
    running = make_server(audit_source=str(broken_month), slo_spec=rolling_spec(tmp_path / "rolling.yaml"))
    body = slo_body(running.url)
    assert {s["window"] for s in body["slos"]} == {"rolling 28 days"}
    page = open_page(browser, running.url + "/", 1280)
    for row, slo in zip(rows(page), body["slos"]):
        assert utc(slo["period_end"]) - utc(slo["period_start"]) == timedelta(days=28)
        assert row["period"] == f"28 days to {utc(slo['period_end']):%Y-%m-%d %H:%M} UTC"
        assert row["target"].endswith(" · rolling 28 days")
    assert page.errors == [], page.errors
    page.close()
