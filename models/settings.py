"""Generation settings: one frozen, self-validating object.

Every field is checked before any thread starts, and every refusal names the
field and its allowed range (the same rules TGI and vLLM apply). Streaming needs
greedy or sampled decoding with one beam and one sequence, so beams are never
exposed and are forced to 1 in :meth:`GenerationSettings.generate_kwargs`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

MAX_NEW_TOKENS_LIMIT = 2048  # hard ceiling for a public demo; a model's own context may be lower
MAX_PROMPT_CHARS = 20_000  # longer prompts are refused before tokenizing (a 1 MB prompt costs seconds)
MAX_SEED = 2**32 - 1


class SettingsError(ValueError):
    """A generation setting is out of range or of the wrong type.

    Args:
        field: name of the offending field, as the API calls it.
        message: human-readable explanation including the allowed range.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


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


@dataclass(frozen=True)
class GenerationSettings:
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

    Example:
        >>> s = GenerationSettings.from_mapping({"max_new_tokens": 32.0, "temperature": 0})
        >>> s.generate_kwargs()["do_sample"]
        False
    """

    max_new_tokens: int = 128  # tokens to generate at most
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling mass
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    no_repeat_ngram_size: int = 0  # 0 = off
    seed: int = 0  # sampling seed
    use_chat_template: bool = True  # causal: wrap prompt in the chat template
    task_prefix: str = ""  # seq2seq: e.g. "summarize: "

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_new_tokens", _number("max_new_tokens", self.max_new_tokens, integer=True))
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise SettingsError("max_new_tokens", f"must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens}")
        set_(self, "temperature", _number("temperature", self.temperature))
        if not 0.0 <= self.temperature <= 2.0:
            raise SettingsError("temperature", f"must be between 0 and 2 (0 = greedy), got {self.temperature}")
        set_(self, "top_p", _number("top_p", self.top_p))
        if not 0.0 < self.top_p <= 1.0:
            raise SettingsError("top_p", f"must be greater than 0 and at most 1, got {self.top_p}")
        set_(self, "top_k", _number("top_k", self.top_k, integer=True))
        if not 0 <= self.top_k <= 1000:
            raise SettingsError("top_k", f"must be a whole number between 0 and 1000 (0 = off), got {self.top_k}")
        set_(self, "repetition_penalty", _number("repetition_penalty", self.repetition_penalty))
        if not 0.0 < self.repetition_penalty <= 10.0:
            raise SettingsError("repetition_penalty", f"must be greater than 0 and at most 10 (1 = off), got {self.repetition_penalty}")
        set_(self, "no_repeat_ngram_size", _number("no_repeat_ngram_size", self.no_repeat_ngram_size, integer=True))
        if not 0 <= self.no_repeat_ngram_size <= 20:
            raise SettingsError("no_repeat_ngram_size", f"must be between 0 and 20 (0 = off), got {self.no_repeat_ngram_size}")
        set_(self, "seed", _number("seed", self.seed, integer=True))
        if not 0 <= self.seed <= MAX_SEED:
            raise SettingsError("seed", f"must be between 0 and {MAX_SEED}, got {self.seed}")
        if not isinstance(self.use_chat_template, bool):
            raise SettingsError("use_chat_template", f"must be true or false, got {self.use_chat_template!r:.40}")
        if not isinstance(self.task_prefix, str) or len(self.task_prefix) > 200:
            raise SettingsError("task_prefix", "must be text of at most 200 characters")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GenerationSettings":
        """Build settings from a mapping, ignoring ``None`` values and refusing unknown keys."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SettingsError(unknown[0], f"is not a generation setting (known: {', '.join(sorted(names))})")
        return cls(**{k: v for k, v in values.items() if v is not None})

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, for export and display."""
        return asdict(self)

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
