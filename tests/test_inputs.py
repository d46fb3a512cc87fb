"""--input-shape / --input parsing (torch-free) and the tensors made from the specs."""

from __future__ import annotations

import pytest
import torch

from gai_meta.errors import InputSpecError
from gai_meta.inputs import InputSpec, make_inputs, parse_input, parse_input_shape, parse_inputs


def test_parse_forms() -> None:
    assert parse_input_shape("1,3,64,64") == (1, 3, 64, 64)
    assert parse_input_shape("1x3x8x8") == (1, 3, 8, 8)
    assert parse_input("input_ids=1,16:int64") == InputSpec("input_ids", (1, 16), "int64")
    assert parse_input("2,3:bf16") == InputSpec(None, (2, 3), "bfloat16")
    assert parse_input(" mask = 2, 5 : bool ") == InputSpec("mask", (2, 5), "bool")
    assert parse_input("4") == InputSpec(None, (4,), None)
    assert parse_inputs(None, ()) is None
    assert parse_inputs("1,3", ()) == (InputSpec(None, (1, 3)),)
    assert parse_inputs(None, ["1,2", "y=3:long"]) == (
        InputSpec(None, (1, 2)),
        InputSpec("y", (3,), "int64"),
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ids=1,x:int64", "part 2 ('x')"),
        ("ids=1,0", "part 2 (0)"),
        ("ids=1,2:complex7", "dtype 'complex7'"),
        ("1-bad=1,2", "name '1-bad'"),
        ("ids=:int64", "no dimensions"),
        ("ids=1,,2", "part 2 ('')"),
    ],
)
def test_parse_errors_name_the_part(spec: str, expected: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse_input(spec)
    assert expected in str(info.value) and spec in str(info.value)
    assert info.value.exit_code == 2


def test_both_options_and_duplicates_refused() -> None:
    with pytest.raises(InputSpecError, match="either --input-shape"):
        parse_inputs("1,2", ["1,2"])
    with pytest.raises(InputSpecError, match="'ids' is given more than once"):
        parse_inputs(None, ["ids=1", "ids=2"])


def test_make_inputs() -> None:
    specs = parse_inputs(None, ["1,3", "input_ids=1,4:int64", "attention_mask=1,4:int64"])
    assert specs is not None
    args, kwargs = make_inputs(specs, "cpu", torch.bfloat16)
    assert [a.dtype for a in args] == [torch.bfloat16]  # no dtype: the model's float dtype
    assert kwargs["input_ids"].dtype == torch.int64 and int(kwargs["input_ids"].sum()) == 0
    # masks are ones (nothing masked out): 1 * 4 = 4
    assert int(kwargs["attention_mask"].sum()) == 4
    args, _ = make_inputs(specs, "meta", torch.float32)
    assert args[0].is_meta
