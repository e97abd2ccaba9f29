"""Small plain-PyTorch ports of the official computations, written from the published code's semantics, held
against the project's under the official settings on the tiny model.

- MMUnlearner (Z1zs/MMUnlearner, data_process/MLLMU_gen_mask.py + SFRon.py + MLLMU_manifold.py): per batch
  `loss.backward()`, Fisher += grad ** 2 / n_batches by parameter name (in float16 there: fisher_dtype=float16);
  the language group's preserve loader is one loader over text-only + retain multimodal QA (mixed batches);
  mask where (F_forget + 1e-15) / (F_preserve + 1e-15) >= gamma (0/0 = nan -> not selected), kept only for
  names with proj|fc|linear|mlp|qkv.
- open-unlearning (locuslab/open-unlearning, src/trainer/utils.py): KL = kl_div(batchmean) over logits
  flattened to (B*T, V); NPO = mean over rows of -(2/beta) logsigmoid(-beta * (sum NLL_ref - sum NLL_cur)).
- MLLMU-Bench (franciscoliu/MLLMU-Bench, baselines/KL_Min.py, NPO.py): KL = kl_div(batchmean) over (B, T, V);
  NPO from the token-mean losses of the batch, beta 0.4.
"""

import pytest
import torch
import torch.nn.functional as F

from unlearn import losses
from unlearn.data.collate import IGNORE, collate
from unlearn.eval.scoring import model_inputs

OFFICIAL_ELIGIBLE = ("proj", "fc", "linear", "mlp", "qkv")


def _official_fisher(model, batches, names, half=None):
    """half (a dtype): SFRon.py's arithmetic, grad ** 2 / len(loader) summed in the dtype of their model
    (float16 in MLLMU_gen_mask.py, bfloat16 in CLEAR_gen_mask.py)."""
    params = dict(model.named_parameters())
    fisher = {n: torch.zeros(params[n].shape, dtype=half or torch.float32) for n in names}
    for batch in batches:
        model.zero_grad()
        model(**model_inputs(batch, "cpu"), labels=batch["labels"]).loss.backward()
        for n in names:
            if params[n].grad is not None:
                g = params[n].grad
                fisher[n] = fisher[n] + (g.to(half) ** 2 / len(batches) if half else g.float() ** 2)
    model.zero_grad()
    return {n: f if half else f / len(batches) for n, f in fisher.items()}, len(batches)


def _batches(ds, size, pad):
    return [collate([ds[j] for j in range(i, min(i + size, len(ds)))], pad) for i in range(0, len(ds), size)]


@pytest.mark.parametrize("preserve_batches,fisher_dtype", [("mixed", "float16"), ("mixed", "float32"),
                                                           ("separate", "float32"), ("mixed", "bfloat16")])
def test_mmunlearner_mask_equals_the_official_rule(tmp_path, small_benchmark, tiny_model, preserve_batches,
                                                   fisher_dtype):
    """The preset's (official) mixed / float16, CLEAR_gen_mask.py's bfloat16, and the float32 and separate-loader
    variants."""
    from torch.utils.data import ConcatDataset

    from unlearn.methods.mmunlearner import GROUPS, compute_masks, fisher_datasets
    from unlearn.mmunlearner.saliency import eligible_parameters, group_parameters
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    model, proc = tiny_model
    model.eval()
    cfg = _cfg(tmp_path, "experiment=mmunlearner_official", "model=tiny_llava", "data=mllmu_mini",
               "mmunlearner.fisher_shuffle=false",  # the official shuffle is unseeded: same batches, in order
               f"mmunlearner.preserve_batches={preserve_batches}", f"mmunlearner.fisher_dtype={fisher_dtype}")
    m = cfg.mmunlearner
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    groups = eligible_parameters(model, group_parameters(model, dict(cfg.model.param_groups)), m.eligible)
    masks, names, _ = compute_masks(ctx, groups, GROUPS["both"], m.gamma, m.fisher_batch_size, labels="full",
                                    preserve_text=m.preserve_text, preserve_batches=m.preserve_batches,
                                    fisher_dtype=m.fisher_dtype)

    # the official computation, by name
    data = fisher_datasets(ctx, labels="full", preserve_text=m.preserve_text)  # eval_mc
    pad = proc.tokenizer.pad_token_id
    vision = [n for n, _ in model.named_parameters() if n.startswith(("model.vision_tower", "model.multi_modal_proj"))]
    language = [n for n, _ in model.named_parameters() if n.startswith("model.language_model") or n == "lm_head.weight"]
    eligible = lambda ns: [n for n in ns if any(k in n for k in OFFICIAL_ELIGIBLE)]  # noqa: E731
    vision, language = eligible(vision), eligible(language)
    half = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(fisher_dtype)
    f, _ = _official_fisher(model, _batches(data["forget"], 4, pad), vision + language, half)
    rm, n_rm = _official_fisher(model, _batches(data["retain_multimodal"], 4, pad), vision + language, half)
    if preserve_batches == "mixed":  # MLLMU_gen_mask.py: ConcatDataset([knowledge (text), retain]), one loader
        mixed = ConcatDataset([data["text_all"], data["retain_multimodal"]])
        lp, _ = _official_fisher(model, _batches(mixed, 4, pad), language, half)
    else:
        tx, n_tx = _official_fisher(model, _batches(data["text_all"], 4, pad), language)
    official, ties = {}, {}
    for n in vision + language:
        if n in vision:
            preserve = rm[n]
        else:
            preserve = lp[n] if preserve_batches == "mixed" else (rm[n] * n_rm + tx[n] * n_tx) / (n_rm + n_tx)
        if half:  # SFRon.py: 1e-15 rounds away in float16 (0/0 = nan: False, x/0 = inf: True), not in bfloat16
            official[n] = ((f[n] + 1e-15) / (preserve + 1e-15)) >= m.gamma
        else:  # float32 (not theirs): the rule without their 1e-15, which in float32 would tip noise-level pairs
            official[n] = (f[n] / preserve) >= m.gamma
        ties[n] = (f[n].float() - m.gamma * preserve.float()).abs() <= 1e-6 * f[n].float().abs().clamp(min=1e-30)
        if half:
            ties[n] = torch.zeros_like(official[n])  # float16 arithmetic on the same gradients: exact

    ours = {names[p]: mask for p, mask in masks.items()}
    assert set(ours) == set(official)
    assert not any("norm" in n or "embed" in n or "lm_head" in n for n in ours)
    for n in official:
        differ = ours[n] != official[n]
        assert not (differ & ~ties[n]).any(), f"{n}: {int(differ.sum())} elements differ beyond ties"
    assert sum(int(v.sum()) for v in official.values()) > 0
    if half == torch.float16:  # underflow matters on the tiny model: some float16 preserve Fishers are exactly 0
        assert any(((rm[n] == 0) & (f[n] > 0)).any() for n in vision)


@pytest.fixture()
def logits_pair(small_benchmark, tiny_model):
    from unlearn.data.sequences import QASequences

    model, proc = tiny_model
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal", answer_only=False)
    batch = collate([ds[i] for i in range(6)], proc.tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.no_grad():
        ref = model(**model_inputs(batch, "cpu")).logits
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        cur = model(**model_inputs(batch, "cpu")).logits
    return cur.double(), ref.double(), batch["labels"]


def _official_kl(cur, ref, flatten):
    v = cur.shape[-1]
    c, r = F.log_softmax(cur, -1), F.log_softmax(ref, -1)
    if flatten:  # open-unlearning
        c, r = c.view(-1, v), r.view(-1, v)
    return F.kl_div(c, r, reduction="batchmean", log_target=True)


@pytest.mark.parametrize("reduction,flatten", [("position_mean", True), ("batch_sum", False)])
def test_kl_equals_the_official_reduction(logits_pair, reduction, flatten):
    cur, ref, labels = logits_pair
    ours = losses.kl_retain(cur, ref, labels, reduction=reduction)
    assert abs(ours.item() - _official_kl(cur, ref, flatten).item()) <= 1e-6 * max(1.0, abs(ours.item()))
    assert abs(ours.item() - losses.kl_retain(cur, ref, labels).item()) > 1e-3  # the conventions differ


def _row_nll_sum(logits, labels):
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE, reduction="none")
    return ce.sum(-1)


def test_npo_equals_open_unlearning(logits_pair):
    cur, ref, labels = logits_pair
    beta = 0.1
    log_ratio = -(_row_nll_sum(cur, labels) - _row_nll_sum(ref, labels))
    official = (-2 / beta * F.logsigmoid(-beta * log_ratio)).mean()
    ours = losses.npo_loss(cur, ref, labels, beta, log_ratio="sequence_sum")
    assert abs(ours.item() - official.item()) <= 1e-6


def test_npo_equals_mllmu_bench(logits_pair):
    cur, ref, labels = logits_pair
    beta = 0.4
    mean_ce = lambda lg: F.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]), labels[:, 1:].reshape(-1),  # noqa: E731
                                         ignore_index=IGNORE)
    neg_log_ratio = mean_ce(cur) - mean_ce(ref)
    official = -F.logsigmoid(beta * neg_log_ratio).mean() * 2 / beta
    ours = losses.npo_loss(cur, ref, labels, beta, log_ratio="token_mean")
    assert abs(ours.item() - official.item()) <= 1e-6
    assert abs(ours.item() - losses.npo_loss(cur, ref, labels, beta).item()) > 1e-3
