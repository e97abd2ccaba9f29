"""eval.dtype and method.reference_dtype: the official codebases evaluate, and hold their KL / NPO references,
in float16 while they train in float32; a cast copy stands for the checkpoint they load that way."""

import pytest
import torch

from unlearn.models.precision import cast_copy


def test_a_cast_copy_is_the_checkpoint_loaded_in_that_precision(tiny_model, tmp_path):
    """from_pretrained(dtype=float16) casts the parameters and keeps the buffers a model computes itself
    (rotary frequencies in float32); the cast copy holds the same tensors, and the model is left as it was."""
    from unlearn.models.loading import load_model, save_model

    model, proc = tiny_model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    copy = cast_copy(model, torch.float16)
    save_model(model, proc, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m", "float16")
    ours, theirs = dict(copy.named_parameters()), dict(loaded.named_parameters())
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[n], theirs[n]) and ours[n].dtype == torch.float16 for n in ours)
    buffers = dict(loaded.named_buffers())
    assert any(b.dtype == torch.float32 for b in buffers.values())  # what module.to(float16) would round
    assert all(b.dtype == buffers[n].dtype and torch.equal(b, buffers[n]) for n, b in copy.named_buffers())
    assert not any(p.requires_grad for p in copy.parameters())
    assert all(p.dtype == torch.float32 and torch.equal(p, before[n]) for n, p in model.named_parameters())
    # in the model's own precision too the copy is a copy: a reference that moved with the trained model
    # would make KL's retain term 0 and NPO plain gradient ascent
    same = cast_copy(model, torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(p, before[n]) for n, p in same.named_parameters())


def test_evaluation_in_float16_scores_a_copy_and_leaves_the_model(tiny_model, small_benchmark, tmp_path):
    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext, evaluate, evaluated_model

    model, proc = tiny_model
    assert evaluated_model(model, None) is model and evaluated_model(model, "float32") is model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    runs = {}
    for dtype in ("null", "float16"):
        cfg = compose_config([f"eval.dtype={dtype}", "eval.max_people=4", "eval.tasks=[mc,prob]", "logger=none"],
                             tmp_path / "run", tmp_path / "cache")
        runs[dtype] = evaluate(RunContext(cfg, small_benchmark, model, proc, tmp_path), "after", ["retain"])
    (full, full_records), (half, half_records) = runs["null"], runs["float16"]
    assert [r["uid"] for r in full_records] == [r["uid"] for r in half_records]
    # the same questions, scored on rounded weights: likelihoods move a little, not a lot
    moved = [abs(a["gt_logp"] - b["gt_logp"]) for a, b in zip(full_records, half_records) if "gt_logp" in a]
    assert moved and max(moved) > 0 and max(moved) < 0.5
    assert all(p.dtype == torch.float32 and torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("lora", [False, True])
def test_a_float16_reference_is_the_start_cast_and_trains_a_float32_model(lora, tmp_path, monkeypatch, tiny_model,
                                                                          small_benchmark):
    """method.reference_dtype=float16 (MLLMU-Bench's KL_Min.py copies its float16 load before upcasting the
    model it trains): the reference is the starting weights in float16, the model trains in float32."""
    import copy

    import unlearn.methods.gradient as gradient
    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext

    made = []

    class Recorded(gradient.GradientUnlearning):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    model, proc = tiny_model
    start = {n: p.detach().to(torch.float16) for n, p in model.named_parameters()}
    cfg = compose_config(["method=kl", "method.reference_dtype=float16", "method.epochs=1", "method.batch_size=8",
                          f"method.lora.enabled={str(lora).lower()}", "logger=none"], tmp_path / "run",
                         tmp_path / "cache")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path)
    gradient.run(ctx)
    module = made[0]
    ref = dict(module.reference.named_parameters())  # the start's names: no adapters on the reference
    assert ref.keys() == start.keys()
    assert all(ref[n].dtype == torch.float16 and torch.equal(ref[n], start[n]) for n in start)
    assert all(p.dtype == torch.float32 for p in module.model.parameters())
    assert any(not torch.equal(p.detach().to(torch.float16), start[n]) for n, p in ctx.model.named_parameters())


def test_round_parameters_hand_computed():
    from unlearn.models.precision import round_parameters

    layer = torch.nn.Linear(2, 1, bias=True)
    layer.register_buffer("kept", torch.tensor([1 + 2.0 ** -12]))
    with torch.no_grad():
        # 1 + 2^-9 has a float16 (10 mantissa bits) but no bfloat16 (7 bits) form; 1 + 2^-12 has neither
        layer.weight.copy_(torch.tensor([[1 + 2.0 ** -9, 1 + 2.0 ** -12]]))
        layer.bias.copy_(torch.tensor([3.0]))
    half = torch.nn.Linear(2, 1)
    half.load_state_dict(layer.state_dict(), strict=False)
    round_parameters(half, torch.float16)
    assert half.weight.dtype == torch.float32
    assert half.weight.tolist() == [[1 + 2.0 ** -9, 1.0]] and half.bias.tolist() == [3.0]
    round_parameters(layer, torch.bfloat16)
    assert layer.weight.tolist() == [[1.0, 1.0]] and layer.bias.tolist() == [3.0]
    assert layer.kept.tolist() == [1 + 2.0 ** -12]  # buffers as the model computes them (from_pretrained's cast)


def test_start_precision_trains_and_refers_to_the_checkpoint_loaded_in_it_and_upcast(tmp_path, monkeypatch,
                                                                                    tiny_model, small_benchmark):
    """method.start_precision=bfloat16 (MMUnlearner's MLLMU_KL_Min.py: LLaVA loaded in bfloat16, upcast to float32
    by prepare_model_for_kbit_training, the reference a deepcopy of that): the model trains from, and KL's
    reference is, the checkpoint loaded in bfloat16 with its parameters cast to float32."""
    import copy

    import unlearn.methods.gradient as gradient
    from unlearn.config import compose_config
    from unlearn.models.loading import load_model, save_model
    from unlearn.models.precision import cast_parameters
    from unlearn.pipeline import RunContext

    made = []

    class Recorded(gradient.GradientUnlearning):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)
            self.start = {n: p.detach().clone() for n, p in self.model.named_parameters()}

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    model, proc = tiny_model
    save_model(model, proc, tmp_path / "m")
    theirs, _ = load_model(tmp_path / "m", "bfloat16")
    cast_parameters(theirs, torch.float32)  # prepare_model_for_kbit_training
    theirs = dict(theirs.named_parameters())
    cfg = compose_config(["method=kl", "method.start_precision=bfloat16", "method.epochs=1", "method.batch_size=8",
                          "logger=none"], tmp_path / "run", tmp_path / "cache")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path)
    gradient.run(ctx)
    module = made[0]
    ref = dict(module.reference.named_parameters())
    assert ref.keys() == theirs.keys() == module.start.keys()
    assert all(ref[n].dtype == torch.float32 and torch.equal(ref[n], theirs[n]) for n in theirs)
    assert all(torch.equal(module.start[n], theirs[n]) for n in theirs)
    assert any(not torch.equal(theirs[n], p) for n, p in model.named_parameters())  # the rounding did round


def test_under_bf16_mixed_a_cast_copy_evaluates_as_under_32_true(tiny_model, small_benchmark, tmp_path):
    """eval.dtype under a bf16-mixed trainer (trainer=gpu's): the copy scores out of the trainer's autocast, in the
    dtype it holds, so float16 (the official evaluations' load) and float32 give what 32-true gives, bit for bit;
    without eval.dtype the same trainer scores in bfloat16 (the control: the records differ)."""
    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext, evaluate

    model, proc = tiny_model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def records(precision, dtype):
        cfg = compose_config([f"trainer.precision={precision}", f"eval.dtype={dtype}", "eval.max_people=4",
                              "eval.tasks=[mc,prob,gen]", "logger=none"], tmp_path / "run", tmp_path / "cache")
        return evaluate(RunContext(cfg, small_benchmark, model, proc, tmp_path), "after", ["retain"])[1]

    plain = records("32-true", "null")
    assert any("gt_logp" in r for r in plain) and any("reply" in r for r in plain)
    assert records("bf16-mixed", "float32") == plain
    assert records("bf16-mixed", "float16") == records("32-true", "float16")
    autocast = records("bf16-mixed", "null")
    assert [r["uid"] for r in autocast] == [r["uid"] for r in plain]
    assert any(a.get("gt_logp") != b.get("gt_logp") for a, b in zip(autocast, plain))
    assert all(p.dtype == torch.float32 and torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_under_bf16_mixed_a_cast_reference_computes_in_its_own_dtype(dtype, tmp_path, monkeypatch, tiny_model,
                                                                     small_benchmark):
    """method.reference_dtype under bf16-mixed: the trained model computes under the trainer's autocast, the
    reference out of it, as the checkpoint it stands for (float16: the official references). Under the autocast a
    float16 reference's logits would be bfloat16 on a GPU (on CPU its convolution refuses the mix), and a float32
    one's values those of bfloat16 matmuls (the control)."""
    import copy

    import unlearn.methods.gradient as gradient
    from unlearn.config import compose_config
    from unlearn.eval.scoring import model_inputs
    from unlearn.pipeline import RunContext

    seen = {"model": [], "reference": []}

    class Recorded(gradient.GradientUnlearning):
        def _logits(self, model, batch):
            out = super()._logits(model, batch)
            seen["reference" if model is self.reference else "model"].append((batch, out.detach().clone()))
            return out

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    model, proc = tiny_model
    reference = cast_copy(model, getattr(torch, dtype)).eval()
    cfg = compose_config(["method=kl", f"method.reference_dtype={dtype}", "method.epochs=1", "method.batch_size=8",
                          "trainer.precision=bf16-mixed", "logger=none"], tmp_path / "run", tmp_path / "cache")
    gradient.run(RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path))
    assert seen["model"] and all(logits.dtype == torch.bfloat16 for _, logits in seen["model"])  # autocast was on
    batch, logits = seen["reference"][0]
    inputs = model_inputs(batch, "cpu")
    with torch.no_grad():
        alone = reference(**inputs, use_cache=False).logits
    assert logits.dtype == getattr(torch, dtype) and torch.equal(logits, alone)
    if dtype == "float32":
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = reference(**inputs, use_cache=False).logits
        assert not torch.equal(autocast.float(), alone)
