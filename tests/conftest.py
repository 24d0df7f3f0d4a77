"""Shared fixtures: real model, real Chroma, small indexes in temporary folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

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
