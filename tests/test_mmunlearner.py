import copy
import math
import re
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from unlearn.data.collate import collate
from unlearn.methods.mmunlearner import (FisherPass, MaskedUnlearning, load_masks, mask_metadata, save_masks,
                                         saved_gamma)
from unlearn.mmunlearner.saliency import (gamma_for_fraction, group_parameters, mask_report, restore_masked_out,
                                          saliency_mask, squared_grads)

GROUPS = {"vision": r"model\.(vision_tower|multi_modal_projector)\.", "language": r"model\.language_model\.|lm_head\."}


def _trainer(**kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, **kw)


def test_squared_grads_hand_computed():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    unused = torch.nn.Parameter(torch.tensor([5.0]))
    x = torch.tensor([3.0, 1.0])
    loss = (w @ x) ** 2  # = 25; d/dw = 2 (w.x) x = 10 * [3, 1] = [30, 10]
    sq, zero = squared_grads(loss, [w, unused])
    torch.testing.assert_close(sq, torch.tensor([900.0, 100.0]))
    assert zero.dtype == torch.float32 and torch.equal(zero, torch.zeros(1))


def test_squared_grads_are_float32_for_half_params():
    w = torch.nn.Parameter(torch.tensor([1e-4], dtype=torch.float16))
    (sq,) = squared_grads((w * 1.0).sum() * 1e-4, [w])  # grad 1e-4: its square underflows in fp16
    assert sq.dtype == torch.float32 and sq.item() > 0


def test_mask_rule_zero_over_zero_and_ties():
    f = torch.tensor([0.0, 1.0, 2.0, 1.0, 3.0, 0.5])
    p = torch.tensor([0.0, 1.0, 1.0, 2.0, 0.0, 1.0])
    # 0/0 -> no; 1/1 = gamma -> yes (tie); 2/1 -> yes; 1/2 -> no; 3/0 -> yes; 0.5/1 -> no
    assert saliency_mask(f, p, 1.0).tolist() == [False, True, True, False, True, False]
    assert saliency_mask(f, p, 0.5).tolist() == [False, True, True, True, True, True]
    with pytest.raises(ValueError, match="mmunlearner.gamma=0"):
        saliency_mask(f, p, 0)


def test_mask_report_hand_computed():
    """The whole mask's fraction is over its elements, not a mean of the tensors' fractions (a mutation dividing
    by the tensor count survived the fast tests until 2026-12-05)."""
    a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(2, 3))
    masks = {a: torch.tensor([True, False, False, False]), b: torch.tensor([[True, True, True], [True, False, False]])}
    report = mask_report(masks, {a: "a", b: "b"})
    assert report["tensors"] == {"a": {"elements": 4, "selected": 1, "fraction": 0.25},
                                 "b": {"elements": 6, "selected": 4, "fraction": pytest.approx(4 / 6)}}
    assert (report["parameters"], report["elements"], report["selected"]) == (2, 10, 5)
    assert report["fraction"] == 0.5  # 5 of 10; the tensors' mean fraction would be (0.25 + 4/6) / 2
    assert mask_report({}, {})["fraction"] == 0.0


def test_gamma_for_fraction_hand_computed():
    # ratios F_f / F_p: 0/0 (never), 1, 2, 1/2, 3/0 = inf (always), 0/5 (never); 4 elements reachable of 6
    f = torch.tensor([0.0, 1.0, 2.0, 1.0, 3.0, 0.0])
    p = torch.tensor([0.0, 1.0, 1.0, 2.0, 0.0, 5.0])
    for fraction, gamma, picked in ((2 / 6, 2.0, [2, 4]), (3 / 6, 1.0, [1, 2, 4]), (4 / 6, 0.5, [1, 2, 3, 4])):
        got = gamma_for_fraction([(f, p)], fraction)
        assert got == pytest.approx(gamma, rel=1e-6)  # the largest that still selects enough (float32 resolution)
        assert saliency_mask(f, p, got).nonzero().flatten().tolist() == picked
    # one element: only the x/0 one is needed, and no finite gamma drops it
    assert saliency_mask(f, p, gamma_for_fraction([(f, p)], 1 / 6)).nonzero().flatten().tolist() == [4]
    with pytest.raises(ValueError, match=r"mmunlearner.mask_fraction=0.8.*only 4 of 6"):
        gamma_for_fraction([(f, p)], 0.8)
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="expected a fraction in"):
            gamma_for_fraction([(f, p)], bad)


def test_gamma_for_fraction_is_one_threshold_over_all_tensors():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.rand(n, generator=g), torch.rand(n, generator=g)) for n in (50, 200, 7)]
    n = sum(f.numel() for f, _ in pairs)
    for fraction in (0.05, 0.3, 0.9):
        gamma = gamma_for_fraction(pairs, fraction)
        count = sum(int(saliency_mask(f, q, gamma).sum()) for f, q in pairs)
        ratios = torch.cat([f / q for f, q in pairs]).sort(descending=True).values
        k = math.ceil(fraction * n)  # at least the fraction
        assert count == k  # continuous ratios: no ties, so exactly the top k over all tensors
        assert ratios[k - 1] >= gamma > ratios[k]


def test_fisher_pass_matches_a_manual_loop(tiny_model, small_benchmark):
    from unlearn.data.sequences import QASequences
    from unlearn.eval.scoring import model_inputs

    model, proc = tiny_model
    model.eval()
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    params = group_parameters(model, GROUPS)["vision"][:3] + group_parameters(model, GROUPS)["language"][-2:]
    module = FisherPass(model, {"forget": ds}, {"forget": params}, 4, proc.tokenizer.pad_token_id)
    _trainer(inference_mode=False, use_distributed_sampler=False).validate(module, verbose=False)
    expected = [torch.zeros(p.shape) for p in params]
    n = 0
    for i in range(0, len(ds), 4):
        batch = collate([ds[j] for j in range(i, min(i + 4, len(ds)))], proc.tokenizer.pad_token_id)
        loss = model(**model_inputs(batch, "cpu"), labels=batch["labels"]).loss
        for e, g in zip(expected, torch.autograd.grad(loss, params)):
            e.add_(g.square())
        n += 1
    assert module.batches["forget"] == n
    for p, e in zip(params, expected):
        torch.testing.assert_close(module.fisher["forget"][p], e / n)
    assert any(module.fisher["forget"][p].sum() > 0 for p in params)



def test_fisher_pass_keeps_one_accumulator_per_parameter_of_overlapping_groups(tiny_model, small_benchmark):
    """A parameter in two groups (vision + language overlap) is accumulated once, with the same Fisher."""
    from unlearn.data.sequences import QASequences

    model, proc = tiny_model
    model.eval()
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    params = group_parameters(model, GROUPS)["vision"][:2]
    fishers = []
    for given in (params, params + params[:1]):
        module = FisherPass(model, {"forget": ds}, {"forget": given}, 4, proc.tokenizer.pad_token_id)
        _trainer(inference_mode=False, use_distributed_sampler=False).validate(module, verbose=False)
        assert len(module.sums["forget"]) == len(params)
        fishers.append(module.fisher["forget"])
    for p in params:
        torch.testing.assert_close(fishers[1][p], fishers[0][p])

def _masks(model, frac_seed=0):
    g = torch.Generator().manual_seed(frac_seed)
    params = group_parameters(model, GROUPS)["language"]
    return {p: torch.rand(p.shape, generator=g) < 0.3 for p in params}


def _forget_rows_as_both_sides(proc, bench):
    """The forget rows (image+text form, batches of 4) as the forget side and as the retain side of
    MaskedUnlearning's paired loader: one step of each kind per batch."""
    from lightning.pytorch.utilities import CombinedLoader
    from torch.utils.data import DataLoader

    from unlearn.data.sequences import QASequences

    pad = proc.tokenizer.pad_token_id
    ds = QASequences(bench.train_rows("forget"), proc, "multimodal")
    return CombinedLoader({"forget": DataLoader(ds, batch_size=4, collate_fn=lambda b: collate(b, pad)),
                           "retain": DataLoader(ds, batch_size=4, collate_fn=lambda b: [collate(b, pad)])},
                          mode="min_size")


def test_forget_step_moves_only_masked_in_elements(tiny_model, small_benchmark):
    model, proc = tiny_model
    masks = _masks(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loader = _forget_rows_as_both_sides(proc, small_benchmark)
    # retain optimiser with lr 0: only the forget step can move anything
    module = MaskedUnlearning(model, masks, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0),
                              lambda p: torch.optim.AdamW(p, lr=0.0, weight_decay=0.0))
    _trainer(max_steps=2).fit(module, loader)
    names = {p: n for n, p in model.named_parameters()}
    moved_in = 0
    for p, m in masks.items():
        old = before[names[p]]
        assert torch.equal(p.detach()[~m], old[~m]), names[p]
        moved_in += int((p.detach()[m] != old[m]).sum())
    assert moved_in > 0
    for n, p in model.named_parameters():
        if p not in masks:
            assert torch.equal(p.detach(), before[n]), n  # outside the unlearned groups: never moved


def test_a_nan_gradient_outside_the_mask_stops_the_forget_step(tiny_model, small_benchmark):
    """The mask multiplies a masked-out gradient by 0, and NaN * 0 is NaN: that weight would turn NaN."""
    from unlearn.methods.guards import NonFiniteGradientError

    model, proc = tiny_model
    masks = _masks(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loader = _forget_rows_as_both_sides(proc, small_benchmark)
    name, poisoned = next((n, p) for n, p in model.named_parameters() if p in masks)
    poisoned.register_hook(lambda g: g * float("nan"))
    module = MaskedUnlearning(model, masks, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0),
                              lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0))
    with pytest.raises(NonFiniteGradientError, match=r"the mmunlearner forget step has a non-finite gradient at "
                                                     r"global step 0 \(in model\.") as error:
        _trainer(max_steps=2).fit(module, loader)
    assert f"model.{name}" in str(error.value)  # the first named (clipping spreads NaN to the others)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_one_optimiser_with_restore_keeps_the_ascent_out_of_unmasked_tensors(tiny_model, small_benchmark):
    """optimizers=one, restore_masked: the restore puts weights back, but a shared AdamW that took the forget
    ascent into the moments of a tensor outside the mask (here the vision tower and projector) would carry
    it into the next retain step. Outside the mask one step must then equal the two-optimiser step, whose
    forget optimiser never holds those tensors."""
    import copy

    from lightning.pytorch.utilities import CombinedLoader
    from torch.utils.data import DataLoader

    from unlearn.data.sequences import QASequences

    model, proc = tiny_model
    pad = proc.tokenizer.pad_token_id
    forget = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    retain = QASequences(small_benchmark.train_rows("retain"), proc, "multimodal")
    adamw = lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0)
    after = {}
    for mode in ("two", "one"):
        copy_ = copy.deepcopy(model)
        masks = _masks(copy_)
        loader = CombinedLoader({"forget": DataLoader(forget, batch_size=4, collate_fn=lambda b: collate(b, pad)),
                                 "retain": DataLoader(retain, batch_size=4, collate_fn=lambda b: [collate(b, pad)])},
                                mode="min_size")
        module = MaskedUnlearning(copy_, masks, adamw, adamw, clip=1e9, optimizers=mode, restore_masked=True)
        _trainer(max_steps=1).fit(module, loader)
        after[mode] = {n: (p.detach().clone(), p in masks) for n, p in copy_.named_parameters()}
    outside = [n for n, (_, masked) in after["two"].items() if not masked]
    assert any(n.startswith(("vision", "model.vision")) for n in outside)
    moved = [n for n in outside if not torch.equal(after["two"][n][0], dict(model.named_parameters())[n])]
    assert moved  # the retain step moves them: the comparison is not of untouched weights
    assert all(torch.equal(after["one"][n][0], after["two"][n][0]) for n in outside), \
        [n for n in outside if not torch.equal(after["one"][n][0], after["two"][n][0])][:3]


def test_restore_masked_out():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    q = torch.nn.Parameter(torch.tensor([4.0]))
    snap = {p: p.detach().clone(), q: q.detach().clone()}
    with torch.no_grad():
        p.add_(10.0)
        q.add_(10.0)
    restore_masked_out([p, q], {p: torch.tensor([True, False, True])}, snap)
    assert p.tolist() == [11.0, 2.0, 13.0] and q.tolist() == [4.0]
    # masks are built on the CPU; a model elsewhere (a GPU; here the meta device) takes them to its own
    far = torch.nn.Parameter(torch.empty(3, device="meta"))
    restore_masked_out([far], {far: torch.tensor([True, False, True])}, {far: far.detach().clone()})


def test_masks_are_keyed_by_parameter_and_survive_renaming(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model
    masks = _masks(model)
    names = {p: n for n, p in model.named_parameters()}
    save_masks(masks, names, tmp_path / "mask.safetensors", gamma=0.125)
    loaded = load_masks(tmp_path / "mask.safetensors", model)
    assert {id(p) for p in loaded} == {id(p) for p in masks}
    # the gamma that made it travels with it: a run reusing the mask reports it (until 2026-12-06 dropped)
    assert saved_gamma(mask_metadata(tmp_path / "mask.safetensors")) == 0.125
    save_masks(masks, names, tmp_path / "old.safetensors")
    assert saved_gamma(mask_metadata(tmp_path / "old.safetensors")) is None
    assert all(torch.equal(loaded[p], masks[p]) for p in masks)
    report = mask_report(masks, names)
    assert report["parameters"] == len(masks) and 0 < report["selected"] < report["elements"]
    # peft renames every parameter ('base_model.model.' + ...) but keeps the objects: the mask still applies
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    live = {id(p) for p in wrapped.parameters()}
    assert {id(p) for p in masks} <= live
    assert not any(n in names.values() for n, _ in wrapped.named_parameters() if "q_proj.base_layer" in n)
    with pytest.raises(ValueError, match="is not a parameter of this model"):
        load_masks(tmp_path / "mask.safetensors", wrapped)


def test_a_mask_reused_on_other_weights_is_said(tiny_model, tmp_path, caplog):
    """A mask file records the fingerprint of the weights it was made on: reused on them, nothing is said; on
    another model of the same shapes (another init, one weight moved, another dtype) a warning names the file; a
    file without the record (written before it was kept) is taken as it is."""
    from unlearn.methods.mmunlearner import check_mask_weights, mask_metadata, weights_fingerprint
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava

    model, _ = tiny_model
    masks, names = _masks(model), {p: n for n, p in model.named_parameters()}
    path = tmp_path / "mask.safetensors"
    save_masks(masks, names, path, gamma=0.5)

    def reused_on(other) -> bool:
        loaded = load_masks(path, other)
        return check_mask_weights(path, loaded, {p: n for n, p in other.named_parameters()},
                                  mask_metadata(path).get("weights"))

    with caplog.at_level("WARNING", "unlearn.methods.mmunlearner"):
        assert reused_on(model) and not caplog.records
        assert not reused_on(build_tiny_llava(TinyLlavaSpec(init_seed=1))[0])
        assert f"mmunlearner.mask_path={path} was made on other weights" in caplog.text
        moved = copy.deepcopy(model)
        p = dict(moved.named_parameters())[next(iter(sorted(names[q] for q in masks)))]
        with torch.no_grad():
            p.view(-1)[0] += 1.0  # the first element is always among the sampled ones
        assert not reused_on(moved)
        assert not reused_on(copy.deepcopy(model).to(torch.float64))
    sampled = {names[q]: q for q in masks}
    assert weights_fingerprint(sampled) == weights_fingerprint(dict(reversed(list(sampled.items()))))  # by name
    from unlearn.io import write_masks

    write_masks(tmp_path / "old.safetensors", {names[q]: m for q, m in masks.items()})  # no record: taken as is
    assert check_mask_weights(tmp_path / "old.safetensors", masks, names, None)


def test_a_reused_masks_copy_keeps_the_weights_it_was_made_on(tiny_model, tmp_path, caplog, monkeypatch):
    """A run reusing a mask (mmunlearner.mask_path) saves a copy of it in its own directory: the copy records the
    fingerprint the read file records (the weights the mask was made on), not this run's weights, else a mask
    made on model A, reused once on B, would pass as B's from then on without a word; a file without the record
    gives a copy without it."""
    import unlearn.methods.mmunlearner as mmunlearner
    from unlearn.methods.mmunlearner import check_mask_weights, saliency_stage
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava

    model, _ = tiny_model
    made = tmp_path / "made.safetensors"
    save_masks(_masks(model), {p: n for n, p in model.named_parameters()}, made, gamma=0.5)
    other = build_tiny_llava(TinyLlavaSpec(init_seed=1))[0]
    headers = []  # the reused file's header is read once (until the forty-seventh session three times)
    monkeypatch.setattr(mmunlearner, "mask_metadata", lambda path: headers.append(path) or mask_metadata(path))
    for source, expected in ((made, mask_metadata(made)["weights"]), (tmp_path / "old.safetensors", None)):
        if expected is None:
            from unlearn.io import write_masks

            write_masks(source, {n: m for n, m in _named_masks(model).items()})
        ctx = SimpleNamespace(model=other, is_global_zero=True, logger=None, artifacts={})
        out = tmp_path / source.stem
        out.mkdir()
        headers.clear()
        with caplog.at_level("WARNING", "unlearn.methods.mmunlearner"):
            saliency_stage(ctx, SimpleNamespace(mask_path=str(source), gamma=0.5), out)
        assert headers == [str(source)]
        assert mask_metadata(out / "mask.safetensors").get("weights") == expected
        copied = load_masks(out / "mask.safetensors", other)
        # reused again on the model it was not made on: still said
        assert check_mask_weights(out / "mask.safetensors", copied, {p: n for n, p in other.named_parameters()},
                                  mask_metadata(out / "mask.safetensors").get("weights")) == (expected is None)


def _named_masks(model) -> dict:
    """_masks by parameter name (a mask file's content, as other code writes it: no metadata)."""
    names = {p: n for n, p in model.named_parameters()}
    return {names[p]: m for p, m in _masks(model).items()}


def test_run_with_lora_masks_adapters_and_merges_back(tmp_path, small_benchmark):
    import copy
    import json

    from unlearn.methods.mmunlearner import run
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    start, proc = build_tiny_llava(TinyLlavaSpec())
    cfg = _cfg(tmp_path, "method=mmunlearner", "mmunlearner.lora.enabled=true", "mmunlearner.epochs=1",
               "mmunlearner.retain_steps=1", "mmunlearner.forget_optimizer.lr=0.05")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path)
    run(ctx)
    summary = json.loads((tmp_path / "mmunlearner" / "mask_summary.json").read_text())
    assert (tmp_path / "mmunlearner" / "mask_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["selected"] > 0 and all("lora_" in name for name in summary["tensors"])
    # PiSSA init: both factors get gradient, so every adapted module has selected elements in lora_A and lora_B
    selected = {n for n, t in summary["tensors"].items() if t["selected"] > 0}
    modules = {n.split(".lora_")[0] for n in summary["tensors"]}
    assert modules and all(f"{m}.lora_{f}.default.weight" in selected for m in modules for f in "AB")
    assert type(ctx.model) is type(start)
    changed = [n for n, p in ctx.model.named_parameters() if not torch.equal(p, start.get_parameter(n))]
    assert changed and "model.language_model.embed_tokens.weight" not in changed


@pytest.mark.slow
def test_run_with_mask_fraction_selects_that_fraction(tmp_path, small_benchmark, tiny_model):
    import copy
    import json

    from unlearn.methods.mmunlearner import run
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    model, proc = tiny_model
    cfg = _cfg(tmp_path, "method=mmunlearner", "mmunlearner.mask_fraction=0.1", "mmunlearner.epochs=1",
               "mmunlearner.retain_steps=1")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path)
    run(ctx)
    summary = json.loads((tmp_path / "mmunlearner" / "mask_summary.json").read_text())
    assert 0.1 <= summary["fraction"] < 0.1 + 1e-3  # at least the fraction; only ties could add more
    assert ctx.artifacts["mmunlearner"]["gamma"] == summary["gamma"] > 0


def test_mask_fraction_with_a_saved_mask_is_refused(tmp_path, small_benchmark, tiny_model):
    from unlearn.methods.mmunlearner import run
    from unlearn.pipeline import RunContext

    from .test_finetune import _cfg

    model, proc = tiny_model
    cfg = _cfg(tmp_path, "method=mmunlearner", "mmunlearner.mask_fraction=0.1",
               f"mmunlearner.mask_path={tmp_path / 'mask.safetensors'}")
    with pytest.raises(ValueError, match="mmunlearner.mask_path=.*mmunlearner.mask_fraction=0.1 cannot size it"):
        run(RunContext(cfg, small_benchmark, model, proc, tmp_path))


def test_lora_init_that_zeroes_a_factor_is_refused(tiny_model):
    from omegaconf import OmegaConf

    from unlearn.methods.mmunlearner import with_saliency_lora

    lora = OmegaConf.create({"r": 2, "alpha": 2, "dropout": 0.0, "init": True})
    with pytest.raises(ValueError, match="mmunlearner.lora.init"):
        with_saliency_lora(tiny_model[0], lora, ["q_proj"])


@pytest.mark.parametrize("mode,key", [("two", "forget_optimizer.weight_decay"),
                                      ("one", "retain_optimizer.weight_decay")])
def test_masked_optimiser_with_weight_decay_is_refused(tiny_model, mode, key):
    from functools import partial

    model = tiny_model[0]
    p = next(model.parameters())
    module = MaskedUnlearning(model, {p: torch.ones_like(p, dtype=torch.bool)}, partial(torch.optim.AdamW, lr=1e-3),
                              partial(torch.optim.AdamW, lr=1e-3), optimizers=mode)  # torch's default decay: 0.01
    with pytest.raises(ValueError, match=f"mmunlearner.{key}=0.01"):
        module.configure_optimizers()


def test_eligible_names_keep_only_matching_tensors(tiny_model):
    from unlearn.mmunlearner.saliency import eligible_parameters

    model = tiny_model[0]
    groups = group_parameters(model, GROUPS)
    kept = eligible_parameters(model, groups, "proj|fc|linear|mlp|qkv")
    names = {p: n for n, p in model.named_parameters()}
    kept_names = {names[p] for ps in kept.values() for p in ps}
    assert kept_names and all(re.search("proj|fc|linear|mlp|qkv", n) for n in kept_names)
    assert not any("norm" in n or "embed" in n or "lm_head" in n for n in kept_names)
    assert eligible_parameters(model, groups, None) is groups
    with pytest.raises(ValueError, match="mmunlearner.eligible"):
        eligible_parameters(model, groups, "nothing_matches")


@pytest.mark.parametrize("clip_scope", ["unlearned", "all"])
def test_forget_step_is_clipped_then_masked(tiny_model, small_benchmark, clip_scope):
    model, proc = tiny_model
    masks = _masks(model)
    before = {p: p.detach().clone() for p in masks}
    loader = _forget_rows_as_both_sides(proc, small_benchmark)
    # SGD with lr 1: the forget step moves the weights by exactly the clipped, masked gradient
    module = MaskedUnlearning(model, masks, lambda p: torch.optim.SGD(p, lr=1.0),
                              lambda p: torch.optim.SGD(p, lr=0.0), clip=0.01, clip_scope=clip_scope)
    _trainer(max_steps=1).fit(module, loader)
    step = torch.cat([(p.detach() - before[p]).reshape(-1) for p in masks])
    assert 0 < step.norm() <= 0.01 * (1 + 1e-4)
    assert all(torch.equal(p.detach()[~m], before[p][~m]) for p, m in masks.items())


def test_two_ranks_batches_make_up_the_one_process_batch():
    from torch.utils.data import BatchSampler

    from unlearn.data.sampling import EpochShuffle

    one = list(BatchSampler(EpochShuffle(38, 5), 6, drop_last=False))
    ranks = [list(BatchSampler(EpochShuffle(38, 5, rank=r, world_size=2), 3, drop_last=False)) for r in (0, 1)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 7
    for k, batch in enumerate(one):
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(batch), k


def test_retain_schedule_depends_on_the_global_batch_only(small_benchmark, tiny_model):
    from unlearn.methods.mmunlearner import update_loader
    from unlearn.mmunlearner.schedule import ScheduledBatches

    ctx = SimpleNamespace(benchmark=small_benchmark, processor=tiny_model[1])
    for steps in (None, "official"):
        one, k_one = update_loader(ctx, 6, steps, 0, world_size=1)
        loader, k_two = update_loader(ctx, 3, steps, 0, world_size=2)
        assert k_one == k_two > 1  # from the global batch 6's counts
        assert isinstance(loader.batch_sampler, ScheduledBatches) and loader.batch_sampler.batch_size == 3
        if steps == "official":  # k as the loader walks it: the retain batches of its first step
            assert k_one == len({c for kind, c, _ in next(iter(one.batch_sampler)) if kind == "retain"})
    assert update_loader(ctx, 3, 4, 0, world_size=2)[1] == 4  # an explicit mmunlearner.retain_steps wins
    swapped = SimpleNamespace(benchmark=SimpleNamespace(train_rows=lambda g: small_benchmark.train_rows(
        "retain" if g == "forget" else "forget")), processor=tiny_model[1])
    with pytest.raises(ValueError, match="mmunlearner.retain_steps=official.*at least as many retain batches"):
        update_loader(swapped, 6, "official", 0, retain_text=False)
    loader, k = update_loader(swapped, 6, None, 0, retain_text=False)  # fewer retain batches: every forget step
    steps = list(loader.batch_sampler)
    assert k == 1 and len(steps) == len(loader.batch_sampler) > len({c for s in steps for t, c, _ in s if t == "retain"})
    with pytest.raises(ValueError, match="mmunlearner.retain_steps='often'"):
        update_loader(ctx, 6, "often", 0)


def test_even_schedule_hand_computed():
    """null / k: the project's spread. The min_size loader it replaces dropped the forget batches past the retain
    data when k * n_forget > n_retain (MLLMU forget_15 at batch 4: 75 forget batches, k 6, 71 steps)."""
    from unlearn.mmunlearner.schedule import even_retain_steps, even_schedule

    assert even_schedule(3, 7, 2) == [[0, 1], [2, 3], [4, 5]]  # retain batch 6 unused
    assert even_schedule(3, 5, 2) == [[0, 1], [2, 3], [4]]
    assert even_schedule(3, 3, 2) == [[0, 1], [2], []]  # every forget batch, the last with no retain step
    assert len(even_schedule(75, 425, 6)) == 75
    # the embedded default: 190 forget and 3420 retain sequences at 16: 12 and 214 batches, k = round(17.8) = 18
    assert even_retain_steps(190, 3420, 16) == 18 and even_retain_steps(38, 190, 6) == 5


@pytest.mark.slow
def test_lora_run_moves_forget_mc_on_the_embedded_default(tmp_path):
    """Under peft's default init the mask never reached lora_A and forget MC stayed where it was."""
    import json

    from .test_cli import train

    run = train(tmp_path, "method=mmunlearner", "mmunlearner.lora.enabled=true", "mmunlearner.epochs=1",
                "eval.splits=[forget]", name="lora")
    assert run.returncode == 0, run.stderr[-3000:]
    m = json.loads((tmp_path / "lora" / "metrics.json").read_text())["metrics"]
    assert m["after/forget/multimodal/mc_acc"] < m["before/forget/multimodal/mc_acc"]
    tensors = json.loads((tmp_path / "lora" / "mmunlearner" / "mask_summary.json").read_text())["tensors"]
    assert any(".lora_A." in n and t["selected"] > 0 for n, t in tensors.items())


def test_eval_mc_preserve_set_is_the_text_only_mc_questions(small_benchmark, tiny_model):
    from types import SimpleNamespace as NS

    from unlearn.methods.mmunlearner import fisher_datasets

    ctx = NS(processor=tiny_model[1], benchmark=small_benchmark)
    data = fisher_datasets(ctx, labels="answer", preserve_text="eval_mc")["text_all"]
    rows = [r for s in ("forget", "retain") for r in small_benchmark.eval[s]]
    questions = [q for r in rows for q in r["Classification_Task"]["Pure_Text_Questions"]]
    assert len(data) == len(questions) > 0
    q = questions[0]
    ex = data[0]
    answer = tiny_model[1].answer_ids(q["Options"][q["Correct_Answer"]])
    assert ex.pixel_values is None and [t for t in ex.labels if t != -100] == answer
    with pytest.raises(ValueError, match="mmunlearner.preserve_text"):
        fisher_datasets(ctx, preserve_text="eval")


def test_a_loaded_model_unlearns_in_train_mode_without_lightnings_eval_mode_warning(tiny_model, small_benchmark):
    """from_pretrained returns eval mode: the masked steps must run in train mode, and Lightning's warning about
    modules in eval mode (printed by every MMUnlearner run before) not appear."""
    from tests.modes import eval_mode_warnings

    model, proc = tiny_model
    model.eval()
    loader = _forget_rows_as_both_sides(proc, small_benchmark)
    modes = []

    class Spy(MaskedUnlearning):
        def training_step(self, batch, batch_idx):
            modes.append(self.model.training)
            return super().training_step(batch, batch_idx)

    module = Spy(model, _masks(model), lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.0),
                 lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.0))
    assert not eval_mode_warnings(lambda: _trainer(max_steps=1).fit(module, loader))
    assert modes == [True]


def test_rank_share_deals_whole_batches_and_refuses_a_process_without_one():
    from unlearn.data.sampling import rank_share

    batches = [[0, 1], [2, 3], [4]]
    assert [rank_share(batches, r, 2, "pass", "k") for r in (0, 1)] == [[[0, 1], [4]], [[2, 3]]]
    with pytest.raises(ValueError, match=r"pass: 3 batches for 4 processes.*lower k or run on at most 3"):
        rank_share(batches, 3, 4, "pass", "k")


def test_fisher_pass_with_fewer_batches_than_processes_is_refused_naming_its_batch_size(tiny_model, small_benchmark):
    """Lightning raises on a rank whose loader is empty and the others wait in the Fisher sums' reduction:
    every rank refuses alike instead, before any collective."""
    from unlearn.data.sequences import QASequences

    model, proc = tiny_model
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    module = FisherPass(model, {"forget": ds}, {"forget": list(model.parameters())[:1]}, len(ds),
                        proc.tokenizer.pad_token_id)
    module._trainer = SimpleNamespace(global_rank=1, world_size=2)  # one batch, two processes
    with pytest.raises(ValueError, match=r"the Fisher pass \(forget\): 1 batches for 2 processes.*"
                                         r"mmunlearner.fisher_batch_size"):
        module.val_dataloader()


def test_each_fisher_loader_draws_its_own_seeded_permutation():
    """fisher_shuffle: loader j reads the permutation of shuffle_seed + j, the same on every rank; the authors'
    loaders each shuffle on their own, so two loaders of one size must not share an order."""
    model = torch.nn.Linear(1, 1)
    data = {"forget": list(range(10)), "retain": list(range(10))}
    fisher = FisherPass(model, data, {"forget": [], "retain": []}, 2, 0, shuffle_seed=5)
    fisher._trainer = SimpleNamespace(global_rank=0, world_size=1)
    orders = [[i for batch in loader.batch_sampler for i in batch] for loader in fisher.val_dataloader()]
    for j, order in enumerate(orders):
        assert order == torch.randperm(10, generator=torch.Generator().manual_seed(5 + j)).tolist()
    assert orders[0] != orders[1]
    in_order = FisherPass(model, data, {"forget": [], "retain": []}, 2, 0, shuffle_seed=None)
    in_order._trainer = fisher._trainer
    assert [[i for b in ld.batch_sampler for i in b] for ld in in_order.val_dataloader()] == [list(range(10))] * 2


def test_a_tower_with_nothing_trainable_is_allowed_when_it_is_not_unlearned():
    """LoRA on Qwen2-VL adapts the language model's projections only (model.lora_target_modules), so its vision
    group has no trainable parameter: mmunlearner.groups=language must run (until 2026-12-05 every group had to
    match, and MMUnlearner with LoRA on Qwen2-VL always refused); a group that is unlearned still must."""
    import torch.nn as nn

    from unlearn.mmunlearner.saliency import eligible_parameters, group_parameters

    model = nn.ModuleDict({"visual": nn.Linear(2, 2), "language_model": nn.Linear(2, 2)})
    model["visual"].requires_grad_(False)
    patterns = {"vision": r"visual\.", "language": r"language_model\."}
    groups = group_parameters(model, patterns, required=("language",))
    assert groups["vision"] == [] and len(groups["language"]) == 2
    assert eligible_parameters(model, groups, "weight") == {"vision": [], "language": [model["language_model"].weight]}
    with pytest.raises(ValueError, match=r"model.param_groups.vision=.*mmunlearner.groups"):
        group_parameters(model, patterns, required=("vision", "language"))
    with pytest.raises(ValueError, match="model.param_groups.vision"):
        group_parameters(model, patterns)  # all required, as before


@pytest.mark.parametrize("unlearned", ["vision", "language", "both"])
def test_compute_masks_covers_exactly_the_unlearned_groups(tiny_model, small_benchmark, unlearned):
    """mmunlearner.groups picks which tower is unlearned: only its parameters get a mask. A mutation that built the
    vision pairs when only language was unlearned (groups=language also unlearns LLaVA's vision tower, groups=vision
    gets an empty mask) survived the fast tests until 2026-12-05. The Fisher pass is stubbed with known Fishers
    (forget 1, preserve 0: every element of a masked tensor selected), so only the grouping is under test."""
    from omegaconf import OmegaConf

    from unlearn.config import CONFIG_DIR
    from unlearn.methods import mmunlearner as mmu

    model, proc = tiny_model
    patterns = dict(OmegaConf.load(CONFIG_DIR / "model" / "tiny_llava.yaml").param_groups)  # what saliency_stage reads
    groups = group_parameters(model, patterns, mmu.GROUPS[unlearned])
    names = {p: n for n, p in model.named_parameters()}
    expected = {names[p] for g in mmu.GROUPS[unlearned] for p in groups[g]}
    others = {names[p] for g in groups if g not in mmu.GROUPS[unlearned] for p in groups[g]} - expected
    assert expected and (unlearned == "both" or others)  # a tower left alone has parameters that must stay unmasked
    passes = []

    def validate(module, verbose=True):  # the Fisher pass, stubbed: known Fishers and batch counts
        passes.append(module)
        for key in module.loader_keys:
            value = 1.0 if key == "forget" else 0.0
            module.fisher[key] = {p: torch.full(p.shape, value) for p in module.params[key]}
            module.batches[key] = 2

    ctx = SimpleNamespace(model=model, processor=proc, benchmark=small_benchmark,
                          trainer=lambda **kw: SimpleNamespace(validate=validate))
    masks, mask_names, gamma = mmu.compute_masks(ctx, groups, mmu.GROUPS[unlearned], 1.0, 4)
    assert len(passes) == 1 and gamma == 1.0
    assert {mask_names[p] for p in masks} == expected
    assert all(m.shape == p.shape and bool(m.all()) for p, m in masks.items())


def test_a_parameter_group_that_matches_nothing_says_why(tiny_model):
    """A pattern no parameter of the model matches (a preset's Qwen2-VL names on another family) was blamed on
    LoRA's frozen weights, with LoRA off (until 2026-12-05)."""
    from unlearn.mmunlearner.saliency import group_parameters

    model = tiny_model[0]
    with pytest.raises(ValueError, match=r"model.param_groups.language=.* matches no parameter of this model"):
        group_parameters(model, {"language": r"model\.language_model\.nothing"})
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match=r"matches no trainable parameter \(under mmunlearner.lora.enabled"):
        group_parameters(model, {"all": "."})


def test_a_group_lora_does_not_adapt_is_refused_before_the_evaluation():
    """real_models.md's `method=mmunlearner mmunlearner.lora.enabled=true model=qwen2_vl_7b` adapts none of
    Qwen2-VL's vision Linears (qkv, proj, fc1, fc2; the config's lora_target_modules are the language model's
    names): until the forty-ninth session it was refused in `run`, after the before-evaluation (hours at 7B)."""
    from omegaconf import OmegaConf

    from unlearn.config import CONFIG_DIR
    from unlearn.methods import mmunlearner as mmu
    from unlearn.models.tiny_real import build_tiny_real

    model = build_tiny_real("qwen2_vl")[0]
    model_cfg = OmegaConf.load(CONFIG_DIR / "model" / "qwen2_vl_7b.yaml")
    m = OmegaConf.create({"groups": "both", "lora": {"enabled": True, "target_modules": None}})
    with pytest.raises(ValueError, match=r"model.param_groups.vision=.* matches no trainable parameter \(under "
                                         r"mmunlearner.lora.enabled only the adapters train, and mmunlearner.lora "
                                         r"adapts no module of that group"):
        mmu.check_adapted_groups(model, m, model_cfg)
    mmu.check_adapted_groups(model, OmegaConf.merge(m, {"groups": "language"}), model_cfg)
    mmu.check_adapted_groups(model, OmegaConf.merge(m, {"lora": {"target_modules": "all_linear"}}), model_cfg)
    with pytest.raises(ValueError, match=r"model.param_groups.vision=.* matches no parameter of this model"):
        mmu.check_adapted_groups(model, m, OmegaConf.merge(model_cfg, {"param_groups": {"vision": "nothing"}}))
