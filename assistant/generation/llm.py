"""LLM generators: any OpenAI-compatible endpoint, or a GGUF file served in-process by llama.cpp.

There is one generation code path. `OpenAIGenerator` talks to an OpenAI-compatible chat endpoint
through LangChain (prompt | llm | parser), with the prompts of `prompts.py`. `LlamaCppGenerator`
starts llama.cpp's own HTTP server on a loopback port (`local_server.py`) and hands that URL to
`OpenAIGenerator`, so a local model and a remote one are prompted, streamed and checked alike.

Every failure a user can cause or meet (server down, timeout, HTTP error, empty output, bad
GGUF path) surfaces as one `GenerationError` whose message names the endpoint and never the key;
`FallbackGenerator` turns it into the extractive answer with a warning.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import GenerationError, redact, redact_url
from assistant.generation.base import Generator
from assistant.generation.local_server import LocalServer, smollm2_gguf_path
from assistant.generation.prompts import (
    ABSTAIN_TEXT,
    answer_inputs,
    answer_messages,
    answer_prompt,
    clean_condensed,
    condense_inputs,
    condense_prompt,
    format_passages,
    is_abstention,
)
from assistant.schema import Draft, Passage

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable

__all__ = [
    "ABSTAIN_TEXT",
    "GenerationError",
    "LlamaCppGenerator",
    "OpenAIGenerator",
    "format_passages",
    "is_abstention",
    "smollm2_gguf_path",
]

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


class OpenAIGenerator(Generator):
    """Answers from passages with a chat model behind an OpenAI-compatible endpoint.

    Args:
        url: Base URL ending in `/v1` (llama.cpp, vLLM, Ollama, ...); None means api.openai.com.
        model: Model name sent with each request.
        api_key: Bearer key; local servers usually need none.
        timeout: Seconds to wait for the server before giving up.
        temperature / max_tokens: Sampling; low temperature keeps answers close to the passages.
        max_retries: Kept low so an unreachable server fails fast instead of backing off.
        llm: A ready LangChain chat model (tests inject fakes); built lazily from the rest if None.
    """

    name = "openai"

    def __init__(
        self,
        url: str | None = None,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 60.0,
        temperature: float = 0.1,
        max_tokens: int = 384,
        *,
        max_retries: int = 1,
        llm: BaseChatModel | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self._llm = llm
        self._answer_chain: Runnable | None = None
        self._condense_chain: Runnable | None = None
        self._lock = threading.RLock()  # the client and chains are built once, however many questions ask

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIGenerator(url={self.endpoint!r}, model={self.model!r})"

    @property
    def endpoint(self) -> str:
        """The URL named in messages: never the key, nor credentials or query values inside the URL."""
        return redact_url(self.url or OPENAI_DEFAULT_URL)

    # -- public API ---------------------------------------------------------------------------

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        """One complete answer with `[n]` markers referring to `passages`."""
        if not passages:
            return Draft(text=ABSTAIN_TEXT, abstained=True)
        with self._translated():
            text = self._chain().invoke(answer_inputs(question, passages))
        return self._draft(text.strip() if isinstance(text, str) else "")

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Draft]:
        """Text deltas as the model produces them (joined they equal the answer text), then the `Draft`."""
        if not passages:
            yield ABSTAIN_TEXT
            yield Draft(text=ABSTAIN_TEXT, abstained=True)
            return
        parts: list[str] = []
        with self._translated():
            for delta in self._chain().stream(answer_inputs(question, passages)):
                if isinstance(delta, str) and delta:
                    parts.append(delta)
                    yield delta
        yield self._draft("".join(parts).strip())

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """Rewrite a follow-up into a standalone question using (user, assistant) turns.

        Retrieval only sees the rewritten question, so "when did he visit?" must name "he". An
        unusable rewrite (empty, too long, an answer instead of a question) gives the question back.
        """
        if not history:
            return question
        with self._translated():
            raw = self._condenser().invoke(condense_inputs(question, history))
        return clean_condensed(raw if isinstance(raw, str) else "", question)

    def messages(self, question: str, passages: list[Passage]) -> list[BaseMessage]:
        """The exact chat messages sent for a question (for tests, debugging and benchmarks)."""
        return answer_messages(question, passages)

    # -- internals ----------------------------------------------------------------------------

    def _draft(self, text: str) -> Draft:
        if not text:
            raise GenerationError(f"The language model at {self.endpoint} returned an empty answer.")
        return Draft(text=text, abstained=is_abstention(text))

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The edge to the LLM client: whatever it raises becomes one clear `GenerationError`."""
        try:
            yield
        except GenerationError:
            raise
        except Exception as exc:  # every client failure becomes one clear error
            raise self._error(exc) from None

    def warm_up(self) -> None:
        """Build the client and chains now (no request is sent); raises `GenerationError` when it cannot be."""
        self._chain()
        self._condenser()

    def _chain(self) -> Runnable:
        with self._lock:
            if self._answer_chain is None:
                from langchain_core.output_parsers import StrOutputParser

                self._answer_chain = answer_prompt() | self._client() | StrOutputParser()
            return self._answer_chain

    def _condenser(self) -> Runnable:
        with self._lock:
            if self._condense_chain is None:
                from langchain_core.output_parsers import StrOutputParser

                self._condense_chain = condense_prompt() | self._client() | StrOutputParser()
            return self._condense_chain

    def _client(self) -> BaseChatModel:
        with self._lock:
            return self._build_client()

    def _build_client(self) -> BaseChatModel:
        if self._llm is None:
            if self.url is None and not self._api_key:
                raise GenerationError(
                    f"No API key for {self.endpoint}: set ASSISTANT_LLM_API_KEY or OPENAI_API_KEY, "
                    "or point ASSISTANT_LLM_URL at a local OpenAI-compatible server."
                )
            try:
                from langchain_openai import ChatOpenAI
            except ImportError as exc:
                raise GenerationError(f"The OpenAI client is not installed ({exc.name}).") from None
            self._llm = ChatOpenAI(
                model=self.model,
                base_url=self.url or OPENAI_DEFAULT_URL,
                # Local servers ignore the key, but the client insists on one.
                api_key=self._api_key or "not-needed",
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                timeout=self.timeout,
                max_retries=self.max_retries,
                stream_usage=False,
            )
        return self._llm

    def _error(self, exc: Exception) -> GenerationError:
        """Translate a client exception into a message a user can act on, without secrets."""
        import openai

        where = self.endpoint
        if "no generation chunks" in str(exc).lower():  # LangChain's word for a stream that produced nothing
            msg = f"The language model at {where} returned an empty answer."
        elif isinstance(exc, openai.APITimeoutError):
            msg = f"The language model at {where} did not answer within {self.timeout:g} s."
        elif isinstance(exc, openai.APIConnectionError):
            msg = f"Could not connect to the language model at {where}. Is the server running?"
        elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            msg = f"The language model at {where} refused the request (HTTP {exc.status_code}); check the API key."
        elif isinstance(exc, openai.NotFoundError):
            msg = (
                f"The language model at {where} answered HTTP 404; check the URL (it usually ends "
                f"in /v1) and the model name {self.model!r}."
            )
        elif isinstance(exc, openai.APIStatusError):
            detail = redact(str(getattr(exc, "message", "") or ""), [self._api_key])[:200]
            msg = f"The language model at {where} answered HTTP {exc.status_code}" + (f": {detail}" if detail else ".")
        else:
            msg = f"The language model at {where} returned an unusable response ({type(exc).__name__})."
        return GenerationError(redact(msg, [self._api_key]))


class LlamaCppGenerator(Generator):
    """Answers with a local GGUF model, served by llama.cpp in this process.

    The server starts on first use (loading the model takes a moment) and stops at exit; all
    prompting and streaming is delegated to `OpenAIGenerator` pointed at its loopback URL.

    Args:
        gguf_path: The model file; its embedded chat template is used.
        n_ctx: Context window in tokens; 4096 fits k passages plus the answer.
        n_threads: CPU threads for prompt processing and generation.
        temperature / max_tokens / timeout: Passed on to `OpenAIGenerator`.
    """

    name = "llamacpp"

    def __init__(
        self,
        gguf_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int = 2,
        temperature: float = 0.1,
        max_tokens: int = 384,
        timeout: float = 120.0,
    ) -> None:
        path = Path(gguf_path).expanduser()
        if not path.is_file():
            raise GenerationError(f"GGUF file not found: {path}")
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise GenerationError(f"Not a GGUF model file: {path}")
        self.gguf_path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._delegate: OpenAIGenerator | None = None
        self._lock = threading.Lock()  # one server start, however many questions ask at once

    def __repr__(self) -> str:
        return f"LlamaCppGenerator(gguf_path={str(self.gguf_path)!r})"

    def start(self) -> str:
        """Load the model and start the server now (instead of on the first question); returns its URL."""
        return self._openai().endpoint

    def warm_up(self) -> None:
        """Load the model and start its server now; raises `GenerationError` when it cannot."""
        self._openai().warm_up()

    def close(self) -> None:
        """Stop this model's server early (it otherwise stops at exit)."""
        with self._lock:
            self._delegate = None
        LocalServer.stop(self.gguf_path, self.n_ctx, self.n_threads)

    @property
    def url(self) -> str | None:
        """The loopback `/v1` URL once the server runs."""
        return self._delegate.endpoint if self._delegate else None

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        return self._openai().generate(question, passages)

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Draft]:
        return self._openai().stream(question, passages)

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        return self._openai().condense(question, history)

    def messages(self, question: str, passages: list[Passage]) -> list[BaseMessage]:
        return answer_messages(question, passages)

    def _openai(self) -> OpenAIGenerator:
        with self._lock:
            if self._delegate is None:
                served = LocalServer.get(self.gguf_path, self.n_ctx, self.n_threads)
                self._delegate = OpenAIGenerator(
                    url=served.base_url,
                    model=served.alias,
                    api_key=None,
                    timeout=self.timeout,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    max_retries=0,
                )
            return self._delegate
