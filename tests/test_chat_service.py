"""ChatService turns against a wire-format upstream: we can read exactly what the model got."""



from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.chat import ChatService, TurnRequest, TurnResult, clean_history
from chatui.config import Settings


def service(url: str, context_length: int = 4096) -> ChatService:
    settings = Settings.model_validate({"models": [
        {"name": "wire", "type": "openai", "endpoint_url": url + "/v1",
         "context_length": context_length}]})
    backend = RemoteBackend("wire", url + "/v1", context_length=context_length,
                            defaults=GenerationParams(max_new_tokens=64))
    return ChatService(settings, {"wire": backend})


async def run(svc, req) -> tuple[list[list[dict]], TurnResult]:
    result = TurnResult()
    snaps = [s async for s in svc.respond(req, result)]
    return snaps, result


async def test_long_history_is_trimmed_and_the_user_is_told(wire_server):
    svc = service(wire_server.url, context_length=400)
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"question {i} " + "blah " * 40},
                    {"role": "assistant", "content": f"answer {i} " + "blah " * 40}]
    req = TurnRequest(message="final question", history=history, model="wire",
                      system_prompt="SYSTEM RULES", max_new_tokens=64)
    snaps, result = await run(svc, req)
    sent = wire_server.config.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "SYSTEM RULES"}  # never trimmed
    assert sent[-1] == {"role": "user", "content": "final question"}
    assert len(sent) < len(history) + 2 and "question 0" not in str(sent)
    assert sent[1]["role"] == "user"
    notes = [m for m in snaps[-1] if "Trimmed" in (m.get("metadata") or {}).get("title", "")]
    assert len(notes) == 1 and "left out" in notes[0]["metadata"]["log"]
    assert result.finish_reason in ("stop", "length") and result.text


async def test_message_too_long_for_the_model_is_refused_with_numbers(wire_server):
    svc = service(wire_server.url, context_length=300)
    req = TurnRequest(message="word " * 2000, history=[], model="wire")
    snaps, result = await run(svc, req)
    assert result.finish_reason == "error" and "too long for this model" in result.error
    assert "300" in result.error
    assert wire_server.config.requests == []  # the model was never called


async def test_failure_mid_answer_keeps_the_partial_text_and_shows_an_error(wire_server):
    wire_server.config.die_after = 4
    svc = service(wire_server.url)
    snaps, result = await run(svc, TurnRequest(message="hi", history=[], model="wire"))
    assert result.finish_reason == "error" and result.text == "tok " * 4
    final = snaps[-1]
    assert final[0]["content"] == "tok " * 4
    assert final[-1]["content"].startswith("⚠️ **Error:**")
    assert "broke in the middle" in final[-1]["content"]


async def test_dead_backend_is_one_clear_bubble(wire_server):
    wire_server.config.status = 503
    svc = service(wire_server.url)
    snaps, result = await run(svc, TurnRequest(message="hi", history=[], model="wire"))
    assert result.finish_reason == "error" and result.text == ""
    assert [m["content"] for m in snaps[-1]] == [
        "⚠️ **Error:** The model server failed (HTTP 503): Model is overloaded. Try again later."]


async def test_stopping_early_marks_the_result_stopped(wire_server):
    wire_server.config.tokens = 500
    wire_server.config.delay = 0.005
    svc = service(wire_server.url)
    result = TurnResult()
    gen = svc.respond(TurnRequest(message="hi", history=[], model="wire"), result)
    async for snap in gen:
        if len(result.text) > 20:
            break
    await gen.aclose()
    assert result.finish_reason == "stopped" and result.text.startswith("tok tok")


def test_clean_history_drops_steps_errors_and_marks():
    shown = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "log", "metadata": {"title": "Searching"}},
        {"role": "assistant", "content": "answer\n\n⏹️ *Stopped.*"},
        {"role": "assistant", "content": "⚠️ **Error:** boom"},
        {"role": "user", "content": [{"type": "text", "text": "q2"}]},
    ]
    assert clean_history(shown) == [{"role": "user", "content": "q"},
                                     {"role": "assistant", "content": "answer"},
                                     {"role": "user", "content": "q2"}]
