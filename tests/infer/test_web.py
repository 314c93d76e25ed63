"""The Gradio demo: ``gradio_client`` asks about an uploaded image; a headless browser does it by hand."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from lamm.conversation import Conversation, MediaRef
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.engine import GenerateRequest, GenerationSettings, load_engine
from lamm.infer.web import history_conversation, launch, point_cloud_figure


class RecordingEngine(DummyEngine):
    """A constant answer, and a record of every conversation the demo sent."""

    def __init__(self) -> None:
        super().__init__("constant=A red circle on a white background.")
        self.spec = "dummy:recording"
        self.seen: list[Conversation] = []

    def generate(self, requests, progress=None):
        self.seen.extend(r.conversation for r in requests)
        return super().generate(requests, progress)


def test_gradio_client_asks_about_an_uploaded_image(tiny_model_dir, image_file, pcl_file, free_port):
    from gradio_client import Client, handle_file

    engine = load_engine(f"lamm:{tiny_model_dir}", device="cpu")
    port = free_port()
    demo = launch(engine, port=port, block=False, max_points=5000)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = client.predict("What is in the image?", handle_file(str(image_file)), None, 0.0, 1.0, 8,
                                api_name="/ask")
        want = engine.generate([GenerateRequest(
            Conversation.single_turn("What is in the image?", [MediaRef("image", path=str(image_file))]),
            GenerationSettings(max_new_tokens=8))])[0]
        assert answer == want
        # the chat endpoint streams into the history; the last message is the reply
        _, history = client.predict("What is in the image?", [], handle_file(str(image_file)), None, 0.0, 1.0, 8,
                                    api_name="/chat")
        assert history[-1]["role"] == "assistant"
        reply = history[-1]["content"]
        reply = reply if isinstance(reply, str) else "".join(p.get("text", "") for p in reply)
        assert reply == want
        # the tiny model needs colour, so this 6-column cloud works as a point-cloud question
        answer = client.predict("What is it?", None, handle_file(str(pcl_file)), 0.0, 1.0, 8, api_name="/ask")
        assert isinstance(answer, str)
        # a cloud over the upload limit is refused (from its header: a small .npz may expand to gigabytes)
        big = pcl_file.parent / "big.npz"
        np.savez_compressed(big, points=np.zeros((6000, 6), np.float32))
        with pytest.raises(Exception, match="6000 points; the limit is 5000"):
            client.predict("What is it?", None, handle_file(str(big)), 0.0, 1.0, 8, api_name="/ask")
        _, history = client.predict("What is it?", [], None, handle_file(str(big)), 0.0, 1.0, 8, api_name="/chat")
        assert "the limit is 5000" in str(history[-1]["content"])
    finally:
        demo.close()
        engine.close()


def test_history_becomes_a_multi_turn_conversation(image_file):
    hist = [{"role": "user", "content": "what is it?"}, {"role": "assistant", "content": [{"type": "text", "text": "a circle"}]}]
    conv = history_conversation(hist, "what colour?", str(image_file), None)
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "what is it?"), ("assistant", "a circle"), ("user", "what colour?")]
    assert conv.messages[0].media[0].path == str(image_file) and not conv.messages[2].media


def test_point_cloud_figure_subsamples_and_colours():
    pytest.importorskip("plotly")
    pts = np.random.default_rng(0).uniform(size=(50_000, 6)).astype(np.float32)
    fig = point_cloud_figure(pts, "cloud")
    trace = fig.data[0]
    assert trace.type == "scatter3d" and len(trace.x) == 20_000 and trace.marker.color[0].startswith("rgb(")


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="end-to-end browser test needs Debian's chromium (apt-get install chromium)")
def test_browser_uploads_an_image_and_gets_an_answer(tmp_path, image_file, free_port):
    sync_api = pytest.importorskip("playwright.sync_api", reason="end-to-end browser test needs playwright")
    engine = RecordingEngine()
    port = free_port()
    demo = launch(engine, port=port, block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                local = f"http://127.0.0.1:{port}/"
                # hermetic: whatever the page asks of other hosts (fonts, CDNs) is refused, never sent
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
                           else route.abort())
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
                page.locator("#image-input input[type=file]").set_input_files(str(image_file))
                page.locator("#image-input img").first.wait_for(timeout=30_000)
                page.locator("#question textarea").fill("What is in the image?")
                page.locator("#send").click()
                sync_api.expect(page.locator("#chatbot")).to_contain_text(
                    "A red circle on a white background.", timeout=30_000)
                page.screenshot(path=str(tmp_path / "web_demo.png"), full_page=True)
            finally:
                browser.close()
    finally:
        demo.close()
    assert (tmp_path / "web_demo.png").stat().st_size > 10_000
    conv = engine.seen[-1]
    assert conv.messages[-1].content == "What is in the image?"
    sent = conv.messages[0].media[0]
    assert sent.modality == "image"
    assert np.array_equal(np.asarray(sent.load()), np.asarray(Image.open(image_file).convert("RGB")))


def test_failed_exchanges_are_not_sent_back_to_the_model(image_file):
    """The demo's own error note is not the model's answer: that question and note are left out."""
    hist = [{"role": "user", "content": "what is it?"}, {"role": "assistant", "content": "a circle"},
            {"role": "user", "content": "and now?"},
            {"role": "assistant", "content": "⚠️ /tmp/gradio/x/garbage.npy: not a plain numeric .npy array"}]
    conv = history_conversation(hist, "what colour?", str(image_file), None)
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "what is it?"), ("assistant", "a circle"), ("user", "what colour?")]


def test_chat_turn_shows_a_context_refusal_and_the_chat_goes_on():
    """A question that does not fit is a ⚠️ reply with the numbers; the next question works, and the
    refused exchange is not sent back to the model. A reply cut by the context carries the demo's note,
    which is not sent back either."""
    from lamm.infer.web import CONTEXT_NOTE, ERROR_MARK, chat_turn

    # the dummy counts words: 18 of system message + 3 of question, 5 left for the reply
    engine = load_engine("dummy:constant=one two three four five six seven", context_length=26)
    settings = GenerationSettings(max_new_tokens=50)
    history = list(chat_turn(engine, [], "far too long " * 20, None, None, settings))[-1]
    assert history[-1]["content"].startswith(ERROR_MARK)
    assert "the prompt takes 78 tokens; the model's context is 26 tokens" in history[-1]["content"]
    assert "Clear chat" in history[-1]["content"]
    history = list(chat_turn(engine, history, "question number 1?", None, None, settings))[-1]
    assert history[-1]["content"] == "one two three four five" + CONTEXT_NOTE
    conv = history_conversation(history, "next?", None, None)
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "question number 1?"), ("assistant", "one two three four five"), ("user", "next?")]
