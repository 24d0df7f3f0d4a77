"""Files uploaded through the chat page: safe names, no silent overwrites, only real uploads.

Gradio-free: the web layer passes in Gradio's upload folder and the paths its upload route wrote.
A logged-in client can send an upload event that names any path on the server (or a URL)
instead of a file it uploaded; `check_upload_source` and `UploadGuard` refuse those, so a
document on the host can never be indexed and read back through the chat.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from assistant.errors import UploadError
from assistant.ingest.loading import SUPPORTED_SUFFIXES
from assistant.settings import MB

PARTIAL_PREFIX = ".upload-"  # a copy in progress; a kill leaves it behind
_MAX_VARIANTS = 1000

logger = logging.getLogger(__name__)


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: no directories, `..`, control or markup characters."""
    name = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format, unassigned
    name = re.sub(r"[^\w.\- ()]+", "_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" ._")
    suffix = Path(name).suffix.lower()
    stem = name[: len(name) - len(suffix)] if suffix else name
    stem = stem.strip(" ._")[:100] or "upload"
    return stem + suffix


def check_upload_source(path: str | Path, folder: str | Path, received: Collection[str] | None = None) -> Path:
    """The uploaded file at `path`, or `UploadError` if it is not one this server received.

    Args:
        path: What the upload event names as the uploaded file.
        folder: Gradio's upload folder for this server: only files inside it were uploaded.
        received: The paths the upload route wrote, when known; a file that merely sits in the
            folder (another Gradio app on the machine shares it) is refused too.

    The path must be a regular file (not a link) whose real location, links resolved, is
    inside `folder`. URLs are refused: uploads come from the client, never from elsewhere.
    """
    text = str(path)
    refused = UploadError(f"{safe_name(Path(text).name)}: refused: not a file uploaded to this server.")
    if "://" in text or "\x00" in text:
        raise refused
    given = Path(os.path.abspath(text))
    if not any(given.is_relative_to(f) for f in (Path(os.path.abspath(folder)), Path(folder).resolve())):
        raise refused  # decided from the text alone: nothing outside the folder is even looked at
    try:
        root = Path(folder).resolve(strict=True)
        real = given.resolve(strict=True)
        info = given.lstat()
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    if not stat.S_ISREG(info.st_mode) or real == root or not real.is_relative_to(root):
        raise refused
    if received is not None and text not in received and str(given) not in received:
        raise refused
    return real


def save_upload(path: str | Path, original_name: str, folder: Path, *, max_mb: float) -> Path:
    """Copy an uploaded file into `folder` under a safe name; refuse unsupported types and big files.

    A different file already stored under the same name is kept: the new one becomes
    `name (2).txt`. The same content under the same name is stored once.
    """
    name = safe_name(original_name)
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "no extension"
        raise UploadError(f"{name}: unsupported file type ({shown}); upload {', '.join(SUPPORTED_SUFFIXES)} files.")
    size = Path(path).stat().st_size
    if size > max_mb * MB:
        raise UploadError(f"{name}: file too large ({size / 1e6:.1f} MB > limit {max_mb:g} MB).")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, name, Path(path))
    if target.resolve().parent != folder.resolve():  # belt and braces: safe_name already forbids this
        raise UploadError(f"{name}: not a valid file name.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=PARTIAL_PREFIX, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)  # replaces a symlink itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _free_name(folder: Path, name: str, source: Path) -> Path:
    """`name` in `folder`, or `stem (n).suffix` when another file already has it."""
    suffix = Path(name).suffix
    stem = name[: len(name) - len(suffix)]
    for n in range(1, _MAX_VARIANTS + 1):
        candidate = folder / (name if n == 1 else f"{stem} ({n}){suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
        if candidate.is_file() and not candidate.is_symlink() and filecmp.cmp(candidate, source, shallow=False):
            return candidate
    raise UploadError(f"{name}: too many uploads with this name; rename the file.")


def remove_partial_uploads(folder: Path) -> list[str]:
    """Delete the copies a killed upload left behind (`.upload-*`); returns their names."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(PARTIAL_PREFIX) and not entry.is_dir():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


# -- the HTTP guard ------------------------------------------------------------------------------
_HASH_REF = re.compile(r"^[0-9a-f]{32,128}/[^/\\]+$")  # `<hash>/<name>`: how clients name an uploaded file
_EVENT_LIMIT = MB


class UploadGuard:
    """ASGI middleware over Gradio's routes: uploads are named without server paths, and only uploads.

    Gradio copies a file an event names into its cache before the event handler runs, and an app
    mounted with `gr.mount_gradio_app` skips Gradio's own check, so a crafted event could make
    the server copy any file it can read: every POST under `prefix` (except the upload route
    itself) whose JSON body holds a `{"path": ...}` outside `folder` gets 403 and `{"error": ...}`.
    An event for a function the page does not have gets 422 (Gradio answered a bare 500).

    Gradio's upload route answers with the files' paths on the server (`/tmp/gradio/<hash>/a.txt`);
    clients get `<hash>/a.txt` instead, and the guard puts the folder back in front of such a
    name in events and in `file=` links, so the folder never leaves the server.

    Args:
        app: The ASGI app to guard.
        folder: Gradio's upload folder for this server.
        prefix: Where Gradio's API routes live.
        known_event: `(session_hash, fn_index) -> bool`: whether the page has that function; None: not checked.
        known_api: `api_name -> bool`, for `run/<name>` and `call/<name>`; None: not checked.
        limit: Largest event body read (bytes); `RequestGuard` caps it too, before anything is read.
    """

    def __init__(
        self,
        app,
        folder: str | Path,
        prefix: str = "/gradio_api/",
        known_event: Callable[[str | None, int], bool] | None = None,
        known_api: Callable[[str], bool] | None = None,
        limit: int = _EVENT_LIMIT,
    ):
        self.app = app
        self.folder = Path(folder)
        self._root = os.path.abspath(folder).rstrip("/") + "/"
        self.prefix = prefix
        self.known_event = known_event
        self.known_api = known_api
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        if method in ("GET", "HEAD") and path.startswith(self.prefix + "file="):
            await self.app(self._file_scope(scope), receive, send)
        elif method != "POST":
            await self.app(scope, receive, send)
        elif path.rstrip("/") == self.prefix + "upload":  # multipart file bodies, never a path
            await self.app(scope, receive, _ShownPaths(send, self.shown).send)
        else:
            await self._event(scope, receive, send)

    async def _event(self, scope, receive, send) -> None:
        from assistant.web.guard import BodyIncomplete, BodyTooLarge, read_body, replay, with_header

        path = scope.get("path", "")
        try:
            body = await read_body(receive, self.limit)
        except BodyIncomplete:
            return  # nobody to answer, or `RequestGuard` already answered 413
        except BodyTooLarge as exc:
            refusal = (413, str(exc))
        else:
            refusal = None
            try:
                data = json.loads(body)
            except RecursionError:
                refusal = (400, "The request body is nested too deeply.")
            except ValueError:  # not JSON (UnicodeDecodeError included): Gradio refuses it on its own
                data = None
            if refusal is None and data is not None:
                refusal, rewritten = self.judge(data, path)
                if rewritten is not None:
                    body = rewritten
                    scope = with_header(scope, b"content-length", str(len(body)).encode())
        if refusal is not None:
            status, problem = refusal
            logger.warning("refused %s: %s", path, problem)
            await _json(send, status, {"error": problem})
            return
        await self.app(scope, replay(body, receive), send)

    def judge(self, data, path: str = "") -> tuple[tuple[int, str] | None, bytes | None]:
        """((HTTP status, reason) to refuse with, or None; the body to pass on when names were put back)."""
        rewritten = self._restore_paths(data)
        for named in _file_paths(data):
            try:
                check_upload_source(named, self.folder)
            except UploadError as exc:
                return (403, str(exc)), None
        if self.known_event is not None and isinstance(data, dict) and not self._known(data, path):
            return (422, "This page has no such event: reload the page."), None
        return None, json.dumps(data).encode() if rewritten else None

    def _known(self, data: dict, path: str) -> bool:
        """Whether the page has the function an event names, by `fn_index` or by the route's API name."""
        fn, session = data.get("fn_index"), data.get("session_hash")
        session = session if isinstance(session, str) else None
        if fn is not None:
            return isinstance(fn, int) and not isinstance(fn, bool) and self.known_event(session, fn)
        route = path[len(self.prefix) :].strip("/").split("/")
        if len(route) == 2 and route[0] in ("run", "call") and route[1] != "predict":
            return self.known_api is None or self.known_api(route[1])
        return True

    def refusal(self, body: bytes) -> tuple[int, str] | None:
        """(HTTP status, reason) when a request body must be refused; None to let it through."""
        try:
            data = json.loads(body)
        except RecursionError:
            return 400, "The request body is nested too deeply."
        except ValueError:
            return None
        return self.judge(data)[0]

    def shown(self, path: str) -> str:
        """What a client sees of a file Gradio's upload route wrote: `<hash>/<name>`, never the folder."""
        return path[len(self._root) :] if path.startswith(self._root) else Path(path).name

    def _restore(self, name: str) -> str:
        return self._root + name if _HASH_REF.match(name) else name

    def _restore_paths(self, data) -> bool:
        """Put the folder back in front of every `<hash>/<name>` file reference (in place); True if any."""
        changed = False
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("path"), str) and item["path"] != (full := self._restore(item["path"])):
                    item["path"], changed = full, True
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return changed

    def _file_scope(self, scope) -> dict:
        """A `file=<hash>/<name>` link made whole again for Gradio's file route."""
        from urllib.parse import quote

        head = self.prefix + "file="
        name = scope["path"][len(head) :]
        full = self._restore(name)
        if full == name:
            return scope
        path = head + full
        return {**scope, "path": path, "raw_path": quote(path).encode("ascii")}


class _ShownPaths:
    """The upload route's answer (a JSON list of server paths) with each path as the client may see it."""

    def __init__(self, send, shown: Callable[[str], str]):
        self._send, self._shown = send, shown
        self._start: dict | None = None
        self._body = bytearray()

    async def send(self, message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._body += message.get("body", b"")
        if message.get("more_body"):
            return
        body = bytes(self._body)
        if self._start["status"] == 200:
            try:
                paths = json.loads(body)
            except ValueError:
                paths = None
            if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
                body = json.dumps([self._shown(p) for p in paths]).encode()
        headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
        await self._send({**self._start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "http.response.body", "body": body})


def _file_paths(data) -> Iterator[str]:
    """The `path` of every file reference (`{"path": ..., ...}`) anywhere in a JSON value."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("path"), str):
                yield item["path"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def _json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
