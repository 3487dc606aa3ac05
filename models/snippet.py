"""Write a standalone Python script that reproduces one playground run.

The script uses the same tokenizer, Auto class, loading arguments (the dtype the loader
picked for the run's precision, 8-bit ``BitsAndBytesConfig``), prompt building (chat template or task prefix, and the
same truncation), ``generate()`` arguments and seed as the playground, and prints
the answer as it streams, exactly as the playground shows it. Pure string
building: nothing is loaded or run here.

Example:
    >>> prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)  # doctest: +SKIP
    >>> exec(build_snippet(loaded, prepared, settings, prompt))                                  # doctest: +SKIP
    Paris
"""

from __future__ import annotations

from typing import Any

import torch

from .loader import LoadedModel
from .presets import Kind
from .prompt import GenerateCall, generate_call, has_chat_template
from .types import PreparedPrompt
from .settings import GenerationSettings

# Short explanations printed next to generate() arguments.
_ARG_NOTES = {
    "max_new_tokens": "most new tokens (already capped to the model's context)",
    "num_beams": "one beam: needed for streaming",
    "do_sample": "False = greedy: always the most likely token",
    "repetition_penalty": "1.0 = off",
    "no_repeat_ngram_size": "0 = off",
}


def _one_line(value: Any) -> str:
    """Text that is safe inside a ``#`` comment (no line breaks)."""
    return " ".join(str(value).split())


def _value(value: Any) -> str:
    """Python source for a loading or generation argument."""
    if isinstance(value, torch.dtype):
        return str(value)  # "torch.float32"
    if type(value).__name__ == "BitsAndBytesConfig":
        return "BitsAndBytesConfig(load_in_8bit=True)" if getattr(value, "load_in_8bit", False) else \
            "BitsAndBytesConfig(load_in_4bit=True)"
    return repr(value)


def _header(loaded: LoadedModel, eight_bit: bool) -> list[str]:
    """What the script reproduces, what it needs, and its imports."""
    auto, description = loaded.architecture.auto_class, loaded.description
    return [
        f"# The playground's {loaded.kind.value} run as a standalone script: {_one_line(loaded.source.name)}",
        f"# {auto} -> {description.resolved_class} ({loaded.kind.architecture}), {_one_line(description.device)}, "
        f"precision {_one_line(description.precision)}" + (" (bitsandbytes)" if eight_bit else "")
        + " (loaded with the playground's dtype below)",
        "# Needs: pip install torch transformers" + (" bitsandbytes" if eight_bit else ""),
        "import torch",
        f"from transformers import {auto}, AutoTokenizer, " + ("BitsAndBytesConfig, " if eight_bit else "") + "TextStreamer",
        "",
    ]


def _load_lines(loaded: LoadedModel, eight_bit: bool) -> list[str]:
    """Where the weights are, and loading the tokenizer and model with the playground's arguments."""
    source, auto = loaded.source, loaded.architecture.auto_class
    lines: list[str] = []
    tokenizer_args = ["model_id"]
    if source.gguf_file:  # the loader converted the GGUF file once to a safetensors folder and loaded that
        converted = getattr(loaded.model, "name_or_path", "") or source.path
        lines += [f"model_id = {converted!r}  # {source.gguf_file!r} converted once to safetensors by the playground",
                  f"# (from the GGUF file itself: from_pretrained({source.path!r}, gguf_file={source.gguf_file!r}), slower)"]
    else:
        where = "a folder on the machine that ran the playground" if source.local else "a Hugging Face hub id"
        lines.append(f"model_id = {source.path!r}  # {where}")
    revision = loaded.description.revision
    if revision and not source.local:
        lines.append(f"revision = {revision!r}  # the exact commit the playground used")
        tokenizer_args.append("revision=revision")
    model_args = tokenizer_args + [f"{key}={_value(value)}" for key, value in loaded.load_kwargs.items()]
    lines += [
        "",
        f"tokenizer = AutoTokenizer.from_pretrained({', '.join(tokenizer_args)})",
        f"model = {auto}.from_pretrained(",
        *[f"    {arg}," for arg in model_args],
        ")",
    ]
    if not eight_bit:  # a quantized model is placed by its device_map
        lines.append(f"model.to({str(loaded.model.device)!r})")
    lines += [
        "model.eval()",
        "if tokenizer.pad_token is None:  # as the playground does: pad with the end-of-sequence token",
        "    tokenizer.pad_token = tokenizer.eos_token",
        "",
    ]
    return lines


def _prompt_lines(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, prompt: str) -> list[str]:
    """Building ``input_ids`` from the prompt as the playground did: template or prefix, then the same cut."""
    lines = [f"prompt = {prompt!r}"]
    if loaded.kind is Kind.SEQ2SEQ:
        if settings.task_prefix:
            lines += [f"task_prefix = {settings.task_prefix!r}",
                      "text = task_prefix + prompt  # the encoder reads the task prefix and the prompt"]
        else:
            lines.append("text = prompt  # the encoder reads the prompt; the decoder starts from its own start token")
        lines.append('input_ids = tokenizer(text, return_tensors="pt").input_ids')
    elif prepared.used_chat_template:
        lines += [
            "# Chat model: the prompt becomes a user message wrapped in the model's chat template,",
            "# ending where the assistant's answer starts; the model continues from there.",
            'messages = [{"role": "user", "content": prompt}]',
            "text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
            'input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids',
        ]
    else:
        why = "the chat template is switched off" if has_chat_template(loaded.tokenizer) else "this tokenizer has no chat template"
        lines += [f"# Plain continuation ({why}): the model continues the prompt's text.",
                  'input_ids = tokenizer(prompt, return_tensors="pt").input_ids']
    kept = len(prepared.input_ids)
    if prepared.truncated:
        if loaded.kind is Kind.SEQ2SEQ:
            lines.append(f"input_ids = torch.cat([input_ids[:, :{kept - 1}], input_ids[:, -1:]], dim=1)"
                         f"  # too long: keep the first {kept - 1} tokens and the closing one")
        else:
            lines.append(f"input_ids = input_ids[:, -{kept}:]  # too long: keep the last {kept} tokens (room for the answer)")
    lines.append("input_ids = input_ids.to(model.device)")
    return lines


def _generate_lines(loaded: LoadedModel, call: GenerateCall, settings: GenerationSettings) -> list[str]:
    """The seed and the ``model.generate`` call, its arguments taken from ``call``."""
    # the tokenizer's pad token by name; the fallback (the model's end-of-sequence token, else 0) by value
    pad_arg = "tokenizer.pad_token_id" if call.pad_token_id == loaded.tokenizer.pad_token_id else repr(call.pad_token_id)
    lines = [
        "",
        f"torch.manual_seed({settings.seed})  # " + ("sampling: the seed decides the draws" if not settings.greedy
                                                     else "greedy decoding: the seed does not matter"),
        "streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)  # prints the answer as it streams",
        "with torch.inference_mode():",
        "    model.generate(",
        "        input_ids=input_ids,",
        "        attention_mask=torch.ones_like(input_ids),",
        f"        pad_token_id={pad_arg},",
        "        streamer=streamer,",
    ]
    for key, value in call.options.items():
        note = _ARG_NOTES.get(key)
        if key in ("temperature", "top_p", "top_k") and value is None:
            note = "unset: greedy decoding ignores it"
        lines.append(f"        {key}={_value(value)}," + (f"  # {note}" if note else ""))
    lines.append("    )")
    return lines


def build_snippet(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, prompt: str) -> str:
    """A runnable Python script that redoes ``prompt`` on ``loaded`` with ``settings``.

    Args:
        loaded: the model the playground used (its source, load arguments and tokenizer).
        prepared: the model input the run used (from :func:`~models.prompt.prepare`; its ``call``, the
            ``generate`` arguments the run streams with, is shown as it is).
        settings: the generation settings of the run.
        prompt: the user's validated prompt (the text ``prepared`` was built from).

    Returns:
        The script's source. Run as is, it prints the same text the playground showed
        (for greedy settings on the same machine; sampling also matches with the same seed
        and device).
    """
    eight_bit = "quantization_config" in loaded.load_kwargs
    call = prepared.call if prepared.call is not None else generate_call(loaded, prepared, settings)
    lines = (_header(loaded, eight_bit) + _load_lines(loaded, eight_bit) + _prompt_lines(loaded, prepared, settings, prompt)
             + _generate_lines(loaded, call, settings))
    return "\n".join(lines) + "\n"
