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
	$(PY) -m tools.bench_id
	$(PY) -m tools.bench_update
	$(PY) -m tools.bench_sequential
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

# Side by side with BenchMARL 1.5.2 (issue 13): BenchMARL needs torchrl < 0.12, so it lives in its own
# venv (.venv-peer, ignored by git; never used by `make test`). torch==2.13.0 goes in first, as above,
# so that the peer's requirements keep the CPU wheel instead of resolving a CUDA build.
# `make bench-peer-install` only builds the venv; `make bench-peer` also runs the comparison
# (PEER_ARGS=... passes options to tools.bench_peer, e.g. PEER_ARGS="--frames 12000 --repeats 1").
PEER_VENV ?= .venv-peer
PEER_PY := $(PEER_VENV)/bin/python
PEER_STAMP := $(PEER_VENV)/.installed
PEER_ARGS ?= --docs

.PHONY: bench-peer bench-peer-bf16 bench-peer-install

bench-peer-install: $(PEER_STAMP)

$(PEER_STAMP): tools/peer/requirements.txt
	test -x $(PEER_PY) || python3 -m venv $(PEER_VENV)
	$(PEER_PY) -m pip install -q --upgrade pip
	$(PEER_PY) -m pip install -q torch==2.13.0
	$(PEER_PY) -m pip install -q -r tools/peer/requirements.txt
	$(PEER_PY) tools/peer/benchmarl_run.py --check
	touch $(PEER_STAMP)

bench-peer: install $(PEER_STAMP)
	$(PY) -m tools.bench_peer --peer $(PEER_PY) $(PEER_ARGS)

# the same side by side plus marlshare at algorithm.precision=bf16 (issue 22; BenchMARL stays float32)
bench-peer-bf16: install $(PEER_STAMP)
	$(PY) -m tools.bench_peer --peer $(PEER_PY) --bf16 $(PEER_ARGS)

# collection per frame: raw VMAS, the wrapped step, the policy, marlshare's collector (issue 22)
.PHONY: bench-collection gpu-check
bench-collection: install
	$(PY) -m tools.bench_collection --iteration

# the GPU path end to end on a CUDA machine, one table (tools/gpu_check.sh; GPU_ARGS=--cpu for a dry run)
gpu-check: install
	bash tools/gpu_check.sh $(GPU_ARGS)

# The evidence suite (docs/evidence.md): every sweep spec of recipes/sweeps/evidence/<group>/ runs with
# `marlshare sweep` (local Ray, or RAY_ADDRESS; trials in parallel, finished trials skipped on a rerun)
# into sweeps/evidence/<group>/<spec>, then `marlshare compare` per group and tools.evidence writes the
# tables and figures into docs/evidence.md. EVIDENCE_GROUPS=bps333_60k runs one group only.
EVIDENCE_GROUPS ?= $(notdir $(wildcard recipes/sweeps/evidence/*))
.PHONY: evidence
evidence: install
	set -e; for group in $(EVIDENCE_GROUPS); do \
	  for spec in recipes/sweeps/evidence/$$group/*.yaml; do \
	    $(VENV)/bin/marlshare sweep $$spec --out sweeps/evidence/$$group/$$(basename $$spec .yaml); \
	  done; \
	  $(VENV)/bin/marlshare compare sweeps/evidence/$$group/* --out docs/figures/evidence/$$group --quiet; \
	done
	$(PY) -m tools.evidence $(EVIDENCE_GROUPS) --sweeps sweeps/evidence --figures docs/figures/evidence --docs docs/evidence.md
