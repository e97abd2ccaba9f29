"""bench/first_word_margin.py: the margin of a first-token choice, and its summary, by hand."""

import math

import pytest
import torch

from bench.first_word_margin import first_token_margins, margin_summary


def test_the_margin_is_the_log_probability_gap_of_the_two_likeliest_tokens():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    # log-softmax shifts a row by one constant, so the gap is the logits' own: 2 - 1, 5 - 0
    assert first_token_margins(logits).tolist() == pytest.approx([1.0, 5.0])
    assert first_token_margins(torch.tensor([[3.0, 3.0]])).tolist() == [0.0]  # a tie


def test_summary_median_nearest_rank_10th_percentile_and_share_near_a_tie():
    s = margin_summary([3.0, 0.5, 2.0, 4.0])
    assert s == {"n": 4, "median": 2.5, "p10": 0.5, "near": 0.25}
    # nearest rank: the ceil(0.1 n)-th smallest, the 10th of 95 values (int() would give the 9th)
    assert margin_summary([float(v) for v in range(95)])["p10"] == 9.0
    assert margin_summary([9.0]) == {"n": 1, "median": 9.0, "p10": 9.0, "near": 0.0}
    empty = margin_summary([])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("median", "p10", "near"))
