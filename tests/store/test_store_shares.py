"""Share links on both engines: a snapshot of the branch on screen (later messages, other
branches, votes and the owner never in it), unguessable ids, owner-only list and revoke, a
revoked link is "not found", and "continue" copies the snapshot into the viewer's history."""

from __future__ import annotations

import json

import pytest

from chatui.store import NotFound, Store

from .conftest import chat, raw_execute

A, B = "alice", "bob"


@pytest.fixture
def shared(store: Store):
    conv, (q1, a1, q2, a2) = chat(store, A, [("What is 2+2?", "4"), ("And 3+3?", "6")],
                                  sources=[{"url": "https://e.org", "title": "E"}],
                                  finish_reason="stop")
    store.rename_conversation(A, conv, "Sums")
    store.set_feedback(A, a1, True, comment="my private comment")
    store.update_message(A, a2, meta={"seed": 99, "notices": ["n1"]}, params={"top_p": 0.5})
    return store, conv, (q1, a1, q2, a2)


def test_snapshot_of_the_branch_on_screen(shared):
    store, conv, (q1, a1, q2, a2) = shared
    other = store.add_message(A, conv, "assistant", "SIX (other branch)", parent_id=q2,
                              finish_reason="stop")
    store.set_current_leaf(A, conv, a2)              # the first answer is on screen again
    sid = store.share_conversation(A, conv)
    store.add_message(A, conv, "user", "later question")       # after sharing
    share = store.get_share(sid)
    assert share["title"] == "Sums"
    assert [(m["role"], m["content"]) for m in share["messages"]] == [
        ("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?"), ("assistant", "6")]
    assert share["messages"][1]["sources"] == [{"url": "https://e.org", "title": "E"}]
    assert share["messages"][3]["meta"] == {"notices": ["n1"]}         # seed is not shown
    blob = json.dumps(share)
    for private in (A, conv, q1, a1, a2, other, "my private comment", "Be brief.", "top_p",
                    "SIX", "later question"):
        assert private not in blob
    assert set(share) == {"id", "title", "model", "messages", "created_at"}
    assert other not in blob


def test_a_chosen_leaf_and_an_answer_being_written(shared):
    store, conv, (q1, a1, q2, a2) = shared
    assert len(store.get_share(store.share_conversation(A, conv, leaf_id=a1))["messages"]) == 2
    turn = store.begin_turn(A, conv, "still typing?", model="m1")
    msgs = store.get_share(store.share_conversation(A, conv))["messages"]
    assert msgs[-1] == {"role": "user", "content": "still typing?"}   # half an answer left out
    assert turn["assistant_message_id"]


def test_ids_are_unguessable_and_distinct(shared):
    store, conv, _ = shared
    sids = {store.share_conversation(A, conv) for _ in range(20)}
    assert len(sids) == 20
    assert all(len(s) >= 22 and s.replace("-", "").replace("_", "").isalnum() for s in sids)


def test_list_and_revoke_by_owner_only(shared):
    store, conv, _ = shared
    first = store.share_conversation(A, conv)
    second = store.share_conversation(A, conv)
    mine = store.list_shares(A)
    assert [s["id"] for s in mine] == [second, first]
    assert mine[0]["conversation_id"] == conv and mine[0]["message_count"] == 4
    assert store.list_shares(B) == []
    with pytest.raises(NotFound):
        store.revoke_share(B, first)                 # not bob's: as if missing
    assert store.get_share(first)["id"] == first
    store.revoke_share(A, first)
    with pytest.raises(NotFound, match="share link not found"):
        store.get_share(first)
    with pytest.raises(NotFound):
        store.revoke_share(A, first)                 # twice: gone
    assert [s["id"] for s in store.list_shares(A)] == [second]


def test_b_cannot_share_a_conversation(shared):
    store, conv, (q1, a1, q2, a2) = shared
    with pytest.raises(NotFound):
        store.share_conversation(B, conv)
    with pytest.raises(NotFound):
        store.share_conversation(B, conv, leaf_id=a1)
    assert raw_execute(store.url, "SELECT COUNT(*) FROM shares")[0][0] == 0


@pytest.mark.parametrize("bad", ["", "x", "a" * 300, None, 42, "../etc", "abc def ghijklmnopq"])
def test_malformed_or_missing_ids_are_not_found(store: Store, bad):
    with pytest.raises(NotFound, match="share link not found"):
        store.get_share(bad)
    with pytest.raises(NotFound):
        store.continue_share(B, bad)


def test_continue_copies_into_the_viewers_history(shared):
    store, conv, _ = shared
    sid = store.share_conversation(A, conv)
    copy = store.continue_share(B, sid)
    assert [c["id"] for c in store.list_conversations(B)] == [copy]
    got = store.get_conversation(B, copy)
    assert got["title"] == "Sums" and got["system_prompt"] == ""
    branch = store.branch(B, copy)
    assert [m["content"] for m in branch] == ["What is 2+2?", "4", "And 3+3?", "6"]
    assert all(m["feedback"] is None for m in branch)
    assert branch[1]["finish_reason"] == "stop" and branch[1]["sources"][0]["url"]
    # the copy is bob's own: he continues it, alice's conversation and the link do not move
    store.add_message(B, copy, "user", "bob's follow-up")
    assert len(store.branch(A, conv)) == 4 and len(store.get_share(sid)["messages"]) == 4
    with pytest.raises(NotFound):
        store.get_conversation(A, copy)
    # and it is searchable for bob, not for alice
    assert [r["id"] for r in store.search_conversations(B, "follow")] == [copy]
    assert store.search_conversations(A, "follow") == []


def test_deleting_the_conversation_deletes_its_links(shared):
    store, conv, _ = shared
    sid = store.share_conversation(A, conv)
    store.delete_conversation(A, conv)
    with pytest.raises(NotFound):
        store.get_share(sid)
    assert store.list_shares(A) == []


def test_links_per_user_are_bounded(shared, monkeypatch):
    from chatui.store import InvalidArgument
    from chatui.store import shares as shares_mod

    store, conv, _ = shared
    monkeypatch.setattr(shares_mod, "MAX_SHARES_PER_USER", 3)
    for _ in range(3):
        store.share_conversation(A, conv)
    with pytest.raises(InvalidArgument, match="revoke some first"):
        store.share_conversation(A, conv)
    store.revoke_share(A, store.list_shares(A)[0]["id"])
    store.share_conversation(A, conv)                 # room again after a revoke


# -- files sent with a message (issue 13): shown in the link as in the chat -----------------

def _turn(store, user, conv, text, files, title="t"):
    t = store.begin_turn(user, conv, text, title=title, attachments=files)
    store.update_message(user, t["assistant_message_id"], content="seen", finish_reason="stop")
    return t


@pytest.fixture
def with_files(store: Store):
    from tests.store.test_store_attachments import PIXELS, PREVIEW, document, image

    img = dict(image("cat.png"), meta={"width": 64, "height": 48, "preview_mime": "image/png"})
    doc = dict(document("report.pdf"), meta={"pages": 2, "doc_kind": "pdf"})
    t = _turn(store, A, None, "look at these", [img, doc])
    conv = t["conversation_id"]
    # the same conversation, a question edited away (another branch) with its own file
    gone = store.add_message(A, conv, "user", "edited away", parent_id=None)
    store.add_attachments(A, gone, [image("offbranch.png")])
    store.set_current_leaf(A, conv, t["assistant_message_id"])
    # and another conversation of alice's, with files of its own
    _turn(store, A, None, "my other chat", [image("secret.png"), document("secret.pdf")])
    return store, conv, t, PIXELS, PREVIEW


def test_a_link_carries_the_previews_and_names_only(with_files):
    import base64

    from chatui.safe_chatbot import safe_message
    from chatui.share_page import share_messages

    store, conv, t, pixels, preview = with_files
    share = store.get_share(store.share_conversation(A, conv))
    q = share["messages"][0]
    assert q["content"] == "look at these"
    assert q["attachments"] == [
        {"kind": "image", "name": "cat.png", "preview_mime": "image/png",
         "preview": base64.b64encode(preview).decode()},
        {"kind": "document", "name": "report.pdf", "doc_kind": "pdf", "pages": 2}]
    assert "attachments" not in share["messages"][1]
    blob = json.dumps(share)
    # never the full image, a document's text, another branch's or conversation's files
    for private in (base64.b64encode(pixels).decode()[:200], "page one text", "offbranch",
                    "secret", t["user_message_id"]):
        assert private not in blob
    # the page: the chat's own bubble above the question, through the chat's sanitizer
    shown = share_messages(share["messages"])
    assert [m["role"] for m in shown] == ["user", "user", "assistant"]
    assert shown[1]["content"] == "look at these"
    text = safe_message(shown[0])["content"][0]["text"]
    assert f"(data:image/png;base64,{base64.b64encode(preview).decode()})" in text
    assert "Attached: `report.pdf` (PDF, 2 pages)" in text
    # the rule stays: a data image outside a user bubble is no image
    assert "data:image" not in safe_message({"role": "assistant",
                                             "content": shown[0]["content"]})["content"][0]["text"]


def test_the_snapshot_is_taken_at_share_time(with_files):
    from tests.store.test_store_attachments import image

    store, conv, t, _, _ = with_files
    sid = store.share_conversation(A, conv)
    store.add_attachments(A, t["user_message_id"], [image("added-later.png")])
    assert "added-later" not in json.dumps(store.get_share(sid))
    store.delete_conversation(A, conv)
    with pytest.raises(NotFound):
        store.get_share(sid)


def test_continue_copies_the_files_as_shown(with_files):
    from chatui.attachments.flow import conversation_bubbles

    store, conv, t, pixels, preview = with_files
    copy = store.continue_share(B, store.share_conversation(A, conv))
    files = store.list_attachments(B, copy, previews=True)
    assert [(f["kind"], f["name"]) for f in files] == [("image", "cat.png"),
                                                        ("document", "report.pdf")]
    q = store.branch(B, copy)[0]
    assert all(f["message_id"] == q["id"] for f in files)
    assert files[0]["preview"] == preview
    (img,) = store.message_images(B, q["id"])
    assert img["data"] == preview and img["mime"] == "image/png"     # the full image stays
    (doc,) = store.conversation_documents(B, copy)
    assert doc["text_index"]["chunks"] == [] and doc["meta"]["text_shared"] is False
    bubble = conversation_bubbles(store, B, copy)[q["id"]]
    assert "data:image/png;base64," in bubble
    assert "`report.pdf` (PDF, 2 pages, text not shared)" in bubble
    # bob's copies are his; alice's files stay hers
    for f in store.list_attachments(A, conv):
        with pytest.raises(NotFound):
            store.get_attachment(B, f["id"])
    with pytest.raises(NotFound):
        store.list_attachments(A, copy)
    assert [f["name"] for f in store.list_attachments(A, conv)] == [
        "cat.png", "report.pdf", "offbranch.png"]
    assert pixels not in (img["data"], files[0]["preview"])


def test_a_copied_document_is_not_searched(with_files):
    from chatui.attachments.flow import Attachments

    store, conv, _, _, _ = with_files
    copy = store.continue_share(B, store.share_conversation(A, conv))
    t = _turn(store, B, copy, "what does page one say?", [])
    files = Attachments(settings=None, store=store).for_turn(
        B, copy, t["user_message_id"], vision=True)
    assert files.documents == [] and files.images == []
    assert len(files.bubbles) == 1
