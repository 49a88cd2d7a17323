# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv (with the project installed) when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean slo-rules

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e '.[dev]'
	touch $@

# Everything the demo writes goes to data/demo/; the status page is http://127.0.0.1:8080/ (a free port when taken).
demo: $(BIN)/.installed
	$(BIN)/bizra-nb demo --serve

test: $(BIN)/.installed
	$(BIN)/python -m pytest

# every benchmark runs, whatever the one before found (each prints its targets and PASS/FAIL)
bench: $(BIN)/.installed
	-$(BIN)/python benchmarks/health_throughput.py
	-$(BIN)/python benchmarks/loadgen_vs_wrk.py
	-$(BIN)/python benchmarks/alert_to_report.py
	-$(BIN)/python benchmarks/processes_throughput.py
	-$(BIN)/python benchmarks/score_record.py
	-$(BIN)/python benchmarks/ws_memory.py
	-$(BIN)/python benchmarks/ws_fanout.py
	-$(BIN)/python benchmarks/rca_speed.py
	-$(BIN)/python benchmarks/rca_accuracy.py
	-$(BIN)/python benchmarks/diagnosis_run.py
	-$(BIN)/python benchmarks/audit_query.py
	-$(BIN)/python benchmarks/runbook_latency.py
	-$(BIN)/python benchmarks/cmdb_import.py
	-$(BIN)/python benchmarks/dask_storm.py
	-$(BIN)/python benchmarks/oncall_latency.py
	-$(BIN)/python benchmarks/slo_status.py
	-$(BIN)/python benchmarks/slo_api.py

# the SLO rules and their promtool tests, generated from the spec (commit both; a test checks they match it)
slo-rules: $(BIN)/.installed
	$(BIN)/bizra-nb slo generate monitoring/slo/bizra.yaml --out monitoring/rules/slo.yml --tests monitoring/tests/slo_test.yml

clean:
	rm -rf $(VENV) data reports/*/ reports/index.html
