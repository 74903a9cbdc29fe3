# The two commands a newcomer needs: `make run` and `make test`. Both install first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow bench clean

install: $(STAMP)

# torch==2.13.0 goes in first: it is the CPU wheel on this machine's disk, and a looser requirement
# resolved later would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

run: install
	$(VENV)/bin/marlshare train

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m tools.bench_strategies
	$(PY) -m tools.bench_training

clean:
	rm -rf $(VENV) outputs multirun

# The reproductions of docs/results.md ("Reproductions of the papers' claims"): every run of
# recipes/results/*.yaml (5 seeds each; about 80 CPU-minutes of runs, two at a time, finished runs
# skipped on a rerun), then the rliable tables and figures into docs/data and docs/figures.
.PHONY: results
results: install
	$(PY) -m tools.analyze.results run recipes/results/*.yaml --out outputs/results --jobs 2
	$(PY) -m tools.analyze.results report recipes/results/*.yaml --out outputs/results --docs docs
