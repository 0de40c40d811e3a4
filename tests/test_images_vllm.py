"""In-process vLLM with images, at unit level (no vision model can run here): the chat template
gets its image placeholders and the engine a multimodal TokensPrompt with the decoded pixels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backends import BackendError
from backends import vllm as vllm_backend
from backends.vllm import VllmBackend
from chatui.attachments.images import load_image
from tests.attachment_files import make_image


def messages_with_image():
    img = load_image("red.png", make_image("PNG", (12, 9)))
    return [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         img.content_part()]}]


def test_the_template_sees_image_placeholders_and_the_text():
    cleaned = VllmBackend._clean(messages_with_image())
    assert cleaned[0] == {"role": "system", "content": "Be brief."}
    assert cleaned[1] == {"role": "user", "content": [{"type": "image"},
                                                      {"type": "text", "text": "What is this?"}]}


def test_the_engine_gets_a_multimodal_prompt(monkeypatch):
    fake = SimpleNamespace(TokensPrompt=lambda **kw: dict(kw))
    monkeypatch.setattr(vllm_backend, "_api", lambda: fake)
    b = VllmBackend("eyes", "/nowhere/model")
    prompt = b._prompt([1, 2, 3], messages_with_image())
    assert prompt["prompt_token_ids"] == [1, 2, 3]
    (image,) = prompt["multi_modal_data"]["image"]
    assert image.size == (12, 9) and image.getpixel((1, 1)) == (200, 30, 30)
    text_only = b._prompt([4], [{"role": "user", "content": "hi"}])
    assert text_only == {"prompt_token_ids": [4]}


def test_a_remote_image_url_is_refused():
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "x"},
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/x.png"}}]}]
    with pytest.raises(BackendError, match="only inline"):
        VllmBackend._images(msgs)


def test_token_estimate_counts_an_image_not_its_base64():
    b = VllmBackend("eyes", "/nowhere/model")  # no tokenizer yet: the base estimate
    msgs = messages_with_image()
    from backends.base import IMAGE_TOKENS

    n = b.count_tokens(msgs)
    assert IMAGE_TOKENS < n < IMAGE_TOKENS + 40  # the image's fixed share plus the text
    two = msgs[:1] + [dict(msgs[1], content=msgs[1]["content"] + [msgs[1]["content"][1]])]
    assert b.count_tokens(two) == n + IMAGE_TOKENS
