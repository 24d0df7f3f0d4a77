"""One place for configuration: defaults, overridden by `ASSISTANT_*` env vars, overridden by flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, get_args

from assistant.errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

GeneratorName = Literal["reader", "extractive", "openai", "llamacpp"]
GENERATORS: tuple[str, ...] = get_args(GeneratorName)  # the one list of generator names (CLI choices, checks)
Precision = Literal["auto", "float32", "int8", "int8-u8u8"]  # assistant.embedding_graph.VARIANTS
PRECISIONS: tuple[str, ...] = get_args(Precision)
OcrMode = Literal["auto", "off", "always"]
OCR_MODES: tuple[str, ...] = get_args(OcrMode)
MB = 1024 * 1024  # bytes in the megabyte of every size limit and message


def _default_index_dir() -> Path:
    return Path(os.environ.get("ASSISTANT_INDEX_DIR") or PROJECT_ROOT / "index")


def _default_cache_dir() -> Path:
    if os.environ.get("ASSISTANT_CACHE_DIR"):
        return Path(os.environ["ASSISTANT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistant"


@dataclass(frozen=True)
class Settings:
    """Everything a user can configure.

    Args:
        index_dir: Folder of the embedded Chroma store and the keyword index / local caches.
        chroma_url: Use a Chroma server (`http://host:port`) instead of the embedded store.
        collection: Chroma collection name.
        seeds_dir: What to index when the index is empty and nothing else was given.
        k: Passages retrieved per question.
        candidates: Passages each side of hybrid retrieval (dense, BM25) proposes before fusion.
        dense_weight: Share of the dense score in the fused score (1.0 = dense only, 0.0 = BM25 only).
        generator: `reader` (default, offline: the trained span reader's exact words and their
            sentence), `extractive` (sentences only), `openai` or `llamacpp`.
        llm_url / llm_model / llm_api_key / llm_timeout: OpenAI-compatible endpoint.
        llm_gguf: A GGUF file served by an embedded llama.cpp server.
        llm_max_tokens: Longest LLM answer, in tokens (ASSISTANT_LLM_MAX_TOKENS).
        max_file_mb: Files larger than this are skipped with a reason.
        max_chars_per_file: Files whose text is longer than this once extracted are skipped with a
            reason: a small compressed file (docx, pdf) can expand to millions of passages.
        parse_memory_mb / parse_step_seconds: Each file is parsed in a worker process limited to
            this much address space, and killed when one step of the parse (a page, a chapter,
            a sheet's rows) takes longer; the file is then skipped with a reason. 0 MB parses
            in the calling process, unbounded.
        max_question_chars: Longer questions are refused with a clear message.
        chunk_tokens / chunk_overlap_tokens: Passage size in word pieces (the model reads 256 at most).
        batch_size: Embedding batch size.
        embed_precision: The embedding variant documents are indexed with: `auto` (the measured
            choice, docs/speed.md), `float32`, `int8` or `int8-u8u8`; questions always use float32.
        cache_dir: Per-user cache (the embedding model's ONNX builds).
        progress: Show progress bars for long runs.
        api_key: `serve` accepts `Authorization: Bearer <api_key>` on `/v1` (ASSISTANT_API_KEY), as
            OpenAI clients send it.
        max_upload_mb: Largest body of one request to the page's upload route, all its files
            together (each file is still held to `max_file_mb`).
        allowed_origins: Web origins besides the server's own (`https://app.example.com`, comma
            separated) whose pages may call the server from a browser (ASSISTANT_ALLOWED_ORIGINS).
        reader_dir: Folder of another reader model (model.onnx, tokenizer.json, config.json, as
            `python -m training.train --out DIR` writes it); default: the shipped one.
        ocr: `auto` reads the pages of a PDF that have no usable text, and pictures, by OCR; `off`
            never; `always` every page of a PDF too (a scan with a bad text layer).
        ocr_language: Tesseract language(s) of the text in pictures (`eng`, `deu`, `eng+fra`; each
            needs its `tesseract-ocr-<lang>` package).
        ocr_max_pages: Most pages OCR reads in one file; the rest are named in a warning.
        ocr_page_seconds: Longest OCR of one page; a slower page is named in a warning.
    """

    index_dir: Path = field(default_factory=_default_index_dir)
    chroma_url: str | None = None
    collection: str = "documents"
    seeds_dir: Path = PROJECT_ROOT / "seeds"
    k: int = 4
    candidates: int = 40  # larger pools did not help on SciFact or SQuAD (see retrieval.py)
    dense_weight: float = 0.6  # beat RRF, min-max and z-score fusion on both (see retrieval.py)
    generator: GeneratorName = "reader"
    llm_url: str | None = None
    llm_model: str = "default"
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    llm_gguf: Path | None = None
    llm_max_tokens: int = 384
    max_file_mb: float = 25.0
    max_chars_per_file: int = 5_000_000
    parse_memory_mb: int = 4096
    parse_step_seconds: float = 120.0
    max_question_chars: int = 2000
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    batch_size: int = 64
    embed_precision: Precision = "auto"
    cache_dir: Path = field(default_factory=_default_cache_dir)
    progress: bool = True
    api_key: str | None = None
    max_upload_mb: float = 100.0
    allowed_origins: str | None = None
    reader_dir: Path | None = None
    ocr: OcrMode = "auto"
    ocr_language: str = "eng"
    ocr_max_pages: int = 100
    ocr_page_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.ocr not in OCR_MODES:
            raise InputError(f"ASSISTANT_OCR must be one of {', '.join(OCR_MODES)}, not {self.ocr!r}.")

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults < `ASSISTANT_<FIELD>` env vars < explicit overrides (None means "not given")."""
        values: dict = {}
        for f in fields(cls):
            raw = os.environ.get(f"ASSISTANT_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw)
        if "llm_api_key" not in values and os.environ.get("OPENAI_API_KEY"):
            values["llm_api_key"] = os.environ["OPENAI_API_KEY"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("index_dir", "seeds_dir", "llm_gguf", "cache_dir", "reader_dir"):
            if isinstance(values.get(name), str):
                values[name] = Path(values[name])
        return cls(**values)

    def with_(self, **changes) -> Settings:
        """A copy with these fields changed; None means "not given" and keeps the field (see `without`)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def without(self, *names: str) -> Settings:
        """A copy with these optional fields cleared (None), e.g. `without("chroma_url")` for the embedded store."""
        optional = {f.name for f in fields(self) if "None" in str(f.type)}
        if unknown := [n for n in names if n not in optional]:
            raise InputError(f"Only optional settings can be cleared, not {', '.join(unknown)}.")
        return replace(self, **dict.fromkeys(names))

    def __repr__(self) -> str:  # never print a secret
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["llm_api_key"]:
            shown["llm_api_key"] = "***"
        if shown["api_key"]:
            shown["api_key"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _coerce(name: str, raw: str):
    default = {f.name: f for f in fields(Settings)}[name].default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise InputError(f"ASSISTANT_{name.upper()} must be a number, not {raw!r}.") from None
    return raw
