"""``lamm chat``: talk to a model about an image or a point cloud, interactively or over a JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lamm.cli.common import console, err_console, user_errors


def parse_engine_options(options: list[str] | None) -> dict[str, Any]:
    """``["merge_lora=true", "device=cuda"]`` → ``{"merge_lora": True, "device": "cuda"}`` (YAML values)."""
    import yaml

    out: dict[str, Any] = {}
    for text in options or []:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"engine option {text!r} must look like key=value")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: lamm:DIR, hf:ID, openai:MODEL@URL, vllm:ID, dummy.")]
EngineOpts = Annotated[list[str] | None, typer.Option(
    "--option", "-o", help="Backend option key=value, repeatable (e.g. merge_lora=true, device=cuda, batch_size=auto).")]


def chat(
    model: ModelOpt,
    image: Annotated[str | None, typer.Option(help="Image to talk about (interactive mode).")] = None,
    pcl: Annotated[str | None, typer.Option(help="Point cloud (.npy/.npz/.ply) to talk about (interactive mode).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Batch mode: JSONL of {question_id, text, image|pcl}.")] = None,
    answers: Annotated[Path | None, typer.Option(help="Batch mode: answers JSONL (appended; a rerun resumes).")] = None,
    root: Annotated[Path | None, typer.Option(help="Folder that relative image/pcl paths are read from.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per reply (at least 1).")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy; above 0 samples.")] = 0.0,
    top_p: Annotated[float, typer.Option(
        help="Nucleus sampling mass, 0 < top_p <= 1 (with temperature > 0).")] = 1.0,
    seed: Annotated[int | None, typer.Option(
        help="Sampling seed (same seed, same reply). Batch mode: each question samples with this seed and its "
             "question_id (0 when not given).")] = None,
    task_type: Annotated[str, typer.Option(help="Task type selecting the system message (normal, VQA, detection, ...).")] = "normal",
    chunk: Annotated[int, typer.Option(
        min=1, help="Batch mode: questions per engine call (at least 1).")] = 16,
    option: EngineOpts = None,
) -> None:
    """Chat with a model about an image or a point cloud (interactive, or batch over JSONL).

    Without --questions: an interactive terminal chat (/image PATH, /pcl PATH, /reset, /quit), replies
    streamed. With --questions Q.jsonl --answers A.jsonl: answer every question, appending one line per
    answer; rerunning resumes where a killed run stopped.
    """
    from lamm.infer.engine import GenerationSettings, load_engine

    if (questions is None) != (answers is None):
        raise typer.BadParameter("batch mode needs both --questions and --answers")
    if image and pcl:
        raise typer.BadParameter("give --image or --pcl, not both")
    if not 0.0 < top_p <= 1.0:
        raise typer.BadParameter(f"--top-p must be in (0, 1], got {top_p:g}", param_hint="--top-p")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    with user_errors(ValueError):
        engine = load_engine(model, media_root=str(root) if root else None, **parse_engine_options(option))
    try:
        if questions is not None:
            _batch(engine, questions, answers, settings, task_type, chunk)  # type: ignore[arg-type]
        else:
            _interactive(engine, settings, task_type, image, pcl)
    finally:
        engine.close()


def _batch(engine: Any, questions: Path, answers: Path, settings: Any, task_type: str, chunk: int) -> None:
    from rich.progress import Progress

    from lamm.infer.chat import run_batch

    with user_errors(ValueError), Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("answering", total=None)
        summary = run_batch(engine, questions, answers, settings, task_type, chunk,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    for note in summary.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"{summary.answered} answered, {summary.skipped_done} already done, "
                  f"{summary.questions} questions → {answers}", highlight=False)


def _interactive(engine: Any, settings: Any, task_type: str, image: str | None, pcl: str | None) -> None:
    from lamm.infer.chat import ChatSession, run_interactive

    session = ChatSession(engine, settings, task_type=task_type)
    with user_errors(ValueError):
        if image:
            session.attach("image", image)
        elif pcl:
            session.attach("pcl", pcl)

    def write(text: str) -> None:
        # streamed pieces: no markup (model text may hold [brackets]), no newline, flushed at once
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        console.file.flush()

    run_interactive(session, read=input, write=write)


def register(app: typer.Typer) -> None:
    """Add the top-level ``chat`` command to the main app."""
    app.command(name="chat")(chat)
