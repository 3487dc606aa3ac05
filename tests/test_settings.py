"""GenerationSettings and validate_prompt: every refusal names its field."""

from __future__ import annotations

import math
import unicodedata
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pydantic import ValidationError

from models.settings import (MAX_NEW_TOKENS_LIMIT, MAX_PROMPT_CHARS, MAX_SEED, GenerationSettings, SettingsError,
                             setting_ranges, validate_prompt)

# field -> (lowest valid, highest valid, lowest is exclusive, is integer), read from the one schema
NUMERIC = {name: (r.low, r.high, not r.low_inclusive, r.integer) for name, r in setting_ranges().items()}
ALL_FIELDS = [*NUMERIC, "use_chat_template", "task_prefix"]


def refused(field: str, **values) -> SettingsError:
    """Build settings from ``values``, expect a refusal naming ``field``, and return it."""
    with pytest.raises(SettingsError) as info:
        GenerationSettings(**values)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value


def test_schema_declares_every_numeric_setting_with_its_public_range():
    """The declared ranges are the ones the API documents (a change here is a change of the public API)."""
    assert NUMERIC == {
        "max_new_tokens": (1, MAX_NEW_TOKENS_LIMIT, False, True), "temperature": (0.0, 2.0, False, False),
        "top_p": (0.0, 1.0, True, False), "top_k": (0, 1000, False, True), "repetition_penalty": (0.0, 10.0, True, False),
        "no_repeat_ngram_size": (0, 20, False, True), "seed": (0, MAX_SEED, False, True)}
    # the defaults the API documents: greedy, 128 new tokens, no penalty, the chat template on
    assert GenerationSettings().to_dict() == {"max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
                                              "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "seed": 0,
                                              "use_chat_template": True, "task_prefix": ""}


def test_range_refusal_states_the_declared_range():
    err = refused("top_p", top_p=0.0)
    assert str(err) == "top_p: must be greater than 0 and at most 1, got 0.0"
    assert "between 0 and 1000 (0 = off)" in str(refused("top_k", top_k=1001))


def test_defaults_are_valid_and_greedy():
    s = GenerationSettings()
    assert s.greedy
    kwargs = s.generate_kwargs()
    assert kwargs["num_beams"] == 1 and kwargs["num_return_sequences"] == 1
    assert kwargs["do_sample"] is False
    assert kwargs["temperature"] is None and kwargs["top_p"] is None and kwargs["top_k"] is None
    assert set(s.to_dict()) == set(ALL_FIELDS)


def test_settings_are_frozen():
    s = GenerationSettings()
    with pytest.raises(ValidationError):
        s.temperature = 1.0  # type: ignore[misc]
    assert s.temperature == 0.0


def test_top_k_float_from_slider_becomes_int():
    s = GenerationSettings(top_k=50.0, temperature=0.7)
    assert s.top_k == 50 and type(s.top_k) is int
    assert s.generate_kwargs()["top_k"] == 50
    assert type(GenerationSettings(max_new_tokens=32.0).max_new_tokens) is int
    assert type(GenerationSettings(seed=7.0).seed) is int


def test_integer_from_int_becomes_float_for_float_fields():
    s = GenerationSettings(temperature=1, top_p=1, repetition_penalty=2)
    assert type(s.temperature) is float and type(s.top_p) is float and type(s.repetition_penalty) is float


def test_number_like_values_are_accepted():
    s = GenerationSettings(temperature=Fraction(1, 2))
    assert s.temperature == 0.5
    np = pytest.importorskip("numpy")
    s = GenerationSettings(top_k=np.int64(40), top_p=np.float32(0.5), temperature=np.float64(0.3))
    assert s.top_k == 40 and type(s.top_k) is int and s.top_p == 0.5


def test_sampling_kwargs():
    kwargs = GenerationSettings(temperature=0.8, top_p=0.9, top_k=40, seed=3).generate_kwargs()
    assert kwargs["do_sample"] is True
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.8, 0.9, 40)
    assert kwargs["num_beams"] == 1


@pytest.mark.parametrize("field", list(NUMERIC))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_refused(field, value):
    err = refused(field, **{field: value})
    assert "finite" in str(err)


@pytest.mark.parametrize("field", list(NUMERIC))
@pytest.mark.parametrize("value", ["0.5", "abc", [1], {"a": 1}, object(), True, False, b"1"])
def test_wrong_types_refused(field, value):
    err = refused(field, **{field: value})
    assert "number" in str(err)


@pytest.mark.parametrize("field", list(NUMERIC))
@pytest.mark.parametrize("value", [None, ""])
def test_empty_numbers_refused(field, value):
    err = refused(field, **{field: value})
    assert "required" in str(err)


@pytest.mark.parametrize("field", list(NUMERIC))
def test_just_outside_range_refused(field):
    low, high, low_exclusive, integer = NUMERIC[field]
    step = 1 if integer else 1e-6
    refused(field, **{field: high + step})
    refused(field, **{field: low - step})
    if low_exclusive:
        refused(field, **{field: low})
    else:
        GenerationSettings(**{field: low})
    GenerationSettings(**{field: high})


@pytest.mark.parametrize("field", [f for f, (_, _, _, integer) in NUMERIC.items() if integer])
@pytest.mark.parametrize("value", [1.5, 0.1, 7.25])
def test_integer_fields_refuse_fractions(field, value):
    err = refused(field, **{field: value})
    assert "whole number" in str(err)


@pytest.mark.parametrize("value", [None, "", "yes", 1, 0, 1.0])
def test_use_chat_template_must_be_bool(value):
    refused("use_chat_template", use_chat_template=value)


@pytest.mark.parametrize("value", [None, 5, ["summarize: "], "x" * 201])
def test_task_prefix_must_be_short_text(value):
    refused("task_prefix", task_prefix=value)


def test_task_prefix_may_be_empty_or_200_chars():
    assert GenerationSettings(task_prefix="").task_prefix == ""
    assert GenerationSettings(task_prefix="x" * 200).task_prefix == "x" * 200


def test_from_mapping_ignores_none_and_refuses_unknown_keys():
    s = GenerationSettings.from_mapping({"max_new_tokens": 16.0, "temperature": None, "top_k": 50.0})
    assert s.max_new_tokens == 16 and s.temperature == 0.0 and s.top_k == 50
    with pytest.raises(SettingsError) as info:
        GenerationSettings.from_mapping({"num_beams": 4})
    assert info.value.field == "num_beams"
    assert "not a generation setting" in str(info.value)
    with pytest.raises(SettingsError) as info:
        GenerationSettings.from_mapping({"top_p": 0})
    assert info.value.field == "top_p"


# ---- property tests ---------------------------------------------------------------------------

def _outside(field: str) -> st.SearchStrategy:
    low, high, low_exclusive, integer = NUMERIC[field]
    above = st.floats(min_value=high, exclude_min=True, allow_infinity=True, allow_nan=False)
    below = st.floats(max_value=low, exclude_max=not low_exclusive, allow_infinity=True, allow_nan=False)
    options = [above, below, st.just(math.nan)]
    if integer:
        options += [st.integers(min_value=high + 1), st.integers(max_value=low - 1)]
    return st.one_of(options)


@given(data=st.data(), field=st.sampled_from(list(NUMERIC)))
def test_any_number_outside_range_is_refused_naming_the_field(data, field):
    value = data.draw(_outside(field), label=field)
    refused(field, **{field: value})


@given(value=st.one_of(st.text(), st.binary(), st.lists(st.integers()), st.booleans(), st.none()),
       field=st.sampled_from(list(NUMERIC)))
def test_any_non_number_is_refused_naming_the_field(value, field):
    refused(field, **{field: value})


valid_settings = st.fixed_dictionaries({
    "max_new_tokens": st.one_of(st.integers(1, MAX_NEW_TOKENS_LIMIT),
                                st.integers(1, MAX_NEW_TOKENS_LIMIT).map(float)),
    "temperature": st.floats(0.0, 2.0),
    "top_p": st.floats(0.0, 1.0, exclude_min=True),
    "top_k": st.one_of(st.integers(0, 1000), st.integers(0, 1000).map(float)),
    "repetition_penalty": st.floats(0.0, 10.0, exclude_min=True),
    "no_repeat_ngram_size": st.integers(0, 20),
    "seed": st.integers(0, MAX_SEED),
    "use_chat_template": st.booleans(),
    "task_prefix": st.text(max_size=200),
})


@given(values=valid_settings)
def test_any_valid_combination_builds(values):
    s = GenerationSettings(**values)
    kwargs = s.generate_kwargs()
    assert kwargs["num_beams"] == 1
    assert kwargs["num_return_sequences"] == 1
    assert kwargs["do_sample"] == (values["temperature"] > 0)
    assert kwargs["max_new_tokens"] == int(values["max_new_tokens"])
    assert type(s.top_k) is int and type(s.max_new_tokens) is int
    if kwargs["do_sample"]:
        assert kwargs["temperature"] == values["temperature"] and kwargs["top_k"] == int(values["top_k"])
    assert GenerationSettings.from_mapping(s.to_dict()) == s


# ---- prompts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["", " ", "   \n\t ", "\x00\x01", "\x7f\x85 \x9f", "\u0007\n"])
def test_empty_prompts_refused(prompt):
    with pytest.raises(SettingsError) as info:
        validate_prompt(prompt)
    assert info.value.field == "prompt" and "empty" in str(info.value)


@pytest.mark.parametrize("prompt", [None, 42, b"hello", ["hi"]])
def test_non_text_prompts_refused(prompt):
    with pytest.raises(SettingsError) as info:
        validate_prompt(prompt)
    assert info.value.field == "prompt"


def test_over_long_prompt_refused():
    assert validate_prompt("a" * MAX_PROMPT_CHARS) == "a" * MAX_PROMPT_CHARS
    with pytest.raises(SettingsError) as info:
        validate_prompt("a" * (MAX_PROMPT_CHARS + 1))
    assert info.value.field == "prompt" and "limit" in str(info.value)


def test_control_characters_stripped_tabs_and_newlines_kept():
    assert validate_prompt("Hel\x00lo\x1b[31m\tworld\n\x7fok\x9b") == "Hello[31m\tworld\nok"
    assert validate_prompt("  keep spaces  ") == "  keep spaces  "
    assert validate_prompt("Übersetze: café ☕ 日本") == "Übersetze: café ☕ 日本"


def _without_controls(text: str) -> str:
    """``text`` without Unicode control characters (category Cc), except tab and newline."""
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc")


@given(st.text(max_size=300))
def test_validate_prompt_property(prompt):
    try:
        cleaned = validate_prompt(prompt)
    except SettingsError as exc:
        assert exc.field == "prompt"
        assert not _without_controls(prompt).strip()
        return
    assert cleaned == _without_controls(prompt)
    assert cleaned.strip()
