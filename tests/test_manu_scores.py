"""MANU importance, scores and neuron selection against hand-computed values."""

import json
import math

import pytest
import torch

from unlearn.manu.importance import (
    REFERENCE_WEIGHTS,
    paper_importance,
    paper_score,
    reference_score,
    reference_statistics,
    weighted_sum,
)
from unlearn.manu.moments import Moments
from unlearn.manu.selection import prune_count, select_neurons, summarize


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def mom(count, sum_, sum_abs, sum_sq, above):
    return Moments(torch.tensor(float(count), dtype=torch.float64), t(*sum_), t(*sum_abs), t(*sum_sq), t(*above))


def close(actual, expected, rel=1e-9):
    assert actual.dtype == torch.float64
    assert actual.tolist() == pytest.approx(expected, rel=rel, abs=1e-12)


# Forget set, 3 neurons, tau = 0.1. Token activations (one row per token, one column per neuron):
#   multimodal (4 tokens): n0 = [1, -1, 3, -3], n1 = [1, 1, 1, 1], n2 = [0.05, 0, 0, 0]
#   text-only  (2 tokens): n0 = [2, 2],         n1 = [3, -3],       n2 = [0.2, 0]
FORGET_MM_ACTS = [[1, 1, 0.05], [-1, 1, 0], [3, 1, 0], [-3, 1, 0]]
FORGET_TX_ACTS = [[2, 3, 0.2], [2, -3, 0]]
# sums:  n0: sum 0, |a| 8, a^2 1+1+9+9 = 20, above 4 | n1: 4, 4, 4, 4 | n2: 0.05, 0.05, 0.0025, 0
FORGET_MM = mom(4, [0, 4, 0.05], [8, 4, 0.05], [20, 4, 0.0025], [4, 4, 0])
# sums:  n0: sum 4, |a| 4, a^2 8, above 2 | n1: 0, 6, 18, 2 | n2: 0.2, 0.2, 0.04, 1
FORGET_TX = mom(2, [4, 0, 0.2], [4, 6, 0.2], [8, 18, 0.04], [2, 2, 1])
# Retain set: every neuron sees [1, -1] in both modalities -> sum 0, |a| 2, a^2 2, above 2.
RETAIN_MM = mom(2, [0, 0, 0], [2, 2, 2], [2, 2, 2], [2, 2, 2])
RETAIN_TX = mom(2, [0, 0, 0], [2, 2, 2], [2, 2, 2], [2, 2, 2])


def test_fixture_sums_match_the_listed_activations():
    for acts, built in ((FORGET_MM_ACTS, FORGET_MM), (FORGET_TX_ACTS, FORGET_TX)):
        streamed = Moments.of(torch.tensor(acts), tau=0.1)
        for f in ("count", "sum", "sum_abs", "sum_sq", "above"):
            assert torch.allclose(getattr(streamed, f), getattr(built, f), atol=1e-6), f


def test_paper_importance_hand_computed_with_eps_1():
    # eps = 1 so its place in each formula shows in the result.
    # Z_m = [8/4, 4/4, 0.05/4] = [2, 1, 0.0125];  Z_t = [4/2, 6/2, 0.2/2] = [2, 3, 0.1]
    # N_m = [4/4, 4/4, 0/4] = [1, 1, 0];          N_t = [2/2, 2/2, 1/2] = [1, 1, 0.5]
    # Var_m = MS_m - mean_m^2 = [20/4 - 0, 4/4 - 1, 0.0025/4 - 0.0125^2] = [5, 0, 0.00046875]
    # Var_t = [8/2 - 2^2, 18/2 - 0, 0.04/2 - 0.1^2] = [0, 9, 0.01]
    # MS_m = [5, 1, 0.000625];  MS_t = [4, 9, 0.02]
    imp = paper_importance(FORGET_MM, FORGET_TX, eps=1.0)
    assert list(imp) == ["abs", "freq", "var", "rms"]
    # abs: [0 / (4 + 1), 2 / (4 + 1), 0.0875 / (0.1125 + 1)] = [0, 0.4, 7/89]
    close(imp["abs"], [0.0, 0.4, 7 / 89])
    # freq: [0 / 3, 0 / 3, 0.5 / (0.5 + 1)] = [0, 0, 1/3]
    close(imp["freq"], [0.0, 0.0, 1 / 3])
    # var: [sqrt(5 + 0), sqrt(0 + 9), sqrt(0.00046875 + 0.01)]
    close(imp["var"], [math.sqrt(5), 3.0, math.sqrt(0.01046875)])
    # rms: [sqrt(1 / (9 + 1)), sqrt(8 / (10 + 1)), sqrt(0.019375 / (0.020625 + 1))]
    close(imp["rms"], [math.sqrt(0.1), math.sqrt(8 / 11), math.sqrt(0.019375 / 1.020625)])


def test_paper_importance_default_eps():
    # Same numbers with eps = 1e-8 (relative effect <= 1e-8 / 0.02 = 5e-7):
    # abs [0, 2/4, 0.0875/0.1125 = 7/9], freq [0, 0, 0.5/0.5 = 1],
    # rms [sqrt(1/9), sqrt(8/10), sqrt(0.019375/0.020625 = 31/33)]
    imp = paper_importance(FORGET_MM, FORGET_TX)
    close(imp["abs"], [0.0, 0.5, 7 / 9], rel=1e-6)
    close(imp["freq"], [0.0, 0.0, 1.0], rel=1e-6)
    close(imp["rms"], [1 / 3, math.sqrt(0.8), math.sqrt(31 / 33)], rel=1e-6)
    # swapping the modalities changes nothing: every importance is symmetric in (m, t)
    swapped = paper_importance(FORGET_TX, FORGET_MM)
    for k in imp:
        assert torch.equal(imp[k], swapped[k]), k


def test_paper_score_hand_computed():
    # Retain: identical modalities -> abs = freq = rms = 0, var = sqrt(Var_m + Var_t) = sqrt(1 + 1).
    # So I(D_r) = sqrt(2) for every neuron and S = I(D_f) / sqrt(2), with I(D_f) (all weights 1):
    #   n0: 0 + 0 + sqrt(5) + 1/3;  n1: 0.5 + 0 + 3 + sqrt(0.8);  n2: 7/9 + 1 + sqrt(0.01046875) + sqrt(31/33)
    s = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX)
    r2 = math.sqrt(2)
    expected = [
        (math.sqrt(5) + 1 / 3) / r2,
        (0.5 + 3 + math.sqrt(0.8)) / r2,
        (7 / 9 + 1 + math.sqrt(0.01046875) + math.sqrt(31 / 33)) / r2,
    ]
    close(s, expected, rel=1e-6)
    # ~[1.817, 3.107, 2.015]: n1 has the largest forget-specific modality gap
    assert s.argmax().item() == 1


def test_paper_score_weights():
    r2 = math.sqrt(2)
    # only var: S = I_var(f) / I_var(r) = [sqrt(5), 3, sqrt(0.01046875)] / sqrt(2)
    s = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"var": 1.0})
    close(s, [math.sqrt(5) / r2, 3 / r2, math.sqrt(0.01046875) / r2], rel=1e-7)
    # an explicit zero weight is the same as leaving the key out
    s0 = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"abs": 0, "freq": 0, "var": 1, "rms": 0})
    assert torch.equal(s, s0)
    # abs weighted 2, var 1: n1 = (2 * 0.5 + 3) / sqrt(2) = 4 / sqrt(2)
    s2 = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"abs": 2, "var": 1})
    assert s2[1].item() == pytest.approx(4 / r2, rel=1e-7)
    # dropping var leaves I(D_r) = 0, so S = I(D_f) / eps: n0 = (1/3) / 1e-8, finite
    s3 = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"abs": 1, "freq": 1, "rms": 1})
    assert s3[0].item() == pytest.approx((1 / 3) / 1e-8, rel=1e-6)
    assert torch.isfinite(s3).all()
    with pytest.raises(ValueError, match="manu.weights.*'energy'.*abs, freq, var, rms"):
        paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"energy": 1})
    with pytest.raises(ValueError, match="manu.weights.*>= 0"):
        paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX, weights={"abs": -1})


def test_weighted_sum():
    parts = {"abs": t(1, 2), "freq": t(10, 20), "var": t(100, 200), "rms": t(1000, 2000)}
    # 2 * [1, 2] + 0.5 * [100, 200] = [52, 104]; freq and rms absent -> weight 0
    close(weighted_sum(parts, {"abs": 2, "var": 0.5}), [52.0, 104.0])
    # a zero weight drops the term even if it is infinite (0 * inf would be NaN)
    with_inf = {**parts, "freq": t(math.inf, 1)}
    close(weighted_sum(with_inf, {"abs": 1, "freq": 0}), [1.0, 2.0])
    with pytest.raises(ValueError) as err:
        weighted_sum(parts, {"abs": 1, "I_abs": 1})
    assert "manu.weights" in str(err.value) and "'I_abs'" in str(err.value)
    assert "abs, freq, var, rms" in str(err.value)
    with pytest.raises(ValueError, match="manu.weights.abs"):
        weighted_sum(parts, {"abs": math.nan})


def test_reference_statistics_of_pooled_moments():
    # forget pooled = multimodal + text-only: 6 tokens
    #   n0: sum 4, |a| 12, a^2 28, above 6 -> abs 2, freq 1, mean 2/3, MS 14/3, var 14/3 - 4/9 = 38/9
    #   n1: sum 4, |a| 10, a^2 22, above 6 -> abs 5/3, freq 1, mean 2/3, MS 11/3, var 11/3 - 4/9 = 29/9
    #   n2: sum 0.25, |a| 0.25, a^2 0.0425, above 1 -> abs 1/24, freq 1/6, MS 0.0425/6, var 0.0425/6 - 1/576
    st = reference_statistics(FORGET_MM + FORGET_TX)
    close(st["abs"], [2.0, 5 / 3, 1 / 24])
    close(st["freq"], [1.0, 1.0, 1 / 6])
    close(st["var"], [math.sqrt(38) / 3, math.sqrt(29) / 3, math.sqrt(0.0425 / 6 - 1 / 576)])
    close(st["rms"], [math.sqrt(14 / 3), math.sqrt(11 / 3), math.sqrt(0.0425 / 6)])


def test_reference_score_hand_computed():
    forget = FORGET_MM + FORGET_TX
    retain = RETAIN_MM + RETAIN_TX  # [1, -1, 1, -1] per neuron: abs 1, freq 1, std 1, rms 1
    d = 1 + 1e-5  # retain statistic + eps
    # default weights abs 2, freq 0, var 2, rms 2: S = 2 (abs_f/d - 1) + 2 (std_f/d - 1) + 2 (rms_f/d - 1)
    expected = [
        2 * (2 / d - 1) + 2 * (math.sqrt(38) / 3 / d - 1) + 2 * (math.sqrt(14 / 3) / d - 1),
        2 * (5 / 3 / d - 1) + 2 * (math.sqrt(29) / 3 / d - 1) + 2 * (math.sqrt(11 / 3) / d - 1),
        2 * (1 / 24 / d - 1) + 2 * (math.sqrt(0.0425 / 6 - 1 / 576) / d - 1) + 2 * (math.sqrt(0.0425 / 6) / d - 1),
    ]
    close(reference_score(forget, retain), expected)
    assert REFERENCE_WEIGHTS == {"abs": 2, "freq": 0, "var": 2, "rms": 2}
    # freq only: S = freq_f / d - 1 = [1/d - 1, 1/d - 1, (1/6)/d - 1]
    close(reference_score(forget, retain, {"freq": 1}), [1 / d - 1, 1 / d - 1, 1 / 6 / d - 1])
    # retain statistics [5/3, ...] vs forget: the ratio is forget over retain, not the reverse
    swapped = reference_score(retain, forget, {"abs": 1})
    close(swapped, [1 / (2 + 1e-5) - 1, 1 / (5 / 3 + 1e-5) - 1, 1 / (1 / 24 + 1e-5) - 1])
    with pytest.raises(ValueError, match="manu.weights.*'I_var'"):
        reference_score(forget, retain, {"I_var": 2})


# A vision-tower module: the text-only pass never reaches it, so its text-only moments are all 0.
# Multimodal, 2 tokens: n0 = [2, -2] (sum 0, |a| 4, a^2 8, above 2); n1 silent = [0, 0].
VISION_MM = mom(2, [0, 0], [4, 0], [8, 0], [2, 0])
VISION_TX = Moments.zeros(2)


def test_unreached_modality_is_finite_and_documented():
    imp = paper_importance(VISION_MM, VISION_TX)
    # n0: abs 2/(2 + eps), freq 1/(1 + eps), var sqrt(4 + 0) = 2, rms sqrt(4/(4 + eps)): ~1, ~1, 2, ~1
    # n1: silent in both modalities -> 0 / eps = 0 for all four
    close(imp["abs"], [2 / (2 + 1e-8), 0.0])
    close(imp["freq"], [1 / (1 + 1e-8), 0.0])
    close(imp["var"], [2.0, 0.0])
    close(imp["rms"], [math.sqrt(4 / (4 + 1e-8)), 0.0])
    # same moments on forget and retain: n0 S = I / (I + eps) with I ~ 5; n1 S = 0 / (0 + eps) = 0
    s = paper_score(VISION_MM, VISION_TX, VISION_MM, VISION_TX)
    close(s, [1.0, 0.0], rel=1e-8)
    # reference: pooling adds nothing from the unreached modality
    pooled = VISION_MM + VISION_TX
    assert all(torch.equal(getattr(pooled, f), getattr(VISION_MM, f)) for f in ("count", "sum_abs", "sum_sq"))
    # a set that never reached the module: every term is 0/(r + eps) - 1 = -1 -> -(2 + 0 + 2 + 2) = -6
    close(reference_score(Moments.zeros(2), pooled), [-6.0, -6.0])
    # retain never reached it, forget did: n0 = 2 (2/1e-5 - 1) * 3 terms (abs 2, std 2, rms 2) = 6 (2e5 - 1)
    close(reference_score(pooled, Moments.zeros(2)), [6 * (2e5 - 1), -6.0])


def test_no_nan_on_edge_moments():
    g = torch.Generator().manual_seed(0)
    n = 5
    cases = [Moments.zeros(n), Moments.of(torch.zeros(3, n), 0.1), Moments.of(torch.full((2, n), 1e-30), 0.1),
             Moments.of(torch.full((2, n), 1e15), 0.1)]
    for scale in (1e-3, 1.0, 1e3):
        acts = torch.randn(7, n, generator=g) * scale
        acts[:, 0] = 0.0  # one dead neuron in every block
        cases.append(Moments.of(acts, 0.1))
    for a in cases:
        for b in cases:
            for v in paper_importance(a, b).values():
                assert torch.isfinite(v).all()
            assert torch.isfinite(reference_score(a, b)).all()
            assert torch.isfinite(reference_score(a, b, {"abs": 1, "freq": 1, "var": 1, "rms": 1})).all()
            for v in reference_statistics(a + b).values():
                assert torch.isfinite(v).all()
    for fm, ft, rm, rt in [(cases[i], cases[j], cases[k], cases[l]) for i, j, k, l in
                           [(0, 0, 0, 0), (4, 0, 0, 0), (0, 5, 6, 0), (4, 5, 1, 2), (2, 3, 6, 6)]]:
        assert torch.isfinite(paper_score(fm, ft, rm, rt)).all()


def test_invalid_inputs_raise():
    bad = mom(2, [0, 0], [1, math.nan], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="sum_abs"):
        paper_importance(bad, VISION_TX)
    with pytest.raises(ValueError, match="negative"):
        reference_statistics(mom(2, [0, 0], [1, -1], [1, 1], [1, 1]))
    with pytest.raises(ValueError, match="number of neurons"):
        paper_importance(FORGET_MM, VISION_TX)
    with pytest.raises(ValueError, match="eps"):
        paper_importance(FORGET_MM, FORGET_TX, eps=0.0)


# --- selection ---------------------------------------------------------------------------------

ONE_TOWER = {"a": "language", "b": "language"}


def test_alpha_0_and_100():
    scores = {"a": t(0.1, 0.9, 0.5), "b": t(0.7, 0.2)}
    for scope in ("tower", "layer"):
        none = select_neurons(scores, ONE_TOWER, 0.0, scope)
        every = select_neurons(scores, ONE_TOWER, 100, scope)
        assert [m.tolist() for m in none.values()] == [[False] * 3, [False] * 2]
        assert [m.tolist() for m in every.values()] == [[True] * 3, [True] * 2]


def test_top_k_across_a_tower():
    # 5 neurons, alpha 40 -> k = floor(0.4 * 5) = 2: the two largest are a[1] = 0.9 and b[0] = 0.7
    scores = {"a": t(0.1, 0.9, 0.5), "b": t(0.7, 0.2)}
    masks = select_neurons(scores, ONE_TOWER, 40)
    assert list(masks) == ["a", "b"]
    assert masks["a"].dtype == torch.bool
    assert masks["a"].tolist() == [False, True, False]
    assert masks["b"].tolist() == [True, False]
    # alpha 50 -> floor(2.5) = 2 as well (floor, not round)
    m50 = select_neurons(scores, ONE_TOWER, 50)
    assert m50["a"].tolist() == [False, True, False] and m50["b"].tolist() == [True, False]
    # alpha 60 -> floor(3.0) = 3: adds a[2] = 0.5
    m60 = select_neurons(scores, ONE_TOWER, 60)
    assert m60["a"].tolist() == [False, True, True] and m60["b"].tolist() == [True, False]


def test_prune_count_rounding():
    assert prune_count(2.0, 49) == 0  # 0.98 -> 0
    assert prune_count(2.0, 50) == 1
    assert prune_count(50, 5) == 2  # 2.5 -> 2
    assert prune_count(29, 100) == 29  # float 29 / 100 * 100 = 28.999999999999996 would give 28
    assert prune_count(4.1, 1000) == 41  # float 4.1 / 100 * 1000 = 40.99999999999999
    assert prune_count(0.29, 100) == 0  # 0.29 % of 100 neurons is 0.29 of a neuron
    assert prune_count(100, 7) == 7
    assert prune_count(0, 10**6) == 0


def test_ties_are_deterministic():
    # equal scores: earlier module (insertion order of `scores`) first, then lower neuron index
    ab = select_neurons({"a": t(1, 1), "b": t(1, 1)}, ONE_TOWER, 50)
    assert ab["a"].tolist() == [True, True] and ab["b"].tolist() == [False, False]
    ba = select_neurons({"b": t(1, 1), "a": t(1, 1)}, ONE_TOWER, 50)
    assert ba["b"].tolist() == [True, True] and ba["a"].tolist() == [False, False]
    assert list(ba) == ["b", "a"]
    # within a module: k = floor(0.5 * 4) = 2 of [0.5, 1, 1, 1] -> indices 1 and 2
    m = select_neurons({"a": t(0.5, 1, 1, 1)}, {"a": "vision"}, 50)
    assert m["a"].tolist() == [False, True, True, False]
    # a large block of ties: alpha 10 of 1000 equal scores -> exactly the first 100, on every call
    big = {"a": torch.ones(600, dtype=torch.float64), "b": torch.ones(400, dtype=torch.float64)}
    first = select_neurons(big, ONE_TOWER, 10)
    assert first["a"][:100].all() and not first["a"][100:].any() and not first["b"].any()
    again = select_neurons(big, ONE_TOWER, 10)
    assert all(torch.equal(first[k], again[k]) for k in big)


def test_tower_and_layer_scope_differ():
    # one tower, 4 neurons, alpha 50
    scores = {"v1": t(9, 8), "v2": t(1, 0)}
    towers = {"v1": "vision", "v2": "vision"}
    # tower: k = 2 of all 4 -> both of v1
    tower = select_neurons(scores, towers, 50, scope="tower")
    assert tower["v1"].tolist() == [True, True] and tower["v2"].tolist() == [False, False]
    # layer: k = 1 per module -> the best of each
    layer = select_neurons(scores, towers, 50, scope="layer")
    assert layer["v1"].tolist() == [True, False] and layer["v2"].tolist() == [True, False]


def test_towers_rank_separately():
    # vision scores dwarf language ones, yet each tower prunes its own floor(50% of 2) = 1
    scores = {"v": t(100, 99), "l": t(1, 0)}
    masks = select_neurons(scores, {"v": "vision", "l": "language"}, 50)
    assert masks["v"].tolist() == [True, False] and masks["l"].tolist() == [True, False]


def test_selection_errors_name_the_config_key():
    scores = {"a": t(0.1, 0.9), "b": t(math.nan, 0.2)}
    with pytest.raises(ValueError, match="'b'.*NaN"):
        select_neurons(scores, ONE_TOWER, 10)
    ok = {"a": t(0.1, 0.9)}
    for alpha in (-0.5, 100.5, math.nan, math.inf, True, "2"):
        with pytest.raises(ValueError, match="manu.alpha"):
            select_neurons(ok, ONE_TOWER, alpha)
    with pytest.raises(ValueError) as err:
        select_neurons(ok, ONE_TOWER, 2.0, scope="global")
    assert "manu.scope" in str(err.value) and "tower" in str(err.value) and "layer" in str(err.value)
    with pytest.raises(ValueError, match="'a'.*tower"):
        select_neurons(ok, {}, 2.0)


def test_paper_score_feeds_selection():
    # end to end on the fixtures: the top third (floor(3 * 34%) = 1) is n1, the largest score
    s = paper_score(FORGET_MM, FORGET_TX, RETAIN_MM, RETAIN_TX)
    masks = select_neurons({"mlp": s}, {"mlp": "language"}, 34)
    assert masks["mlp"].tolist() == [False, True, False]


def test_summarize():
    masks = {
        "v1": torch.tensor([True, False, False, False]),
        "v2": torch.tensor([True, True]),
        "l1": torch.tensor([False, False, False]),
    }
    towers = {"v1": "vision", "v2": "vision", "l1": "language"}
    summary = summarize(masks, towers)
    assert summary["modules"]["v1"] == {"tower": "vision", "neurons": 4, "pruned": 1, "fraction": 0.25}
    assert summary["modules"]["l1"] == {"tower": "language", "neurons": 3, "pruned": 0, "fraction": 0.0}
    # vision: 6 neurons, 3 pruned; language: 3, 0; all: 9, 3
    assert summary["towers"] == {
        "vision": {"neurons": 6, "pruned": 3, "fraction": 0.5},
        "language": {"neurons": 3, "pruned": 0, "fraction": 0.0},
    }
    assert summary["total"] == {"neurons": 9, "pruned": 3, "fraction": 1 / 3}
    assert json.loads(json.dumps(summary)) == summary
    assert type(summary["towers"]["vision"]["pruned"]) is int


def test_random_control_ignores_the_statistics_and_follows_the_seed():
    from unlearn.manu.neuron_scores import neuron_scores

    def moments(scale):
        return {k: {"lm.0": Moments.of(scale * torch.arange(12.0).view(3, 4) + i, tau=0.1),
                    "vis.0": Moments.of(scale * torch.ones(2, 6) * (i + 1), tau=0.1)}
                for i, k in enumerate(("forget/multimodal", "forget/text", "retain/multimodal", "retain/text"))}

    towers = {"lm.0": "language", "vis.0": "vision"}
    a = neuron_scores(moments(1.0), towers, "random", seed=3)
    assert {n: s.shape for n, s in a.items()} == {"lm.0": (4,), "vis.0": (6,)}
    b = neuron_scores(moments(-7.0), towers, "random", seed=3)  # other activations, the same draw
    assert all(torch.equal(a[n], b[n]) for n in a)
    c = neuron_scores(moments(1.0), towers, "random", seed=4)
    assert not torch.equal(a["lm.0"], c["lm.0"])
    # the control prunes as many neurons per tower as MANU does at the same alpha
    masks = select_neurons(a, towers, 50.0)
    assert int(masks["lm.0"].sum()) == prune_count(50.0, 4) and int(masks["vis.0"].sum()) == prune_count(50.0, 6)
    with pytest.raises(ValueError, match="manu.score='nope': expected one of paper, reference, random"):
        neuron_scores(moments(1.0), towers, "nope")


def test_neuron_scores_wire_each_variant_to_its_moments():
    """paper: S from all four moment sets of a module, forget over retain (hand values above); reference: a
    vision module from the multimodal passes, a language module from the text-only ones, forget over retain.
    The four pairings a wiring slip could pick all give other scores here."""
    from unlearn.manu.neuron_scores import neuron_scores

    retain_tx = mom(2, [1, 0, 0], [3, 2, 1], [5, 2, 1], [2, 1, 0])  # unlike RETAIN_MM, so a modality swap shows
    sets = {"forget/multimodal": FORGET_MM, "forget/text": FORGET_TX, "retain/multimodal": RETAIN_MM,
            "retain/text": retain_tx}
    moments = {k: {"vis.0": m, "lm.0": m} for k, m in sets.items()}
    towers = {"vis.0": "vision", "lm.0": "language"}

    ref = neuron_scores(moments, towers, "reference")
    pairings = {(f, r): reference_score(sets[f"forget/{f}"], sets[f"retain/{r}"]) for f in ("multimodal", "text")
                for r in ("multimodal", "text")}
    swapped = {m: reference_score(sets[f"retain/{m}"], sets[f"forget/{m}"]) for m in ("multimodal", "text")}
    candidates = [*pairings.values(), *swapped.values()]
    assert all(not torch.allclose(a, b) for i, a in enumerate(candidates) for b in candidates[i + 1:])
    close(ref["vis.0"], pairings[("multimodal", "multimodal")].tolist())
    close(ref["lm.0"], pairings[("text", "text")].tolist())

    paper = neuron_scores({k: {"m": m} for k, m in
                           {**sets, "retain/text": RETAIN_TX}.items()}, {"m": "language"}, "paper")["m"]
    r2 = math.sqrt(2)
    close(paper, [(math.sqrt(5) + 1 / 3) / r2, (0.5 + 3 + math.sqrt(0.8)) / r2,
                  (7 / 9 + 1 + math.sqrt(0.01046875) + math.sqrt(31 / 33)) / r2], rel=1e-6)


def test_a_partial_paper_weight_overrides_one_term_and_keeps_the_others():
    """manu.weights={var: 0} under manu.score=paper drops I_var alone: the other three terms keep weight 1
    (hand-computed on one neuron: forget Z = (2, 1), retain Z = (1, 1), no spread, nothing above tau)."""
    import torch

    from unlearn.manu.moments import Moments
    from unlearn.manu.neuron_scores import neuron_scores

    def mom(mean_abs):  # one neuron, one token of activation `mean_abs`
        t = lambda x: torch.tensor([float(x)], dtype=torch.float64)  # noqa: E731
        return Moments(torch.tensor(1.0, dtype=torch.float64), t(mean_abs), t(mean_abs), t(mean_abs ** 2), t(0))

    moments = {"forget/multimodal": {"m": mom(2.0)}, "forget/text": {"m": mom(1.0)},
               "retain/multimodal": {"m": mom(1.0)}, "retain/text": {"m": mom(1.0)}}
    s = neuron_scores(moments, {"m": "language"}, "paper", weights={"var": 0.0})["m"]
    # forget: I_abs = 1/3, I_freq = 0, I_rms = sqrt(3/5); retain: all 0 (eps 1e-8 in the ratio)
    i_forget = 1 / 3 + (3 / 5) ** 0.5
    assert s.item() == pytest.approx(i_forget / 1e-8, rel=1e-6)
