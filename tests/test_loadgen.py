"""The load generator against a real Tornado server that fails half its requests: achieved vs offered, verdicts."""
from __future__ import annotations

import asyncio

import pandas as pd
import pytest
import tornado.httpserver
import tornado.testing
import tornado.web

from bizra_nb.loadgen import LoadResult, run_load
from bizra_nb import summaries
from bizra_nb.summaries import benchmark_summary


class HalfFailingHandler(tornado.web.RequestHandler):
    """Every other request is a 500."""

    count = 0

    def get(self) -> None:
        type(self).count += 1
        if self.count % 2 == 0:
            raise tornado.web.HTTPError(500)
        self.write("ok")


async def load_half_failing(*, rate: float, duration: float):
    HalfFailingHandler.count = 0
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/half", HalfFailingHandler)],
                                                                   log_function=lambda handler: None))
    server.add_sockets([sock])
    try:
        return await run_load(f"http://127.0.0.1:{port}", endpoints=["/half"], duration=duration, rate=rate,
                              concurrency=4)
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.fixture(scope="module")
def half_failing() -> LoadResult:
    return asyncio.run(load_half_failing(rate=100.0, duration=1.0))


def test_achieved_throughput_counts_successful_responses_only(half_failing):
    stats = half_failing.stats()
    assert stats["requests"] == 100 and stats["successes"] == 50
    assert stats["error_rate"] == 0.5
    assert stats["offered_rps"] == 100.0
    assert stats["throughput_rps"] == round(50 / max(half_failing.elapsed, 1.0), 1)
    assert stats["throughput_rps"] < stats["offered_rps"]


def test_an_offered_rate_above_the_target_is_no_pass(half_failing):
    # offered 100 req/s against a target of 60: the successful responses (about 50 a second) miss it
    verdicts = half_failing.verdicts({"throughput_rps": 60.0, "error_rate": 1.0})
    assert not verdicts.loc["throughput_rps", "pass"]
    assert half_failing.stats()["offered_rps"] > 60.0
    assert "100 req/s offered" in verdicts.loc["throughput_rps", "detail"]


def test_throughput_also_needs_the_error_rate_within_its_target(half_failing):
    # about 50 successful responses a second reach a target of 20, but half the requests failed
    assert half_failing.stats()["throughput_rps"] >= 20.0
    assert not half_failing.verdicts({"throughput_rps": 20.0})["pass"]["throughput_rps"]
    assert half_failing.verdicts({"throughput_rps": 20.0, "error_rate": 0.6})["pass"]["throughput_rps"]


def test_the_summary_shows_offered_and_achieved_side_by_side(half_failing):
    stats = half_failing.stats()
    text = benchmark_summary(stats, half_failing.verdicts({"throughput_rps": 60.0}), "http://127.0.0.1:1")
    assert "**FAIL**" in text and "throughput_rps" in text
    assert f"achieved {stats['throughput_rps']} req/s** of 100 req/s offered" in text
    assert "100 requests offered" in text and "50 answered successfully" in text


def test_all_successful_at_the_offered_rate_passes():
    samples = pd.DataFrame({"sent_at": [i / 10 for i in range(20)], "latency_ms": [1.0] * 20, "status": [200] * 20,
                            "endpoint": ["/health"] * 20})
    result = LoadResult(samples=samples, duration=2.0, rate=10.0, elapsed=2.0)
    assert result.stats()["throughput_rps"] == 10.0
    assert result.verdicts({"throughput_rps": 10.0})["pass"]["throughput_rps"]
    assert not result.verdicts({"throughput_rps": 11.0})["pass"]["throughput_rps"]


@pytest.mark.parametrize("duration", [0.0, 0.5])
def test_a_run_without_any_answer_is_a_readable_fail(duration):
    samples = pd.DataFrame({"sent_at": [], "latency_ms": [], "status": [], "endpoint": []})
    result = LoadResult(samples=samples, duration=duration, rate=1.0, elapsed=duration)
    text = benchmark_summary(result.stats(), result.verdicts(), "http://127.0.0.1:1")
    assert "**FAIL**: no request was answered" in text and "nothing to measure" in text


def _result(statuses, ws_error=None):
    samples = pd.DataFrame({"sent_at": [i / 10 for i in range(len(statuses))], "latency_ms": [1.0] * len(statuses),
                            "status": statuses, "endpoint": ["/x"] * len(statuses)})
    return LoadResult(samples=samples, duration=len(statuses) / 10, rate=10.0, elapsed=len(statuses) / 10,
                      ws_error=ws_error)


def test_client_errors_count_as_errors_not_as_nothing():
    result = _result([404] * 10 + [200] * 10)
    stats = result.stats()
    assert stats["error_rate"] == 0.5 and stats["successes"] == 10
    verdicts = result.verdicts({"throughput_rps": 1.0})
    assert not verdicts.loc["error_rate", "pass"]
    row = next(line for line in result.table({"throughput_rps": 1.0}).splitlines() if line.startswith("error rate"))
    assert row.split()[-2:] == ["50.00%", "FAIL"]


def test_a_websocket_probe_that_measured_nothing_is_not_measured_and_no_pass():
    result = _result([200] * 20, ws_error="ConnectionRefusedError: refused")
    verdicts = result.verdicts({"throughput_rps": 1.0})
    assert verdicts.loc["ws_latency_ms", "pass"] is None
    row = next(line for line in result.table({"throughput_rps": 1.0}).splitlines() if line.startswith("WebSocket"))
    assert "not measured" in row.split("  not measured:")[0] and " pass" not in row
    assert result.verdict({"throughput_rps": 1.0}).startswith("FAIL")


def test_a_target_url_with_a_path_is_refused():
    from bizra_nb.errors import InvalidInput
    from bizra_nb.loadgen import target_address

    assert target_address("http://127.0.0.1:8080/") == ("127.0.0.1", 8080, "")
    with pytest.raises(InvalidInput, match="give the server's base URL and --endpoint PATH"):
        target_address("http://127.0.0.1:8080/health")


def test_latency_quantiles_count_successful_responses_only():
    # failures answer fast (a refused connection, 0.1 ms) and successes slowly (10 ms): mixing them would put
    # the median at 0.1 ms for a server whose every answer took 10 ms
    samples = pd.DataFrame({"sent_at": [i / 10 for i in range(20)], "latency_ms": [0.1] * 15 + [10.0] * 5,
                            "status": [0] * 10 + [503] * 5 + [200] * 5, "endpoint": ["/x"] * 20})
    stats = LoadResult(samples=samples, duration=2.0, rate=10.0, elapsed=2.0).stats()
    assert stats["p50_ms"] == stats["p99_ms"] == stats["max_ms"] == 10.0 and stats["error_rate"] == 0.75
    assert stats["errors_by_status"] == {"no answer": 10, "503": 5}
    assert summaries.latency_quantiles(samples) == [10.0] * summaries.QUANTILES
    by_endpoint = summaries.latency_by_endpoint(samples).frame
    assert by_endpoint.loc[0, "P50"].startswith("10") and by_endpoint.loc[0, "Requests"] == "20"


def test_a_dead_target_has_no_latency_and_fails_its_latency_targets():
    import socket

    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = asyncio.run(run_load(f"http://127.0.0.1:{port}", duration=0.2, rate=50.0, concurrency=2,
                                   ws_clients=0))
    stats, verdicts = result.stats(), result.verdicts()
    assert stats["requests"] == 10 and stats["successes"] == 0 and stats["error_rate"] == 1.0
    assert all(stats[k] is None for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
    assert stats["errors_by_status"] == {"no answer": 10}
    for name in ("p50_ms", "p95_ms", "p99_ms"):  # no successful response is a FAIL, never "not measured"
        passed = verdicts.at[name, "pass"]
        assert passed is not None and not passed and "no successful response" in verdicts.loc[name, "detail"]
    assert summaries.latency_quantiles(result.samples) == []
    headline = summaries.benchmark_headline(stats, verdicts)
    assert headline.startswith("no successful responses: 100 % errors (connection refused") and "P99" not in headline
    text = summaries.benchmark_summary(stats, verdicts, f"http://127.0.0.1:{port}")
    assert "**FAIL**: no successful responses: 100 % errors" in text and "None" not in text
    assert "P50" not in text  # no latency figure is printed for a run that answered nothing
    row = next(line for line in result.table().splitlines() if line.startswith("P99"))
    assert row.split()[5:7] == ["-", "FAIL"]


def test_the_headline_of_a_run_with_answers_is_unchanged():
    result = _result([200] * 20)
    stats = result.stats()
    assert summaries.benchmark_headline(stats, result.verdicts({"throughput_rps": 1.0})) == \
        f"P99 {stats['p99_ms']} ms, {stats['throughput_rps']} req/s, pass"
