"""A real `python -m assistant serve` subprocess for the HTTP tests: start on a free port, wait, stop.

Shared by test_openai_api.py, test_ui.py and test_security.py, so each starts its server the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
# Quiet, offline defaults every served subprocess gets; `env` adds to them.
QUIET = {"ASSISTANT_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
         "ANONYMIZED_TELEMETRY": "False"}  # fmt: skip


def copy_seeds(base: Path, extra: dict[str, str] | None = None) -> Path:
    """A private copy of the bundled seeds in `base/seeds`, plus `extra` documents (name -> text).

    Args:
        base: the test's temporary folder.
        extra: more documents to write beside the seeds.
    """
    seeds = base / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    for name, text in (extra or {}).items():
        (seeds / name).write_text(text, encoding="utf-8")
    return seeds


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float, ready: bool = True) -> None:
    """Poll `/api/health` until it answers 200 (and, if `ready`, says the start is settled: `"ok"`).

    Fails the test with the log if the server dies or stalls.

    Args:
        proc: the server process.
        url: its base URL.
        log: the file its output goes to, shown when it exits early.
        timeout: seconds to wait before failing.
        ready: wait for the index and model too, not only for the port.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx.get(f"{url}/api/health", timeout=2)
            if r.status_code == 200 and (not ready or r.json().get("status") == "ok"):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server did not start within {timeout:g} s")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server, killing it if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def serve(
    index_dir: Path,
    seeds_dir: Path,
    *args: str,
    log: Path,
    env: dict[str, str] | None = None,
    auth: str | None = None,
    unset: tuple[str, ...] = ("ASSISTANT_AUTH",),
    timeout: float = 180,
    ready: bool = True,
) -> Iterator[str]:
    """Run `assistant serve` on a free loopback port until the block ends; yields its base URL.

    Args:
        index_dir: the server's ASSISTANT_INDEX_DIR.
        seeds_dir: the server's ASSISTANT_SEEDS_DIR.
        *args: extra `serve` arguments.
        log: file that receives the server's stdout and stderr.
        env: variables added to the inherited environment (after the quiet defaults).
        auth: "USER:PASS" for `--auth`, or None for an open server.
        unset: inherited variables removed so the user's shell cannot change the server.
        timeout: seconds to wait for it to answer `/api/health`.
        ready: wait until its start is settled (`"status": "ok"`), not only until it answers.
    """
    port = free_port()
    full = {**os.environ, "ASSISTANT_INDEX_DIR": str(index_dir), "ASSISTANT_SEEDS_DIR": str(seeds_dir), **QUIET}
    full.update(env or {})
    for name in unset:
        full.pop(name, None)
    command = [sys.executable, "-m", "assistant", "serve", "--port", str(port), *args]
    if auth:
        command += ["--auth", auth]
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(proc, url, log, timeout, ready)
            yield url
        finally:
            stop(proc)
