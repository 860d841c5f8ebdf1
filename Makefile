# All set-up happens here: `make demo` and `make test` create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make demo`: the whole pipeline (train, attack every (th, es), evaluate) on the built-in
# digits, with a budget that takes a few minutes on 2 cores. Tracking goes wherever
# MLFLOW_TRACKING_URI says; unset, to MLflow's default sqlite:///mlflow.db here.
DEMO_EXPERIMENT := pixel-threshold-demo
DEMO_PARAMS := -P th_values=1,3 -P es_values=0,1 -P limit=100 -P epochs=10 -P max_iter=30 -P popsize=100
TRACKING := $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}
UI_PORT ?= 5000

.PHONY: install test test-slow lint bench clean demo ui

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev,ray]'
	touch $(STAMP)

test: install
	$(BIN)/pytest -m "not slow" -q

test-slow: install
	$(BIN)/pytest -m slow -q || test $$? -eq 5  # 5: no slow test collected

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m benchmarks.run

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e main --env-manager local \
		--experiment-name $(DEMO_EXPERIMENT) $(DEMO_PARAMS)
	@echo
	@echo "Results: experiment '$(DEMO_EXPERIMENT)' in $(TRACKING) (artifacts: ./mlruns by default)."
	@echo "The parent run 'main' holds comparison.csv and success_vs_th.png; its child runs"
	@echo "hold the model (train), adv_testing.tar.gz (attack) and confusion matrices (evaluate)."
	@echo "Open the UI: make ui, then browse http://127.0.0.1:$(UI_PORT)"

ui: install
	$(BIN)/mlflow ui --backend-store-uri "$(TRACKING)" --port $(UI_PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
