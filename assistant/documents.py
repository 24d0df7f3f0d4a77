"""Naming documents: which indexed sources a user's names mean, for questions limited to some documents."""

from __future__ import annotations

from pathlib import PurePosixPath

from assistant.errors import SourceError

__all__ = ["resolve_sources", "source_names"]


def resolve_sources(names: list[str], indexed: list[str]) -> list[str]:
    """The indexed sources meant by `names`: a source exactly, or the end of its path (`paper.pdf`,
    `docs/paper.pdf`), as the chat page and the API show documents.

    Raises:
        SourceError: A name matches no indexed document, or more than one.
    """
    out: list[str] = []
    for raw in names:
        name = str(raw).strip().strip("/")
        if not name:
            raise SourceError("A document name to limit the question to is empty.")
        if str(raw) in indexed:
            out.append(str(raw))
            continue
        tail = PurePosixPath(name).parts
        found = [s for s in indexed if PurePosixPath(s).parts[-len(tail) :] == tail]
        if not found:
            shown = ", ".join(sorted(PurePosixPath(s).name for s in indexed)[:10]) or "none"
            raise SourceError(f"No indexed document is named {name!r} (indexed: {shown}).")
        if len(found) > 1:
            shown = ", ".join(sorted(found)[:5])
            raise SourceError(f"{name!r} names several documents ({shown}); give more of its path.")
        out.append(found[0])
    return list(dict.fromkeys(out))


def source_names(raw) -> list[str] | None:
    """A request's `sources` field checked: absent or null (every document) or a list of document names.

    Raises:
        SourceError: Anything else, saying what is expected.
    """
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(n, str) and n.strip() for n in raw) or len(raw) > 100:
        raise SourceError('"sources" must be a list of document names (at most 100), e.g. ["paper.pdf"].')
    return list(raw) or None
