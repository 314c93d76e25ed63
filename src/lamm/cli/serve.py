"""``lamm serve``: an OpenAI-compatible HTTP API (``api``) or the Gradio web demo (``web``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.chat import EngineOpts, ModelOpt, parse_engine_options
from lamm.cli.common import console, require_extra, user_errors

app = typer.Typer(no_args_is_help=True)


@app.command()
def api(
    model: ModelOpt,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model_name: Annotated[str | None, typer.Option(help="Model id shown by /v1/models (default: the spec).")] = None,
    media_root: Annotated[list[Path] | None, typer.Option(
        help="Folder whose files requests may name by path (repeatable); none: paths are refused.")] = None,
    allow_remote_images: Annotated[bool, typer.Option(help="Fetch http(s) image URLs (off: only data URLs).")] = False,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB (413 above).")] = 32.0,
    max_tokens: Annotated[int, typer.Option(help="Largest max_tokens a request may ask for.")] = 2048,
    max_image_pixels: Annotated[int, typer.Option(help="Largest image, width × height.")] = 4096 * 4096,
    max_media: Annotated[int, typer.Option(help="Most images / point clouds in one request.")] = 4,
    option: EngineOpts = None,
) -> None:
    """Serve MODEL at /v1/chat/completions (OpenAI-compatible, streaming too) and /v1/models."""
    require_extra("lamm serve api", "serve", "fastapi", "uvicorn")
    from lamm.infer.engine import load_engine
    from lamm.infer.server import ServerConfig, ServerLimits, serve

    limits = ServerLimits(max_body_bytes=int(max_body_mb * 1024 * 1024), max_tokens=max_tokens,
                          max_image_pixels=max_image_pixels, max_media=max_media)
    cfg = ServerConfig(model_name=model_name or model, media_roots=[str(p) for p in media_root or []],
                       allow_remote_images=allow_remote_images, limits=limits)
    for root in cfg.media_roots:
        if not Path(root).is_dir():
            raise typer.BadParameter(f"--media-root {root}: not a folder")
    with user_errors(ValueError):
        engine = load_engine(model, **parse_engine_options(option))
    console.print(f"serving [bold]{cfg.model_name}[/] at http://{host}:{port}/v1", highlight=False)
    try:
        serve(engine, cfg, host=host, port=port)
    finally:
        engine.close()


@app.command()
def web(
    model: ModelOpt,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    root: Annotated[Path | None, typer.Option(help="Folder relative media paths are read from.")] = None,
    title: Annotated[str, typer.Option(help="Title shown on the page.")] = "LAMM",
    max_points: Annotated[int, typer.Option(min=1, help="Largest point cloud accepted as an upload (checked from "
                                                         "the file's header, before it is read).")] = 2_000_000,
    option: EngineOpts = None,
) -> None:
    """A web demo: upload an image or a point cloud (with a 3D view) and chat about it."""
    require_extra("lamm serve web", "web", "gradio")
    from lamm.infer.engine import load_engine
    from lamm.infer.web import launch

    with user_errors(ValueError):
        engine = load_engine(model, media_root=str(root) if root else None, **parse_engine_options(option))
    try:
        launch(engine, host=host, port=port, block=True, title=title, max_points=max_points)
    finally:
        engine.close()
