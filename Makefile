# convbench: `make bench` runs the default sweep, `make test` the tests.
# Both create .venv and install what they need on first use (quick afterwards).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PEERS  ?= 1# 1: also install the pinned PyTorch CPU build (torch==2.13.0) as a peer; all: ONNX Runtime and JAX too
PIP    := $(BIN)/python -m pip -q --disable-pip-version-check
# pip prints a warning per missing local index entry on this machine; keep the output readable
PIPF   := 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true

# the default sweep (61 problems: 2-D, 3-D and 1-D ladders, network layers, pools) on a cheaper budget
# per cell than `convbench run`'s defaults, so a fresh clone finishes in about 3 minutes:
# at least 3 rounds and 10 ms, at most 0.12 s of timed rounds; a cell whose single run takes
# over 0.35 s is skipped (and larger rungs of its ladder with it); a cell whose backends'
# operators and workspaces together pass 512 MiB is refused from their shapes (the 32^3 volumes'
# backends need ~300 MiB; at 1 GiB the sparse operators of the largest images took 26 s more
# to build). All recorded in meta.json and the rows' reasons.
BENCH_ARGS ?= --min-time 0.01 --max-time 0.12 --min-rounds 3 --cell-budget 0.35 --memory-limit 512M
PYTEST_ARGS ?=

STUDY_ARGS ?=

.PHONY: bench test browser study floors floors-ranks bench-check bench-against baseline clean help

help:
	@echo "make bench   - default sweep: tables in results/<timestamp>/tables.md"
	@echo "make test    - the test suite"
	@echo "make study   - CNN vs locally connected vs MLP on digits, trained on convbench's kernels (results/<timestamp>/study)"
	@echo "make floors  - the speed floors of the issues, as ratios from one run (with ONNX Runtime/MLAS and oneDNN)"
	@echo "make floors-ranks - the 1-D and 3-D floors (networks, roll-ups, the 3-D vs 2-D crossover table)"
	@echo "make bench-against - CI regression gate: REF (HEAD~1) and the working tree side by side on the ci suite"
	@echo "make bench-check - the committed-baseline gate: the ci suite against results/baseline"
	@echo "make baseline    - re-record results/baseline (A/A runs, noise floors) on this machine kind"
	@echo "options: PEERS=0 (no torch), PEERS=all (torch, ONNX Runtime, JAX), BENCH_ARGS='--threads 2 ...', STUDY_ARGS='--epochs 20', PYTEST_ARGS='-k cli'"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# what `make bench` needs; the test tools and the Dask extra come on top for `make test`
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install --no-compile -e . $(PIPF)
	@$(BIN)/python -c "import convbench.cli, numpy, scipy, numba, pyfftw, pandas, threadpoolctl, matplotlib, markdown, tqdm, sklearn, plotly" \
		|| { echo "dependency installation failed"; exit 1; }
	@touch $@

$(VENV)/.deps: $(VENV)/.core
	$(PIP) install --no-compile -e '.[test]' $(PIPF)
	@$(BIN)/python -c "import pytest, distributed, ruptures, selenium" || { echo "test dependency installation failed"; exit 1; }
	@touch $@

# torch==2.13.0 is pinned: here it is the local CPU build; an unpinned torch pulls CUDA (GBs)
$(VENV)/.peers: $(VENV)/.core
	$(PIP) install --no-compile 'torch==2.13.0' $(PIPF)
	@$(BIN)/python -c "import torch" || { echo "torch==2.13.0 installation failed"; exit 1; }
	@touch $@

# ONNX Runtime and JAX (pinned, CPU wheels): PEERS=all
$(VENV)/.peers-extra: $(VENV)/.peers
	$(PIP) install --no-compile -e '.[peers-extra]' $(PIPF)
	@$(BIN)/python -c "import onnxruntime, onnx, jax" || { echo "onnxruntime/onnx/jax installation failed"; exit 1; }
	@touch $@

PEER_DEP := $(if $(filter 1,$(PEERS)),$(VENV)/.peers,$(if $(filter all,$(PEERS)),$(VENV)/.peers-extra))

# With PYTHONDONTWRITEBYTECODE set (as on this project's machines) no import writes a .pyc, so
# every Python process the tests start (CLI runs, resumed sweeps, Dask workers) recompiled
# numpy, scipy, pandas and torch from source, ~9 s each; compile the venv once instead (~35 s).
$(VENV)/.bytecode: $(VENV)/.deps $(PEER_DEP)
	@if [ -n "$$PYTHONDONTWRITEBYTECODE" ]; then \
		echo "compiling the venv's bytecode once (PYTHONDONTWRITEBYTECODE is set)"; \
		$(BIN)/python -m compileall -q -j 0 $(VENV)/lib convbench tests > /dev/null 2>&1 || true; fi
	@touch $@

bench: $(VENV)/.core $(PEER_DEP)
	$(BIN)/convbench run $(BENCH_ARGS)

study: $(VENV)/.core $(PEER_DEP)
	$(BIN)/convbench study $(STUDY_ARGS)

# headless Chromium for the browser tests of the site and report.html: Debian's chromium and
# chromium-driver from apt, as root (never a downloaded browser build). Best effort: without root
# or apt the browser tests skip with the reason.
browser:
	@if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		echo "installing Debian's chromium and chromium-driver (apt) for the browser tests"; \
		{ apt-get install -y -q chromium chromium-driver > /dev/null 2>&1 \
		  || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q chromium chromium-driver > /dev/null 2>&1; }; } \
		|| echo "could not install chromium and chromium-driver: the browser tests will skip"; \
	else echo "no chromium/chromedriver, and no root apt-get to install them: the browser tests will skip"; fi

test: $(VENV)/.deps $(PEER_DEP) $(VENV)/.bytecode browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# issue 28's floors need ONNX Runtime (MLAS) as well as oneDNN: PEERS=all's packages
floors: $(VENV)/.deps $(VENV)/.peers-extra
	$(BIN)/python benchmarks/floors.py
	$(BIN)/python benchmarks/mlas.py --training

# issue 25's floors: 3-D networks' 3x3x3 layers and roll-ups, 1-D layers, the 3-D vs 2-D crossover table
floors-ranks: $(VENV)/.deps $(VENV)/.peers
	$(BIN)/python benchmarks/ranks.py

# The gate: a 1.5x slowdown of one backend fails it; unchanged code passes. Thresholds are
# max(1.3, the cell's A/A noise floor); times are normalised by the same problem's other
# backends (timed interleaved with it; --normalize sentinel uses the drift sentinel); every
# flagged cell is re-measured twice in a fresh process and must stay flagged to fail.
GATE_ARGS ?= --fail-above 1.3 --retries 2
bench-check: $(VENV)/.deps $(PEER_DEP)
	$(BIN)/convbench check --baseline results/baseline $(GATE_ARGS) --quiet

# The gate that works on any machine: REF (default: the previous commit) and the working tree
# measured side by side in this run, rounds alternated between two worker processes per problem,
# the run's own A/A floor from a second base process; a slowdown above max(1.2, floor) with
# Mann-Whitney p < 0.01 that survives two re-measurements fails it, unless a reviewed record in
# benchmarks/accepted-slowdowns.toml accepts it. See README "Regression gate".
REF ?= HEAD~1
AGAINST_ARGS ?=
bench-against: $(VENV)/.core
	$(BIN)/convbench check --against $(REF) --quiet $(AGAINST_ARGS)

# what the gate times: convbench's own backends, torch and the scipy peers (ONNX Runtime and JAX,
# PEERS=all, are not gated: the same on every machine, installed or not)
BASELINE_BACKENDS ?= direct_numba,im2col_blas,fft_pyfftw,fft_scipy,winograd_f2x3,winograd_f4x3,winograd_f6x3,winograd_f2x5,winograd_f4x5,sparse_csr,dense_matrix,torch_onednn,scipy_signal,scipy_ndimage,scipy_fftconv

baseline: $(VENV)/.deps $(VENV)/.peers
	rm -rf results/baseline
	$(BIN)/convbench calibrate --suite ci --runs 6 --out results/baseline --backends $(BASELINE_BACKENDS) --quiet

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
