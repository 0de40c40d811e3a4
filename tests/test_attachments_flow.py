"""What a turn gets back from the store (real SQLite file): the documents of the branch being
answered, the message's own images for a vision model, the bubbles that show them."""

from __future__ import annotations

import pytest

from chatui.attachments.flow import Attachments, store_items
from chatui.attachments.intake import prepare
from chatui.config import AttachmentSettings
from chatui.store import NotFound, Store
from tests.attachment_files import make_image

U = "user-" + "f" * 32


def test_documents_follow_the_branch_and_images_their_message(tmp_path):
    settings = AttachmentSettings()
    store = Store(tmp_path / "chat.db")
    files = Attachments(settings, store)
    doc = store_items(prepare([("notes.md", b"# Tides\n\nThe moon pulls the oceans.")],
                              settings, vision=True))
    pic = store_items(prepare([("sea.png", make_image())], settings, vision=True))
    t1 = store.begin_turn(U, None, "what pulls the oceans?", title="t", attachments=doc)
    conv = t1["conversation_id"]
    store.update_message(U, t1["assistant_message_id"], content="the moon", finish_reason="stop")
    t2 = store.begin_turn(U, conv, "and this picture?", attachments=pic)
    branch = {t1["user_message_id"], t2["user_message_id"]}

    got = files.for_turn(U, conv, t2["user_message_id"], vision=True, branch=branch)
    assert [d.name for d in got.documents] == ["notes.md"]
    assert len(got.images) == 1 and got.images[0]["type"] == "image_url"
    assert set(got.bubbles) == branch and "Attached: `notes.md`" in got.bubbles[
        t1["user_message_id"]]
    # A model without vision gets the documents, not the picture.
    blind = files.for_turn(U, conv, t2["user_message_id"], vision=False, branch=branch)
    assert blind.documents and not blind.images
    # The first question edited (a sibling without the file): its document left the chat.
    edited = store.add_message(U, conv, "user", "what pulls the tides?", parent_id=None)
    assert files.for_turn(U, conv, edited, vision=True, branch={edited}).documents == []
    # Someone else asking about this conversation gets nothing at all.
    with pytest.raises(NotFound):
        files.for_turn("other-" + "0" * 32, conv, t2["user_message_id"], vision=True)
    store.close()
