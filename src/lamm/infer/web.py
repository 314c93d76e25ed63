"""The web demo (``lamm serve web``): Gradio, image or point-cloud upload, a 3D view, streamed chat.

Layout: on the left the media (an image upload, a point-cloud upload for ``.npy``/``.npz``/``.ply``, an
interactive Plotly ``scatter3d`` view of the cloud, example inputs); on the right the chat with its
history, and sampling controls (temperature, top-p, max new tokens).

A LAMM model sees one image *or* one point cloud, at the start of the first turn: uploading new media
clears the other kind and starts a new chat. Two API endpoints serve ``gradio_client``: ``/chat``
(the UI's streamed turn) and ``/ask`` (one question about uploaded media → the answer text). Both share
one concurrency slot, so the engine runs one request at a time.

A question that does not fit the model's context (with the chat's history and media) is refused by the
engine; the chat shows the error as a ``⚠️`` reply (left out of later turns, like every failed exchange)
and goes on, and ``/ask`` answers with a ``gradio.Error`` carrying the message. A reply that the context
cut short ends with a note saying so (the note is the demo's, not the model's: it is not sent back).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lamm.conversation import Conversation, MediaRef, Message
from lamm.infer.engine import ContextLengthError, Engine, GenerateRequest, GenerationSettings, context_filled

#: uploads declaring more points are refused from their header, before any data is read or decompressed
#: (a small .npz can expand to gigabytes); the API server's default limit
MAX_UPLOAD_POINTS = 2_000_000
MAX_PLOT_POINTS = 20_000
#: the head of the demo's own error replies in the chat (never sent back to the model as its words)
ERROR_MARK = "⚠️ "  # more points make the browser view sluggish without showing more shape
#: appended to a reply that the model's context cut short; stripped before the history goes back to the model
CONTEXT_NOTE = "\n\n⚠️ [the reply stopped at the end of the model's context; Clear chat to start over]"


def point_cloud_figure(points: np.ndarray, title: str = "") -> Any:
    """A Plotly ``scatter3d`` of ``(N, 3|6)`` points (colours in [0, 1] used when present), or None
    when plotly is not installed. At most :data:`MAX_PLOT_POINTS` are drawn (an even subsample)."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    pts = np.asarray(points, dtype=np.float32)
    if len(pts) > MAX_PLOT_POINTS:
        pts = pts[np.linspace(0, len(pts) - 1, MAX_PLOT_POINTS).astype(int)]
    if pts.shape[1] >= 6:
        rgb = np.clip(pts[:, 3:6] * 255, 0, 255).astype(int)
        color: Any = [f"rgb({r},{g},{b})" for r, g, b in rgb]
    else:
        color = pts[:, 2]  # height colouring shows the shape when the cloud has no colour
    fig = go.Figure(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers",
                                 marker={"size": 2, "color": color, "colorscale": "Viridis"}))
    fig.update_layout(title=title, margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0},
                      scene={"aspectmode": "data"}, height=380)
    return fig


def write_examples(folder: str | os.PathLike) -> dict[str, str]:
    """Write the demo's example image and point cloud (made in code, deterministic); returns paths."""
    from PIL import Image, ImageDraw

    from lamm.media import save_ply

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (224, 224), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((30, 40, 110, 120), fill="red")
    draw.rectangle((130, 120, 200, 190), fill="blue")
    img.save(d / "shapes.png")
    rng = np.random.default_rng(0)
    # a unit cube's surface: sample a face, then a point on it
    n = 4000
    pts = rng.uniform(-0.5, 0.5, size=(n, 3)).astype(np.float32)
    axis = rng.integers(0, 3, n)
    pts[np.arange(n), axis] = rng.choice([-0.5, 0.5], n)
    colours = np.tile(np.array([[0.9, 0.5, 0.1]], np.float32), (n, 1))
    save_ply(d / "cube.ply", np.concatenate([pts, colours], axis=1))
    return {"image": str(d / "shapes.png"), "pcl": str(d / "cube.ply")}


def _text(content: Any) -> str:
    # Gradio hands history content back as a string or as a list of typed parts
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content or "")


def history_conversation(history: list[dict[str, Any]], question: str, image: str | None,
                         pcl: str | None) -> Conversation:
    """A Conversation from Gradio ``messages`` history plus the new question; media on turn one. A failed
    exchange (its reply is one of the demo's own ``⚠️`` error notes) is left out: the model never said
    it."""
    media = [MediaRef("image", path=image)] if image else [MediaRef("pcl", path=pcl)] if pcl else []
    msgs: list[Message] = []
    kept: list[dict[str, Any]] = []
    for h in history:
        if h.get("role") != "user" and _text(h.get("content")).startswith(ERROR_MARK):
            while kept and kept[-1].get("role") == "user":  # drop the question that failed, too
                kept.pop()
            continue
        kept.append(h)
    for h in kept:
        role = "user" if h.get("role") == "user" else "assistant"
        text = _text(h.get("content")).removesuffix(CONTEXT_NOTE)
        if msgs and msgs[-1].role == role:  # Gradio may split one turn; the model sees it whole
            msgs[-1] = Message(role, msgs[-1].content + "\n" + text)
        else:
            msgs.append(Message(role, text))
    msgs.append(Message("user", question))
    msgs[0] = Message("user", msgs[0].content, media)
    return Conversation(msgs)


def chat_turn(engine: Engine, history: list[dict[str, Any]] | None, question: str, image: str | None,
              pcl: str | None, settings: GenerationSettings,
              check_pcl: Any = None) -> Iterator[list[dict[str, Any]]]:
    """One chat turn: yields the Gradio ``messages`` history as the reply streams in. A refused input (a
    bad upload, an unsupported modality, a question that does not fit the context) becomes an
    ``ERROR_MARK`` reply: the session goes on. ``check_pcl(pcl) -> path`` checks a point-cloud upload
    (the demo's size limit); the image wins when both are set (as in :func:`history_conversation`)."""
    history = list(history or [])
    if not question or not question.strip():
        yield history
        return
    history = history + [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    try:
        pcl_path = None if image else (check_pcl(pcl) if check_pcl is not None else pcl)
        conv = history_conversation(history[:-2], question.strip(), image, pcl_path)
        for piece in engine.stream(GenerateRequest(conv, settings)):
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
            yield history
        if context_filled(engine) is not None:
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + CONTEXT_NOTE}
            yield history
    except ContextLengthError as e:  # the question, history included, does not fit: say how to go on
        history[-1] = {"role": "assistant", "content": f"{ERROR_MARK}{e}; Clear chat starts over"}
        yield history
    except (ValueError, OSError) as e:  # a bad upload or an unsupported modality: say so in the chat
        history[-1] = {"role": "assistant", "content": f"{ERROR_MARK}{e}"}
        yield history


def build_demo(engine: Engine, title: str = "LAMM", examples_dir: str | None = None,
               max_points: int = MAX_UPLOAD_POINTS) -> Any:
    """The Gradio Blocks app for ``engine``; an uploaded point cloud of more than ``max_points`` points
    is refused from its header."""
    import gradio as gr

    from lamm.media import MediaError, load_point_cloud

    if examples_dir is None:
        # the example files live as long as the process; remove them at exit instead of leaking /tmp
        examples_dir = tempfile.mkdtemp(prefix="lamm-web-")
        atexit.register(shutil.rmtree, examples_dir, ignore_errors=True)
    examples = write_examples(examples_dir)
    has_plotly = point_cloud_figure(np.zeros((1, 3), np.float32)) is not None

    def settings(temperature: float, top_p: float, max_tokens: float) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=int(max_tokens), temperature=float(temperature), top_p=float(top_p))

    def respond(question: str, history: list[dict[str, Any]] | None, image: str | None, pcl: str | None,
                temperature: float, top_p: float, max_tokens: float) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for h in chat_turn(engine, history, question, image, pcl, settings(temperature, top_p, max_tokens),
                           check_pcl=checked_pcl):
            yield "", h

    def checked_pcl(pcl: Any) -> str | None:
        """The upload's path, after its size was checked (MediaError/MediaTooLarge otherwise)."""
        path = _path(pcl)
        if path is not None:
            load_point_cloud(path, max_points=max_points)
        return path

    def ask(question: str, image: str | None, pcl: Any, temperature: float, top_p: float, max_tokens: float) -> str:
        if not question or not question.strip():
            raise gr.Error("ask a question (the text is empty)")
        try:
            path = None if image else checked_pcl(pcl)
        except MediaError as e:
            raise gr.Error(str(e)) from None
        conv = history_conversation([], question, image, path)
        try:
            return engine.generate([GenerateRequest(conv, settings(temperature, top_p, max_tokens))])[0]
        except ValueError as e:  # refused (does not fit the context, unsupported modality): the message
            raise gr.Error(str(e)) from None

    def on_image(image: str | None) -> tuple[Any, Any, Any]:
        if image is None:
            return gr.update(), gr.update(), gr.update()
        return None, [], None  # a new image: drop the point cloud and start a new chat

    def on_pcl(pcl: Any) -> tuple[Any, Any, Any]:
        path = _path(pcl)
        if path is None:
            return gr.update(), gr.update(), None
        try:
            fig = point_cloud_figure(load_point_cloud(path, max_points=max_points), Path(path).name)
        except MediaError as e:
            raise gr.Error(str(e)) from None
        return None, [], fig

    # no telemetry or version check: a demo of research models should not call home
    with gr.Blocks(title=f"{title} demo", analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}: chat about an image or a 3D point cloud\nModel: `{engine.spec or 'engine'}`. "
                    "Upload an image **or** a point cloud, then ask. New media starts a new chat.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Image", elem_id="image-input", height=240)
                pcl = gr.File(label="Point cloud (.npy, .npz, .ply)", file_types=[".npy", ".npz", ".ply"],
                              elem_id="pcl-input")
                plot = gr.Plot(label="Point cloud (drag to rotate)", visible=has_plotly)
                if not has_plotly:
                    gr.Markdown("*3D view needs plotly: `pip install plotly`*")
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label="Chat", elem_id="chatbot", height=420)
                question = gr.Textbox(label="Question", placeholder="What is in the image?", elem_id="question")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    clear = gr.Button("Clear chat", elem_id="clear")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
                    max_tokens = gr.Slider(8, 1024, value=256, step=8, label="Max new tokens")
        gr.Examples([[examples["image"], None, "What shapes are in the image?"],
                     [None, examples["pcl"], "What is the object in the point cloud?"]],
                    inputs=[image, pcl, question], label="Examples")
        answer = gr.Textbox(visible=False)
        inputs = [question, chatbot, image, pcl, temperature, top_p, max_tokens]
        send.click(respond, inputs, [question, chatbot], api_name="chat", concurrency_id="model", concurrency_limit=1)
        question.submit(respond, inputs, [question, chatbot], api_name=False, concurrency_id="model",
                        concurrency_limit=1)
        clear.click(list, None, chatbot, api_name=False)
        image.change(on_image, image, [pcl, chatbot, plot], api_name=False)
        pcl.change(on_pcl, pcl, [image, chatbot, plot], api_name=False)
        # a button-less event for gradio_client: one question about uploaded media → the answer
        ask_btn = gr.Button(visible=False)
        ask_btn.click(ask, [question, image, pcl, temperature, top_p, max_tokens], answer, api_name="ask",
                      concurrency_id="model", concurrency_limit=1)
    demo.lamm_examples_dir = str(Path(examples["image"]).parent)  # launch() allows serving from it
    return demo


def _path(file: Any) -> str | None:
    # gr.File gives a path string, or an object with .name / a dict with "path" depending on version
    if file is None:
        return None
    if isinstance(file, str):
        return file
    if isinstance(file, dict):
        return file.get("path") or file.get("name")
    return getattr(file, "path", None) or getattr(file, "name", None)


def launch(engine: Engine, host: str = "127.0.0.1", port: int = 7860, block: bool = True, **kwargs: Any) -> Any:
    """Build and launch the demo; with ``block=False`` returns the running Blocks (``.close()`` it)."""
    demo = build_demo(engine, **kwargs)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                allowed_paths=[demo.lamm_examples_dir], show_error=True)
    return demo
