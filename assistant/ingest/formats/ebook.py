"""EPUB e-books, read through their standard container: zip + the OPF spine, chapters as XHTML.

No library: the maintained EPUB reader on PyPI (EbookLib) is AGPL-3.0, which users who embed the
assistant could not accept, and an EPUB is only a zip (checked for bombs before this runs) whose
`META-INF/container.xml` names the package file, whose spine lists the chapters in reading order.
The XML is parsed by the standard library with DTDs (and so entities) refused; the chapters go
through the loader's html-to-text. Chapters are separated by a blank line.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from urllib.parse import unquote
from xml.etree import ElementTree

from assistant.errors import DocumentError
from assistant.ingest.limits import step
from assistant.schema import Document, Skipped

_CONTAINER = "META-INF/container.xml"
_XHTML = ("application/xhtml+xml", "text/html")
_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}


class EpubError(DocumentError):
    """Why an EPUB cannot be read, in words for the user."""


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """The chapters' visible text in spine (reading) order.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: More text than this is refused as a possible decompression bomb.
    """
    from assistant.ingest.formats.html import html_to_text

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            chapters = []
            total = 0
            for member in _spine(book):
                step()
                text = html_to_text(book.read(member).decode("utf-8", "replace"))
                total += len(text)
                if total > max_chars:
                    return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
                if text:
                    chapters.append(text)
    except EpubError as exc:
        return Skipped(name, str(exc))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, ElementTree.ParseError):
        return Skipped(name, "not a valid .epub file")
    text = "\n\n".join(chapters)
    return Document(name, text) if text else Skipped(name, "no text in e-book")


class _NoDoctype(ElementTree.TreeBuilder):
    """A tree builder that refuses a document type declaration as soon as the parser meets it.

    Entity expansion is how XML bombs work, and entities are declared in the DTD; the package
    files of an EPUB have none. Refused in the parser, after it decoded the bytes: a byte search
    for `<!ENTITY` missed a package file in UTF-16.
    """

    def doctype(self, name, pubid, system):
        raise EpubError("not a valid .epub file (declares a DTD, which could expand XML entities)")


def _xml(book: zipfile.ZipFile, member: str) -> ElementTree.Element:
    parser = ElementTree.XMLParser(target=_NoDoctype())
    parser.feed(book.read(member))
    return parser.close()


def _spine(book: zipfile.ZipFile) -> list[str]:
    """The archive members of the chapters in reading order."""
    names = set(book.namelist())
    if _CONTAINER not in names:
        raise EpubError("not a valid .epub file (no META-INF/container.xml)")
    rootfile = _xml(book, _CONTAINER).find(".//c:rootfile", _NS)
    opf_path = rootfile.get("full-path") if rootfile is not None else None
    if not opf_path or opf_path not in names:
        raise EpubError("not a valid .epub file (no package document)")
    opf = _xml(book, opf_path)
    base = posixpath.dirname(opf_path)
    manifest = {
        item.get("id"): (posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))).lstrip("/")),
                         item.get("media-type"))
        for item in opf.iterfind("opf:manifest/opf:item", _NS)
    }  # fmt: skip
    members = []
    for ref in opf.iterfind("opf:spine/opf:itemref", _NS):
        href, kind = manifest.get(ref.get("idref"), (None, None))
        if href in names and kind in _XHTML and href not in members:
            members.append(href)
    if encrypted := _encrypted(book, names) & set(members):
        raise EpubError(f"DRM-protected e-book ({len(encrypted)} encrypted chapter(s)); it cannot be read")
    return members


def _encrypted(book: zipfile.ZipFile, names: set[str]) -> set[str]:
    """Members listed in META-INF/encryption.xml (fonts are often obfuscated; chapters only under DRM)."""
    if "META-INF/encryption.xml" not in names:
        return set()
    refs = _xml(book, "META-INF/encryption.xml").iterfind(".//enc:CipherReference", _NS)
    return {unquote(r.get("URI", "")) for r in refs}
