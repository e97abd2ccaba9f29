"""Losses against hand-computed values on tiny logits (vocab 3, seq 2-3).

Rows of logits used throughout (softmax in brackets):
  U = [0, 0, 0]            -> p = [1/3, 1/3, 1/3],  log p = [-ln3, -ln3, -ln3]
  S = [0, ln2, ln3]        -> exp = [1, 2, 3] / 6,  log p = [-ln6, -ln3, -ln2]
  H = [0, 0, ln2]          -> exp = [1, 1, 2] / 4,  log p = [-ln4, -ln4, -ln2]
  X = [5, -7, 9]           -> junk that must never be read (last position, or a masked one)
"""

import math

import pytest
import torch
import torch.nn.functional as F

from unlearn.data.collate import IGNORE
from unlearn.losses import (
    ga_loss,
    global_mean,
    grad_diff_loss,
    kl_loss,
    kl_retain,
    mean_nll,
    npo_loss,
    sequence_nll,
    token_logprobs,
)

L2, L3, L4, L6 = math.log(2), math.log(3), math.log(4), math.log(6)
U = [0.0, 0.0, 0.0]
S = [0.0, L2, L3]
H = [0.0, 0.0, L2]
X = [5.0, -7.0, 9.0]


def T(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def lab(*rows):
    return torch.tensor(rows, dtype=torch.long)


# Two rows, seq 3. Row 0: logits S (pos 0) predicts label[1] = 2 -> -ln2; U (pos 1) predicts label[2] = 0 -> -ln3.
# Row 1 (right-padded): H (pos 0) predicts label[1] = 1 -> -ln4; label[2] is padding.
LOGITS = T([S, U, X], [H, X, X])
LABELS = lab([IGNORE, 2, 0], [IGNORE, 1, IGNORE])
NLL_ROWS = [L2 + L3, L4]  # = [ln6, ln4]
N_TOKENS = 3


# ---------------------------------------------------------------- token log-probs, shift, masking

def test_token_logprobs_shift_and_mask():
    logp, mask = token_logprobs(LOGITS, LABELS)
    assert logp.shape == mask.shape == (2, 2)
    assert mask.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(logp, T([-L2, -L3], [-L4, 0.0]))


def test_label_at_position_zero_is_never_scored():
    # A real token at position 0 has no logits predicting it; the junk logits X at the end predict nothing.
    labels = lab([1, 2, 0], [0, 1, IGNORE])
    torch.testing.assert_close(sequence_nll(LOGITS, labels), torch.tensor(NLL_ROWS))
    # ...and the values really come from the shift: without it row 0 would read U->2 and X->0 instead.
    logits = T([S, U, [0.0, 0.0, 50.0]], [H, X, X])
    torch.testing.assert_close(sequence_nll(logits, LABELS), torch.tensor(NLL_ROWS))


def test_ignore_positions_do_not_count():
    # Changing the logits at a masked prediction (row 1, pos 1 predicts the padding) changes nothing.
    logits = LOGITS.clone()
    logits[1, 1] = torch.tensor([100.0, -100.0, 3.0])
    torch.testing.assert_close(sequence_nll(logits, LABELS), torch.tensor(NLL_ROWS))
    # Masking a scored token does change it: row 0 loses its -ln3 token.
    torch.testing.assert_close(sequence_nll(LOGITS, lab([IGNORE, 2, IGNORE], [IGNORE, 1, IGNORE])),
                               torch.tensor([L2, L4]))


def test_float32_for_low_precision_logits():
    logits = LOGITS.to(torch.bfloat16)
    logp, _ = token_logprobs(logits, LABELS)
    assert logp.dtype == torch.float32
    ref, _ = token_logprobs(logits.float(), LABELS)  # same bf16 values, upcast before log-softmax
    torch.testing.assert_close(logp, ref)


def test_sequence_nll_sums_per_row():
    torch.testing.assert_close(sequence_nll(LOGITS, LABELS), torch.tensor(NLL_ROWS))


def test_mean_nll_token_average_equals_hf_loss():
    # (ln6 + ln4) / 3 tokens, not the mean of the per-row means (ln6/2 + ln4)/2
    expected = (L6 + L4) / N_TOKENS
    assert mean_nll(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)
    hf = F.cross_entropy(LOGITS[:, :-1].reshape(-1, 3), LABELS[:, 1:].reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(mean_nll(LOGITS, LABELS), hf)


def test_mean_nll_equals_hf_loss_random():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.randint(0, 7, (3, 5), generator=g)
    labels[0, :3] = IGNORE
    labels[2, 3:] = IGNORE
    hf = F.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(mean_nll(logits, labels), hf)


# ---------------------------------------------------------------- GA, GradDiff

def test_ga_is_negative_mean_nll():
    assert ga_loss(LOGITS, LABELS).item() == pytest.approx(-(L6 + L4) / 3, rel=1e-6)


def test_ga_gradient_lowers_forget_likelihood():
    logits = LOGITS.clone().requires_grad_(True)
    ga_loss(logits, LABELS).backward()
    # one descent step on GA moves the labelled token's logit down: d(-NLL)/d logit_label = -(1 - p)/N > 0
    assert logits.grad[0, 0, 2].item() == pytest.approx((1 - 0.5) / 3, rel=1e-6)  # S: p(2) = 1/2
    assert logits.grad[0, 2].abs().sum().item() == 0.0  # last position is never used


def test_grad_diff_weights():
    # forget: U then label 0 -> NLL_f = ln3 ; retain: S then label 2 -> NLL_r = ln2
    f_logits, f_labels = T([U, X]), lab([IGNORE, 0])
    r_logits, r_labels = T([S, X]), lab([IGNORE, 2])
    assert grad_diff_loss(f_logits, f_labels, r_logits, r_labels).item() == pytest.approx(-L3 + L2, rel=1e-6)
    got = grad_diff_loss(f_logits, f_labels, r_logits, r_labels, gamma=2.0, alpha=0.5).item()
    assert got == pytest.approx(-2 * L3 + 0.5 * L2, rel=1e-6)


# ---------------------------------------------------------------- KL on retain

# KL(p_ref || p_cur) with ref = S (p = [1/6, 2/6, 3/6]) and cur = U (q = 1/3):
#   1/6 ln(1/2) + 2/6 ln(1) + 3/6 ln(3/2) = (1/2) ln3 - (1/6 + 1/2) ln2 = ln3/2 - 2 ln2/3  ~= 0.0872
# The other direction KL(q || p) = 1/3 (ln2 + 0 + ln(2/3)) = (2 ln2 - ln3)/3 ~= 0.0959, so the test fixes it.
KL_SU = L3 / 2 - 2 * L2 / 3


def test_kl_zero_when_equal_positive_otherwise():
    assert kl_retain(LOGITS, LOGITS.clone(), LABELS).item() == pytest.approx(0.0, abs=1e-7)
    other = LOGITS.clone()
    other[0, 0] = torch.tensor(H)
    assert kl_retain(LOGITS, other, LABELS).item() > 1e-3


def test_kl_hand_value_and_direction():
    cur, ref, labels = T([U, X]), T([S, X]), lab([IGNORE, 1])
    assert kl_retain(cur, ref, labels).item() == pytest.approx(KL_SU, rel=1e-5)
    assert KL_SU != pytest.approx((2 * L2 - L3) / 3, rel=1e-2)  # the reverse direction is distinguishable


def test_kl_averages_over_real_tokens_only():
    # Row 0: pos 0 KL_SU, pos 1 cur == ref (KL 0). Row 1: pos 0 cur == ref (0); pos 1 is padding where
    # cur and ref differ wildly, and the last position (X vs U) predicts nothing. Mean over 3 tokens.
    cur = T([U, H, X], [S, [40.0, -40.0, 0.0], X])
    ref = T([S, H, U], [S, [-40.0, 40.0, 0.0], U])
    labels = lab([IGNORE, 0, 1], [IGNORE, 2, IGNORE])
    assert kl_retain(cur, ref, labels).item() == pytest.approx(KL_SU / 3, rel=1e-5)


def test_kl_position_mean_and_batch_sum_hand_values():
    """open-unlearning's position_mean: every position of (B*T, V), prompt, padding and the last included;
    MLLMU-Bench's batch_sum: their sum over the batch size. Two rows of two positions, KL_SU at one position of
    each (one of them the last, which answer_mean never reads); the scored token's position has KL 0."""
    cur, ref = T([U, U], [U, U]), T([S, U], [U, S])
    labels = lab([IGNORE, IGNORE], [IGNORE, 1])
    assert kl_retain(cur, ref, labels, reduction="position_mean").item() == pytest.approx(2 * KL_SU / 4, rel=1e-5)
    assert kl_retain(cur, ref, labels, reduction="batch_sum").item() == pytest.approx(2 * KL_SU / 2, rel=1e-5)
    assert kl_retain(cur, ref, labels).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_gives_no_gradient_to_reference():
    cur = T([U, X]).requires_grad_(True)
    ref = T([S, X]).requires_grad_(True)
    kl_retain(cur, ref, lab([IGNORE, 1])).backward()
    assert ref.grad is None
    # current is pulled towards the reference: gradient of KL wrt cur logits = q - p = 1/3 - [1/6, 2/6, 3/6]
    torch.testing.assert_close(cur.grad[0, 0], torch.tensor([1 / 6, 0.0, -1 / 6]))


def test_kl_loss_combines_ga_and_kl():
    f_logits, f_labels = T([U, X]), lab([IGNORE, 0])  # NLL_f = ln3
    cur, ref, r_labels = T([U, X]), T([S, X]), lab([IGNORE, 1])
    got = kl_loss(f_logits, f_labels, cur, ref, r_labels, alpha=2.0).item()
    assert got == pytest.approx(-L3 + 2 * KL_SU, rel=1e-5)
    # open-unlearning's gamma weighs the forget term only
    got = kl_loss(f_logits, f_labels, cur, ref, r_labels, alpha=2.0, gamma=3.0).item()
    assert got == pytest.approx(-3 * L3 + 2 * KL_SU, rel=1e-5)


# ---------------------------------------------------------------- NPO

def test_npo_at_reference_is_2_ln2_over_beta():
    for beta in (0.1, 1.0, 3.0):
        got = npo_loss(LOGITS, LOGITS.clone(), LABELS, beta=beta).item()
        assert got == pytest.approx(2 * L2 / beta, rel=1e-6)


def test_npo_hand_value_uses_sequence_sum():
    # Two answer tokens, both label 2. cur U,U: log p = -2 ln3; ref S,S: log p = -2 ln2; r = 2 ln(2/3) = ln(4/9).
    # beta = 1: -2 logsigmoid(-r) = -2 logsigmoid(ln(9/4)) = -2 ln((9/4)/(13/4)) = 2 ln(13/9)   ~= 0.7355
    # (a token MEAN would give r = ln(2/3) and 2 ln(5/3) ~= 1.0217 instead)
    # beta = 2: -(2/2) logsigmoid(-2 r) = -ln sigmoid(ln(81/16)) = ln(97/81)
    cur, ref, labels = T([U, U, X]), T([S, S, X]), lab([IGNORE, 2, 2])
    assert npo_loss(cur, ref, labels, beta=1.0).item() == pytest.approx(2 * math.log(13 / 9), rel=1e-5)
    assert npo_loss(cur, ref, labels, beta=2.0).item() == pytest.approx(math.log(97 / 81), rel=1e-5)
    # gamma weighs the NPO term, not the retain NLL (open-unlearning's NPO: gamma * forget + alpha * retain);
    # retain: S then label 2, NLL ln2
    got = npo_loss(cur, ref, labels, beta=1.0, retain_logits=T([S, X]), retain_labels=lab([IGNORE, 2]),
                   alpha=0.5, gamma=3.0).item()
    assert got == pytest.approx(3 * 2 * math.log(13 / 9) + 0.5 * L2, rel=1e-5)
    got = npo_loss(cur, ref, labels, beta=1.0, log_ratio="token_mean", gamma=3.0).item()
    assert got == pytest.approx(3 * npo_loss(cur, ref, labels, beta=1.0, log_ratio="token_mean").item(), rel=1e-6)


def test_npo_reference_of_another_vocabulary_width_scores_over_its_own():
    """MMUnlearner's CLEAR_NPO.py: the model keeps its padded rows, its oracle (CLEAR_reference.py) is cut to the
    tokenizer; each loss is over its own vocabulary. cur U,U over 3 rows: log p(2) = -ln3 per token; ref over 4
    rows [0, ln2, ln3, ln6] (exp: 1, 2, 3, 6): p(2) = 3/12, log p = -ln4. r = 2 ln(4/3); beta 1:
    -2 logsigmoid(-r) = 2 ln(1 + 16/9) = 2 ln(25/9). Swapped (the model wider), r = -2 ln(4/3): 2 ln(25/16)."""
    wide = [0.0, L2, L3, L6]
    cur, ref, labels = T([U, U, X]), T([wide, wide, [0.0] * 4]), lab([IGNORE, 2, 2])
    assert npo_loss(cur, ref, labels, beta=1.0).item() == pytest.approx(2 * math.log(25 / 9), rel=1e-5)
    assert npo_loss(ref, cur, labels, beta=1.0).item() == pytest.approx(2 * math.log(25 / 16), rel=1e-5)
    # token_mean: one ratio from the two token-mean losses, r = ln4 - ln3
    assert npo_loss(cur, ref, labels, beta=1.0, log_ratio="token_mean").item() == pytest.approx(
        2 * math.log(1 + 4 / 3), rel=1e-5)
    with pytest.raises(ValueError, match=r"label id \(3\) is past the narrower model's vocabulary \(3 rows\)"):
        npo_loss(cur, ref, lab([IGNORE, 3, 2]), beta=1.0)
    with pytest.raises(ValueError, match="npo_loss forget_logits vs forget_ref_logits"):  # positions must agree
        npo_loss(cur, ref[:, :2], labels, beta=1.0)


def test_npo_mean_over_rows_skips_rows_without_labels():
    # row 0 as above (2 ln(13/9) at beta 1); row 1 cur == ref (r = 0 -> 2 ln2); row 2 has no label tokens.
    cur = T([U, U, X], [H, X, X], [U, U, X])
    ref = T([S, S, X], [H, X, X], [S, S, X])
    labels = lab([IGNORE, 2, 2], [IGNORE, 0, IGNORE], [IGNORE, IGNORE, IGNORE])
    expected = (2 * math.log(13 / 9) + 2 * L2) / 2
    assert npo_loss(cur, ref, labels, beta=1.0).item() == pytest.approx(expected, rel=1e-5)


def _open_unlearning_npo(cur, ref, labels, beta):
    """A port of open-unlearning's NPO forget loss (src/trainer/utils.py compute_batch_nll, compute_dpo_loss with
    win_inputs=None; d3d7cf9): each row's summed cross-entropy over the shifted labels, lose_log_ratio =
    -(loss - ref_loss), -2/beta * logsigmoid(beta * (0 - lose_log_ratio)) averaged over EVERY row."""
    def batch_nll(logits):
        return F.cross_entropy(logits[:, :-1].transpose(-1, -2), labels[:, 1:], ignore_index=-100,
                               reduction="none").sum(-1)
    lose_log_ratio = -(batch_nll(cur) - batch_nll(ref))
    return (-2 / beta * F.logsigmoid(beta * (0.0 - lose_log_ratio))).mean()


def test_npo_empty_rows_count_is_open_unlearnings_mean():
    """method.npo_empty_rows=count: a row with no label token is a row of r = 0, adding (2/beta) ln2 and one to the
    count, as open-unlearning's `.mean()` over the batch; skip (the default) leaves it out."""
    cur = T([U, U, X], [H, X, X], [U, U, X])
    ref = T([S, S, X], [H, X, X], [S, S, X])
    labels = lab([IGNORE, 2, 2], [IGNORE, 0, IGNORE], [IGNORE, IGNORE, IGNORE])
    for beta in (1.0, 0.1):
        theirs = _open_unlearning_npo(cur, ref, labels, beta).item()
        hand = (-(2 / beta) * F.logsigmoid(torch.tensor(-beta * 2 * math.log(2 / 3))).item()
                + 2 * (2 / beta) * L2) / 3
        assert theirs == pytest.approx(hand, rel=1e-5)
        assert npo_loss(cur, ref, labels, beta=beta, empty_rows="count").item() == pytest.approx(theirs, rel=1e-5)
        skip = npo_loss(cur, ref, labels, beta=beta).item()
        assert skip == pytest.approx((hand * 3 - 2 * L2 / beta) / 2, rel=1e-5) and skip != pytest.approx(theirs)
    # a shard's filler rows (DDP padding repeats) are never rows: without the empty row's flag it is counted,
    # flagged it is not
    fillers = torch.tensor([False, False, True])
    assert npo_loss(cur, ref, labels, beta=1.0, empty_rows="count", fillers=fillers).item() == pytest.approx(
        npo_loss(cur, ref, labels, beta=1.0).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"method.npo_empty_rows='all': expected one of \('skip', 'count'\)"):
        npo_loss(cur, ref, labels, empty_rows="all")


@pytest.mark.parametrize("empty_rows", ["skip", "count"])
def test_npo_empty_rows_global_mean_over_two_processes_is_one_process_mean(empty_rows):
    """Under DDP each process passes its own count to the mean, which sums the counts over processes
    (pipeline's global_batch_mean); the average of the processes' losses must be the one-process loss. Rank 0 holds
    rows 0 and 2 (2 has no label token), rank 1 row 1 and a filler repeat of row 0 (unlabelled, flagged), as
    EpochShuffle pads its shard."""
    cur = T([U, U, X], [H, X, X], [U, U, X])
    ref = T([S, S, X], [H, X, X], [S, S, X])
    labels = lab([IGNORE, 2, 2], [IGNORE, 0, IGNORE], [IGNORE, IGNORE, IGNORE])
    one = npo_loss(cur, ref, labels, beta=1.0, empty_rows=empty_rows).item()
    filler_labels = torch.full_like(labels[:1], IGNORE)
    shards = [(cur[[0, 2]], ref[[0, 2]], labels[[0, 2]], torch.tensor([False, False])),
              (cur[[1, 0]], ref[[1, 0]], torch.cat([labels[1:2], filler_labels]), torch.tensor([False, True]))]
    counts = []

    def record(total, count):
        counts.append(int(count))
        return total

    for c, r, lb, fl in shards:  # the counts each process hands to the reduce
        npo_loss(c, r, lb, beta=1.0, empty_rows=empty_rows, fillers=fl, mean=record)
    assert counts == ([1, 1] if empty_rows == "skip" else [2, 1])
    mean = _ranks_mean(2, sum(counts))
    two = [npo_loss(c, r, lb, beta=1.0, empty_rows=empty_rows, fillers=fl, mean=mean) for c, r, lb, fl in shards]
    assert ((two[0] + two[1]) / 2).item() == pytest.approx(one, rel=1e-6)


def test_npo_limit_r_to_minus_inf_is_zero_and_stable():
    # cur puts logit -1e4 on the answer token: log p = -1e4 - ln2 per token, ref S: -ln2 per token -> r = -2e4
    very_unlikely = [0.0, 0.0, -1e4]
    cur, ref, labels = T([very_unlikely, very_unlikely, X]), T([S, S, X]), lab([IGNORE, 2, 2])
    loss = npo_loss(cur, ref, labels, beta=0.1)
    assert torch.isfinite(loss) and 0.0 <= loss.item() < 1e-30
    # the other tail (r -> +inf) stays finite and linear: -(2/beta) logsigmoid(-beta r) ~= 2 r
    loss = npo_loss(ref, cur, labels, beta=0.1)  # roles swapped: r = 2e4 (a naive log(sigmoid) gives inf)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(2 * 2e4, rel=1e-4)


def _grad_wrt_logits(fn, logits):
    logits = logits.clone().requires_grad_(True)
    fn(logits).backward()
    return logits.grad


def test_npo_gradient_weight_and_ga_limit():
    # dL/dr = 2 sigmoid(beta r); grad wrt logits = dL/dr * d log p_theta(y|x) / d logits.
    cur, ref, labels = T([U, U, X]), T([S, S, X]), lab([IGNORE, 2, 2])  # r = ln(4/9)
    g_logp = _grad_wrt_logits(lambda z: -sequence_nll(z, labels).sum(), cur)  # d log p(y|x) / d logits
    # beta = 1: 2 sigmoid(ln(4/9)) = 2 (4/9)/(13/9) = 8/13
    g1 = _grad_wrt_logits(lambda z: npo_loss(z, ref, labels, beta=1.0), cur)
    torch.testing.assert_close(g1, 8 / 13 * g_logp)
    # beta -> 0: the weight 2 sigmoid(beta r) -> 1, i.e. plain gradient ascent on log p(y|x)
    g0 = _grad_wrt_logits(lambda z: npo_loss(z, ref, labels, beta=1e-4), cur)
    torch.testing.assert_close(g0, g_logp, rtol=1e-3, atol=1e-6)
    # ...which is GA's direction: ga_loss averages over the 2 tokens instead of summing
    g_ga = _grad_wrt_logits(lambda z: ga_loss(z, labels), cur)
    torch.testing.assert_close(g0, 2 * g_ga, rtol=1e-3, atol=1e-6)


def _dloss_dr(beta):
    # One answer token (label 2) under cur logits [0, 0, z], ref S (log p_ref = -ln2):
    # r = log p(2) + ln2 and d r / d z = 1 - p(2), so d loss / d r = z.grad / (1 - p(2)).
    z = torch.tensor(-3.0, requires_grad=True)
    row = torch.stack([torch.tensor(0.0), torch.tensor(0.0), z])
    cur = torch.stack([row, torch.tensor(X)]).unsqueeze(0)
    npo_loss(cur, T([S, X]), lab([IGNORE, 2]), beta=beta).backward()
    p2 = math.exp(-3) / (2 + math.exp(-3))  # ~= 0.0243, so r = ln p2 + ln2 ~= -3.02
    return z.grad.item() / (1 - p2), math.log(p2) + L2


def test_npo_dloss_dr_tends_to_one():
    dldr, r = _dloss_dr(1e-4)
    assert dldr == pytest.approx(2 / (1 + math.exp(-1e-4 * r)), rel=1e-4)  # 2 sigmoid(beta r)
    assert dldr == pytest.approx(1.0, abs=1e-3)  # GA's weight
    dldr, r = _dloss_dr(1.0)
    assert dldr == pytest.approx(2 / (1 + math.exp(-r)), rel=1e-4)  # ~= 0.093: the unlikely row is let go
    assert dldr < 0.5


def test_npo_no_gradient_into_reference():
    cur = T([U, U, X]).requires_grad_(True)
    ref = T([S, S, X]).requires_grad_(True)
    npo_loss(cur, ref, lab([IGNORE, 2, 2]), beta=1.0).backward()
    assert ref.grad is None
    assert cur.grad is not None and cur.grad.abs().sum() > 0


def test_npo_retain_term_adds_alpha_nll():
    cur, ref, labels = T([U, U, X]), T([S, S, X]), lab([IGNORE, 2, 2])
    r_logits, r_labels = T([H, X]), lab([IGNORE, 2])  # NLL_r = ln2
    base = 2 * math.log(13 / 9)
    got = npo_loss(cur, ref, labels, beta=1.0, retain_logits=r_logits, retain_labels=r_labels, alpha=0.5)
    assert got.item() == pytest.approx(base + 0.5 * L2, rel=1e-5)
    got = npo_loss(cur, ref, labels, beta=1.0, retain_logits=r_logits, retain_labels=r_labels, alpha=0.0)
    assert got.item() == pytest.approx(base, rel=1e-5)
    with pytest.raises(ValueError, match="retain"):
        npo_loss(cur, ref, labels, beta=1.0, alpha=1.0)


# ---------------------------------------------------------------- means over a global batch (DDP)

# LOGITS/LABELS split over two processes by row: rank 0 holds row 0 (2 tokens, NLL sum ln6), rank 1 holds
# row 1 (1 token, ln4). Global mean (ln6 + ln4) / 3; per-rank token means would average to (ln6/2 + ln4)/2.

def _ranks_mean(world_size, global_count):
    return lambda total, count: global_mean(total, torch.tensor(global_count), world_size)


def test_global_mean_hand_values():
    assert global_mean(torch.tensor(L6), torch.tensor(3), 2).item() == pytest.approx(2 * L6 / 3, rel=1e-6)
    assert global_mean(torch.tensor(L4), torch.tensor(3), 2).item() == pytest.approx(2 * L4 / 3, rel=1e-6)
    with pytest.raises(ValueError, match="no label tokens on any of the 2 processes"):
        global_mean(torch.tensor(0.0), torch.tensor(0), 2)


def test_global_mean_with_one_process_is_the_token_mean_exactly():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(3, 5, 7, generator=g), torch.randint(0, 7, (3, 5), generator=g)
    labels[0, :3] = IGNORE
    one = lambda total, count: global_mean(total, count, 1)  # noqa: E731
    for z, y in ((LOGITS, LABELS), (logits, labels)):
        assert torch.equal(mean_nll(z, y, one), mean_nll(z, y))
        assert torch.equal(kl_retain(z, z.flip(0), y, one), kl_retain(z, z.flip(0), y))
        npo = lambda **kw: npo_loss(z, z.flip(0), y, 0.5, z, y, 1.0, **kw)  # noqa: E731
        assert torch.equal(npo(mean=one), npo())


def test_two_ranks_values_average_to_the_global_token_mean():
    mean = _ranks_mean(2, N_TOKENS)
    r0 = mean_nll(LOGITS[:1], LABELS[:1], mean)
    r1 = mean_nll(LOGITS[1:], LABELS[1:], mean)
    assert r0.item() == pytest.approx(2 * L6 / 3, rel=1e-6) and r1.item() == pytest.approx(2 * L4 / 3, rel=1e-6)
    assert ((r0 + r1) / 2).item() == pytest.approx((L6 + L4) / 3, rel=1e-6)
    local = (mean_nll(LOGITS[:1], LABELS[:1]) + mean_nll(LOGITS[1:], LABELS[1:])) / 2  # what DDP did before
    assert local.item() == pytest.approx((L6 / 2 + L4) / 2, rel=1e-6)


def test_two_ranks_ddp_averaged_gradient_is_the_one_process_gradient():
    # A bias b shared by both ranks (a parameter) added to every logit; d NLL / d b = sum_tokens (p - onehot) / N:
    # S->2: [1/6, 1/3, -1/2], U->0: [-2/3, 1/3, 1/3], H->1: [1/4, -3/4, 1/2]; sum [-1/4, -1/12, 1/3]; / 3 tokens.
    expected = torch.tensor([-1 / 12, -1 / 36, 1 / 9])

    def grad(fn):
        b = torch.zeros(3, requires_grad=True)
        fn(b).backward()
        return b.grad

    torch.testing.assert_close(grad(lambda b: mean_nll(LOGITS + b, LABELS)), expected)
    mean = _ranks_mean(2, N_TOKENS)
    per_rank = [grad(lambda b, i=i: mean_nll(LOGITS[i:i + 1] + b, LABELS[i:i + 1], mean)) for i in (0, 1)]
    torch.testing.assert_close((per_rank[0] + per_rank[1]) / 2, expected)  # DDP's all-reduce average
    # GradDiff on the same split: both of its means are global
    both = [grad(lambda b, i=i: grad_diff_loss(LOGITS[i:i + 1] + b, LABELS[i:i + 1], LOGITS[i:i + 1] + b,
                                                LABELS[i:i + 1], gamma=1.0, alpha=2.0, mean=mean)) for i in (0, 1)]
    torch.testing.assert_close((both[0] + both[1]) / 2, expected)  # -1 * g + 2 * g


def test_npo_global_mean_is_over_rows():
    # rows of test_npo_mean_over_rows_skips_rows_without_labels on two ranks: rank 0 rows 0 and 2 (one counted),
    # rank 1 row 1; two rows in all.
    cur = T([U, U, X], [H, X, X], [U, U, X])
    ref = T([S, S, X], [H, X, X], [S, S, X])
    labels = lab([IGNORE, 2, 2], [IGNORE, 0, IGNORE], [IGNORE, IGNORE, IGNORE])
    mean = _ranks_mean(2, 2)
    r0 = npo_loss(cur[[0, 2]], ref[[0, 2]], labels[[0, 2]], beta=1.0, mean=mean)
    r1 = npo_loss(cur[1:2], ref[1:2], labels[1:2], beta=1.0, mean=mean)
    assert ((r0 + r1) / 2).item() == pytest.approx((2 * math.log(13 / 9) + 2 * L2) / 2, rel=1e-5)


# ---------------------------------------------------------------- errors

def test_scalar_outputs():
    for out in (mean_nll(LOGITS, LABELS), ga_loss(LOGITS, LABELS),
                grad_diff_loss(LOGITS, LABELS, LOGITS, LABELS), kl_retain(LOGITS, LOGITS, LABELS),
                kl_loss(LOGITS, LABELS, LOGITS, LOGITS, LABELS), npo_loss(LOGITS, LOGITS, LABELS)):
        assert out.dim() == 0


def test_shape_mismatches_raise():
    with pytest.raises(ValueError, match="labels shape"):
        mean_nll(LOGITS, LABELS[:, :2])
    with pytest.raises(ValueError, match="labels shape"):
        sequence_nll(LOGITS, LABELS[:1])
    with pytest.raises(ValueError, match=r"\(batch, seq, vocab\)"):
        token_logprobs(LOGITS[0], LABELS[0])
    with pytest.raises(ValueError, match="shapes"):
        kl_retain(LOGITS, LOGITS[..., :2], LABELS)
    with pytest.raises(ValueError, match="shapes"):
        npo_loss(LOGITS, LOGITS[:1], LABELS)
    with pytest.raises(ValueError, match="labels shape"):
        grad_diff_loss(LOGITS, LABELS, LOGITS, LABELS[:, 1:])
    with pytest.raises(ValueError, match="integer"):
        mean_nll(LOGITS, LABELS.float())
    with pytest.raises(ValueError, match="outside"):
        mean_nll(LOGITS, lab([IGNORE, 3, 0], [IGNORE, 1, IGNORE]))


def test_all_ignore_raises_instead_of_nan():
    empty = torch.full_like(LABELS, IGNORE)
    only_first = lab([1, IGNORE, IGNORE], [2, IGNORE, IGNORE])  # position 0 is never scored
    for labels in (empty, only_first):
        for fn in (lambda: mean_nll(LOGITS, labels), lambda: ga_loss(LOGITS, labels),
                   lambda: grad_diff_loss(LOGITS, LABELS, LOGITS, labels),
                   lambda: kl_retain(LOGITS, LOGITS, labels),
                   lambda: kl_loss(LOGITS, LABELS, LOGITS, LOGITS, labels),
                   lambda: npo_loss(LOGITS, LOGITS, labels)):
            with pytest.raises(ValueError, match="no label tokens"):
                fn()
    # the per-row helper has nothing to divide: an empty row is a sum over nothing
    assert sequence_nll(LOGITS, empty).tolist() == [0.0, 0.0]


def test_npo_token_mean_of_a_batch_of_padding_alone_is_zero_under_a_global_mean():
    """A DDP rank whose batch is its shard's unlabelled padding adds nothing (and keeps the graph for DDP);
    with one process (the global mean of a world of 1, as training passes it) an unlabelled batch is refused."""
    from unlearn.losses import global_mean

    def world(size):
        def mean(total, count):
            return global_mean(total, torch.tensor(5), size)
        mean.world_size = size
        return mean

    empty = torch.full_like(LABELS, IGNORE)
    logits = LOGITS.clone().requires_grad_(True)
    loss = npo_loss(logits, LOGITS, empty, log_ratio="token_mean", mean=world(2))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(LOGITS))
    for mean in (world(1), None):
        with pytest.raises(ValueError, match="no label tokens"):
            npo_loss(LOGITS, LOGITS, empty, log_ratio="token_mean", mean=mean)
