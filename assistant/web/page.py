"""The chat page: Gradio layout, and the wiring of its events to `ChatHandlers`.

Gradio is imported only inside these functions. The handlers do the work; the wrappers here only
turn their typed results into component updates (`None` becomes `gr.skip()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.ingest.loading import SUPPORTED_SUFFIXES
from assistant.web.handlers import ChatHandlers, ChatView, DocumentsView
from assistant.web.render import render_note, render_sources
from assistant.web.service import Service

EXAMPLES = (
    "Why might Russia not send S-400s?",
    "Who said Russia wouldn't want to antagonise Israel?",
    "Where are Putin and Pezeshkian meeting?",
    "What has Iran been supplying to Russia?",
)


@dataclass
class Widgets:
    """The page's components that events read or write (Gradio components, typed loosely)."""

    turns: object
    chatbot: object
    question: object
    ask: object
    generator: object
    clear: object
    sources: object
    doc_list: object
    to_remove: object
    remove: object
    removed: object
    files: object
    upload: object
    upload_status: object
    scope: object = None  # the documents a question is limited to (shown names)
    examples: object = None  # example questions, drawn from the user's documents once there are any


def build_blocks(service: Service, *, concurrency: int = 2):
    """The chat page: conversation, sources of the current answer, generator choice, documents."""
    import gradio as gr

    with gr.Blocks(
        title="Ask your documents",
        analytics_enabled=False,
        fill_width=True,
        delete_cache=(3600, 3600),  # Gradio's temporary copies of uploads; ours live in index_dir/uploads
    ) as demo:
        turns = gr.State([])
        gr.Markdown("## Ask your documents\nAnswers quote the indexed documents and cite them as [n].")
        _startup_line(demo, service)
        with gr.Tabs():
            chat = _chat_tab(service)
            docs = _documents_tab(service)
        widgets = Widgets(turns=turns, **chat, **docs)
        _wire(demo, widgets, ChatHandlers(service))
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo


def _startup_line(demo, service: Service) -> None:
    """One line saying what the server's start is doing (recovering an interrupted upload), until it is done."""
    import gradio as gr

    line = gr.HTML(elem_id="server-status")
    timer = gr.Timer(2.0, active=False)

    def status():
        state = service.readiness()
        shown = render_note(state.note, muted=not state.failed) if state.note else ""
        return shown, gr.Timer(active=not state.ready)

    demo.load(status, outputs=[line, timer], api_visibility="private", queue=False)
    timer.tick(status, outputs=[line, timer], api_visibility="private", queue=False)


def _chat_tab(service: Service) -> dict:
    import gradio as gr

    with gr.Tab("Chat", id="chat-tab"), gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=380):
            chatbot = gr.Chatbot(
                elem_id="chat",
                label="Conversation",
                height=460,
                render_markdown=False,  # document text is never markup ...
                latex_delimiters=[],  # ... nor math: "$$x$$" in a document stays "$$x$$"
                sanitize_html=True,
                allow_tags=False,
                feedback_options=None,
                group_consecutive_messages=False,
                buttons=["copy", "copy_all"],
            )
            with gr.Row():
                question = gr.Textbox(
                    elem_id="question",
                    placeholder="Ask a question about the documents…",
                    show_label=False,
                    lines=1,
                    max_lines=4,
                    scale=5,
                    autofocus=True,
                )
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            with gr.Row():
                generator = gr.Dropdown(
                    service.generators,
                    value=service.base.settings.generator,
                    label="Generator",
                    interactive=len(service.generators) > 1,
                    scale=2,
                )
                clear = gr.Button("Clear conversation", elem_id="clear", scale=1)
            scope = gr.Dropdown(
                [],
                value=[],
                multiselect=True,
                label="Answer only from these documents (none chosen: all)",
                elem_id="scope",
            )
            examples = gr.Examples([[q] for q in EXAMPLES], inputs=question, label="Example questions")
        with gr.Column(scale=2, min_width=320):
            gr.Markdown("### Sources")
            sources = gr.HTML(render_sources(None), elem_id="sources")
    return {
        "chatbot": chatbot,
        "question": question,
        "ask": ask,
        "generator": generator,
        "clear": clear,
        "sources": sources,
        "scope": scope,
        "examples": examples.dataset,
    }


def _documents_tab(service: Service) -> dict:
    import gradio as gr

    with gr.Tab("Documents", id="docs-tab"), gr.Row(equal_height=False):
        with gr.Column(scale=3):
            doc_list = gr.HTML(elem_id="documents")
            with gr.Row():
                to_remove = gr.Dropdown([], label="Document", scale=3)
                remove = gr.Button("Remove from index", variant="stop", scale=1)
            removed = gr.HTML()
        with gr.Column(scale=2):
            files = gr.File(
                label=f"Upload {' '.join(SUPPORTED_SUFFIXES)} (up to {service.settings.max_file_mb:g} MB each)",
                file_count="multiple",
                file_types=list(SUPPORTED_SUFFIXES),
                type="filepath",
                elem_id="upload",
            )
            upload = gr.Button("Upload and index", variant="primary", elem_id="upload-btn")
            upload_status = gr.HTML(elem_id="upload-status")
    return {
        "doc_list": doc_list,
        "to_remove": to_remove,
        "remove": remove,
        "removed": removed,
        "files": files,
        "upload": upload,
        "upload_status": upload_status,
    }


def _chat_outputs(view: ChatView) -> tuple:
    import gradio as gr

    return view.question, view.messages, gr.skip() if view.sources is None else view.sources, view.turns


def _documents_outputs(view: DocumentsView) -> tuple:
    import gradio as gr

    if view.table is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    samples = [[q] for q in (view.examples or EXAMPLES)]
    return (
        view.table,
        gr.update(choices=view.choices, value=None),
        gr.update(choices=view.choices),
        gr.update(samples=samples),
    )


def _wire(demo, w: Widgets, handlers: ChatHandlers) -> None:
    """Connect the components' events to the handlers (page layout stays in the tab builders)."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    def respond(question: str, turns: list, generator: str, scope: list | None = None):
        for view in handlers.respond(question, turns, generator, scope):
            yield _chat_outputs(view)

    def clear():
        view = handlers.clear()
        return view.messages, view.turns, view.sources, view.question

    def upload(files, progress=gr.Progress()):  # noqa: B008 - Gradio injects progress this way
        folder = Path(get_upload_folder())  # only files this server's upload route wrote are taken
        view = handlers.upload(files, progress, folder=folder, received=demo.upload_file_set)
        return *_documents_outputs(view), view.status, None

    def remove(shown):
        view = handlers.remove(shown)
        return *_documents_outputs(view), view.status

    def documents():
        return _documents_outputs(handlers.documents())

    def ask_api(question: str, history: list | None = None, generator: str | None = None) -> dict:
        """Answer from the documents; returns the JSON of `assistant ask --json` (sources as shown names)."""
        result = handlers.ask(question, history, generator)
        if result.error is not None:
            raise gr.Error(result.error, print_exception=False)
        return result.payload

    chat_io = {
        "fn": respond,
        "inputs": [w.question, w.turns, w.generator, w.scope],
        "outputs": [w.question, w.chatbot, w.sources, w.turns],
        "api_visibility": "private",
    }
    w.question.submit(**chat_io)
    w.ask.click(**chat_io)
    cleared = [w.chatbot, w.turns, w.sources, w.question]
    w.clear.click(clear, outputs=cleared, api_visibility="private", queue=False)
    w.chatbot.clear(clear, outputs=cleared, api_visibility="private", queue=False)
    index_io = {"concurrency_limit": 1, "concurrency_id": "index", "api_visibility": "private"}
    listed = [w.doc_list, w.to_remove, w.scope, w.examples]
    w.upload.click(upload, inputs=w.files, outputs=[*listed, w.upload_status, w.files], **index_io)
    w.remove.click(remove, inputs=w.to_remove, outputs=[*listed, w.removed], **index_io)
    demo.load(documents, outputs=listed, api_visibility="private")
    gr.api(ask_api, api_name="ask")
