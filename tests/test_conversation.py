"""Golden tests of the ONE prompt builder (lamm.conversation) on the tiny tokenizer.

The strings, ids and label masks below are pinned: a change to a template, to the segmentation, or to
the tiny tokenizer shows up here first. Regenerate only on purpose (and say why in the commit).
"""

from __future__ import annotations

import pytest

from lamm.conversation import (
    IGNORE_INDEX,
    Conversation,
    MediaRef,
    Message,
    render_text,
    stop_strings,
    tokenize_continuation,
    tokenize_conversation,
)

SYSTEM = ("You are a helpful AI visual assistant that can analyze a single image. "
          "Name the category of the main object in the image.")

GOLDEN = {
    "lamm": {
        "text": f"<s>{SYSTEM}\n\n### Human: <Img><image></Img> What is this?\n### Assistant: A red circle.\n"
                "###Human: What colour is it?\n### Assistant: Red.\n###",
        "ids": [1, 426, 325, 272, 441, 434, 572, 433, 417, 435, 464, 272, 573, 302, 22, 720, 271, 440, 336, 271,
                229, 300, 288, 311, 299, 271, 302, 22, 207, 207, 267, 287, 34, 681, 639, 38, 4, 645, 639, 38, 312,
                274, 270, 513, 91, 39, 207, 267, 286, 34, 276, 481, 651, 22, 207, 267, 48, 285, 34, 312, 536, 274,
                269, 92, 39, 207, 267, 286, 34, 229, 58, 546, 22, 207, 267],
        "supervised": [50, 51, 52, 53, 54, 55, 69, 70, 71, 72, 73, 74],
        "supervised_text": [" A red circle.\n###", " Red.\n###"],
    },
    "chat": {
        "text": f"<s><|system|>\n{SYSTEM}\n<|user|>\n<image>\nWhat is this?\n<|assistant|>\nA red circle.</s>\n"
                "<|user|>\nWhat colour is it?\n<|assistant|>\nRed.</s>\n",
        "ids": [1, 6, 207, 426, 325, 272, 441, 434, 572, 433, 417, 435, 464, 272, 573, 302, 22, 720, 271, 440, 336,
                271, 229, 300, 288, 311, 299, 271, 302, 22, 207, 7, 207, 4, 207, 63, 307, 274, 270, 513, 91, 39,
                207, 8, 207, 41, 481, 651, 22, 2, 207, 7, 207, 63, 307, 536, 274, 269, 92, 39, 207, 8, 207, 58, 546,
                22, 2, 207],
        "supervised": [45, 46, 47, 48, 49, 50, 63, 64, 65, 66, 67],
        "supervised_text": ["A red circle.</s>\n", "Red.</s>\n"],
    },
}


def two_turn(modality: str = "image") -> Conversation:
    media = [MediaRef(modality, path="media/0001.png" if modality == "image" else "media/0001.npy")]
    return Conversation(
        [Message("user", "What is this?", media), Message("assistant", "A red circle."),
         Message("user", "What colour is it?"), Message("assistant", "Red.")],
        task_type="classification" if modality == "image" else "classification3d", id="golden-1",
    )


def supervised_spans(tok, ids: list[int], labels: list[int]) -> list[str]:
    spans, cur = [], []
    for i, lab in zip(ids, labels):
        if lab != IGNORE_INDEX:
            assert lab == i, "a supervised label must equal its input id"
            cur.append(i)
        elif cur:
            spans.append(tok.decode(cur))
            cur = []
    if cur:
        spans.append(tok.decode(cur))
    return spans


@pytest.mark.parametrize("template", ["lamm", "chat"])
def test_golden_text_ids_and_labels(tiny_tokenizer, template):
    conv = two_turn()
    gold = GOLDEN[template]
    assert render_text(conv, tiny_tokenizer, template, add_generation_prompt=False) == gold["text"]
    tc = tokenize_conversation(conv, tiny_tokenizer, template)
    assert tc.input_ids == gold["ids"]
    assert [i for i, lab in enumerate(tc.labels) if lab != IGNORE_INDEX] == gold["supervised"]
    assert supervised_spans(tiny_tokenizer, tc.input_ids, tc.labels) == gold["supervised_text"]
    assert tiny_tokenizer.decode(tc.input_ids) == gold["text"]
    assert [m.path for m in tc.media] == ["media/0001.png"]


@pytest.mark.parametrize("template", ["lamm", "chat"])
@pytest.mark.parametrize("modality", ["image", "pcl"])
def test_inference_prompt_is_prefix_of_training_sequence(tiny_tokenizer, template, modality):
    conv = two_turn(modality)
    train = tokenize_conversation(conv, tiny_tokenizer, template)
    for n_msgs in (1, 3):  # prompt for the first answer, and for the second
        prompt = tokenize_conversation(conv.with_messages(conv.messages[:n_msgs]), tiny_tokenizer, template,
                                       add_generation_prompt=True)
        assert prompt.input_ids == train.input_ids[: len(prompt)]
        assert all(lab == IGNORE_INDEX for lab in prompt.labels)
        # the prompt's own turn (the user text and the assistant opener) is never supervised
        assert all(lab == IGNORE_INDEX for lab in train.labels[len(prompt) - 3: len(prompt)])
        # the scored continuation is exactly what training supervises next
        answer = conv.messages[n_msgs].content
        cont = tokenize_continuation(answer, tiny_tokenizer, template)
        assert train.input_ids[len(prompt): len(prompt) + len(cont)] == cont
        assert train.labels[len(prompt): len(prompt) + len(cont)] == cont


def test_pcl_placeholder_and_tags(tiny_tokenizer):
    text = render_text(two_turn("pcl"), tiny_tokenizer, "lamm", add_generation_prompt=False)
    assert "### Human: <Pcl><pcl></Pcl> What is this?" in text
    assert "point cloud" in text.split("\n\n")[0]


def test_stop_strings(tiny_tokenizer):
    assert stop_strings("lamm") == ["###"]
    assert stop_strings("chat", tiny_tokenizer) == ["</s>"]


def test_placeholder_in_text_is_an_error(tiny_tokenizer):
    conv = Conversation([Message("user", "<image> What is this?", [MediaRef("image", path="a.png")]),
                         Message("assistant", "A cat.")], id="bad-1")
    with pytest.raises(ValueError, match=r"'bad-1'.*2 '<image>' tokens in the text but 1 image"):
        tokenize_conversation(conv, tiny_tokenizer, "lamm")


def test_roles_must_alternate(tiny_tokenizer):
    conv = Conversation([Message("user", "Hi"), Message("user", "Hi again")], id="r")
    with pytest.raises(ValueError, match="message 1 is 'user', expected 'assistant'"):
        tokenize_conversation(conv, tiny_tokenizer, "lamm", add_generation_prompt=True)
    with pytest.raises(ValueError, match="must end with an assistant message"):
        tokenize_conversation(Conversation([Message("user", "Hi")]), tiny_tokenizer, "lamm")


def test_from_record_strips_placeholder_and_maps_roles():
    rec = {"id": 7, "image": "coco/1.jpg", "task_type": "commomsenseqa",
           "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A dog."}]}
    conv = Conversation.from_record(rec)
    assert conv.id == "7" and conv.task_type == "commonsenseqa"
    assert [(m.role, m.content) for m in conv.messages] == [("user", "What is it?"), ("assistant", "A dog.")]
    assert [m.path for m in conv.messages[0].media] == ["coco/1.jpg"]


# A template that trims every message and refuses a system role (the shape of Llama-3's trimming and of
# Gemma's "System role not supported"), written here: the real files need the hub.
_TRIM_NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<{{ m['role'] }}>{{ m['content'] | trim }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_chat_template_that_trims_and_refuses_a_system_role(tiny_tokenizer):
    """The system text moves to the head of the first user turn; an answer with a trailing newline is
    supervised as the template renders it (trimmed) instead of failing as "not incremental"."""
    import copy

    from lamm.conversation import IGNORE_INDEX, Conversation, Message, render_text, tokenize_conversation

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = _TRIM_NO_SYSTEM
    conv = Conversation([Message("user", "What colour is it?"), Message("assistant", "It is red.\n")],
                        task_type="VQA")
    text = render_text(conv, tok, "chat", add_generation_prompt=False)
    assert text.startswith("<user>") and "<system>" not in text and "</s><assistant>It is red.</s>" in text
    tc = tokenize_conversation(conv, tok, "chat")
    supervised = tok.decode([i for i, lab in zip(tc.input_ids, tc.labels) if lab != IGNORE_INDEX])
    assert "It is red." in supervised and "What colour" not in supervised
