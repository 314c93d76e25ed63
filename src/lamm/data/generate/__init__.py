"""C1–C3 generation: an LLM, through the engine, writes daily dialogues (C1), factual-knowledge
dialogues (C2) and detailed descriptions (C3) from annotations rendered as text, guided by versioned
prompt packs; replies are validated, retried, accounted for and appended to a resumable JSONL."""

from .context import render_context
from .prompts import PromptPack, PromptPackError, bundled_packs, default_pack, load_pack, parse_pack
from .runner import GenerateJob, GenerationError, GenerationSummary, Generator, Job, plan_jobs, read_done
from .validate import InvalidOutput, extract_json, parse_reply

__all__ = [
    "GenerateJob",
    "GenerationError",
    "GenerationSummary",
    "Generator",
    "InvalidOutput",
    "Job",
    "PromptPack",
    "PromptPackError",
    "bundled_packs",
    "default_pack",
    "extract_json",
    "load_pack",
    "parse_pack",
    "parse_reply",
    "plan_jobs",
    "read_done",
    "render_context",
]
