"""MLLMU-Bench's NPO loop (franciscoliu/MLLMU-Bench baselines/NPO.py:248-272, accumulation off) held against ours
under the settings experiment=mllmu_baselines method=npo sets: the forget pass only, one ratio per batch from the
two models' token-mean losses (`neg_log_ratios = current_loss - oracle_loss`, NPO.py:265), beta 0.4 (NPO.py:299),
`loss = -F.logsigmoid(beta * neg_log_ratios).mean() * 2 / beta` (NPO.py:266), transformers' AdamW and
get_scheduler("linear", num_warmup_steps=0) stepped after every batch (NPO.py:198-205, 270-272), the oracle a
separate model loaded in float16 (NPO.py:109-115) whose logits transformers 4.45.1 upcasts to float32 before the
loss (LlamaForCausalLM.forward: `logits = self.lm_head(...).float()`, modeling_llama.py:1214).
tests/test_gradient_schedules.py ports GA.py, GA_Difference.py and KL_Min.py; NPO.py's loop had no port (only its
loss value, tests/test_official_parity.py)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from unlearn.eval.scoring import model_inputs
from unlearn.methods.gradient import GradientUnlearning, sequential_loader
from unlearn.models.precision import cast_copy
from unlearn.optim import HFAdamW

from .test_gradient_schedules import _trainer


def _their_npo_loop(model, oracle, batches, lr, beta, steps):
    from transformers import get_scheduler

    opt = HFAdamW(model.parameters(), lr=lr)
    sched = get_scheduler("linear", optimizer=opt, num_warmup_steps=0, num_training_steps=steps)
    model.train()
    for batch in batches:
        inputs = model_inputs(batch, "cpu")
        current_loss = model(**inputs, labels=batch["labels"]).loss
        with torch.no_grad():
            logits = oracle(**inputs).logits.float()  # 4.45.1: float32 logits from the float16 model
            oracle_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                          batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
        neg_log_ratios = current_loss - oracle_loss
        loss = -F.logsigmoid(beta * neg_log_ratios).mean() * 2 / beta
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model


@pytest.mark.parametrize("oracle_dtype", [torch.float32, torch.float16])
def test_sequential_npo_equals_their_loop(oracle_dtype, tiny_model, small_benchmark):
    model, proc = tiny_model
    start = copy.deepcopy(model)
    torch.manual_seed(0)
    oracle = copy.deepcopy(start)  # their oracle is another model (the retain-finetuned one): r != 0 from step 1
    with torch.no_grad():
        for p in oracle.parameters():
            p.add_(0.02 * torch.randn_like(p))
    oracle = cast_copy(oracle, oracle_dtype).eval() if oracle_dtype != torch.float32 else oracle.eval()
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    beta, lr = 0.4, 1e-3
    module = GradientUnlearning(model, "npo", lambda p: HFAdamW(p, lr=lr), alpha=0.0, beta=beta,
                                reference=oracle, npo_log_ratio="token_mean", lr_decay="linear",
                                reference_own_precision=oracle_dtype != torch.float32, token_mean="process")
    loader = sequential_loader(ctx, "multimodal", 8, answer_only=False, seed=3, with_retain=False)
    batches = [b["forget"] for b in loader]
    assert len(batches) > 1
    _trainer(max_epochs=1).fit(module, loader)
    theirs = _their_npo_loop(copy.deepcopy(start), oracle, batches, lr, beta, steps=len(batches))
    ours, moved = dict(model.named_parameters()), 0
    for n, p in theirs.named_parameters():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=2e-6, msg=n)
        moved += not torch.equal(p, start.get_parameter(n))
    assert moved
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == 0.0
