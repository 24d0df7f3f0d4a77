"""An OpenAI-compatible chat endpoint on the assistant's server: `GET /v1/models`, `POST /v1/chat/completions`.

OpenAI clients (the `openai` package, LangChain's `ChatOpenAI`, most chat front ends) can then talk
to the assistant unchanged. The reply's `content` is the answer with its `[n]` markers; the cited
passages travel in an extra top-level `citations` field (the objects of `/api/ask`), which clients
that do not know it ignore. A declined question is a normal answer. Token counts are estimates
(about four characters per token): the extractive generator has no tokenizer of its own.

Errors have OpenAI's shape, `{"error": {"message", "type", "code"}}`, never a stack trace.
Gradio-free: the routes are plain Starlette routes added to the FastAPI app by `build_app`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from assistant.documents import source_names
from assistant.errors import InputError, QuestionError, SourceError
from assistant.schema import Answer
from assistant.web.checks import BodyError, basic_auth_ok, read_json
from assistant.web.service import public_error

logger = logging.getLogger(__name__)

MODEL = "assistant"  # the model name that means "the server's default generator"
_MAX_BODY = 256 * 1024  # a whole conversation, as OpenAI clients send it every turn
_MAX_HISTORY_MESSAGES = 40  # only recent turns matter for a follow-up
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_CHARS_PER_TOKEN = 4


class OpenAIError(InputError):
    """A request refused before it reaches the assistant; `status`, `kind` and `code` go to the client."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code


@dataclass(frozen=True)
class ChatRequest:
    """A checked `/v1/chat/completions` body: the question, the earlier turns, the generator, streaming."""

    question: str
    history: list[dict]
    model: str
    generator: str | None
    stream: bool
    include_usage: bool
    sources: list[str] | None = None  # document names the answer is limited to (an extra field)


def openai_routes(service, *, auth: tuple[str, str] | None = None, api_key: str | None = None) -> list[Route]:
    """The `/v1` routes over a `Service`, protected like the rest of the server.

    Args:
        service: The web service (`Service.assistant(generator)` answers, `Service.public` shows citations).
        auth: USER:PASS of `--auth`: HTTP Basic with these credentials is accepted.
        api_key: `ASSISTANT_API_KEY`: `Authorization: Bearer <key>` is accepted, as OpenAI clients send.
            With neither, `/v1` is as open as the page.
    """
    allowed = _authorizer(auth, api_key)

    async def models(request: Request) -> Response:
        if not allowed(request.headers.get("authorization", "")):
            return _unauthorized()
        names = [MODEL, *service.generators]
        return JSONResponse({"object": "list", "data": [_model(n) for n in names]})

    async def completions(request: Request) -> Response:
        if not allowed(request.headers.get("authorization", "")):
            return _unauthorized()
        try:
            chat = parse_chat(await _read_json(request), service.generators)
            assistant = service.assistant(chat.generator)
            question = assistant.check(chat.question)
            scope = await run_in_threadpool(service.scope, chat.sources)
        except OpenAIError as exc:
            return error(exc)
        except SourceError as exc:
            return error(OpenAIError(422, str(exc), code="sources"))
        except (QuestionError, ValueError) as exc:
            return error(OpenAIError(400, str(exc)))
        if chat.stream:
            return await _stream(service, assistant, question, chat, scope)
        try:  # answering and naming the sources read the store: off the event loop
            answer = await run_in_threadpool(assistant.answer, question, chat.history, scope)
            public = await run_in_threadpool(service.public, answer)
        except QuestionError as exc:
            return error(OpenAIError(400, str(exc)))
        except Exception as exc:
            return error(OpenAIError(500, public_error(exc), "server_error"))
        return JSONResponse(completion(public, answer, chat))

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
    ]


def error(exc: OpenAIError) -> JSONResponse:
    """OpenAI's error body; one line in the log (none for a missing password)."""
    if exc.status != 401:
        logger.warning("/v1 answered %d: %s", exc.status, exc)
    body = {"error": {"message": str(exc), "type": exc.kind, "param": None, "code": exc.code}}
    headers = {"WWW-Authenticate": 'Basic realm="assistant"'} if exc.status == 401 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _unauthorized() -> JSONResponse:
    message = "Authentication required: HTTP Basic (--auth) or Authorization: Bearer <ASSISTANT_API_KEY>."
    return error(OpenAIError(401, message, "authentication_error", "invalid_api_key"))


def _authorizer(auth: tuple[str, str] | None, api_key: str | None) -> Callable[[str], bool]:
    def allowed(header: str) -> bool:
        if auth is None and not api_key:
            return True
        scheme, _, value = header.partition(" ")
        if api_key and scheme.lower() == "bearer":
            return secrets.compare_digest(value.strip().encode(), api_key.encode())
        return auth is not None and basic_auth_ok(header, auth)

    return allowed


async def _read_json(request: Request):
    try:
        return await read_json(request, limit=_MAX_BODY)
    except BodyError as exc:
        messages = {415: 'Send JSON with "Content-Type: application/json".', 400: "The body must be JSON."}
        raise OpenAIError(exc.status, messages.get(exc.status, str(exc))) from None


# -- the request -----------------------------------------------------------------------------------
def parse_chat(body, generators: list[str]) -> ChatRequest:
    """Check a chat completions body: the last message is the user's question, the earlier turns its history.

    Raises:
        OpenAIError: 422 for a malformed body, 404 for a model that is neither `assistant` nor a generator.
    """
    if not isinstance(body, dict):
        raise OpenAIError(422, 'The body must be a JSON object with "messages".')
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(422, '"messages" must be a non-empty list of {"role", "content"} messages.', code="messages")
    turns = [_message(m) for m in messages]
    if turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise OpenAIError(422, 'The last message must be the user\'s question (role "user", non-empty content).')
    history = [t for t in turns[:-1] if t["role"] in ("user", "assistant")][-_MAX_HISTORY_MESSAGES:]
    model = body.get("model", MODEL)
    if not isinstance(model, str):
        raise OpenAIError(422, '"model" must be text.')
    if model != MODEL and model not in generators:
        known = ", ".join([MODEL, *generators])
        message = f"The model {model[:80]!r} does not exist; choose one of {known}."
        raise OpenAIError(404, message, code="model_not_found")
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise OpenAIError(422, '"stream" must be true or false and "stream_options" an object.')
    generator = None if model == MODEL else model
    try:
        sources = source_names(body.get("sources"))
    except ValueError as exc:
        raise OpenAIError(422, str(exc), code="sources") from None
    usage = options.get("include_usage") is True
    return ChatRequest(turns[-1]["content"], history, model, generator, stream, usage, sources)


def _message(message) -> dict:
    """A message as {"role", "content": text}; content parts of type "text" are joined, others refused."""
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise OpenAIError(422, f'Each message needs a "role" ({", ".join(_ROLES[:4])}) and "content".')
    content = message.get("content")
    if content is None and message["role"] != "user":
        content = ""
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise OpenAIError(422, 'Only text content parts ({"type": "text", "text": ...}) are supported.')
        content = "\n".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise OpenAIError(422, 'Each message\'s "content" must be text.')
    return {"role": message["role"], "content": content}


# -- the response ----------------------------------------------------------------------------------
def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "assistant"}


def _tokens(text: str) -> int:
    return max(1, round(len(text) / _CHARS_PER_TOKEN)) if text else 0


def usage(chat: ChatRequest, answer_text: str) -> dict:
    """Estimated token counts (about four characters per token)."""
    prompt = _tokens(chat.question) + sum(_tokens(t["content"]) for t in chat.history)
    completion_tokens = _tokens(answer_text)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def _extras(public: dict) -> dict:
    """What the assistant adds to OpenAI's shape: the citations, whether it declined, the LLM warning."""
    return {k: public[k] for k in ("short", "citations", "unsupported", "abstained", "generator", "warning")}


def completion(public: dict, answer: Answer, chat: ChatRequest) -> dict:
    """A `chat.completion` object for a finished answer (`public`: its `Service.public` JSON)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(chat, answer.text),
        **_extras(public),
    }


async def _stream(service, assistant, question: str, chat: ChatRequest, scope: list[str] | None = None) -> Response:
    """Server-sent `chat.completion.chunk` events: the role, text deltas, a last chunk with the
    citations, the usage when asked for, then `data: [DONE]`. A failure before the first delta is
    an ordinary error response; one after it is an `error` event (the status was already sent)."""
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

    items = iterate_in_threadpool(assistant.stream(question, chat.history, scope))
    try:
        first = await items.__anext__()
    except QuestionError as exc:
        return error(OpenAIError(400, str(exc)))
    except Exception as exc:
        return error(OpenAIError(500, public_error(exc), "server_error"))
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": chat.model,
                "choices": [choice], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        sent = ""
        try:
            item = first
            while True:
                if isinstance(item, str):
                    sent += item
                    yield chunk({"content": item})
                else:
                    yield _last(chunk, item, sent, await run_in_threadpool(service.public, item))
                    if chat.include_usage:
                        body = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                "model": chat.model, "choices": [], "usage": usage(chat, item.text)}  # fmt: skip
                        yield f"data: {json.dumps(body)}\n\n"
                    break
                item = await items.__anext__()
        except StopAsyncIteration:
            pass
        except Exception as exc:  # the status line is gone: say it in the stream, in OpenAI's shape
            message = public_error(exc)
            logger.warning("/v1 stream ended with an error: %s", message)
            yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error', 'code': None}})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _last(chunk: Callable[..., str], answer: Answer, sent: str, public: dict) -> str:
    """The finishing chunk: what the finished text adds to what was streamed, and the citations.

    Finishing checks the draft's markers; when the finished text is not a continuation of the
    streamed one, it travels whole in `answer` so a client can replace what it showed.
    """
    extra = _extras(public)
    rest = answer.text[len(sent) :] if answer.text.startswith(sent) else ""
    if not answer.text.startswith(sent):
        extra["answer"] = answer.text
    return chunk({"content": rest} if rest else {}, "stop", **extra)
