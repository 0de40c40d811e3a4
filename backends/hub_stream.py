"""A cheaper parse of huggingface_hub's streamed chat chunks, with the same result.

huggingface_hub 2.x turns every `data:` line of a streamed chat completion into a
`ChatCompletionStreamOutput` through its generic `BaseInferenceType.parse_obj`: type
introspection per key, then `__post_init__` re-copies each nested object with
`dataclasses.asdict` at every level. That costs ~240 µs per token on these machines (json
itself: ~11 µs; the parse below ~45 µs). A replica relaying 32 streams at 30 tokens/s spent
about a fifth of its CPU there, and under that load every user's first token waits for it
(bench_scale.py, one replica at 32 users, A/B on one host: CPU per 1,000 tokens −7 to −14%,
p50 first token 428/610 → 266/508 ms).

`fast_chunk` builds the very same objects for the shape nearly every server sends per
token (a `choices` list of `delta`s with text, plain values elsewhere): the same classes,
the same attributes, the same dict contents and key order, extra keys kept as extras.
Anything else (usage, logprobs, tool calls, errors, odd keys) goes to huggingface_hub's own
parser. `install()` swaps it in only after checking, on sample chunks, that both give
identical objects, so a huggingface_hub release that changes these types keeps its own
parser. tests/test_hub_stream.py compares the two on every chunk shape we know of.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging

log = logging.getLogger(__name__)

_PLAIN = (str, int, float, bool, type(None))
_installed: list = []
_PLAIN_KEYS: set[str] = set()  # keys seen that parse_obj keeps as they are


class _Unusual(Exception):
    """A chunk outside the fast shape: huggingface_hub parses it."""


@functools.cache
def _types() -> tuple[tuple[type, tuple[str, ...]], ...]:
    """(class, its init fields) for the chunk, a choice and a delta."""
    from huggingface_hub import (ChatCompletionStreamOutput, ChatCompletionStreamOutputChoice,
                                 ChatCompletionStreamOutputDelta)

    return tuple((cls, tuple(f.name for f in dataclasses.fields(cls) if f.init))
                 for cls in (ChatCompletionStreamOutput, ChatCompletionStreamOutputChoice,
                             ChatCompletionStreamOutputDelta))


def _make(cls, names: tuple[str, ...], data: dict, nested: dict) -> tuple[object, dict]:
    """`cls.parse_obj(data)` for `data` whose fields hold plain values, except those in
    `nested` (name -> (object, plain form), built already). Returns the object and the plain
    form `dataclasses.asdict` gives a parent."""
    fields = dict.fromkeys(names)
    extras = {}
    for key, value in data.items():
        if key in nested:
            continue
        if key not in _PLAIN_KEYS:
            if key != key.replace("-", "_").replace(" ", "_").lower():
                raise _Unusual(key)  # parse_obj renames such keys
            if len(_PLAIN_KEYS) < 256:
                _PLAIN_KEYS.add(key)
        if key in fields:
            if not isinstance(value, _PLAIN):
                raise _Unusual(key)  # a nested type this parse does not build
            fields[key] = value
        else:
            extras[key] = value  # kept as is, as an extra attribute and dict item
    plain = dict(fields)
    for key, (obj, obj_plain) in nested.items():
        fields[key], plain[key] = obj, obj_plain
    built = cls.__new__(cls)
    # parse_obj's dict order: the fields __init__ set to something (its __setattr__ skips
    # None), then the None ones (__post_init__'s update), then the extras.
    dict.update(built, {k: plain[k] for k in names if fields[k] is not None})
    dict.update(built, plain)
    dict.update(built, extras)
    built.__dict__.update(fields)
    built.__dict__.update(extras)
    return built, plain


def _build(payload):
    out, choice_type, delta_type = _types()
    if not isinstance(payload, dict) or "error" in payload:
        raise _Unusual("error")  # huggingface_hub raises its own error for these
    choices = payload.get("choices")
    if not isinstance(choices, list):
        raise _Unusual("choices")
    objs, plains = [], []
    for choice in choices:
        if not isinstance(choice, dict):
            raise _Unusual("choice")
        nested = {}
        delta = choice.get("delta")
        if isinstance(delta, dict):
            nested["delta"] = _make(*delta_type, delta, {})
        obj, plain = _make(*choice_type, choice, nested)
        objs.append(obj)
        plains.append(plain)
    nested = {"choices": (objs, plains)} if "choices" in payload else {}
    return _make(*out, payload, nested)[0]


def fast_chunk(line: str, fallback):
    """huggingface_hub's `_format_chat_completion_stream_output(line)`: the same result,
    built directly for the per-token shape; `fallback` (the original) for anything else."""
    if not line.startswith("data:") or line.strip() == "data: [DONE]":
        return fallback(line)
    try:
        return _build(json.loads(line.lstrip("data:").strip()))
    except (_Unusual, ValueError):
        return fallback(line)


SELF_CHECK = (
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                  "logprobs": None, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "system_fingerprint": "f", "choices": [{"index": 0, "delta": {
         "content": "", "reasoning_content": "hm"}, "finish_reason": "stop",
         "stop_reason": None}]},
)


def same(a, b) -> bool:
    """Identical as far as any reader can tell: classes, attributes, dict items and order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if list(a) != list(b) or not all(same(a[k], b[k]) for k in a):
            return False
        if hasattr(a, "__dict__"):
            da, db = vars(a), vars(b)
            return list(da) == list(db) and all(same(da[k], db[k]) for k in da)
        return True
    return a == b


def install() -> bool:
    """Use `fast_chunk` for huggingface_hub's streamed chat chunks, once it has given the
    same objects as huggingface_hub on sample chunks. Returns whether it is in use."""
    if _installed:
        return _installed[0]
    try:
        from huggingface_hub.inference import _common

        original = _common._format_chat_completion_stream_output
        for sample in SELF_CHECK:
            line = "data: " + json.dumps(sample)
            if not same(fast_chunk(line, _raise_unusual), original(line)):
                raise _Unusual("differs")

        def parse(line: str):
            return fast_chunk(line, original)

        parse.original = original
        _common._format_chat_completion_stream_output = parse
        _installed.append(True)
    except Exception as e:  # any drift in huggingface_hub: keep its own parser
        log.info("huggingface_hub's own chunk parser stays in use (%s)", e)
        _installed.append(False)
    return _installed[0]


def _raise_unusual(line: str):
    raise _Unusual("fallback during the self-check")
