"""The assistant, read top to bottom: question → condense → retrieve → generate → cited answer.

The chain is built from langchain-core runnables; the generator is one swappable step, so an LLM
slots in without touching retrieval, and any LLM failure falls back to the extractive answer
with a warning instead of an error.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

from .citations import build_answer
from .embedding import Embedder
from .schema import Answer, Draft, IndexReport, Passage
from .settings import Settings

History = Sequence[tuple[str, str]] | Sequence[dict]

_FOLLOW_UP = re.compile(
    r"\b(he|him|his|she|her|hers|they|them|their|it|its|this|that|these|those|there|then|"
    r"the same|former|latter|which one|what about|how about|and)\b",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not text, cannot be encoded


def _text(value: str) -> str:
    """A string safe to tokenize and encode: surrogate pairs joined, lone surrogates dropped."""
    if not _SURROGATE.search(value):
        return value
    return _SURROGATE.sub(" ", value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"))


class QuestionError(ValueError):
    """A question that cannot be asked as given; the message says why."""


class Assistant:
    """Question answering over an indexed folder of documents, with cited passages.

    Args:
        settings: Full configuration; defaults to `Settings.from_env()`.
        generator: A generator name (`extractive`, `openai`, `llamacpp`) or an object with
            `generate`/`stream` (see `assistant.generation.Generator`).
        **overrides: Any `Settings` field, e.g. `index_dir=...`, `k=...`, `chroma_url=...`.
    """

    def __init__(self, settings: Settings | None = None, *, generator=None, **overrides):
        if isinstance(generator, str):
            overrides["generator"] = generator
        self.settings = (settings or Settings.from_env()).with_(**overrides)
        self._generator = generator if generator is not None and not isinstance(generator, str) else None
        self._ready = threading.Lock()
        self._checked_empty = False

    # -- parts, built on first use -------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(
            batch_size=self.settings.batch_size,
            cache_dir=self.settings.cache_dir,
            precision=self.settings.embed_precision,
        )

    @cached_property
    def store(self):
        from .store import Store

        return Store(self.settings)

    @cached_property
    def retriever(self):
        from .retrieval import Retriever

        return Retriever(self.store, self.embedder, k=self.settings.k)

    @cached_property
    def indexer(self):
        from .indexing import Indexer

        return Indexer(self.store, self.embedder, self.settings)

    @cached_property
    def extractive(self):
        from .generation.extractive import ExtractiveGenerator

        return ExtractiveGenerator(self.embedder)

    @cached_property
    def generator(self):
        if self._generator is not None:
            return self._generator
        from .generation import create_generator

        return create_generator(self.settings, fallback=self.extractive)

    @cached_property
    def chain(self):
        """question (+history) → standalone query → passages → answer, as LCEL runnables."""
        from langchain_core.runnables import RunnableLambda, RunnablePassthrough

        return (
            RunnablePassthrough.assign(query=RunnableLambda(lambda x: self.condense(x["question"], x["history"])))
            | RunnablePassthrough.assign(passages=RunnableLambda(lambda x: self.retrieve(x["query"])))
            | RunnableLambda(lambda x: self._generate(x["query"], x["passages"]))
        )

    def with_generator(self, generator) -> Assistant:
        """The same index, model and locks, answering with another generator."""
        other = Assistant(self.settings, generator=generator)
        for part in ("embedder", "store", "retriever", "indexer", "extractive"):
            setattr(other, part, getattr(self, part))
        other._ready = self._ready
        return other

    # -- indexing ------------------------------------------------------------------------------
    def index(self, paths: Sequence[str | Path] | None = None) -> IndexReport:
        """Index files and folders (default: the seeds folder); unchanged files cost nothing."""
        return self.indexer.index(list(paths) if paths else [self.settings.seeds_dir])

    def ensure_index(self) -> None:
        """Build the index from the seeds folder the first time it is used empty."""
        if self._checked_empty:  # one count per process, not one per question
            return
        with self._ready:
            if not self._checked_empty and self.store.count() == 0 and Path(self.settings.seeds_dir).is_dir():
                self.index([self.settings.seeds_dir])
            self._checked_empty = True

    def documents(self) -> dict[str, int]:
        """Indexed sources and their chunk counts."""
        return {s: len(r.chunk_ids) for s, r in sorted(self.store.files().items())}

    def remove(self, source: str) -> int:
        """Drop a document from the index; returns how many chunks went with it."""
        with self.indexer._exclusive(wait=True):
            removed = self.store.remove_file(source)
            generation = self.store.bump_generation()
            self.store.keyword.update([], [], removed)
            self.store.keyword.commit(generation)
            return len(removed)

    # -- asking --------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int | None = None) -> list[Passage]:
        return self.retriever.retrieve(query, k)

    def answer(self, question: str, history: History | None = None) -> Answer:
        """Answer from the documents, citing the passages used; declines when they do not say."""
        question = self._begin(question)
        return self.chain.invoke({"question": question, "history": _pairs(history)})

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text as it is produced, then the finished `Answer` as the last item."""
        question = self._begin(question)
        query = self.condense(question, _pairs(history))
        passages = self.retrieve(query)
        generator = self.generator
        if generator is self.extractive or not passages:
            result = self._generate(query, passages)
            yield from re.findall(r"\S+\s*", result.text)
            yield result
            return
        from .citations import MarkerRenumberer
        from .generation.llm import GenerationError, is_abstention

        parts: list[str] = []
        shown = MarkerRenumberer(len(passages))  # the streamed [n] match the final citations
        try:
            for delta in generator.stream(query, passages):
                parts.append(delta)
                if text := shown.feed(delta):
                    yield text
            if text := shown.flush():
                yield text
        except GenerationError as exc:
            result = self._fallback(query, passages, str(exc))
            yield "\n\n" + result.text
            yield result
            return
        text = "".join(parts)
        yield build_answer(Draft(text, abstained=is_abstention(text)), passages, generator=generator.name)

    def _begin(self, question: str) -> str:
        question = self.check(question)
        self.embedder.preload()  # load the question encoder while the index opens
        self.ensure_index()
        return question

    def check(self, question: str) -> str:
        """Clean a question and refuse what cannot be answered, with a reason."""
        if not isinstance(question, str):
            raise QuestionError("The question must be text.")
        question = " ".join(_CONTROL.sub(" ", _text(question)).split())
        if not question:
            raise QuestionError("Please ask a question: the text was empty.")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"The question is too long ({len(question):,} characters; "
                f"the limit is {self.settings.max_question_chars:,})."
            )
        return question

    def condense(self, question: str, history: list[tuple[str, str]]) -> str:
        """A standalone query for a follow-up: the LLM rewrites it, or the last question is carried over."""
        if not history:
            return question
        condense = getattr(self.generator, "condense", None)
        if condense is not None:
            try:
                rewritten = (condense(question, history) or "").strip()
            except Exception:  # the LLM is down: fall through to the heuristic
                rewritten = ""
            # Small models often echo the follow-up unchanged; that resolves nothing, so fall through.
            if rewritten and rewritten.casefold() != question.strip().casefold():
                return rewritten
        last = history[-1][0]
        if _FOLLOW_UP.search(question) or len(question.split()) <= 4:
            return f"{last} {question}"
        return question

    def _generate(self, query: str, passages: list[Passage]) -> Answer:
        generator = self.generator
        if not passages:
            return build_answer(self.extractive.generate(query, passages), passages, generator="extractive")
        if generator is self.extractive:
            return build_answer(generator.generate(query, passages), passages, generator=generator.name)
        from .generation.llm import GenerationError

        try:
            draft = generator.generate(query, passages)
        except GenerationError as exc:
            return self._fallback(query, passages, str(exc))
        return build_answer(draft, passages, generator=generator.name)

    def _fallback(self, query: str, passages: list[Passage], problem: str) -> Answer:
        draft = self.extractive.generate(query, passages)
        warning = f"The language model failed ({problem}); this is the extractive answer instead."
        return build_answer(draft, passages, generator="extractive", warning=warning)


def _pairs(history: History | None) -> list[tuple[str, str]]:
    """Accept (user, assistant) pairs or chat messages ({"role", "content"}) and return pairs."""
    if not history:
        return []
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for item in history:
        if isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
            content = _text(content) if isinstance(content, str) else ""
            if role == "user":
                pending = content
            elif role == "assistant" and pending is not None:
                pairs.append((pending, content))
                pending = None
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((_text(str(item[0] or "")), _text(str(item[1] or ""))))
    if pending is not None:
        pairs.append((pending, ""))
    return pairs


_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    global _default
    with _default_lock:
        if _default is None:
            _default = Assistant()
        return _default


def answer(question: str, *, history: History | None = None) -> Answer:
    """Answer a question from the default index (`./index` or `ASSISTANT_INDEX_DIR`), built from seeds if empty."""
    return default_assistant().answer(question, history=history)
