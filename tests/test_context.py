"""Context trimming: oldest turns go first, never the system prompt."""

import pytest

from chatui.context import ContextOverflow, fit_messages


def count(messages):  # 1 token per word + 4 per message
    return sum(len(m["content"].split()) + 4 for m in messages)


def conv(n_turns, words=50):
    out = [{"role": "system", "content": "be nice"}]
    for i in range(n_turns):
        out.append({"role": "user", "content": f"q{i} " + "w " * words})
        out.append({"role": "assistant", "content": f"a{i} " + "w " * words})
    out.append({"role": "user", "content": "last question"})
    return out


def test_fits_untouched():
    f = fit_messages(conv(2), 1000, 100, count)
    assert f.dropped == 0 and f.max_new_tokens == 100 and len(f.messages) == 6


def test_trims_oldest_turns_keeps_system_and_last():
    msgs = conv(10)
    f = fit_messages(msgs, 600, 200, count)
    assert f.dropped > 0
    assert f.messages[0] == msgs[0]  # system prompt kept
    assert f.messages[-1]["content"] == "last question"
    assert f.messages[1]["role"] == "user"  # never starts on an assistant turn
    assert count(f.messages) + f.max_new_tokens <= 600
    # the kept turns are the newest ones, in order
    assert f.messages[1:] == msgs[len(msgs) - len(f.messages) + 1:]


def test_answer_budget_shrinks_before_refusing():
    msgs = [{"role": "user", "content": "w " * 400}]
    f = fit_messages(msgs, 512, 400, count)
    assert 64 <= f.max_new_tokens <= 512 - 404


def test_single_huge_message_is_refused_with_numbers():
    with pytest.raises(ContextOverflow, match=r"about \d+ tokens.*at most 512"):
        fit_messages([{"role": "user", "content": "w " * 1000}], 512, 100, count)
