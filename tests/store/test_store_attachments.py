"""Attachments in the store, on SQLite and PostgreSQL: stored with their message in one
transaction or not at all, binary bytes intact, owner-only, gone with the conversation."""

from __future__ import annotations

import pytest

from chatui.store import InvalidArgument, NotFound, Store
from chatui.store.attachments import AttachmentLimit
from tests.store.conftest import raw_count

# Every byte value, NULs included: BLOB/BYTEA must give back exactly what they got.
PIXELS = bytes(range(256)) * 40
PREVIEW = b"\x89PNG\r\n\x1a\n\x00\x00preview"


def image(name="cat.png"):
    return {"kind": "image", "name": name, "mime": "image/png", "size": 12345,
            "data": PIXELS, "preview": PREVIEW, "meta": {"width": 64, "height": 48}}


def document(name="report.pdf"):
    return {"kind": "document", "name": name, "mime": "application/pdf", "size": 999,
            "text_index": {"name": name, "kind": "pdf", "pages": 2, "title": "",
                           "chunks": [[1, "", "page one text"], [2, "Intro", "page two — é"]]},
            "meta": {"pages": 2}}


def test_a_message_and_its_files_are_stored_together(store: Store):
    t = store.begin_turn("alice", None, "look at these", title="t",
                         attachments=[image(), document()])
    assert t["has_attachments"] is True
    conv, msg = t["conversation_id"], t["user_message_id"]
    listed = store.list_attachments("alice", conv)
    assert [(a["kind"], a["name"], a["message_id"]) for a in listed] == [
        ("image", "cat.png", msg), ("document", "report.pdf", msg)]
    assert "data" not in listed[0] and listed[0]["meta"] == {"width": 64, "height": 48}
    with_previews = store.list_attachments("alice", conv, kind="image", previews=True)
    assert with_previews[0]["preview"] == PREVIEW
    (img,) = store.message_images("alice", msg)
    assert img["data"] == PIXELS and isinstance(img["data"], bytes)
    (doc,) = store.conversation_documents("alice", conv)
    assert doc["text_index"]["chunks"][1] == [2, "Intro", "page two — é"]
    assert store.get_attachment("alice", img["id"])["data"] == PIXELS


def test_later_turns_know_the_conversation_has_files(store: Store):
    first = store.begin_turn("alice", None, "plain", title="t")
    assert first["has_attachments"] is False
    conv = first["conversation_id"]
    store.update_message("alice", first["assistant_message_id"], content="ok",
                         finish_reason="stop")
    store.begin_turn("alice", conv, "with a file", attachments=[document()])
    later = store.begin_turn("alice", conv, "and a question")
    assert later["has_attachments"] is True
    assert len(store.conversation_documents("alice", conv)) == 1  # still there for it


def test_too_many_documents_writes_nothing(store: Store):
    t = store.begin_turn("alice", None, "one", title="t", attachments=[document("a.pdf")],
                         max_documents=2)
    conv = t["conversation_id"]
    before = (raw_count(store, "messages"), raw_count(store, "attachments"))
    with pytest.raises(AttachmentLimit, match="would hold 3 documents; at most 2"):
        store.begin_turn("alice", conv, "two more", attachments=[document("b.pdf"),
                                                                  document("c.pdf")],
                         max_documents=2)
    assert (raw_count(store, "messages"), raw_count(store, "attachments")) == before
    # images do not count against the document limit
    store.begin_turn("alice", conv, "a picture", attachments=[image()], max_documents=2)
    assert raw_count(store, "attachments") == 2


def test_a_malformed_item_writes_nothing(store: Store):
    with pytest.raises(InvalidArgument, match="needs its bytes"):
        store.begin_turn("alice", None, "x", title="t",
                         attachments=[document(), {"kind": "image", "name": "a.png"}])
    assert raw_count(store, "messages") == 0 and raw_count(store, "attachments") == 0


def test_only_the_owner_sees_attachments(store: Store):
    t = store.begin_turn("alice", None, "mine", title="t", attachments=[image(), document()])
    conv, msg = t["conversation_id"], t["user_message_id"]
    att = store.list_attachments("alice", conv)[0]["id"]
    for call in (lambda: store.list_attachments("mallory", conv),
                 lambda: store.conversation_documents("mallory", conv),
                 lambda: store.message_images("mallory", msg),
                 lambda: store.get_attachment("mallory", att),
                 lambda: store.count_attachments("mallory", conv),
                 lambda: store.add_attachments("mallory", msg, [image("x.png")])):
        with pytest.raises(NotFound):
            call()
    assert raw_count(store, "attachments") == 2
    with pytest.raises(NotFound):
        store.begin_turn("mallory", conv, "sneak", attachments=[document()])
    assert raw_count(store, "attachments") == 2
    # Same error as for an id that does not exist: ids cannot be probed.
    errors = []
    for probe in (att, "0" * 32):
        with pytest.raises(NotFound) as e:
            store.get_attachment("mallory", probe)
        errors.append(str(e.value).replace(probe, "ID"))
    assert errors[0] == errors[1]


def test_add_attachments_to_an_existing_message(store: Store):
    t = store.begin_turn("alice", None, "q", title="t")
    ids = store.add_attachments("alice", t["user_message_id"], [document()], max_documents=1)
    assert len(ids) == 1 and store.count_attachments("alice", t["conversation_id"]) == 1
    with pytest.raises(AttachmentLimit):
        store.add_attachments("alice", t["user_message_id"], [document("b.pdf")],
                              max_documents=1)


def test_deleting_the_conversation_deletes_its_files(store: Store):
    t = store.begin_turn("alice", None, "q", title="t", attachments=[image(), document()])
    store.delete_conversation("alice", t["conversation_id"])
    assert raw_count(store, "attachments") == 0
