"""E-mail messages (.eml) through the standard library's `email` package.

The text is the message's subject, sender, recipients and date, its body (plain text preferred,
else the html part's visible text), then each plain-text attachment under its file name.

Why the compat32 policy: the default policy parses every header of every part into objects (and
makes a class per header), about a millisecond a part; a 2.6 MB message of 25,000 tiny parts took
42 s. compat32 keeps headers as strings, 20 times faster; the five headers shown are decoded here.
"""

from __future__ import annotations

from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser

from assistant.ingest.limits import step
from assistant.schema import Document, Skipped

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_TEXT_ATTACHMENTS = ("text/plain", "text/markdown", "text/csv")


class _Part(EmailMessage):
    """`EmailMessage`'s body and attachment finding over compat32's plain-string headers."""

    def is_attachment(self) -> bool:
        return self.get_content_disposition() == "attachment"


_POLICY = policy.compat32.clone(message_factory=_Part)


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Headers, body and plain-text attachments of one message.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: More text than this is refused (a small message can carry big encoded parts).
    """
    try:
        message = BytesParser(policy=_POLICY).parsebytes(data)
        headers = [f"{h}: {_header(message, h)}" for h in _HEADERS if _header(message, h)]
        if not any(h.startswith(("Subject", "From", "Date")) for h in headers):
            return Skipped(name, "not an e-mail message (no Subject, From or Date header)")
        blocks = ["\n".join(headers)]
        if body := _body(message):
            blocks.append(body)
        size = sum(map(len, blocks))
        for part in message.iter_attachments():
            step()
            if part.get_content_type() in _TEXT_ATTACHMENTS and (text := _content(part)):
                blocks.append(f"Attachment: {_decoded(part.get_filename()) or 'unnamed'}\n\n{text}")
                size += len(blocks[-1])
            if size > max_chars:
                return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    except Exception:  # the parser is lenient; what still fails is not a message
        return Skipped(name, "not a valid e-mail message")
    return Document(name, "\n\n".join(blocks))


def _header(message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header
        return ""
    return _decoded(value)


def _decoded(value) -> str:
    """A header value with its encoded words (`=?utf-8?q?Caf=C3=A9?=`) decoded, whitespace collapsed."""
    if not value:
        return ""
    try:
        value = str(make_header(decode_header(str(value))))
    except Exception:  # an unknown charset or a broken encoded word: keep the raw text
        value = str(value)
    return " ".join(value.split())


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
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        content = payload.decode(charset, "replace")
    except LookupError:  # an unknown charset
        content = payload.decode("utf-8", "replace")
    return content.strip()
