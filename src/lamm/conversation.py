"""Conversations and the ONE prompt builder.

This is the only module that knows a chat template. :func:`tokenize_conversation` turns a
:class:`Conversation` into token ids and labels for training (assistant turns supervised, all else
``-100``) and into prompt ids for inference. Both are built from the same per-turn segments, each
tokenized on its own, so an inference prompt is *token for token* the prefix of the training sequence
of the same conversation: training and evaluation prompts cannot drift.

Templates
---------
``lamm``  LAMM v1 (``reference/LAMM.md`` §1)::

    [BOS]{system}\\n\\n### Human: <Img><image></Img> {q1}\\n### Assistant: {a1}\\n###Human: {q2}\\n### Assistant: {a2}\\n###

  Supervised: `` {a_i}\\n###``. Generation stops on ``###``.
``chat``  the tokenizer's own ``chat_template`` (``apply_chat_template``), for modern LLMs. Segments are
  the differences between renderings of growing message prefixes; the assistant wrapper around the
  content is found by rendering a sentinel, so no answer text is ever split by a heuristic.

Media placeholders (``<image>``, ``<pcl>``) are special tokens; the model expands each to its encoder's
token count at collate time (``lamm.model``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

TASK_TYPES_2D = (
    "conversation", "description", "commonsenseqa", "classification", "detection",
    "keypoint_detection", "counting", "VQA",
)
TASK_TYPES_3D = (
    "conversation3d", "description3d", "commonsenseqa3d", "classification3d", "detection3d",
    "visual_grounding3d", "VQA3d",
)
TASK_TYPES = TASK_TYPES_2D + TASK_TYPES_3D + ("normal",)
# LAMM's own files spell the C2 task "commomsenseqa"; accept it and read it as the correct name.
TASK_TYPE_ALIASES = {"commomsenseqa": "commonsenseqa", "commomsenseqa3d": "commonsenseqa3d"}

def canonical_task_type(task_type: str | None) -> str:
    """The canonical task type (LAMM's misspellings mapped; ``None`` → ``"normal"``)."""
    if task_type is None:
        return "normal"
    return TASK_TYPE_ALIASES.get(task_type, task_type)


IMAGE_TOKEN = "<image>"
PCL_TOKEN = "<pcl>"
PLACEHOLDERS = {"image": IMAGE_TOKEN, "pcl": PCL_TOKEN}
IGNORE_INDEX = -100
Modality = Literal["image", "pcl"]
Role = Literal["user", "assistant"]

_ANSWER_FORMATS_2D = (
    "When asked for a bounding box, answer with [x1, y1, x2, y2]: the top-left and bottom-right corners as "
    "floats between 0 and 1 relative to the image width and height. When asked for a point or keypoint, "
    "answer with [x, y] in the same relative coordinates."
)
_SYSTEM_IMAGE = "You are a helpful AI visual assistant that can analyze a single image."
_SYSTEM_PCL = "You are a helpful AI assistant that can analyze a 3D point cloud of an object or a scene."

SYSTEM_MESSAGES: dict[str, str] = {
    "normal": "You are a helpful AI assistant that can see images and 3D point clouds. Answer the user's question.",
    "conversation": f"{_SYSTEM_IMAGE} Have a natural conversation with the user about the image.",
    "description": f"{_SYSTEM_IMAGE} Describe the image in detail: objects, their attributes, positions and the scene.",
    "commonsenseqa": f"{_SYSTEM_IMAGE} Answer questions that need factual knowledge about what the image shows.",
    "classification": f"{_SYSTEM_IMAGE} Name the category of the main object in the image.",
    "detection": f"{_SYSTEM_IMAGE} Find the objects in the image and give each one's category and bounding box. "
    + _ANSWER_FORMATS_2D,
    "keypoint_detection": f"{_SYSTEM_IMAGE} Locate the requested keypoints. " + _ANSWER_FORMATS_2D,
    "counting": f"{_SYSTEM_IMAGE} Count the requested objects and answer with a number.",
    "VQA": f"{_SYSTEM_IMAGE} Answer the question about the image. For multiple-choice questions, answer "
    "with \"The answer is (X)\" where X is the letter of the correct option.",
    "conversation3d": f"{_SYSTEM_PCL} Have a natural conversation with the user about the point cloud.",
    "description3d": f"{_SYSTEM_PCL} Describe the point cloud in detail: objects, their shapes, sizes and layout.",
    "commonsenseqa3d": f"{_SYSTEM_PCL} Answer questions that need factual knowledge about what the point cloud shows.",
    "classification3d": f"{_SYSTEM_PCL} Name the category of the object in the point cloud.",
    "detection3d": f"{_SYSTEM_PCL} Find the objects and give each one's category and 3D bounding box as "
    "[cx, cy, cz, lx, ly, lz]: the centre and the lengths along x, y and z, in metres (axis-aligned).",
    "visual_grounding3d": f"{_SYSTEM_PCL} Find the object the user refers to and give its 3D bounding box as "
    "[cx, cy, cz, lx, ly, lz]: the centre and the lengths along x, y and z, in metres (axis-aligned).",
    "VQA3d": f"{_SYSTEM_PCL} Answer the question about the point cloud. For multiple-choice questions, answer "
    "with \"The answer is (X)\" where X is the letter of the correct option.",
}


def system_message(task_type: str | None) -> str:
    """The system message that states the task and its answer format (unknown types → ``normal``)."""
    return SYSTEM_MESSAGES.get(canonical_task_type(task_type), SYSTEM_MESSAGES["normal"])


@dataclass
class MediaRef:
    """An image or a point cloud: a ``path`` (relative to a root, or absolute) and/or loaded ``data``
    (a PIL image, or a float32 ``(N, 3|6)`` array).

    Derived media (the robustness desideratum's corrupted copies, ``lamm.bench.desiderata``) add two
    fields, always together:

    * ``transform`` — a callable ``media -> media`` that :meth:`load` / :meth:`read` apply to what they
      read from ``path``. Media stay lazy: nothing is decoded until a backend asks, and a fresh copy of
      the ref (``dataclasses.replace(ref, data=None)``) re-reads the file and re-applies the transform.
    * ``variant`` — a short text naming the derivation (e.g. ``gaussian_noise@3#0/<record id>``). Every
      media identity — cache keys, feature-dedup keys, the dummy model's answer hash — includes it, so a
      derived item is never confused with the clean file at the same ``path``.

    ``data``, when set, is the media as the model sees it (for a transformed ref: after the transform).
    Code that loads media must go through :meth:`load` (cached on the ref) or :meth:`read` (not
    cached), never ``load_media(ref.path)`` directly, or it would see the clean file.
    """

    modality: Modality
    path: str | None = None
    data: Any = None
    transform: Callable[[Any], Any] | None = None
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in PLACEHOLDERS:
            raise ValueError(f"unknown modality {self.modality!r}; expected 'image' or 'pcl'")
        if self.path is None and self.data is None:
            raise ValueError("a MediaRef needs a path or loaded data")
        # a transform without a variant would be keyed as the clean file by every cache
        if (self.transform is None) != (self.variant is None):
            raise ValueError("a MediaRef's transform and variant go together: give both or neither")
        if self.transform is not None and self.path is None:
            raise ValueError("a transformed MediaRef needs a path (the transform applies to the file as read); "
                             "pass already-transformed media as data, without a transform")

    def read(self, root: str | os.PathLike | None = None) -> Any:
        """The media (``data`` if loaded, else the file read and transformed), not cached on the ref."""
        if self.data is not None:
            return self.data
        from lamm.media import load_media

        assert self.path is not None
        media = load_media(self.path, root)
        return self.transform(media) if self.transform is not None else media

    def load(self, root: str | os.PathLike | None = None) -> Any:
        """The loaded media (cached on the object); see :meth:`read`."""
        if self.data is None:
            self.data = self.read(root)
        return self.data


@dataclass
class Message:
    """One turn. ``media`` are placed, as placeholders, at the start of this turn's content."""

    role: Role
    content: str
    media: list[MediaRef] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', got {self.role!r}")


@dataclass
class Conversation:
    """A multi-turn conversation with media. ``system`` overrides the task's system message."""

    messages: list[Message]
    task_type: str = "normal"
    system: str | None = None
    id: str | None = None

    @property
    def media(self) -> list[MediaRef]:
        return [m for msg in self.messages for m in msg.media]

    @property
    def system_text(self) -> str:
        return self.system if self.system is not None else system_message(self.task_type)

    def with_messages(self, messages: list[Message]) -> Conversation:
        return Conversation(messages=messages, task_type=self.task_type, system=self.system, id=self.id)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Conversation:
        """Build from a LAMM instruction record; an ``<image>``/``<pcl>`` in the first turn is stripped."""
        rid = str(record.get("id")) if record.get("id") is not None else None
        media = [MediaRef(k, path=record[k]) for k in ("image", "pcl") if record.get(k)]
        msgs = []
        for i, turn in enumerate(record["conversations"]):
            role: Role = "user" if turn["from"] == "human" else "assistant"
            text = turn["value"]
            if i == 0:
                for tok in PLACEHOLDERS.values():
                    text = text.replace(tok, "")
                text = text.strip()
            msgs.append(Message(role, text, media if i == 0 else []))
        return cls(msgs, task_type=canonical_task_type(record.get("task_type")), id=rid)

    @classmethod
    def single_turn(cls, question: str, media: list[MediaRef] | None = None, task_type: str = "normal",
                    system: str | None = None, id: str | None = None) -> Conversation:
        """A one-question conversation (the benchmark's and the API's usual case)."""
        return cls([Message("user", question, list(media or []))], task_type=task_type, system=system, id=id)


@dataclass
class TokenizedConversation:
    """Token ids, labels (``-100`` where not supervised) and the media in placeholder order.

    ``input_ids`` hold one placeholder id per media item; the model expands it. For a generation
    prompt, ``labels`` are all ``-100``.
    """

    input_ids: list[int]
    labels: list[int]
    media: list[MediaRef]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Segment:
    text: str
    supervised: bool
    bos: bool = False


def _media_prefix(msg: Message, template: str) -> str:
    if not msg.media:
        return ""
    tokens = "".join(PLACEHOLDERS[m.modality] for m in msg.media)
    if template == "lamm":
        tag = {"image": "Img", "pcl": "Pcl"}[msg.media[0].modality]
        return f"<{tag}>{tokens}</{tag}> "
    return tokens + "\n"


def _check_roles(conv: Conversation, add_generation_prompt: bool) -> None:
    if not conv.messages:
        raise ValueError(f"conversation {conv.id!r} has no messages")
    for i, m in enumerate(conv.messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m.role != expected:
            raise ValueError(f"conversation {conv.id!r}: message {i} is {m.role!r}, expected {expected!r} "
                             "(turns alternate, starting with the user)")
    last = conv.messages[-1].role
    if add_generation_prompt and last != "user":
        raise ValueError(f"conversation {conv.id!r}: a generation prompt must end with a user message")
    if not add_generation_prompt and last != "assistant":
        raise ValueError(f"conversation {conv.id!r}: a training sequence must end with an assistant message")


LAMM_STOP = "###"


def lamm_segments(conv: Conversation, add_generation_prompt: bool) -> list[Segment]:
    """Segments of the LAMM v1 template (see the module docstring)."""
    _check_roles(conv, add_generation_prompt)
    segs: list[Segment] = []
    for i, m in enumerate(conv.messages):
        if m.role == "user":
            body = _media_prefix(m, "lamm") + m.content
            if i == 0:
                segs.append(Segment(f"{conv.system_text}\n\n### Human: {body}\n### Assistant:", False, bos=True))
            else:
                segs.append(Segment(f"Human: {body}\n### Assistant:", False))
        else:
            segs.append(Segment(" " + m.content, True))
            segs.append(Segment("\n" + LAMM_STOP, True))
    return segs


_SENTINEL = "\u2063LAMM_SENTINEL\u2063"


def _to_chat_messages(conv: Conversation, messages: list[Message],
                      fold_system: bool = False) -> list[dict[str, str]]:
    """Chat-template messages; ``fold_system`` puts the system text at the head of the first user turn
    (for templates that refuse a system role, e.g. Gemma's)."""
    out = [{"role": "system", "content": conv.system_text}] if conv.system_text and not fold_system else []
    for k, m in enumerate(messages):
        content = _media_prefix(m, "chat") + m.content
        if fold_system and k == 0 and conv.system_text:
            content = f"{conv.system_text}\n\n{content}"
        out.append({"role": m.role, "content": content})
    return out


def chat_segments(conv: Conversation, tokenizer: Any, add_generation_prompt: bool) -> list[Segment]:
    """Segments from the tokenizer's own chat template, rendered incrementally.

    A template that refuses a system role gets the system text at the head of the first user turn. A
    template that reformats a message (e.g. trims it) is supervised on the text as it renders it."""
    _check_roles(conv, add_generation_prompt)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("template 'chat' needs a tokenizer with a chat_template; use template 'lamm' instead")
    from jinja2 import TemplateError

    fold = False

    def render(msgs: list[Message], gen: bool) -> str:
        return tokenizer.apply_chat_template(_to_chat_messages(conv, msgs, fold), tokenize=False,
                                             add_generation_prompt=gen)

    try:
        render(conv.messages[:1], gen=False)
    except TemplateError as e:
        if not conv.system_text:
            raise ValueError(f"the tokenizer's chat template refused the conversation ({e}); use template "
                             "'lamm'") from None
        fold = True  # e.g. "System role not supported": fold the system text into the first user turn
        try:
            render(conv.messages[:1], gen=False)
        except TemplateError as e2:
            raise ValueError(f"the tokenizer's chat template refused the conversation ({e2}), with and "
                             "without a system message; use template 'lamm'") from None
    not_incremental = "the tokenizer's chat template does not render incrementally; use template 'lamm'"
    segs: list[Segment] = []
    done = ""
    for i, m in enumerate(conv.messages):
        if m.role == "user":
            is_last = i == len(conv.messages) - 1
            text = render(conv.messages[: i + 1], gen=not is_last or add_generation_prompt)
            if not text.startswith(done):
                raise ValueError(not_incremental)
            segs.append(Segment(text[len(done):], False))
            done = text
        else:
            probe = render(conv.messages[:i] + [Message("assistant", _SENTINEL)], gen=False)
            if not probe.startswith(done) or probe.count(_SENTINEL) != 1:
                raise ValueError(not_incremental)
            opener, closer = probe[len(done):].split(_SENTINEL)
            # the answer as the template renders it (a template may trim it): between opener and closer
            full = render(conv.messages[: i + 1], gen=False)
            head = done + opener
            if not (full.startswith(head) and full.endswith(closer) and len(full) >= len(head) + len(closer)):
                raise ValueError(not_incremental)
            content = full[len(head): len(full) - len(closer)]
            if opener:
                segs.append(Segment(opener, False))
            segs.append(Segment(content, True))
            if closer:
                segs.append(Segment(closer, True))
            done = full
    return segs


def stop_strings(template: str, tokenizer: Any = None) -> list[str]:
    """Strings that end an assistant turn in generation."""
    if template == "lamm":
        return [LAMM_STOP]
    eos = getattr(tokenizer, "eos_token", None)
    return [eos] if eos else []


def build_segments(conv: Conversation, tokenizer: Any, template: str, add_generation_prompt: bool) -> list[Segment]:
    if template == "lamm":
        return lamm_segments(conv, add_generation_prompt)
    if template == "chat":
        return chat_segments(conv, tokenizer, add_generation_prompt)
    raise ValueError(f"unknown template {template!r}; expected 'lamm' or 'chat'")


def render_text(conv: Conversation, tokenizer: Any, template: str, add_generation_prompt: bool) -> str:
    """The full text of the sequence (for display and golden tests); BOS shown as the tokenizer's bos_token."""
    bos = getattr(tokenizer, "bos_token", None) or ""
    return "".join((bos if s.bos else "") + s.text for s in build_segments(conv, tokenizer, template, add_generation_prompt))


def tokenize_conversation(conv: Conversation, tokenizer: Any, template: str = "lamm",
                          add_generation_prompt: bool = False) -> TokenizedConversation:
    """The one prompt builder.

    ``add_generation_prompt=False``: a training sequence (the conversation ends with an assistant
    message); assistant content and its turn terminator are supervised, all else ``-100``.
    ``add_generation_prompt=True``: an inference prompt (ends with a user message), all labels ``-100``.
    Each segment is tokenized on its own (``add_special_tokens=False``), so the prompt of a
    conversation equals the prefix of its training sequence token for token.
    """
    segs = build_segments(conv, tokenizer, template, add_generation_prompt)
    ids: list[int] = []
    labels: list[int] = []
    for s in segs:
        seg_ids = list(tokenizer(s.text, add_special_tokens=False)["input_ids"])
        if s.bos and getattr(tokenizer, "bos_token_id", None) is not None:
            seg_ids = [tokenizer.bos_token_id] + seg_ids
        ids.extend(seg_ids)
        # an inference prompt supervises nothing, not even the earlier answers of a multi-turn history
        supervised = s.supervised and not add_generation_prompt
        labels.extend(seg_ids if supervised else [IGNORE_INDEX] * len(seg_ids))
    _check_placeholders(conv, tokenizer, ids)
    return TokenizedConversation(ids, labels, conv.media)


def tokenize_continuation(text: str, tokenizer: Any, template: str = "lamm") -> list[int]:
    """Token ids of ``text`` as the content of an assistant turn (no terminator): what
    :meth:`loglikelihood` scores after an inference prompt. Matches the training segmentation."""
    content = " " + text if template == "lamm" else text
    return list(tokenizer(content, add_special_tokens=False)["input_ids"])


def context_token_count(reply_ids: list[int], context_ids: list[int]) -> int:
    """How many leading tokens of a reply (tokenized whole) belong to its unscored ``context`` (tokenized
    alone): the length of their common prefix, so a token that spans the seam counts as scored.

    >>> context_token_count([5, 6, 7, 8], [5, 6]), context_token_count([5, 9, 8], [5, 6])
    (2, 1)
    """
    n = 0
    for a, b in zip(reply_ids, context_ids):
        if a != b:
            break
        n += 1
    return n


def _check_placeholders(conv: Conversation, tokenizer: Any, ids: list[int]) -> None:
    for modality, tok in PLACEHOLDERS.items():
        tok_id = tokenizer.convert_tokens_to_ids(tok)
        want = sum(m.modality == modality for m in conv.media)
        unk = getattr(tokenizer, "unk_token_id", None)
        if tok_id is None or (unk is not None and tok_id == unk):
            if want:
                raise ValueError(f"tokenizer has no {tok!r} special token; add it (lamm.model.llm adds it)")
            continue
        have = ids.count(tok_id)
        if have != want:
            raise ValueError(f"conversation {conv.id!r}: {have} {tok!r} tokens in the text but {want} "
                             f"{modality} media; remove {tok!r} from the message text")
