"""The chat page: Gradio layout, and the wiring of its events to `ChatHandlers`.

Gradio is imported only inside these functions. The handlers do the work; the wrappers here only
turn their typed results into component updates (`None` becomes `gr.skip()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.loading import SUPPORTED_SUFFIXES
from assistant.web.handlers import LOCAL_USER, ChatHandlers, ChatView, DocumentsView
from assistant.web.render import render_note, render_sources
from assistant.web.service import Service, Turn, public_error

EXAMPLES = (
    "Why might Russia not send S-400s?",
    "Who said Russia wouldn't want to antagonise Israel?",
    "Where are Putin and Pezeshkian meeting?",
    "What has Iran been supplying to Russia?",
)


# Clicks on a `[n]` marker or a source's "Open in document" button: the page's script names the
# answer and the citation in a hidden box and presses a hidden button (the handler does the rest).
SCRIPT = """
() => {
  if (window.__assistantClicks) return;
  window.__assistantClicks = true;
  const send = (ref) => {
    const box = document.querySelector('#open-ref textarea');
    if (!box) return;
    box.value = ref;
    window.__assistantOpened = ref.startsWith('open:');
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#open-btn').click(), 30);
  };
  document.addEventListener('click', (e) => {
    const cite = e.target.closest('#chat .cite');
    if (cite) {
      const bots = [...document.querySelectorAll('#chat [data-testid="bot"]')];
      const turn = bots.indexOf(cite.closest('[data-testid="bot"]'));
      const n = (cite.textContent.match(/\\d+/) || [''])[0];
      if (turn >= 0 && n) send(`cite:${turn}:${n}`);
      return;
    }
    const open = e.target.closest('#sources .open-source');
    if (open) { send(`open:${open.dataset.turn}:${open.dataset.n}`); return; }
    const close = e.target.closest('#viewer .viewer-close');
    if (close) { const v = document.querySelector('#viewer .viewer'); if (v) v.remove(); return; }
    const picture = e.target.closest('#viewer .page-picture');
    if (picture) picture.classList.toggle('zoomed');  // the page at full height; a second click puts it back
  });
}
"""
# After a click is handled: bring the chosen source (and the opened document) into view.
REVEAL = """
() => {
  const viewer = document.querySelector('#viewer .viewer');
  const card = document.querySelector('#sources .source.focused');
  const target = window.__assistantOpened ? viewer : card;
  if (target) target.scrollIntoView({block: 'nearest', behavior: 'instant'});
}
"""


@dataclass
class ChatState:
    """A browser tab's chat: its turns and the id of the saved conversation they belong to (None: not saved yet)."""

    turns: list[Turn] = field(default_factory=list)
    conversation: str | None = None


def _state(value) -> ChatState:
    """The tab's chat state; a client that sends none (or an old list of turns) starts afresh."""
    if isinstance(value, ChatState):
        return value
    return ChatState(list(value) if isinstance(value, list) else [])


@dataclass
class Widgets:
    """The page's components that events read or write (Gradio components, typed loosely)."""

    state: object  # ChatState
    chatbot: object
    question: object
    ask: object
    generator: object
    clear: object
    sources: object
    viewer: object
    open_ref: object
    open_btn: object
    ready: object
    conversations: object
    new_chat: object
    title: object
    rename: object
    delete: object
    export: object
    exported: object
    doc_list: object
    to_remove: object
    remove: object
    removed: object
    files: object
    upload_status: object
    scope: object = None  # the documents a question is limited to (shown names)
    examples: object = None  # example questions, drawn from the user's documents once there are any


def build_blocks(service: Service, *, concurrency: int = 2):
    """The chat page: conversations, chat, sources of the current answer, generator choice, documents."""
    import gradio as gr

    with gr.Blocks(
        title="Ask your documents",
        analytics_enabled=False,
        fill_width=True,
        delete_cache=(3600, 3600),  # Gradio's temporary copies of uploads; ours live in index_dir/uploads
    ) as demo:
        state = gr.State(ChatState())
        gr.Markdown(
            "## Ask your documents\nAnswers quote the indexed documents and cite them as [n]: click one to see it."
        )
        _startup_line(demo, service)
        with gr.Tabs():
            chat = _chat_tab(service)
            docs = _documents_tab(service)
        widgets = Widgets(state=state, **chat, **docs)
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

    with gr.Tab("Chat", id="chat-tab"):
        with gr.Row(equal_height=False, elem_id="chat-row"):
            with gr.Column(scale=1, min_width=220, elem_id="conversations-col"):
                new_chat = gr.Button("+ New conversation", elem_id="new-chat", size="sm")
                conversations = gr.Radio([], label="Conversations", elem_id="conversations", type="value")
                with gr.Accordion("Rename, export, delete", open=False, elem_id="conversation-tools"):
                    title = gr.Textbox(label="New name", elem_id="conv-title", max_lines=1)
                    rename = gr.Button("Rename", size="sm", elem_id="rename")
                    export = gr.Button("Export as Markdown", size="sm", elem_id="export")
                    exported = gr.File(label="Markdown", elem_id="exported", visible=True, interactive=False)
                    delete = gr.Button("Delete conversation", size="sm", variant="stop", elem_id="delete-chat")
            with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    label="Conversation",
                    height=460,
                    render_markdown=False,  # document text is never markup ...
                    latex_delimiters=[],  # ... nor math: "$$x$$" in a document stays "$$x$$"
                    sanitize_html=True,
                    allow_tags=False,
                    feedback_options=("Like", "Dislike"),
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
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask", min_width=70)
                scope = gr.Dropdown(
                    [],
                    value=[],
                    multiselect=True,
                    label="Answer only from these documents (none chosen: all)",
                    elem_id="scope",
                )
            with gr.Column(scale=2, min_width=300, elem_id="sources-col"):
                gr.Markdown("### Sources")
                viewer = gr.HTML("", elem_id="viewer")  # an opened source, above the list of sources
                sources = gr.HTML(render_sources(None), elem_id="sources")
                open_ref = gr.Textbox(elem_id="open-ref", show_label=False, container=False)
                open_btn = gr.Button("open", elem_id="open-btn")
                ready = gr.HTML("", elem_id="page-ready")  # filled once the saved conversations are listed
        with gr.Row(equal_height=False, elem_id="settings-row"):  # under the chat: on a phone, after the sources
            generator = gr.Dropdown(
                service.generators,
                value=service.base.settings.generator,
                label="Generator",
                interactive=len(service.generators) > 1,
                scale=1,
            )
            clear = gr.Button("Clear conversation", elem_id="clear", scale=1)
            with gr.Column(scale=3):
                examples = gr.Examples([[q] for q in EXAMPLES], inputs=question, label="Example questions")
    return {
        "chatbot": chatbot,
        "question": question,
        "ask": ask,
        "generator": generator,
        "clear": clear,
        "sources": sources,
        "viewer": viewer,
        "open_ref": open_ref,
        "open_btn": open_btn,
        "ready": ready,
        "conversations": conversations,
        "new_chat": new_chat,
        "title": title,
        "rename": rename,
        "delete": delete,
        "export": export,
        "exported": exported,
        "scope": scope,
        "examples": examples.dataset,
    }


def _documents_tab(service: Service) -> dict:
    import gradio as gr

    kinds = " ".join(SUPPORTED_SUFFIXES)
    with gr.Tab("Documents", id="docs-tab"), gr.Row(equal_height=False):
        with gr.Column(scale=3):
            doc_list = gr.HTML(elem_id="documents")
            with gr.Row():
                to_remove = gr.Dropdown([], label="Document", scale=3)
                remove = gr.Button("Remove from index", variant="stop", scale=1)
            removed = gr.HTML()
        with gr.Column(scale=2):
            files = gr.File(
                label=f"Drop files to index: {kinds} (up to {service.settings.max_file_mb:g} MB each)",
                file_count="multiple",
                file_types=list(SUPPORTED_SUFFIXES),
                type="filepath",
                elem_id="upload",
            )
            upload_status = gr.HTML(elem_id="upload-status")
    return {
        "doc_list": doc_list,
        "to_remove": to_remove,
        "remove": remove,
        "removed": removed,
        "files": files,
        "upload_status": upload_status,
    }


def _chat_outputs(view: ChatView) -> tuple:
    """question, chatbot, sources, chat state, conversation list.

    The rename box is never written by these events: an event landing late (an answer, or the list's
    own update) must not overwrite a name being typed.
    """
    import gradio as gr

    sources = gr.skip() if view.sources is None else view.sources
    listing = gr.skip() if view.choices is None else gr.update(choices=view.choices, value=view.conversation)
    return view.question, view.messages, sources, ChatState(view.turns, view.conversation), listing


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


def _user(request) -> str:
    """Who is asking: the signed-in user's name (with --auth), else the one local user."""
    return getattr(request, "username", None) or LOCAL_USER


def _resolve_annotations(fn, gr) -> None:
    """Gradio finds `gr.Request` / `gr.LikeData` parameters by their annotations, which this module's
    `from __future__ import annotations` leaves as strings naming a local import: resolve them."""
    kinds = {"gr.Request": gr.Request, "gr.LikeData": gr.LikeData}
    fn.__annotations__ = {k: kinds.get(v, v) if isinstance(v, str) else v for k, v in fn.__annotations__.items()}


_CONFIRM_REMOVE = "(shown) => (shown && confirm(`Remove ${shown} from the index?`)) ? shown : ''"
_CONFIRM_DELETE = "(cid) => (cid && confirm('Delete this conversation?')) ? cid : null"


def _wire(demo, w: Widgets, handlers: ChatHandlers) -> None:
    """Connect the components' events to the handlers (page layout stays in the tab builders)."""
    import tempfile

    import gradio as gr
    from gradio.utils import get_upload_folder

    exports = Path(tempfile.mkdtemp(prefix="assistant-exports-"))

    def respond(question: str, state, generator: str, scope: list | None, request: gr.Request):
        state = _state(state)
        user = _user(request)
        for view in handlers.respond(question, state.turns, generator, scope, user, state.conversation):
            yield *_chat_outputs(view), ""

    def new_chat(request: gr.Request):
        return *_chat_outputs(handlers.new(_user(request))), ""

    def switch(conversation, request: gr.Request):
        return *_chat_outputs(handlers.switch(_user(request), conversation)), ""

    def opening(request: gr.Request):
        """A new chat beside the list of the user's saved conversations (one click brings one back); the
        question box is left alone (they may be typing already)."""
        return *_chat_outputs(handlers.new(_user(request)))[1:], '<span data-ready="1"></span>'

    def rename(conversation, title, request: gr.Request):
        try:
            choices = handlers.rename(_user(request), conversation, title)
        except Exception as exc:
            raise gr.Error(public_error(exc), print_exception=False) from None
        return gr.update(choices=choices, value=conversation)

    def delete(conversation, request: gr.Request):
        if not conversation:  # none chosen, or the question was answered "Cancel"
            return (gr.skip(),) * 6
        return *_chat_outputs(handlers.delete(_user(request), conversation)), ""

    def export(conversation, request: gr.Request):
        path = handlers.export(_user(request), conversation, Path(tempfile.mkdtemp(dir=exports)))
        return str(path) if path else None

    def rate(state, data: gr.LikeData, request: gr.Request) -> None:
        """Stored on the server only: returning the state could overwrite a newer one (a chat begun since)."""
        state = _state(state)
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        liked = data.liked if data.liked in (True, False) else None  # anything else: the thumb taken back
        handlers.rate(_user(request), state.conversation, int(index), liked, state.turns)

    def open_citation(ref: str, state):
        view = handlers.open(ref, _state(state).turns)
        skip = gr.skip()
        return (skip if view.sources is None else view.sources), (skip if view.viewer is None else view.viewer)

    def documents():
        return _documents_outputs(handlers.documents())

    def upload(files, progress=gr.Progress()):  # noqa: B008 - Gradio injects progress this way
        folder = Path(get_upload_folder())  # only files this server's upload route wrote are taken
        view = handlers.upload(files, progress, folder=folder, received=demo.upload_file_set)
        return *_documents_outputs(view), view.status, None

    def remove(shown):
        view = handlers.remove(shown)
        return *_documents_outputs(view), view.status

    def ask_api(question: str, history: list | None = None, generator: str | None = None) -> dict:
        """Answer from the documents; returns the JSON of `assistant ask --json` (sources as shown names)."""
        result = handlers.ask(question, history, generator)
        if result.error is not None:
            raise gr.Error(result.error, print_exception=False)
        return result.payload

    for fn in (respond, new_chat, switch, opening, rename, delete, export, rate):
        _resolve_annotations(fn, gr)
    private = {"api_visibility": "private"}
    chat_out = [w.question, w.chatbot, w.sources, w.state, w.conversations, w.viewer]
    chat_io = {"fn": respond, "inputs": [w.question, w.state, w.generator, w.scope], "outputs": chat_out}
    w.question.submit(**chat_io, **private)
    w.ask.click(**chat_io, **private)
    for button in (w.new_chat, w.clear):
        button.click(new_chat, outputs=chat_out, queue=False, **private)
    w.chatbot.clear(new_chat, outputs=chat_out, queue=False, **private)
    w.conversations.input(switch, inputs=w.conversations, outputs=chat_out, **private)
    # The list's choice is the conversation shown: rename, delete and export act on it.
    w.rename.click(rename, inputs=[w.conversations, w.title], outputs=w.conversations, **private)
    w.delete.click(delete, inputs=w.conversations, outputs=chat_out, js=_CONFIRM_DELETE, **private)
    w.export.click(export, inputs=w.conversations, outputs=w.exported, **private)
    w.chatbot.like(rate, inputs=w.state, **private)
    w.open_btn.click(open_citation, inputs=[w.open_ref, w.state], outputs=[w.sources, w.viewer], **private).then(
        None, js=REVEAL, **private
    )
    index_io = {"concurrency_limit": 1, "concurrency_id": "index", **private}
    listed = [w.doc_list, w.to_remove, w.scope, w.examples]
    w.files.upload(
        upload,
        inputs=w.files,
        outputs=[*listed, w.upload_status, w.files],
        show_progress_on=[w.upload_status],
        **index_io,
    )
    w.remove.click(remove, inputs=w.to_remove, outputs=[*listed, w.removed], js=_CONFIRM_REMOVE, **index_io)
    demo.load(opening, outputs=[*chat_out[1:-1], w.ready], **private)
    demo.load(documents, outputs=listed, **private)
    demo.load(None, js=SCRIPT, **private)
    gr.api(ask_api, api_name="ask")
