"""What a file that should be an Office Open XML zip is when it is not: password-protected or old binary.

An OOXML file saved with a password is not a zip at all but an OLE compound file holding the
encrypted package (`EncryptionInfo`, `EncryptedPackage`); an old .xls/.ppt renamed is OLE too.
"""

from __future__ import annotations

import io

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def not_ooxml(data: bytes, kind: str) -> str | None:
    """The reason an OLE file named as an OOXML `kind` (".xlsx", ".pptx") cannot be read; None if not OLE."""
    if not data.startswith(_OLE_MAGIC):
        return None
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            encrypted = ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage")
    except Exception:
        return f"not a valid {kind} file"
    if encrypted:
        return "password-protected (encrypted); save it without a password to index it"
    return f"an old binary Office file, not {kind}; save it as {kind} to index it"
