"""The `assistant` command: index, ask, serve, eval, feedback.

Heavy parts are imported inside each command, so `assistant ask` never loads the web UI and
`--help` is instant. Errors a user can cause are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.settings import GENERATORS, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Ask questions of your documents; answers cite their passages."
    )
    _global_flags(parser, argparse.SUPPRESS)
    # The same flags after the subcommand (`assistant ask "q" --index-dir X`): a parent parser whose
    # defaults are suppressed, so a flag given before the subcommand is not reset by it.
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    add = lambda name, **kw: sub.add_parser(name, parents=[common], **kw)  # noqa: E731

    p = add("index", help="index files and folders (default: seeds/)")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-file-mb", type=float, help="skip files larger than this (default 25)")
    p.add_argument("--no-wait", action="store_true", help="fail instead of waiting for another indexing run")

    p = add("ask", help="answer a question from the index")
    p.add_argument("question", help="the question; - reads it from standard input")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--stream", action="store_true", help="print the answer as it is produced")
    p.add_argument("-k", "--k", type=int, help="passages to retrieve (default 4)")
    p.add_argument(
        "--source", action="append", metavar="NAME", help="answer from this document only (a file name); repeatable"
    )
    _generator_flags(p)

    p = add("serve", help="the chat page and JSON API")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="USER:PASS required to use the page (ASSISTANT_AUTH)")
    p.add_argument("--insecure", action="store_true", help="allow binding a public address without --auth")
    _generator_flags(p)

    p = add("eval", help="measure retrieval (BEIR folder) or answers (QA folder)")
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, help="evaluate a deterministic sample of this many questions")
    p.add_argument("-k", "--k", type=int, help="passages to retrieve")

    p = add("feedback", help="the thumbs up/down given on the chat page, with question, answer and citations")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    return parser


def _global_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=default,
        help="index folder (default: ASSISTANT_INDEX_DIR, else index/ in the project folder)",
    )
    parser.add_argument(
        "--chroma-url",
        default=default,
        help="use a Chroma server, e.g. http://127.0.0.1:8000 (ASSISTANT_CHROMA_URL)",
    )
    parser.add_argument("--collection", default=default, help="Chroma collection name (default: documents)")


def _generator_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", choices=GENERATORS, help="(ASSISTANT_GENERATOR)")
    p.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--llm-model", help="model name for --llm-url")
    p.add_argument("--llm-gguf", type=Path, help="a local GGUF file for --generator llamacpp")
    p.add_argument("--llm-timeout", type=float, help="seconds before the LLM is given up on")


def settings_from(args: argparse.Namespace) -> Settings:
    keys = (
        "index_dir",
        "chroma_url",
        "collection",
        "max_file_mb",
        "k",
        "generator",
        "llm_url",
        "llm_model",
        "llm_gguf",
        "llm_timeout",
    )
    return Settings.from_env(**{k: getattr(args, k, None) for k in keys})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args, settings_from(args))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for the user; details only with ASSISTANT_DEBUG=1
        from assistant.errors import describe

        print(f"error: {describe(exc)}", file=sys.stderr)
        if _debug():
            raise
        return 1


def _index(args, settings: Settings) -> int:
    from assistant.pipeline import Assistant

    assistant = Assistant(settings)
    report = assistant.indexer.index(args.paths or [settings.seeds_dir], wait=not args.no_wait)
    if args.json:
        records = [r.to_dict() for r in assistant.records().values()]  # title, authors, date, outline, overview
        print(json.dumps(report.to_dict() | {"documents": records}, ensure_ascii=False))
    else:
        print(
            f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.removed} removed; {report.chunks} chunks in {assistant.store.location}"
            + (f" ({report.ocr_pages} pages read by OCR)" if report.ocr_pages else "")
        )
        for s in report.skipped:
            print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
        for w in report.warnings:
            print(f"warning {w.path}: {w.reason}", file=sys.stderr)
    return 0


def _ask(args, settings: Settings) -> int:
    from assistant.pipeline import Assistant

    assistant = Assistant(settings)
    if args.question == "-":  # long questions do not fit in a command line (128 KiB on Linux)
        args.question = sys.stdin.read()
    if args.stream and not args.json:
        result, shown = None, []
        for item in assistant.stream(args.question, sources=args.source):
            if isinstance(item, str):
                print(item, end="", flush=True)
                shown.append(item)
            else:
                result = item
        print()
        if result is not None:
            if "".join(shown).strip() != result.text:  # the check moved markers: the sources follow this text
                print(f"\nChecked against the sources: {result.text}")
            print(result.footer())
        return 0
    result = assistant.answer(args.question, sources=args.source)
    print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else str(result))
    return 0


def _serve(args, settings: Settings) -> int:
    from assistant.web.server import serve

    return serve(settings, host=args.host, port=args.port, auth=args.auth, insecure=args.insecure)


def _eval(args, settings: Settings) -> int:
    from assistant.evaluation.squad import evaluate

    figures = evaluate(args.path, settings, limit=args.limit, k=args.k)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    return 0


def _feedback(args, settings: Settings) -> int:
    from assistant.web.conversations import FILE_NAME, ConversationStore

    path = Path(settings.index_dir) / FILE_NAME
    records = ConversationStore(path).feedback() if path.exists() else []
    for r in records:
        if args.json:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
        else:
            print(f"{'👍' if r.rating > 0 else '👎'} {r.question}\n    {r.answer.get('answer', '')}")
    if not args.json:
        print(f"{len(records)} rated answer(s) in {path}", file=sys.stderr)
    return 0


def _debug() -> bool:
    import os

    return os.environ.get("ASSISTANT_DEBUG") == "1"


_COMMANDS = {"index": _index, "ask": _ask, "serve": _serve, "eval": _eval, "feedback": _feedback}


if __name__ == "__main__":
    sys.exit(main())
