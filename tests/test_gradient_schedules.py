"""MLLMU-Bench's baseline schedules (method.schedule=sequential, method.lr_decay=linear, method.kl_retain_nll) and
MMUnlearner's (method.schedule=interleaved), held against small plain-PyTorch ports of their training loops
(MLLMU-Bench baselines/GA.py, GA_Difference.py, KL_Min.py; MMUnlearner baselines/MLLMU_GA_Diff.py,
MLLMU_KL_Min.py): the same batches through their loop and through ours end at the same weights."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from unlearn.eval.scoring import model_inputs
from unlearn.methods.gradient import GradientUnlearning, InterleavedBatches, PhaseBatches, sequential_loader
from unlearn.optim import HFAdamW, linear_schedule


def _trainer(**kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, gradient_clip_val=None, **kw)


def test_linear_decay_hand_computed():
    # transformers' linear schedule without warmup over 4 steps: 1, 3/4, 1/2, 1/4, then 0
    factor = linear_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 4).lr_lambdas[0]
    assert [factor(s) for s in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_phase_batches_forget_pass_then_retain_pass():
    batches = list(PhaseBatches(5, 3, 2, seed=0))
    forget, retain = batches[:3], batches[3:]
    assert [len(b) for b in batches] == [2, 2, 1, 2, 1]
    assert sorted(i for b in forget for i in b) == [0, 1, 2, 3, 4]  # every forget row once, before any retain row
    assert sorted(i for b in retain for i in b) == [5, 6, 7]  # retain rows, offset by the forget size
    assert len(PhaseBatches(5, 3, 2)) == 5 and len(PhaseBatches(5, 3, 2, with_retain=False)) == 3
    assert list(PhaseBatches(5, 3, 2, with_retain=False)) == forget
    # sharded over 2 ranks: each rank holds as many batches of each phase, so they change phase together
    shards = [list(PhaseBatches(5, 3, 2, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(s) for s in shards] == [3, 3]
    sampler = PhaseBatches(5, 3, 2)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new epoch, a new order


def test_interleaved_batches_hand_computed():
    # 5 forget rows, 13 retain rows, batches of 2: 3 forget and 7 retain batches, forget_freq 7 // 3 = 2, so a
    # forget step before retain batches 0, 2 and 4, and the last forget step followed by retain batches 4, 5, 6
    batches = list(InterleavedBatches(5, 13, 2, seed=0))
    kinds = "".join("F" if b[0] < 5 else "R" for b in batches)
    assert kinds == "FRRFRRFRRR"
    assert [len(b) for b in batches] == [2, 2, 2, 2, 2, 2, 1, 2, 2, 1]
    assert sorted(i for b in batches if b[0] < 5 for i in b) == list(range(5))  # every forget row once
    assert sorted(i for b in batches if b[0] >= 5 for i in b) == list(range(5, 18))  # every retain row, offset
    assert len(InterleavedBatches(5, 13, 2)) == 10
    # the retain batches in the order the retain pass alone would read them (its own shuffle)
    assert [b for b in batches if b[0] >= 5] == list(PhaseBatches(5, 13, 2))[3:]
    shards = [list(InterleavedBatches(5, 13, 2, rank=r, world_size=2)) for r in (0, 1)]
    # each rank: 3 forget rows (2 batches), 7 retain rows (4 batches), forget_freq 2, the same steps on both
    assert ["".join("F" if b[0] < 5 else "R" for b in s) for s in shards] == ["FRRFRR", "FRRFRR"]
    sampler = InterleavedBatches(5, 13, 2)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="method.schedule=interleaved"):  # fewer retain than forget batches
        InterleavedBatches(13, 5, 2)


def _their_loop(model, reference, batches, lr, loss_name, decay_steps=None):
    """Their loops: every forget batch an ascent step on -outputs.loss, then (GA_Difference.py, KL_Min.py) every
    retain batch a descent step on outputs.loss (+ kl_div(log_softmax(current), softmax(vanilla), batchmean)
    in KL_Min.py); GA.py steps get_scheduler("linear", num_warmup_steps=0) after every batch."""
    from transformers import get_scheduler

    opt = HFAdamW(model.parameters(), lr=lr)  # transformers' AdamW, which their files import
    sched = get_scheduler("linear", optimizer=opt, num_warmup_steps=0,
                          num_training_steps=decay_steps) if decay_steps else None
    model.train()
    for phase, batch in batches:
        inputs = model_inputs(batch, "cpu")
        out = model(**inputs, labels=batch["labels"])
        if phase == "forget":
            loss = -out.loss
        else:
            loss = out.loss
            if loss_name == "kl":
                with torch.no_grad():
                    ref = reference(**inputs).logits
                loss = loss + F.kl_div(F.log_softmax(out.logits, dim=-1), F.softmax(ref, dim=-1),
                                       reduction="batchmean")
        loss.backward()
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step()
    return model


@pytest.mark.parametrize("loss_name,lr_decay", [("grad_diff", None), ("kl", None), ("ga", "linear")])
def test_sequential_schedule_equals_their_loop(loss_name, lr_decay, tiny_model, small_benchmark):
    model, proc = tiny_model
    start = copy.deepcopy(model)
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    opt = lambda p: HFAdamW(p, lr=1e-3)  # noqa: E731  (what experiment=mllmu_baselines instantiates)
    module = GradientUnlearning(model, loss_name, opt, reference=copy.deepcopy(start), kl_reduction="batch_sum",
                                kl_retain_nll=True, lr_decay=lr_decay)
    loader = sequential_loader(ctx, "multimodal", 8, answer_only=False, seed=3,
                               with_retain=module.has_retain_term)
    batches = [(next(iter(b)), next(iter(b.values()))) for b in loader]  # the epoch's batches, in order
    phases = [p for p, _ in batches]
    assert phases == sorted(phases)  # "forget" < "retain": the whole forget pass first
    assert ("retain" in phases) == (loss_name != "ga")
    _trainer(max_epochs=1).fit(module, loader)
    theirs = _their_loop(copy.deepcopy(start), start.eval(), batches, 1e-3, loss_name,
                         decay_steps=len(batches) if lr_decay else None)
    ours = dict(model.named_parameters())
    moved = 0
    for n, p in theirs.named_parameters():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=2e-6, msg=n)
        moved += not torch.equal(p, start.get_parameter(n))
    assert moved  # the loop changed weights, so the equality is not two untouched models
    if lr_decay:
        assert module.trainer.optimizers[0].param_groups[0]["lr"] == 0.0  # decayed to 0 at the last step


def _their_interleaved_loop(model, reference, forget, retain, lr, loss_name):
    """MMUnlearner's MLLMU_GA_Diff.py / MLLMU_KL_Min.py loop (accumulation off): n_iters = len(retain loader),
    forget_freq = len(retain) // len(forget); at iter % forget_freq == 0 an ascent step on the next forget batch,
    its StopIteration (and any other exception) swallowed; then a descent step on retain batch iter (+ KL_Min's
    kl_div(log_softmax(current), softmax(vanilla), batchmean)); transformers' AdamW, the scheduler never stepped
    in the loop (GA_Diff) or once after the epoch (KL_Min): a constant lr through one epoch."""
    opt = HFAdamW(model.parameters(), lr=lr)
    events, forget_iter = [], iter(forget)
    forget_freq = len(retain) // len(forget)
    model.train()
    for it in range(len(retain)):
        if it % forget_freq == 0:
            try:
                batch = next(forget_iter)
                loss = -model(**model_inputs(batch, "cpu"), labels=batch["labels"]).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                events.append("F")
            except Exception:  # noqa: BLE001 (theirs: `except Exception as e: pass`)
                pass
        batch = retain[it]
        inputs = model_inputs(batch, "cpu")
        out = model(**inputs, labels=batch["labels"])
        loss = out.loss
        if loss_name == "kl":
            with torch.no_grad():
                ref = reference(**inputs).logits
            loss = loss + F.kl_div(F.log_softmax(out.logits, dim=-1), F.softmax(ref, dim=-1), reduction="batchmean")
        loss.backward()
        opt.step()
        opt.zero_grad()
        events.append("R")
    return model, "".join(events)


@pytest.mark.parametrize("loss_name", ["grad_diff", "kl"])
def test_interleaved_schedule_equals_mmunlearners_loop(loss_name, tiny_model, small_benchmark):
    model, proc = tiny_model
    start = copy.deepcopy(model)
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    opt = lambda p: HFAdamW(p, lr=1e-3)  # noqa: E731  (what experiment=mmunlearner_baselines instantiates)
    module = GradientUnlearning(model, loss_name, opt, reference=copy.deepcopy(start), kl_reduction="batch_sum",
                                kl_retain_nll=True)
    # 19 forget and 209 retain rows in batches of 6: 4 and 35 batches, forget_freq 8, the last forget step
    # followed by 11 retain batches, so the remainder is walked too
    loader = sequential_loader(ctx, "multimodal", 6, answer_only=True, seed=3, interleaved=True)
    batches = [(next(iter(b)), next(iter(b.values()))) for b in loader]
    forget = [b for p, b in batches if p == "forget"]
    retain = [b for p, b in batches if p == "retain"]
    assert (len(forget), len(retain)) == (4, 35)
    _trainer(max_epochs=1).fit(module, loader)
    theirs, events = _their_interleaved_loop(copy.deepcopy(start), start.eval(), forget, retain, 1e-3, loss_name)
    assert events == "".join("F" if p == "forget" else "R" for p, _ in batches)  # their order is ours
    ours = dict(model.named_parameters())
    moved = 0
    for n, p in theirs.named_parameters():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=2e-6, msg=n)
        moved += not torch.equal(p, start.get_parameter(n))
    assert moved


def test_interleaved_needs_a_retain_term(tiny_model, small_benchmark):
    _, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    with pytest.raises(ValueError, match="method.schedule=interleaved .* use method.schedule=sequential"):
        sequential_loader(ctx, "multimodal", 6, with_retain=False, interleaved=True)


@pytest.mark.parametrize("interleaved", [False, True])
def test_each_epoch_of_a_phase_schedule_draws_its_own_order(interleaved, tiny_model, small_benchmark):
    """Lightning calls set_epoch on a DataLoader's `batch_sampler.sampler` (not on the batch sampler), so the
    phase samplers name themselves there: without it every epoch walked epoch 0's order."""
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    loader = sequential_loader(ctx, "multimodal", 32, seed=5, interleaved=interleaved)
    seen: dict[int, list] = {}

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.setdefault(trainer.current_epoch, []).append(next(iter(batch.values()))["input_ids"].tolist())

    module = GradientUnlearning(model, "grad_diff", lambda p: torch.optim.SGD(p, lr=0.0))
    _trainer(max_epochs=2, callbacks=[Record()]).fit(module, loader)
    assert len(seen[0]) == len(seen[1]) == len(loader)
    assert seen[0] != seen[1]  # a new shuffle in epoch 1
    sampler = loader.batch_sampler
    for epoch in (0, 1):  # each epoch the batches its sampler gives for that epoch
        sampler.set_epoch(epoch)
        assert [len(b) for b in sampler] == [len(b) for b in seen[epoch]]
    sampler.set_epoch(0)
    assert list(sampler) != (sampler.set_epoch(1), list(sampler))[1]


def test_sequential_npo_without_retain_term_makes_only_the_forget_pass(tiny_model, small_benchmark):
    model, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    module = GradientUnlearning(model, "npo", lambda p: torch.optim.SGD(p, lr=0.1), alpha=0.0)
    assert not module.has_retain_term
    loader = sequential_loader(ctx, "text", 8, with_retain=module.has_retain_term)
    assert all(set(b) == {"forget"} for b in loader)
    assert GradientUnlearning(model, "npo", torch.optim.SGD, alpha=0.5).has_retain_term


def test_lr_decay_and_scheduler_together_are_refused(tiny_model):
    with pytest.raises(ValueError, match="method.lr_decay and method.scheduler"):
        GradientUnlearning(tiny_model[0], "ga", torch.optim.SGD, scheduler=lambda o: None, lr_decay="linear")
    with pytest.raises(ValueError, match="method.lr_decay='cosine'"):
        GradientUnlearning(tiny_model[0], "ga", torch.optim.SGD, lr_decay="cosine")


def test_paired_epoch_is_one_pass_over_forget_even_when_retain_is_shorter(tiny_model, small_benchmark):
    from unlearn.methods.gradient import paired_loader

    _, proc = tiny_model
    rows = {"forget": small_benchmark.train_rows("retain"), "retain": small_benchmark.train_rows("forget")}
    swapped = SimpleNamespace(train_rows=lambda split: rows[split])  # forget now the larger set
    loader = paired_loader(SimpleNamespace(benchmark=swapped, processor=proc), "multimodal", 4)
    forget_batches = len(loader.iterables["forget"])
    assert len(loader.iterables["retain"]) < forget_batches
    assert sum(1 for _ in loader) == forget_batches
    normal = paired_loader(SimpleNamespace(benchmark=small_benchmark, processor=proc), "multimodal", 4)
    assert sum(1 for _ in normal) == len(normal.iterables["forget"])


def test_label_prefix_labels_every_text_token(tiny_model, small_benchmark):
    """MLLMU-Bench's baselines label every non-pad token; here every token but the image placeholders."""
    from unlearn.methods.gradient import _unlearning_data

    _, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    forget, _ = _unlearning_data(ctx, "both", answer_only=False, label_prefix=True)
    image_id = proc.image_token_id
    for i in (0, len(forget) - 1):  # a multimodal and a text-only sequence
        ex = forget[i]
        assert ex.labels == [t if t != image_id else -100 for t in ex.input_ids]
    plain, _ = _unlearning_data(ctx, "both", answer_only=False)
    assert plain[0].labels[0] == -100  # without it the prefix (here bos alone; tests/test_model_adapters.py: a
    # real template's "USER:") carries no label
    with pytest.raises(ValueError, match="method.label_prefix=true .* method.answer_only=false"):
        _unlearning_data(ctx, "both", answer_only=True, label_prefix=True)


def test_retain_drawn_with_replacement_meets_every_forget_batch(tiny_model, small_benchmark):
    """method.retain_draw=with_replacement (CLEAR's pairing): as many retain rows as forget rows each epoch,
    drawn with replacement; the default reads the retain rows shuffled, each once."""
    from unlearn.methods.gradient import paired_loader

    _, proc = tiny_model
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    drawn = paired_loader(ctx, "multimodal", 4, retain_draw="with_replacement")
    forget, retain = drawn.iterables["forget"], drawn.iterables["retain"]
    assert len(retain.sampler) == len(forget.dataset) < len(retain.dataset)
    assert len(retain) == len(forget) == sum(1 for _ in drawn)
    rows = [i for e in range(3) for i in (retain.sampler.set_epoch(e), list(retain.sampler))[1]]
    assert len(set(rows)) < len(rows)  # some retain row met twice
    default = paired_loader(ctx, "multimodal", 4).iterables["retain"]
    assert sorted(default.sampler) == list(range(len(default.dataset)))
    with pytest.raises(ValueError, match="method.retain_draw='sometimes'"):
        paired_loader(ctx, "multimodal", 4, retain_draw="sometimes")


def test_hf_adamw_one_step_by_hand_weight_decay_after_the_step_and_without_bias_correction():
    """w = 1, g = 1, lr 0.1, eps 0: m = 0.1, v = 0.001, the bias-corrected step is lr exactly (w -> 0.9); the decay
    then takes lr x 0.5 of the updated weight (0.9 x 0.95 = 0.855; before the step it would be 0.85). Without
    bias correction the step is lr x m / sqrt(v) = 0.1 x 0.1 / sqrt(0.001) = 0.3162."""
    for correct_bias, decay, want in [(True, 0.5, 0.855), (False, 0.0, 1 - 0.1 * 0.1 / 0.001 ** 0.5)]:
        w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
        w.grad = torch.ones(1, dtype=torch.float64)
        HFAdamW([w], lr=0.1, eps=0.0, weight_decay=decay, correct_bias=correct_bias).step()
        assert w.item() == pytest.approx(want, rel=1e-12)
    assert HFAdamW([w]).defaults["eps"] == 1e-6  # transformers' default, not torch's 1e-8


@pytest.mark.parametrize("kwargs,match", [
    # until 2026-12-08 a negative or nan weight decay ran with none (the step decays where it is > 0)
    (dict(weight_decay=-1.0), r"weight_decay=-1.0: expected a finite number >= 0"),
    (dict(weight_decay=math.nan), r"weight_decay=nan"),
    (dict(weight_decay="abc"), r"weight_decay='abc'"),
    (dict(eps=math.nan), r"eps=nan"),
    (dict(lr=-1e-5), r"lr=-1e-05"),
    (dict(betas=(0.9, 1.0)), r"betas=\(0.9, 1.0\): expected two numbers in \[0, 1\)"),
    (dict(betas=0.9), r"betas=0.9"),
])
def test_hf_adamw_refuses_what_torchs_adamw_refuses_by_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HFAdamW([torch.nn.Parameter(torch.zeros(1))], **kwargs)
