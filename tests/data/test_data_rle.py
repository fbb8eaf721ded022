"""SIIM stage-1 run-length encoding: relative starts, column-major order."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.data import DataError, rle_decode, rle_encode

# A 4 x 3 (height x width) mask with three regions. Column-major pixel numbers:
#   col 0: rows 0..3 -> 0..3, col 1: 4..7, col 2: 8..11
# Inside: pixel 0; pixels 2, 3 (col 0, rows 2-3) and 4 (col 1, row 0), one run
# across the column break; pixel 11. Runs (absolute start, length): (0, 1),
# (2, 3), (11, 1); each start counted from the end of the previous run:
# 0 - 0 = 0, 2 - 1 = 1, 11 - 5 = 6.
HAND_RLE = "0 1 1 3 6 1"


def hand_mask() -> np.ndarray:
    m = np.zeros((4, 3), bool)
    m[0, 0] = True
    m[2, 0] = m[3, 0] = True
    m[0, 1] = True
    m[3, 2] = True
    return m


def test_decode_a_hand_made_multi_region_mask():
    np.testing.assert_array_equal(rle_decode(HAND_RLE, height=4, width=3), hand_mask())


def test_encode_gives_the_hand_made_string():
    assert rle_encode(hand_mask()) == HAND_RLE


def test_columns_not_rows():
    # a single vertical bar in column 1 of a 3 x 3 image is ONE run in column-major order
    m = np.zeros((3, 3), bool)
    m[:, 1] = True
    assert rle_encode(m) == "3 3"
    assert rle_decode("3 3", height=3, width=3)[:, 1].all()


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(1, 30, size=2)
        m = rng.random((h, w)) < rng.random()
        np.testing.assert_array_equal(rle_decode(rle_encode(m), height=h, width=w), m)


def test_empty_mask_is_minus_one_and_whitespace_is_ignored():
    assert rle_encode(np.zeros((5, 5), bool)) == "-1"
    assert not rle_decode(" -1", height=5, width=5).any()
    assert rle_decode("  0 1 1 3 6 1 \n", height=4, width=3).sum() == 5


def test_full_mask():
    assert rle_encode(np.ones((2, 3), bool)) == "0 6"
    assert rle_decode("0 6", height=2, width=3).all()


@pytest.mark.parametrize(
    "rle, word",
    [
        ("1 2 3", "odd number"),
        ("a 2", "not an integer"),
        ("0 0", "not positive"),
        ("-2 3", "negative start"),
        ("", "empty run-length"),
        ("5 4 3 2", "goes past"),
        ("12 1", "goes past"),
    ],
)
def test_malformed_strings_raise(rle, word):
    with pytest.raises(DataError, match=word):
        rle_decode(rle, height=4, width=3, name="train-rle.csv line 7")


def test_error_names_the_source_and_non_strings_are_refused():
    with pytest.raises(DataError, match="train-rle.csv line 7"):
        rle_decode("1 2 3", height=4, width=3, name="train-rle.csv line 7")
    with pytest.raises(DataError, match="run-length string"):
        rle_decode(float("nan"), height=4, width=3)
    with pytest.raises(DataError, match="2-D"):
        rle_encode(np.zeros(5, bool))
