"""Generation settings: one declarative, frozen, self-validating schema.

Each setting is declared once, as a pydantic field with its range (``ge``/``gt``/``le``),
its slider step and a one-line note. The validator, the page's sliders (through
:func:`setting_ranges`) and the tests all read that one declaration, so a limit cannot
drift between them. Every refusal is a :class:`SettingsError` naming the field and its
allowed range (the same rules TGI and vLLM apply). Streaming needs greedy or sampled
decoding with one beam and one sequence, so beams are never exposed and are forced to 1
in :meth:`GenerationSettings.generate_kwargs`.

Example:
    >>> s = GenerationSettings.from_mapping({"max_new_tokens": 32.0, "temperature": 0})
    >>> s.generate_kwargs()["do_sample"]
    False
    >>> setting_ranges()["top_k"].high
    1000
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Mapping

from annotated_types import Ge, Gt, Le, MaxLen
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError, field_validator

MAX_NEW_TOKENS_LIMIT = 2048  # hard ceiling for a public demo; a model's own context may be lower
MAX_PROMPT_CHARS = 20_000  # longer prompts are refused before tokenizing (a 1 MB prompt costs seconds)
MAX_SEED = 2**32 - 1
MAX_TASK_PREFIX_CHARS = 200
MAX_INPUT_TOKENS_LIMIT = 131_072  # the largest input budget a public server may set
MAX_SET_ROWS = 200  # rows per prompt set (``models.sets.rows.MAX_ROWS`` reads this)


class SettingsError(ValueError):
    """A generation setting is out of range or of the wrong type.

    Args:
        field: name of the offending field, as the API calls it.
        message: human-readable explanation including the allowed range.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class Precision(str, Enum):
    """How a model's weights are held while it runs: a load choice, per panel and per ``/generate`` call.

    ``AUTO`` is resolved by the loader (``models.loader.resolve_precision``, the one place that decides
    a dtype): bfloat16 on a CPU with native bf16 and on a GPU that supports it, float16 on other GPUs
    except fp16-unsafe families (T5…), float32 otherwise.
    """

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"  # GPU only
    INT8 = "8-bit"  # bitsandbytes LLM.int8()

    @property
    def quantized(self) -> bool:
        return self is Precision.INT8


def parse_precision(precision: Any = Precision.AUTO, load_in_8bit: Any = None, *,
                    field: str = "precision", legacy_field: str = "load_in_8bit") -> Precision:
    """The :class:`Precision` asked for, from a ``precision`` value and the older ``load_in_8bit`` flag.

    ``load_in_8bit=True`` means 8-bit; it may come with ``precision`` "auto" or "8-bit", and any other
    precision is a conflict. ``load_in_8bit=False`` with ``precision="8-bit"`` is a conflict too. A bare
    ``True`` / ``False`` as ``precision`` (an old 8-bit checkbox value) means 8-bit / auto.

    Raises:
        SettingsError: naming ``precision`` (an unknown value) or both fields (a conflict).
    """
    if isinstance(precision, bool):
        precision = Precision.INT8 if precision else Precision.AUTO
    if precision is None or precision == "":
        precision = Precision.AUTO
    try:
        chosen = Precision(precision.strip().lower() if isinstance(precision, str) else precision)
    except ValueError:
        known = ", ".join(p.value for p in Precision)
        raise SettingsError(field, f"must be one of {known}, got {precision!r:.40}") from None
    if load_in_8bit is None:
        return chosen
    if not isinstance(load_in_8bit, bool):
        raise SettingsError(legacy_field, f"must be true or false, got {load_in_8bit!r:.40}")
    if load_in_8bit and chosen not in (Precision.AUTO, Precision.INT8):
        raise SettingsError(legacy_field, f"{legacy_field}=true asks for 8-bit but {field}={chosen.value!r}: "
                                          f"give one of them ({field} alone is enough)")
    if not load_in_8bit and chosen is Precision.INT8:
        raise SettingsError(legacy_field, f"{legacy_field}=false conflicts with {field}='8-bit': "
                                          f"give one of them ({field} alone is enough)")
    return Precision.INT8 if load_in_8bit else chosen


def _ui(step: float, note: str = "", info: str = "", label: str = "") -> dict[str, Any]:
    """The extra part of a field's declaration: slider step, the note put after its range, the slider's one-line
    help, and its plain-words name (the control shows it next to the exact field name, which the code uses)."""
    return {"step": step, "note": note, "info": info, "label": label}


class GenerationSettings(BaseModel):
    """How one model generates one answer.

    Args:
        max_new_tokens (int, default 128): tokens to generate at most, 1..2048
            (also capped by the model's context at run time, with a notice).
        temperature (float, default 0.0): 0 means greedy decoding; >0 samples, 0..2.
        top_p (float, default 1.0): nucleus sampling mass, 0 < top_p <= 1.
        top_k (int, default 0): keep the k most likely tokens, 0 disables; 0..1000.
        repetition_penalty (float, default 1.0): >1 discourages repeats; 0 < x <= 10.
        no_repeat_ngram_size (int, default 0): forbid repeating n-grams of this size; 0..20.
        seed (int, default 0): random seed for sampling, 0..2**32-1.
        use_chat_template (bool, default True): causal models wrap the prompt in the
            tokenizer's chat template when it has one.
        task_prefix (str, default ""): text put before the prompt for seq2seq models,
            e.g. ``"summarize: "`` for T5.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=False)

    max_new_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS_LIMIT, json_schema_extra=_ui(
        1, info="most tokens to generate (a token is a word or a piece of one)", label="Longest answer"))
    temperature: float = Field(0.0, ge=0.0, le=2.0, json_schema_extra=_ui(
        0.05, "0 = greedy", "0 = greedy: always the most likely token, the same answer every time; higher = more varied",
        label="Randomness"))
    top_p: float = Field(1.0, gt=0.0, le=1.0, json_schema_extra=_ui(
        0.05, info="when sampling: draw only from the likeliest tokens that together hold this share of the "
                   "probability (nucleus sampling); 1 = all", label="Likeliest share"))
    top_k: int = Field(0, ge=0, le=1000, json_schema_extra=_ui(
        1, "0 = off", "when sampling: draw only from the k likeliest tokens; 0 = off", label="Likeliest few"))
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0, json_schema_extra=_ui(
        0.05, "1 = off", "1 = off; above 1 makes tokens already written less likely", label="Avoid repeats"))
    no_repeat_ngram_size: int = Field(0, ge=0, le=20, json_schema_extra=_ui(
        1, "0 = off", "never write the same run of this many tokens twice; 0 = off", label="No repeated phrases"))
    seed: int = Field(0, ge=0, le=MAX_SEED, json_schema_extra=_ui(
        1, info="used when randomness (temperature) > 0: the same seed gives the same sampled answer", label="Random seed"))
    use_chat_template: StrictBool = True  # causal: wrap the prompt in the chat template
    task_prefix: StrictStr = Field("", max_length=MAX_TASK_PREFIX_CHARS)  # seq2seq: e.g. "summarize: "

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _settings_error(exc, values) from None

    @field_validator("max_new_tokens", "top_k", "no_repeat_ngram_size", "seed", mode="before")
    @classmethod
    def _whole_number(cls, value: Any, info: Any) -> int:
        return int(_number(info.field_name, value, integer=True))

    @field_validator("temperature", "top_p", "repetition_penalty", mode="before")
    @classmethod
    def _real_number(cls, value: Any, info: Any) -> float:
        return float(_number(info.field_name, value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GenerationSettings":
        """Build settings from a mapping, ignoring ``None`` values and refusing unknown keys (``extra="forbid"``,
        even with a ``None`` value)."""
        return cls(**{k: v for k, v in values.items() if v is not None or k not in cls.model_fields})

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, for export and display."""
        return self.model_dump()

    def generate_kwargs(self) -> dict[str, Any]:
        """Arguments for ``model.generate`` (without inputs, streamer or stopping criteria).

        Beams are forced to 1 and a single sequence is returned: streaming needs both.
        Temperature 0 maps to greedy decoding (``do_sample=True`` with 0 raises).
        """
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": 1,
            "num_return_sequences": 1,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        if self.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


@dataclass(frozen=True)
class SettingRange:
    """The declared range of one numeric setting, as the schema states it.

    Args:
        name: the field name.
        low / high: the bounds.
        low_inclusive: False when ``low`` itself is refused (``gt``).
        integer: whole numbers only.
        step: the slider step.
        default: the schema's default.
        note: what a special value means (``"0 = off"``), or ``""``.
        info: a short help line for the control.
        label: the setting's name in plain words (``"Longest answer"``), or ``""``.
    """

    name: str
    low: float
    high: float
    low_inclusive: bool
    integer: bool
    step: float
    default: float
    note: str
    info: str
    limit_note: str = ""  # why ``high`` is lower here than the schema's own bound (a public server), or ""
    label: str = ""

    @property
    def lowest_allowed(self) -> float:
        """The smallest value a slider can offer: ``low``, or one step above it when ``low`` is excluded."""
        return self.low if self.low_inclusive else self.low + self.step

    def describe(self) -> str:
        """``"between 0 and 2 (0 = greedy)"`` / ``"greater than 0 and at most 1"``."""
        low, high = _plain(self.low), _plain(self.high)
        text = f"between {low} and {high}" if self.low_inclusive else f"greater than {low} and at most {high}"
        if self.integer and self.name != "seed":
            text = "a whole number " + text
        if self.limit_note:
            text += " on this public server"
        return f"{text} ({self.note})" if self.note else text


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting_ranges(limits: "PublicLimits | None" = None) -> dict[str, SettingRange]:
    """Every numeric setting's declared range, in declaration order (read by sliders and tests).

    With ``limits`` (a public server), ``max_new_tokens`` stops at the public limit and says why.
    """
    out: dict[str, SettingRange] = {}
    for name, info in GenerationSettings.model_fields.items():
        bounds = {type(m): m for m in info.metadata}
        if Le not in bounds:
            continue
        extra = info.json_schema_extra or {}
        low_inclusive = Ge in bounds
        low = bounds[Ge].ge if low_inclusive else bounds[Gt].gt
        out[name] = SettingRange(name, low, bounds[Le].le, low_inclusive, info.annotation is int, extra["step"],
                                 info.default, extra["note"], extra["info"], label=extra.get("label", ""))
    if limits is not None:
        tokens = out["max_new_tokens"]
        out["max_new_tokens"] = replace(tokens, high=min(tokens.high, limits.max_new_tokens),
                                        default=min(tokens.default, limits.max_new_tokens), limit_note=limits.note())
    return out


class PublicLimits(BaseModel):
    """What one request may cost on a public server (on a Space, or with ``--public``).

    Declared here, next to the settings they narrow: the validator (:meth:`check`), the sliders
    (through :func:`setting_ranges`) and the tests read these fields. The input budget is applied
    when the model input is built (``models.prompt.prepare``): longer inputs are cut, with a notice.

    Args:
        max_new_tokens (int, default 512): most tokens one answer may have.
        max_input_tokens (int, default 1024): most tokens the model reads (prompt with its chat
            template or task prefix); a causal model keeps the last ones, a seq2seq model the first.
        max_set_tokens (int, default 8192): most new tokens one prompt set may ask of each side (rows ×
            max_new_tokens); a larger set is refused before it starts (:meth:`check_set`).
        max_set_seconds (float, default 600): most wall-clock seconds one prompt set may run, its loads included;
            then it stops, keeping the rows done.
        sets_per_visitor (int, default 1): prompt sets one visitor (address) may have running or waiting.

    Example:
        >>> PublicLimits().check(GenerationSettings(max_new_tokens=2048))
        Traceback (most recent call last):
        ...
        models.settings.SettingsError: max_new_tokens: must be a whole number between 1 and 512 on this public server, got 2048
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(512, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    max_input_tokens: int = Field(1024, ge=16, le=MAX_INPUT_TOKENS_LIMIT)
    max_set_tokens: int = Field(8192, ge=1, le=MAX_SET_ROWS * MAX_NEW_TOKENS_LIMIT)
    max_set_seconds: float = Field(600.0, gt=0, le=24 * 3600)
    sets_per_visitor: int = Field(1, ge=1, le=64)

    def check(self, settings: GenerationSettings) -> GenerationSettings:
        """``settings`` if they are within these limits, else a :class:`SettingsError` naming the field."""
        if settings.max_new_tokens > self.max_new_tokens:
            allowed = setting_ranges(self)["max_new_tokens"]
            raise SettingsError("max_new_tokens", f"must be {allowed.describe()}, got {settings.max_new_tokens}")
        return settings

    def note(self) -> str:
        """The line the page shows next to the sliders."""
        return (f"Public server: at most {self.max_new_tokens} new tokens per answer; "
                f"the model reads at most {self.max_input_tokens} input tokens (longer prompts are cut, with a notice).")

    def check_set(self, rows: int, settings: GenerationSettings) -> None:
        """Refuse a prompt set of ``rows`` rows whose new tokens (rows × ``max_new_tokens``, per side) are over
        :attr:`max_set_tokens`, with a :class:`SettingsError` naming the cap and what would fit.

        Example:
            >>> PublicLimits(max_set_tokens=1000).check_set(20, GenerationSettings(max_new_tokens=100))
            Traceback (most recent call last):
            ...
            models.settings.SettingsError: rows: 20 rows × 100 new tokens = 2000 tokens per side, over this public server's cap of 1000 new tokens per set (and a set stops after 600 s); try the first 10 rows, or at most 50 new tokens per answer
        """
        asked = rows * settings.max_new_tokens
        if asked <= self.max_set_tokens:
            return
        fewer_rows = self.max_set_tokens // settings.max_new_tokens
        fewer_tokens = self.max_set_tokens // rows
        hints = ([f"try the first {fewer_rows} rows"] if fewer_rows >= 1 else []) + \
                ([f"at most {fewer_tokens} new tokens per answer"] if fewer_tokens >= 1 else []) or \
                ["fewer rows and fewer new tokens per answer"]
        raise SettingsError("rows", f"{rows} rows × {settings.max_new_tokens} new tokens = {asked} tokens per side, over "
                                    f"this public server's cap of {self.max_set_tokens} new tokens per set (and a set "
                                    f"stops after {self.max_set_seconds:g} s); "
                                    + ", or ".join(hints))

    def set_note(self) -> str:
        """The line the prompt-set tab shows under its controls."""
        return (f"Public server: a set may ask at most {self.max_set_tokens} new tokens of each side (rows × max new "
                f"tokens) and runs at most {self.max_set_seconds:g} s (then it stops, keeping the rows done); "
                f"{self.sets_per_visitor} set{'s' * (self.sets_per_visitor != 1)} at a time per visitor.")


def _number(name: str, value: Any, *, integer: bool = False) -> float | int:
    """Coerce ``value`` to a finite number, refusing bools, strings, NaN and inf."""
    if value is None or value == "":
        raise SettingsError(name, "is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # numpy / torch scalars expose __float__; strings do not count as numbers here.
        if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
            raise SettingsError(name, f"must be a number, got {type(value).__name__} {value!r:.40}")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(name, f"must be a finite number, got {value}")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise SettingsError(name, f"must be a whole number, got {value}")
            value = int(value)  # sliders send 50.0 for 50
        return int(value)
    try:
        return float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        raise SettingsError(name, f"must be a finite number, got an integer of {len(str(abs(value)))} digits") from None


def _settings_error(exc: ValidationError, values: Mapping[str, Any]) -> SettingsError:
    """The first failure as a :class:`SettingsError` naming its field: an unknown key (the first by name),
    else the first field in declaration order."""
    errors = exc.errors(include_url=False)
    order = list(GenerationSettings.model_fields)

    def rank(error: Any) -> tuple[int, int, str]:
        name = error["loc"][0] if error["loc"] else None
        if error["type"] == "extra_forbidden":
            return 0, 0, str(name)
        return 1, order.index(name) if name in order else len(order), ""

    first = min(errors, key=rank)
    field = str(first["loc"][0]) if first["loc"] else "settings"
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsError):
        return cause
    if first["type"] == "extra_forbidden":
        return SettingsError(field, f"is not a generation setting (known: {', '.join(sorted(order))})")
    if first["type"] == "bool_type":  # StrictBool
        return SettingsError(field, f"must be true or false, got {first['input']!r:.40}")
    if first["type"] in ("string_type", "string_too_long"):  # StrictStr with max_length
        limit = next(m.max_length for m in GenerationSettings.model_fields[field].metadata if isinstance(m, MaxLen))
        return SettingsError(field, f"must be text of at most {limit} characters")
    ranges = setting_ranges()
    if field in ranges:
        value = values.get(field)
        shown = float(value) if not ranges[field].integer and isinstance(value, int) else value
        return SettingsError(field, f"must be {ranges[field].describe()}, got {shown!r:.40}")
    return SettingsError(field, first["msg"])


def plain_error(message: str) -> str:
    """A refusal as a sentence for the page: ``"prompt: is empty: type …"`` becomes ``"The prompt is empty: type …"``,
    ``"top_k: must be …"`` becomes ``"Likeliest few (top_k) must be …"`` (the exact name kept); other messages as they are.
    The API keeps the ``field: message`` form, which programs read."""
    field, sep, rest = message.partition(": ")
    if not sep:
        return message
    if field == "prompt":
        return f"The prompt {rest}"
    declared = setting_ranges().get(field)
    return f"{declared.label} ({field}) {rest}" if declared is not None and declared.label else message


def validate_prompt(prompt: Any) -> str:
    """Return ``prompt`` if it is usable text, else raise :class:`SettingsError` naming ``prompt``.

    Control characters other than tab and newline are removed (they carry no meaning
    for a model and can confuse terminals and logs).
    """
    if not isinstance(prompt, str):
        raise SettingsError("prompt", f"must be text, got {type(prompt).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SettingsError("prompt", f"is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}")
    cleaned = "".join(ch for ch in prompt if ch in "\t\n" or not (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0))
    if not cleaned.strip():
        raise SettingsError("prompt", "is empty: type something for the models to answer")
    return cleaned
