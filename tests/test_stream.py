"""Prompt building and streaming: same text as a plain greedy decode, honest stats, clean stops and errors."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest
import torch

from models import (FinishReason, GenerationSettings, Kind, PreparedPrompt, SettingsError, generate_call, generation_threads,
                    prepare, stream)
from models.loader import LoadedModel
from models.stream import GenerationTimeout, TimedStreamer
from models.tiny import corpus

from .conftest import CAUSAL_TINY, SEQ2SEQ_TINY
from .modelhelpers import generate_text, prepared_for

ALL_TINY = (*SEQ2SEQ_TINY, *CAUSAL_TINY)
PROMPT = "The quick dog reads a story"


def wait_for_generation_threads(timeout: float = 30.0) -> None:
    for thread in generation_threads():
        thread.join(timeout)


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every test here starts and ends without generation threads."""
    wait_for_generation_threads()
    assert not generation_threads()
    yield
    wait_for_generation_threads()
    assert not generation_threads(), "a generation thread outlived its test"


@contextlib.contextmanager
def patched_forward(loaded: LoadedModel, wrapper: Callable[[Callable, int], Callable]) -> Iterator[list[int]]:
    """Replace ``loaded.model.forward`` for the block; restored afterwards even on failure.

    ``wrapper(original_forward, call_number)`` returns the function to run for that call
    (numbered from 1). Yields the list of call numbers seen so far.
    """
    model = loaded.model
    assert "forward" not in vars(model), "forward is already patched"
    original = model.forward
    calls: list[int] = []

    def forward(*args, **kwargs):
        calls.append(len(calls) + 1)
        return wrapper(original, calls[-1])(*args, **kwargs)

    model.forward = forward
    try:
        yield calls
    finally:
        wait_for_generation_threads()  # a worker may still be inside the patched forward
        del model.forward


def sleeping(seconds: float, on_call: Callable[[int], bool]) -> Callable[[Callable, int], Callable]:
    """A forward wrapper that sleeps ``seconds`` before the calls picked by ``on_call``."""

    def wrapper(original, n):
        def run(*args, **kwargs):
            if on_call(n):
                time.sleep(seconds)
            return original(*args, **kwargs)

        return run

    return wrapper


def reference_greedy(loaded: LoadedModel, input_ids: list[int], max_new_tokens: int) -> tuple[str, list[int]]:
    """Plain ``model.generate`` greedy decode of ``input_ids``: (text, generated ids)."""
    ids = torch.tensor([input_ids], dtype=torch.long)
    tokenizer = loaded.tokenizer
    with torch.inference_mode():
        out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                                    max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    out_ids = out[0].tolist()
    generated = out_ids[len(input_ids):] if loaded.kind is Kind.CAUSAL else out_ids[1:]  # seq2seq: drop decoder start
    return tokenizer.decode(generated, skip_special_tokens=True), generated


# ---- prompt building -----------------------------------------------------------------------------

def test_prepare_uses_chat_template_for_tiny_llama(load_tiny):
    loaded = load_tiny("tiny-llama")
    on = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, "Hello there", GenerationSettings())
    assert on.used_chat_template
    assert "<|im_start|>user\nHello there<|im_end|>" in on.text and "<|im_start|>assistant" in on.text
    assert on.input_ids == loaded.tokenizer(on.text, add_special_tokens=False)["input_ids"]
    off = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, "Hello there",
                  GenerationSettings(use_chat_template=False))
    assert not off.used_chat_template
    assert off.text == "Hello there" and "<|im_start|>" not in off.text
    assert off.notices == [] and on.notices == []


def test_prepare_without_template_continues_plain_text(load_tiny):
    loaded = load_tiny("tiny-gpt2")  # no chat template: the switch has no effect
    prepared = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, "Hello there", GenerationSettings())
    assert not prepared.used_chat_template and prepared.text == "Hello there"
    assert prepared.decoder_start is None


def test_prepare_truncates_long_causal_prompt_with_notice(load_tiny):
    loaded = load_tiny("tiny-gpt2")  # 256-token context
    prompt = " ".join(corpus(200))
    full_ids = loaded.tokenizer(prompt)["input_ids"]
    prepared = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, prompt, GenerationSettings(max_new_tokens=32))
    assert len(full_ids) > 256
    assert prepared.input_ids == full_ids[-(256 - 32):]  # the end of the prompt is kept
    assert prepared.max_new_tokens == 32
    assert len(prepared.notices) == 1 and "prompt cut from" in prepared.notices[0] and "256" in prepared.notices[0]


def test_prepare_caps_max_new_tokens_to_context(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    prepared = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, "Hello", GenerationSettings(max_new_tokens=2048))
    assert prepared.max_new_tokens == 128
    assert any("max_new_tokens lowered to 128" in n for n in prepared.notices)


def test_prepare_seq2seq_prefix_and_decoder_start(load_tiny):
    loaded = load_tiny("tiny-t5")
    prepared = prepare(Kind.SEQ2SEQ, loaded.tokenizer, loaded.model.config, "the cat",
                       GenerationSettings(task_prefix="summarize: "))
    assert prepared.text == "summarize: the cat"
    assert prepared.input_ids[-1] == loaded.tokenizer.eos_token_id
    assert prepared.decoder_start == "<pad>" and not prepared.used_chat_template and prepared.notices == []


@pytest.mark.parametrize("name,limit", [("tiny-t5", 512), ("tiny-bart", 256)])
def test_prepare_truncates_long_seq2seq_input_keeping_end_token(load_tiny, name, limit):
    loaded = load_tiny(name)
    prompt = " ".join(corpus(300))
    prepared = prepare(Kind.SEQ2SEQ, loaded.tokenizer, loaded.model.config, prompt, GenerationSettings(max_new_tokens=16))
    assert len(prepared.input_ids) == limit
    assert prepared.input_ids[-1] == loaded.tokenizer.eos_token_id
    assert any("input cut from" in n for n in prepared.notices)


# ---- the generate call -----------------------------------------------------------------------------

def test_generate_call_holds_the_prepared_input_and_capped_options(load_tiny):
    loaded = load_tiny("tiny-gpt2")  # 256-token context: 300 new tokens are capped to 128
    settings = GenerationSettings(max_new_tokens=300, temperature=0.7, top_k=40.0, seed=3)
    prepared = prepared_for(loaded, PROMPT, settings)
    call = generate_call(loaded, prepared, settings)
    assert call.input_ids.tolist() == [prepared.input_ids] and call.input_ids.dtype == torch.long
    assert call.input_ids.device == loaded.model.device
    assert call.attention_mask.tolist() == [[1] * len(prepared.input_ids)]
    assert call.pad_token_id == loaded.tokenizer.pad_token_id
    assert dict(call.options) == {**settings.generate_kwargs(), "max_new_tokens": 128}
    assert list(call.options) == list(settings.generate_kwargs()), "the order of generate_kwargs() is kept"
    with pytest.raises(TypeError):
        call.options["max_new_tokens"] = 5  # type: ignore[index]
    marker = object()
    kwargs = call.kwargs(streamer=marker)
    assert kwargs["streamer"] is marker and kwargs["input_ids"] is call.input_ids and kwargs["max_new_tokens"] == 128


@pytest.mark.parametrize("eos, tokenizer_eos, expected", [([7, 3], None, 7), (5, None, 5), (None, 9, 9), (None, None, 0)])
def test_generate_call_pads_with_the_eos_token_when_the_tokenizer_has_no_pad(eos, tokenizer_eos, expected):
    loaded = SimpleNamespace(model=SimpleNamespace(device=torch.device("cpu"), generation_config=SimpleNamespace(eos_token_id=eos)),
                             tokenizer=SimpleNamespace(pad_token_id=None, eos_token_id=tokenizer_eos))
    call = generate_call(loaded, PreparedPrompt("x", [4, 5], 6), GenerationSettings())  # type: ignore[arg-type]
    assert call.pad_token_id == expected and call.options["max_new_tokens"] == 6


def test_stream_reports_truncation_notices(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    text, stats = generate_text(loaded, " ".join(corpus(200)), GenerationSettings(max_new_tokens=8))
    assert stats.input_tokens == 256 - 8 and stats.output_tokens == 8
    assert any("prompt cut from" in n for n in stats.notices)


# ---- streamed text and stats ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_TINY)
def test_stream_equals_plain_greedy_decode(load_tiny, name):
    loaded = load_tiny(name)
    settings = GenerationSettings(max_new_tokens=24)
    prepared = prepared_for(loaded, PROMPT, settings)
    updates = list(stream(loaded, prepared, settings))
    deltas = [u.delta for u in updates[:-1]]
    final = updates[-1]
    assert final.done and not any(u.done for u in updates[:-1])
    assert len(deltas) >= 3, "the text arrives in several steps"
    assert all(deltas), "every intermediate update carries new text"
    assert "".join(deltas) == final.text
    assert all(u.text == "".join(deltas[: i + 1]) for i, u in enumerate(updates[:-1]))

    expected_text, generated = reference_greedy(loaded, prepared.input_ids, settings.max_new_tokens)
    assert final.text == expected_text  # spacing included
    stats = final.stats
    assert stats.output_tokens == len(generated) == 24
    assert stats.input_tokens == len(prepared.input_ids)
    assert stats.finish_reason is FinishReason.LENGTH and stats.error is None
    # the rate counts the tokens after the first over the time after the first: never below that count over the whole run
    assert stats.time_to_first_token is not None and 0 < stats.time_to_first_token < stats.total_seconds
    assert stats.tokens_per_second is not None and stats.tokens_per_second >= (stats.output_tokens - 1) / stats.total_seconds


def test_stream_uses_chat_template_and_matches_decode(load_tiny):
    loaded = load_tiny("tiny-llama")
    for use_template in (True, False):
        settings = GenerationSettings(max_new_tokens=12, use_chat_template=use_template)
        text, stats = generate_text(loaded, PROMPT, settings)
        prepared = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, PROMPT, settings)
        assert prepared.used_chat_template is use_template
        assert stats.input_tokens == len(prepared.input_ids)
        assert text == reference_greedy(loaded, prepared.input_ids, 12)[0]


def test_seq2seq_task_prefix_reaches_the_model(load_tiny):
    loaded = load_tiny("tiny-t5")
    plain = generate_text(loaded, "the cat", GenerationSettings(max_new_tokens=4))[1]
    prefixed = generate_text(loaded, "the cat", GenerationSettings(max_new_tokens=4, task_prefix="summarize: "))[1]
    assert prefixed.input_tokens > plain.input_tokens


def test_eos_is_reported_when_the_model_ends(load_tiny):
    loaded = load_tiny("tiny-gpt2-eos")
    settings = GenerationSettings(max_new_tokens=40)
    for prompt in corpus(40, seed=3):
        text, stats = generate_text(loaded, prompt, settings)
        if stats.finish_reason is FinishReason.EOS:
            break
    else:
        pytest.fail("tiny-gpt2-eos never produced its end-of-sequence token")
    prepared = prepare(Kind.CAUSAL, loaded.tokenizer, loaded.model.config, prompt, settings)
    expected_text, generated = reference_greedy(loaded, prepared.input_ids, 40)
    assert generated[-1] == loaded.tokenizer.eos_token_id
    assert stats.output_tokens == len(generated) < 40  # the end token counts as generated
    assert text == expected_text


def test_never_stop_models_always_hit_the_length_limit(load_tiny):
    for prompt in corpus(5, seed=3):
        stats = generate_text(load_tiny("tiny-gpt2"), prompt, GenerationSettings(max_new_tokens=40))[1]
        assert stats.finish_reason is FinishReason.LENGTH and stats.output_tokens == 40


def test_sampling_is_reproducible_with_a_seed(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    settings = GenerationSettings(max_new_tokens=16, temperature=1.2, top_p=0.95, top_k=50.0, seed=11)
    first, stats = generate_text(loaded, PROMPT, settings)
    second, _ = generate_text(loaded, PROMPT, settings)
    assert first == second and stats.output_tokens == 16 and stats.finish_reason is FinishReason.LENGTH


def test_stats_dict(load_tiny):
    _, stats = generate_text(load_tiny("tiny-t5"), PROMPT, GenerationSettings(max_new_tokens=5))
    data = stats.to_dict()
    assert data["output_tokens"] == 5 and data["finish_reason"] == "length" and data["error"] is None


@pytest.mark.parametrize("prompt", ["", "   ", "\x00", "x" * 20_001])
def test_bad_prompt_raises_before_any_thread_starts(load_tiny, prompt):
    """A run validates the prompt before it prepares and streams (here: the helper that does what a run does)."""
    before = set(threading.enumerate())
    with pytest.raises(SettingsError) as info:
        generate_text(load_tiny("tiny-gpt2"), prompt, GenerationSettings())
    assert info.value.field == "prompt"
    assert not set(threading.enumerate()) - before


# ---- stopping --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_closing_the_stream_ends_the_worker_thread(load_tiny, name):
    loaded = load_tiny(name)
    before, baseline = set(threading.enumerate()), threading.active_count()
    with patched_forward(loaded, sleeping(0.005, lambda n: True)):  # slow enough that 3 updates are mid-stream
        settings = GenerationSettings(max_new_tokens=200)
        updates = stream(loaded, prepared_for(loaded, PROMPT, settings), settings)
        seen = [next(updates) for _ in range(3)]
        assert not any(u.done for u in seen)
        assert len(generation_threads()) == 1
        updates.close()  # what Gradio does when the user presses Stop or closes the page
        assert not generation_threads()
        assert not set(threading.enumerate()) - before, "no thread started by the stream is left"
        assert threading.active_count() <= baseline  # (other tests' server threads may wind down meanwhile)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_stop_event_while_consuming_reports_stopped(load_tiny, name):
    loaded = load_tiny(name)
    before, baseline = set(threading.enumerate()), threading.active_count()
    stop = threading.Event()
    with patched_forward(loaded, sleeping(0.005, lambda n: True)):
        updates = []
        settings = GenerationSettings(max_new_tokens=200)
        for update in stream(loaded, prepared_for(loaded, PROMPT, settings), settings, stop_event=stop):
            updates.append(update)
            if len(updates) == 3:
                stop.set()
        stats = updates[-1].stats
        assert stats is not None
        assert stats.finish_reason is FinishReason.STOPPED and stats.error is None
        assert 3 <= stats.output_tokens < 200
        assert updates[-1].text == "".join(u.delta for u in updates)
        assert not generation_threads() and not set(threading.enumerate()) - before
        assert threading.active_count() <= baseline
    # the model is fine afterwards
    assert generate_text(loaded, PROMPT, GenerationSettings(max_new_tokens=5))[1].finish_reason is FinishReason.LENGTH


# ---- errors and timeouts ------------------------------------------------------------------------

def raising_on(call: int, message: str) -> Callable[[Callable, int], Callable]:
    def wrapper(original, n):
        if n == call:
            def fail(*args, **kwargs):
                raise RuntimeError(message)

            return fail
        return original

    return wrapper


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_exception_during_generation_is_reported_with_partial_text(load_tiny, name):
    loaded = load_tiny(name)
    settings = GenerationSettings(max_new_tokens=20)
    full_text = generate_text(loaded, PROMPT, settings)[0]
    with patched_forward(loaded, raising_on(5, "injected failure at call 5")) as calls:
        started = time.perf_counter()
        updates = list(stream(loaded, prepared_for(loaded, PROMPT, settings), settings))
        assert time.perf_counter() - started < 10, "the failed worker woke the consumer (no wait for a timeout)"
    assert len(calls) == 5
    final = updates[-1]
    stats = final.stats
    assert stats.finish_reason is FinishReason.ERROR
    assert "RuntimeError" in stats.error and "injected failure at call 5" in stats.error
    assert stats.output_tokens == 4  # four forward passes succeeded, one token each
    assert final.text and final.text == "".join(u.delta for u in updates)
    assert full_text.startswith(final.text), "the partial text is what the model had written so far"
    # the next request on the same model works
    text, stats = generate_text(loaded, PROMPT, settings)
    assert stats.finish_reason is FinishReason.LENGTH and text == full_text


def test_no_first_token_times_out(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    with patched_forward(loaded, sleeping(1.0, lambda n: n == 1)):
        text, stats = generate_text(loaded, PROMPT, GenerationSettings(max_new_tokens=20), first_token_timeout=0.3)
        assert stats.finish_reason is FinishReason.ERROR
        assert "no first token" in stats.error and "0.3" in stats.error
        assert stats.time_to_first_token is None
    # patched_forward waited for the abandoned worker; it stopped at its first token
    assert not generation_threads()
    assert generate_text(loaded, PROMPT, GenerationSettings(max_new_tokens=5))[1].finish_reason is FinishReason.LENGTH


def test_stalled_generation_times_out(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    with patched_forward(loaded, sleeping(1.0, lambda n: n == 4)):
        text, stats = generate_text(loaded, PROMPT, GenerationSettings(max_new_tokens=20), token_timeout=0.3)
        assert stats.finish_reason is FinishReason.ERROR
        assert "no new token" in stats.error
        assert stats.output_tokens == 3 and stats.time_to_first_token is not None


def _streamer_fed(loaded: LoadedModel, token_ids: list[int], every: float, *, end: bool) -> tuple[TimedStreamer, threading.Thread]:
    """A streamer fed by a thread as ``generate`` would: the prompt, then one token every ``every`` s, then maybe the end."""
    streamer = TimedStreamer(loaded.tokenizer, first_token_timeout=0.5, token_timeout=0.5, started=time.perf_counter())

    def feed() -> None:
        streamer.put(torch.tensor([[1, 2]]))  # the prompt: skipped
        for token in token_ids:
            time.sleep(every)
            streamer.put(torch.tensor([token]))
        if end:
            streamer.end()

    feeder = threading.Thread(target=feed, name="test-feeder", daemon=True)
    feeder.start()
    return streamer, feeder


def test_tokens_without_text_are_not_a_stall(load_tiny):
    """Text is released a word at a time: tokens inside one long word keep the stream alive."""
    loaded = load_tiny("tiny-gpt2")
    pieces = [i for t, i in loaded.tokenizer.get_vocab().items() if t.isalpha() and t.isascii()][:8]  # no leading space
    assert len(pieces) == 8
    streamer, feeder = _streamer_fed(loaded, pieces, 0.2, end=True)  # 1.6 s of tokens, each within the 0.5 s limit
    texts = []
    with pytest.raises(StopIteration):
        while True:
            texts.append(streamer.next_text())
    feeder.join()
    assert "".join(texts) == loaded.tokenizer.decode(pieces) and streamer.tokens == 8


def test_a_stall_after_tokens_is_a_timeout_naming_the_gap(load_tiny):
    loaded = load_tiny("tiny-gpt2")
    streamer, feeder = _streamer_fed(loaded, [loaded.tokenizer.convert_tokens_to_ids("Ġthe")] * 2, 0.05, end=False)
    started = time.perf_counter()
    with pytest.raises(GenerationTimeout, match=r"^no new token within 0.5 s"):
        while True:
            streamer.next_text()
    assert 0.5 <= time.perf_counter() - started < 3
    feeder.join()
    silent = TimedStreamer(loaded.tokenizer, first_token_timeout=0.2, token_timeout=5.0, started=time.perf_counter())
    with pytest.raises(GenerationTimeout, match=r"^no first token within 0.2 s"):
        silent.next_text()
