"""Updates too small for the weights' dtype: the count (hand-computed spacings) and the warning it raises."""

import pytest
import torch

from tests.conftest import run_script
from tests.test_ddp import SCRIPTS
from unlearn.models.precision import steps_rounded_away


@pytest.mark.parametrize("dtype, w, step, lost", [
    # bfloat16 at 1.0: spacing 2^-7 above, 2^-8 below; a step is lost when it is under half of both
    (torch.bfloat16, 1.0, 0.001, 1),     # 1.001 -> 1.0 and 0.999 -> 1.0
    (torch.bfloat16, 1.0, 0.003, 0),     # 0.997 is nearer 0.99609375 (1 - 2^-8) than 1.0
    (torch.bfloat16, 0.0, 1e-8, 0),      # zero moves by any representable step
    (torch.bfloat16, 1e-3, 1e-5, 0),     # spacing 2^-17 = 7.6e-6 at 1e-3: half of it is under 1e-5
    (torch.bfloat16, 0.0625, 5e-5, 1),   # spacing 2^-11 above (half 2.4e-4), 2^-12 below (half 1.2e-4)
    (torch.bfloat16, 0.0625, 2e-4, 0),   # 0.0625 - 2e-4 is nearer 0.0625 - 2^-12
    (torch.float16, 1.0, 1e-4, 1),       # spacing 2^-10 above, 2^-11 below (half 2.4e-4)
    (torch.float16, 1.0, 1e-3, 0),
    (torch.float32, 1.0, 1e-5, 0),       # spacing 1.2e-7
    (torch.float32, 1.0, 1e-8, 1),
])
def test_steps_rounded_away_by_hand(dtype, w, step, lost):
    assert int(steps_rounded_away(torch.tensor([w], dtype=dtype), step)) == lost


def test_steps_rounded_away_counts_elementwise():
    w = torch.tensor([1.0, 0.0, 1e-3, -1.0, 0.0625], dtype=torch.bfloat16)
    assert steps_rounded_away(w, 1e-3) == 2  # 1.0 and -1.0; 0.0625's spacing 2^-11 is under 2 x 1e-3
    assert steps_rounded_away(w, 1e-5) == 3  # 1.0, -1.0 and 0.0625


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_count_is_what_adamw_leaves_unchanged(dtype):
    """The count against torch's own AdamW step on weights of that dtype: the elements it leaves as they were.
    Powers of two are nudged off (their spacing differs above and below, so the direction would matter)."""
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(4096, generator=g) * 0.05).to(dtype)
    mantissa_bits = 7 if dtype == torch.bfloat16 else 10
    m, _ = torch.frexp(w.float())
    w = torch.where((m.abs() * 2 ** (mantissa_bits + 1)) % 2 ** mantissa_bits == 0,
                    (w.float() * 1.01).to(dtype), w)
    p = torch.nn.Parameter(w.clone())
    p.grad = (torch.rand(4096, generator=g) + 0.5).to(dtype) * torch.sign(torch.randn(4096, generator=g)).to(dtype)
    lr = 5e-5
    torch.optim.AdamW([p], lr=lr, weight_decay=0.0, foreach=False).step()
    unchanged = int((p.detach() == w).sum())
    assert 0 < unchanged < w.numel()  # the case that tests something: some steps land, some are lost
    assert steps_rounded_away(w, lr) == unchanged


def test_the_check_records_and_warns_what_the_weights_lose(caplog):
    """One process, bfloat16 weights (trainer.precision=bf16-true), AdamW at lr 5e-5: the record holds the direct
    count over the whole model, and the run says so in its log."""
    from tests.scripts.lost_steps import train_one_step

    with caplog.at_level("WARNING", logger="callbacks.lost_updates"):
        (rec,), expected, _ = train_one_step()
    assert rec["dtypes"] == {"bfloat16": expected} and rec["fraction"] > 0.25
    assert rec["fraction"] == expected["unchanged"] / expected["trained"]
    assert rec["lrs"] == [5e-5] and rec["precision"] == "bf16-true"
    assert "stay where they are under a step of lr 5e-05" in caplog.text


def test_float32_weights_lose_nothing_and_nothing_is_said(caplog):
    from tests.scripts.lost_steps import train_one_step

    with caplog.at_level("WARNING", logger="callbacks.lost_updates"):
        (rec,), _, _ = train_one_step(precision="32-true")
    assert rec["fraction"] == 0.0 and rec["dtypes"] == {"float32": {"unchanged": 0, "trained": 16 * 33 + 33 + 33 + 1}}
    assert "stay where they are" not in caplog.text


def test_float32_weights_under_an_lr_below_their_precision_are_told_to_raise_the_lr(caplog, monkeypatch):
    """Until 2026-12-06 the message told float32 weights to keep float32 weights."""
    import tests.scripts.lost_steps as script

    monkeypatch.setattr(script, "LR", 1e-14)
    with caplog.at_level("WARNING", logger="callbacks.lost_updates"):
        (rec,), _, _ = script.train_one_step(precision="32-true")
    assert rec["fraction"] > 0.9 and set(rec["dtypes"]) == {"float32"}
    assert "Raise the lr: float32 weights rounding it away" in caplog.text and "Keep trained weights" not in caplog.text


def test_peak_lr_and_which_optimizers_are_counted():
    from callbacks.lost_updates import lost_step_counts, peak_lr
    from unlearn.optim import HFAdamW

    assert peak_lr({"lr": 1.2e-4, "initial_lr": 1.2e-4, "max_lr": 3e-3}) == 3e-3  # OneCycleLR before its peak
    assert peak_lr({"lr": 2e-5, "initial_lr": 5e-5}) == 5e-5  # a linear decay, part way
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    assert lost_step_counts([torch.optim.SGD([w], lr=1e-5)]) is None  # its step is lr x g: not counted
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
    counts, _ = lost_step_counts([HFAdamW([w], lr=1e-5), sgd])
    assert counts[1].tolist() == [3, 3] and counts.sum().item() == 6  # bfloat16's row; SGD's weights left out
    # a weight two optimizers hold (MMUnlearner's forget and retain AdamW) is one weight, at the larger lr: ones in
    # bfloat16 take a step of 1e-2 (1.0 -> 0.99) and lose one of 1e-5 (until 2026-12-05 counted once per optimizer)
    counts, lrs = lost_step_counts([torch.optim.AdamW([w], lr=1e-5), torch.optim.AdamW([w], lr=1e-2)])
    assert counts[1].tolist() == [0, 3] and lrs == [1e-5, 1e-2]


@pytest.mark.slow
def test_two_processes_count_what_one_does(tmp_path):
    """Two gloo processes: DDP's replicas each count the whole model (not summed: a sum doubled the counts), FSDP's
    shards (unequal: 33 rows over 2 ranks) are summed. Each gives the whole model's counts, which one process
    records (above), with every weight trained and with only the first layer's bias, which under FSDP leaves rank 0
    no trained element (the counts' collective hung before every rank sent one row per dtype). Both strategies run
    in one launch, DDP first."""
    runs = run_script(2, SCRIPTS / "lost_steps.py", tmp_path, "--strategy", "ddp", "fsdp")
    assert list(runs) == ["ddp", "fsdp"]
    for cases in runs.values():
        for case in cases:
            (rec,) = case["record"]
            assert rec["dtypes"] == {"bfloat16": case["expected"]}
            assert rec["fraction"] == case["expected"]["unchanged"] / case["expected"]["trained"]
        assert [case["expected"]["trained"] for case in cases] == [16 * 33 + 33 + 33 + 1, 33]  # a.bias alone last


def test_chunks_and_float64_count_alike():
    w = torch.tensor([1.0, 0.0, 1e-3, -1.0, 0.0625], dtype=torch.bfloat16)
    assert int(steps_rounded_away(w, 1e-5, chunk=2)) == int(steps_rounded_away(w, 1e-5)) == 3
    assert int(steps_rounded_away(torch.tensor([1.0], dtype=torch.float64), 1e-12)) == 0  # spacing 2.2e-16


def test_every_trainer_of_a_run_gets_the_check_beside_its_own_callbacks(tmp_path):
    """RunContext.trainer adds the check to a method's callbacks, to a single one, and to the config's own
    (`+trainer.callbacks=[...]`), which it kept before the check existed."""
    from lightning.pytorch.callbacks import Callback, LearningRateMonitor, Timer
    from omegaconf import OmegaConf

    from callbacks.lost_updates import LostUpdateCheck
    from unlearn.pipeline import RunContext

    def kinds(trainer):
        return {type(c) for c in trainer.callbacks if isinstance(c, Callback)}

    cfg = OmegaConf.create({"trainer": {"_target_": "lightning.Trainer", "accelerator": "cpu", "logger": False,
                                        "callbacks": [{"_target_": "lightning.pytorch.callbacks.Timer"}]}})
    ctx = RunContext(cfg, None, None, None, tmp_path)
    assert {Timer, LostUpdateCheck} <= kinds(ctx.trainer())
    mine = kinds(ctx.trainer(callbacks=LearningRateMonitor()))
    # a method's callbacks replace the config's
    assert LearningRateMonitor in mine and LostUpdateCheck in mine and Timer not in mine
    assert ctx.artifacts == {"lost_steps": [], "trained": []}


def test_train_step_memory_bench_at_tiny_shape():
    """bench/train_step_memory.py is meant for a lent GPU; its settings are held on CPU to what they claim: bfloat16
    weights lose most steps of lr 2e-5, float32 weights none, LoRA trains only its adapters, each step finite."""
    from bench.train_step_memory import one_setting

    rows = {s: one_setting(s, "tiny", "cpu", batch_size=2, text_tokens=8, lr=2e-5)
            for s in ("bf16", "fp32", "lora", "kl_fused", "kl_fused_bf16_ref")}
    assert all(r["finite"] and r["step_s"] > 0 for r in rows.values())
    assert rows["bf16"]["lost_fraction"] > 0.5 and rows["fp32"]["lost_fraction"] == 0
    assert rows["bf16"]["trained"] == rows["fp32"]["trained"] > 5 * rows["lora"]["trained"] > 0
    assert all(rows[s]["trained"] == rows["fp32"]["trained"] and rows[s]["lost_fraction"] == 0
               for s in ("kl_fused", "kl_fused_bf16_ref"))


def test_the_check_by_hand_frozen_weights_the_larger_lr_first_another_rank_and_nothing_trained(caplog):
    """No Trainer: a frozen weight is not trained; a weight two optimizers hold takes the larger lr whichever comes
    first; the record names the stage by its config key and the peak lrs; a rank other than 0 records but does not
    warn; optimizers that train nothing record nothing."""
    from types import SimpleNamespace

    from callbacks.lost_updates import LostUpdateCheck, lost_step_counts

    w = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    frozen = torch.nn.Parameter(torch.ones(5, dtype=torch.bfloat16), requires_grad=False)
    counts, lrs = lost_step_counts([torch.optim.AdamW([w, frozen], lr=1e-2), torch.optim.AdamW([w], lr=1e-5)])
    assert counts[1].tolist() == [0, 3] and lrs == [1e-5, 1e-2]  # 1e-2 moves ones in bfloat16; frozen left out
    opt = torch.optim.AdamW([w], lr=1e-5)
    opt.param_groups[0]["initial_lr"] = 2e-5  # a decay part way: the peak, 2e-5, is still lost at 1.0
    record = []
    trainer = SimpleNamespace(optimizers=[opt], strategy=object(), is_global_zero=False, precision="bf16-true")
    module = SimpleNamespace(device=torch.device("cpu"), config_key="eval.relearn")
    with caplog.at_level("WARNING", logger="callbacks.lost_updates"):
        LostUpdateCheck(record).on_train_start(trainer, module)
    assert record == [{"stage": "eval.relearn", "fraction": 1.0, "lrs": [2e-5],
                       "dtypes": {"bfloat16": {"unchanged": 3, "trained": 3}}, "precision": "bf16-true"}]
    assert "stay where they are" not in caplog.text  # rank 0 alone says it
    trainer.optimizers = [torch.optim.AdamW([frozen], lr=1e-5)]
    LostUpdateCheck(record).on_train_start(trainer, module)
    assert len(record) == 1
