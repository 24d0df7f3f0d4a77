"""E-mail messages (.eml) through the standard library's `email` package.

The text is the message's subject, sender, recipients and date, its body (plain text preferred,
else the html part's visible text), then each plain-text attachment under its file name.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from assistant.schema import Document, Skipped

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_TEXT_ATTACHMENTS = ("text/plain", "text/markdown", "text/csv")


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Headers, body and plain-text attachments of one message.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: More text than this is refused (a small message can carry big encoded parts).
    """
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        headers = [f"{h}: {_header(message, h)}" for h in _HEADERS if _header(message, h)]
        if not any(h.startswith(("Subject", "From", "Date")) for h in headers):
            return Skipped(name, "not an e-mail message (no Subject, From or Date header)")
        blocks = ["\n".join(headers)]
        if body := _body(message):
            blocks.append(body)
        for part in message.iter_attachments():
            if part.get_content_type() in _TEXT_ATTACHMENTS and (text := _content(part)):
                blocks.append(f"Attachment: {part.get_filename() or 'unnamed'}\n\n{text}")
            if sum(map(len, blocks)) > max_chars:
                return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    except Exception:  # the parser is lenient; what still fails is not a message
        return Skipped(name, "not a valid e-mail message")
    return Document(name, "\n\n".join(blocks))


def _header(message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header the policy cannot parse
        return ""
    return " ".join(str(value).split()) if value else ""


def _body(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _content(part)
    if part.get_content_type() == "text/html":
        from assistant.ingest.formats.html import html_to_text

        text = html_to_text(text)
    return text


def _content(part) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        content = part.get_payload(decode=True) or b""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return content.strip() if isinstance(content, str) else ""
