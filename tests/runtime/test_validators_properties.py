"""Properties of the value checks and of the model-config parser, over values hypothesis picks.

The bank (tests/test_bad_inputs.py) shows each command refuses a few bad values; these show the
checks themselves accept exactly the good ones and refuse everything else with one line.
"""

from __future__ import annotations

import argparse
import copy
import json
import math

import pytest
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.errors import ModelFormatError, UsageError
from edgercnn.runtime.validators import (
    MAX_SIDE,
    check_score,
    format_size,
    non_negative_float_arg,
    parse_batch_range,
    parse_size,
    positive_int_arg,
    score_arg,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders.onnx_detector import model_config

FAST = settings(max_examples=150, deadline=None)
any_float = st.floats(allow_nan=True, allow_infinity=True)


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


@FAST
@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_finite_probability_is_accepted_as_given(value: float) -> None:
    assert check_score(value, "--score") == value
    assert score_arg(repr(value)) == value


@FAST
@given(any_float.filter(lambda v: not (math.isfinite(v) and 0.0 <= v <= 1.0)))
def test_anything_else_is_refused_with_one_line_naming_the_flag(value: float) -> None:
    with pytest.raises(UsageError) as raised:
        check_score(value, "--score")
    assert _one_line(str(raised.value)) and str(raised.value).startswith("--score: ")
    with pytest.raises(argparse.ArgumentTypeError) as typed:
        score_arg(repr(value))
    assert _one_line(str(typed.value)) and repr(value) in str(typed.value)


@FAST
@given(st.text(max_size=12))
def test_text_that_is_not_a_number_is_refused_not_coerced(text: str) -> None:
    try:
        value = float(text)
    except ValueError:
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number"):
            score_arg(text)
        return
    if math.isfinite(value) and 0.0 <= value <= 1.0:
        assert score_arg(text) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            score_arg(text)


@FAST
@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_positive_counts_accept_one_and_up_only(value: int) -> None:
    if value >= 1:
        assert positive_int_arg(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be >= 1"):
            positive_int_arg(str(value))


@FAST
@given(any_float)
def test_non_negative_amounts_refuse_negatives_and_non_finite(value: float) -> None:
    if math.isfinite(value) and value >= 0:
        assert non_negative_float_arg(repr(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_float_arg(repr(value))


@FAST
@given(st.integers(1, MAX_SIDE), st.integers(1, MAX_SIDE))
def test_size_strings_round_trip(width: int, height: int) -> None:
    text = format_size(width, height)
    assert parse_size(text) == (width, height)
    assert parse_size(text.upper().replace("X", " x ")) == (width, height)


@FAST
@given(st.integers(-5, MAX_SIDE * 2), st.integers(-5, MAX_SIDE * 2))
def test_sizes_outside_the_limits_are_refused(width: int, height: int) -> None:
    text = f"{width}x{height}"
    if 1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE:
        assert parse_size(text) == (width, height)
    else:
        with pytest.raises(UsageError) as raised:
            parse_size(text, "--source-size")
        assert _one_line(str(raised.value)) and text in str(raised.value)


@FAST
@given(st.lists(st.integers(-2, 20), min_size=1, max_size=4))
def test_batch_ranges_need_one_or_three_ordered_positive_numbers(numbers: list[int]) -> None:
    text = ":".join(str(n) for n in numbers)
    good = (len(numbers) == 1 and numbers[0] >= 1) or (
        len(numbers) == 3 and 1 <= numbers[0] <= numbers[1] <= numbers[2]
    )
    if good:
        expected = tuple(numbers * 3) if len(numbers) == 1 else tuple(numbers)
        assert parse_batch_range(text) == expected
    else:
        with pytest.raises(UsageError) as raised:
            parse_batch_range(text)
        assert _one_line(str(raised.value)) and str(raised.value).startswith("--batch: ")


# --- the model-config parser -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | any_float | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
CONFIG_KEYS = list(model_config())
INPUT_KEYS = list(model_config()["input"])


@FAST
@given(st.sampled_from(CONFIG_KEYS + [f"input.{k}" for k in INPUT_KEYS]), json_values)
def test_any_value_in_any_key_gives_a_config_or_one_line_naming_the_file(key: str, value: object) -> None:
    data = copy.deepcopy(model_config())
    node = data["input"] if key.startswith("input.") else data
    node[key.removeprefix("input.")] = value
    try:
        config = ModelConfig.from_dict(data, "m.onnx")
    except ModelFormatError as exc:
        assert _one_line(str(exc)) and str(exc).startswith("m.onnx: model config ")
        return
    assert all(math.isfinite(v) for v in config.input.mean)
    assert all(math.isfinite(v) and v > 0 for v in config.input.std)
    assert len(config.class_names) >= 2 and config.detections_per_img >= 1


@FAST
@given(st.lists(any_float, min_size=3, max_size=3), st.lists(any_float, min_size=3, max_size=3))
def test_normalisation_is_accepted_only_when_finite_with_positive_std(
    mean: list[float], std: list[float]
) -> None:
    data = copy.deepcopy(model_config())
    data["input"].update(mean=mean, std=std)
    good = all(math.isfinite(v) for v in mean) and all(math.isfinite(v) and v > 0 for v in std)
    if good:
        config = ModelConfig.from_dict(json.loads(json.dumps(data)), "m.onnx")
        assert config.input.std == tuple(std)
    else:
        with pytest.raises(ModelFormatError, match=r"input\.(mean|std)"):
            ModelConfig.from_dict(data, "m.onnx")
