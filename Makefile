# All set-up happens here: `make demo` and `make test` create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make demo`: the whole pipeline (train, attack every (attack type, th, es), evaluate) on
# the built-in digits, twice: a sweep of the pixel attack at th 1 and 3 with every
# strategy, then each image's smallest th (th=-1) under both attacks, with a budget
# that takes a few minutes on 2 cores. Tracking goes wherever MLFLOW_TRACKING_URI says;
# unset, to MLflow's default sqlite:///mlflow.db here. The experiment is the one the
# README's `mlflow run` commands use: MLFLOW_EXPERIMENT_NAME if set, else Default.
DEMO_EXPERIMENT := $${MLFLOW_EXPERIMENT_NAME:-Default}
DEMO_PARAMS := -P limit=100 -P epochs=10 -P max_iter=30 -P popsize=100
DEMO_SWEEP := -P th_values=1,3 -P es_values=0,1,2
DEMO_SMALLEST := -P attack_type=pixel,threshold -P th_values=-1 -P es_values=1
TRACKING := $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}
# `make imagenet-demo`: the seed's ImageNet demo, offline: EfficientNet-Lite0 with its
# ImageNet weights (the imagenet extra) wrapped by train (epochs=0), attacked on the
# first 6 imagenet-sample photos with th in {1, 3} and es in {0, 1, 2}, each attack
# evaluated.
IMAGENET_EXPERIMENT := pixel-threshold-imagenet-demo
IMAGENET_PARAMS := -P dataset=imagenet-sample -P architecture=efficientnet_lite0 \
	-P weights=imagenet -P epochs=0 -P th_values=1,3 -P es_values=0,1,2 -P max_iter=10 \
	-P popsize=100 -P limit=6
# `make smoke`: the CI smoke run, the whole pipeline on 10 digits with a tiny budget, as a
# main run named ci-smoke (its child runs: train, attack, evaluate).
SMOKE_PARAMS := -P th_values=1 -P es_values=1 -P limit=10 -P epochs=1 -P max_iter=5 -P popsize=20
UI_PORT ?= 5000

.PHONY: install test test-slow test-server test-ui lint bench bench-search bench-smallest bench-backends \
	bench-targeted bench-host clean demo ui \
	imagenet-demo smoke

install: $(STAMP)

# Dioptra 1.x's plugin tests (tests/test_dioptra.py) run its validator and worker code
# in-process: the package alone, without the REST server's requirements (the dev extra
# has the two it needs).
DIOPTRA := dioptra-platform==1.2.2

# What the default suite needs; the slow suite adds Ray, the benchmarks ART, the UI
# check Playwright (each a stamp of its own, so `make test` installs no more than it uses).
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet]'
	$(BIN)/pip install --quiet --no-deps $(DIOPTRA)
	touch $(STAMP)

SLOW_STAMP := $(VENV)/.installed-slow
BENCH_STAMP := $(VENV)/.installed-bench

$(SLOW_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,ray,torch]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,bench]'
	touch $@

# Two workers, each taking whole test files (so a file's fixtures are built once), fill
# the 2 cores CI has; TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

test: install
	$(BIN)/pytest -m "not slow and not ui and not server" -q --durations=15 -n $(TEST_WORKERS) --dist loadfile

test-slow: $(SLOW_STAMP)
	$(BIN)/pytest -m "slow and not ui and not server" -q || test $$? -eq 5  # 5: none collected

# `make test-server`: a team's tracking server under load (tests/test_team_server.py):
# PostgreSQL from Debian's package (apt-get, with sudo unless root, where it is missing)
# in a throw-away cluster, mlflow server with logins on it and on sqlite; 8 attacks and
# 2 main sweeps at once, with faults. Figures land in test-output/team-server/.
SERVER_STAMP := $(VENV)/.installed-server

test-server: $(SERVER_STAMP)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }
	$(BIN)/pytest -m server -q

$(SERVER_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,server]'
	touch $@

# `make test-ui`: the MLflow UI in headless Chromium (tests/test_ui.py). Debian's chromium
# package (apt-get, with sudo unless root) and Playwright's Python package; Playwright
# never downloads a browser: the tests launch $(CHROMIUM) (another Chromium-based browser
# with CHROMIUM=/path). Screenshots land in test-output/ui/.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UI_STAMP := $(VENV)/.installed-ui
CHROMIUM ?= /usr/bin/chromium

test-ui: $(UI_STAMP)
	test -x $(CHROMIUM) || { $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest -m ui -q

$(UI_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,ui]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# `make bench`: speed against ART and the forward pass, then attack strength per query
# (every strategy and loss at equal budgets, digits CNN and Lite0 on imagenet-sample), then
# each image's smallest th (th=-1) against ART's th=None on the digits CNN, then every kind of
# model against its own forward pass (benchmarks/backends.py); each strategy's host cost
# against the model alone, profiled per call (benchmarks/host.py).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)  # e.g. BENCH_ARGS="--lite0-images 5"
	$(BIN)/python -m benchmarks.host $(HOST_ARGS)  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.overlap  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.cold_host  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.strength $(SEARCH_ARGS)  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.smallest $(SMALLEST_ARGS)  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.walk_bias $(BIAS_ARGS)  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.targeted $(TARGETED_ARGS)  # writes benchmarks/output/
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,bench,torch]'
	$(BIN)/python -m benchmarks.backends $(BACKENDS_ARGS)  # writes benchmarks/output/

# `make bench-host`: es 0, 1 and 2 against the model alone, where a call's time goes.
bench-host: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.host $(HOST_ARGS)  # e.g. HOST_ARGS="--lite0-images 5"
	$(BIN)/python -m benchmarks.overlap  # writes benchmarks/output/
	$(BIN)/python -m benchmarks.cold_host  # writes benchmarks/output/

# `make bench-targeted`: targeted runs, our settings against Sparse-RS's and Square's.
bench-targeted: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.targeted $(TARGETED_ARGS)  # e.g. TARGETED_ARGS="--targets 3"

bench-search: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.strength $(SEARCH_ARGS)  # e.g. SEARCH_ARGS="--lite0-images 0"

# `make bench-backends`: every kind of model (Keras, scikit-learn, ONNX, pyfunc, PyTorch,
# an mlflow models serve endpoint) against its own forward pass.
bench-backends: $(BENCH_STAMP)
	$(BIN)/pip install --quiet -e '.[cpu,dev,imagenet,bench,torch]'
	$(BIN)/python -m benchmarks.backends $(BACKENDS_ARGS)  # writes benchmarks/output/

bench-smallest: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.smallest $(SMALLEST_ARGS)  # e.g. SMALLEST_ARGS="--art-max-iter 3"
	$(BIN)/python -m benchmarks.walk_bias $(BIAS_ARGS)  # e.g. BIAS_ARGS="--seeds 0"

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e main --env-manager local \
		$(DEMO_PARAMS) $(DEMO_SWEEP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e main --env-manager local \
		$(DEMO_PARAMS) $(DEMO_SMALLEST)
	@echo
	@echo "Results: experiment '$(DEMO_EXPERIMENT)' in $(TRACKING) (artifacts: ./mlruns by default)."
	@echo "Each parent run 'main' holds comparison.csv/.html and queries.png; the sweep's"
	@echo "also success_vs_th.png, the th=-1 one's robustness_curves.png and"
	@echo "robustness_levels.csv. Their child runs hold the model (train), adv_testing.tar.gz,"
	@echo "examples.png and queries.png (attack; th=-1: robustness_curve.png) and confusion"
	@echo "matrices (evaluate); the last child run, 'report', holds report.html (the"
	@echo "assessment on one page) and report.md."
	@echo "Open the UI: make ui, then browse http://127.0.0.1:$(UI_PORT)"

smoke: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e main --env-manager local \
		--run-name ci-smoke $(SMOKE_PARAMS)

imagenet-demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e main --env-manager local \
		--experiment-name $(IMAGENET_EXPERIMENT) $(IMAGENET_PARAMS)
	@echo
	@echo "Results: experiment '$(IMAGENET_EXPERIMENT)' in $(TRACKING); make ui to browse them."

ui: install
	$(BIN)/mlflow ui --backend-store-uri "$(TRACKING)" --port $(UI_PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
