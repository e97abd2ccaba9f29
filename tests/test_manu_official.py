"""manu.selection=official against an independent re-implementation of the MANU authors' computation.

`their_*` below is written from the semantics of franciscoliu/MANU prune/prune_utility.py
(`ActivationCollector` hooks, `collect_feedforward_activations`, `compute_combined_scores_incremental`,
`compute_top_k_pruning_mask`, `apply_structural_pruning`): stored activations, torch's own mean/std over
dim 0, lists of per-batch tensors, float32. It shares nothing with `unlearn.manu.official` but the batches.
"""

from collections import defaultdict

import pytest
import torch
from torch import nn

from callbacks.activation_stats import ActivationStatistics
from callbacks.official_stats import OfficialActivationStatistics
from unlearn.data.collate import collate, qa_example
from unlearn.manu.official import (ChunkedStatistics, official_batches, official_scores, official_top_k)
from unlearn.manu.prune import prune_neurons

VISION = "model.vision_tower.encoder.layers.{}.mlp.{}"
LANG = "model.language_model.layers.{}.mlp.{}"
PATTERNS = {"language": r"model\.language_model\.layers\.\d+\.mlp\.(gate_proj|up_proj|down_proj)",
            "vision": r"model\.vision_tower\.encoder\.layers\.\d+\.mlp\.(fc1|fc2)"}
WEIGHTS = {"I_abs": 2.0, "I_freq": 0.0, "I_var": 2.0, "I_rms": 2.0}


# ---------------------------------------------------------------- their computation, re-implemented
def their_registrations(model, pooled_targets):
    """(module, key, modality) in their order; pooled: every layer under the target layers' keys."""
    regs = []
    vis = model.model.vision_tower.vision_model.encoder.layers if hasattr(model.model.vision_tower, "vision_model") \
        else model.model.vision_tower.encoder.layers
    for i, layer in enumerate(vis):
        for t in (pooled_targets["vision"] if pooled_targets else [i]):
            regs += [(layer.mlp.fc1, f"vision_fc1_{t}", "multimodal"), (layer.mlp.fc2, f"vision_fc2_{t}", "multimodal")]
    for i, layer in enumerate(model.model.language_model.layers):
        for t in (pooled_targets["language"] if pooled_targets else [i]):
            regs += [(getattr(layer.mlp, p), f"lang_{p}_{t}", "unimodal") for p in ("gate_proj", "up_proj", "down_proj")]
    return regs


def their_collect(model, regs, chunks, modality):
    acts = defaultdict(list)
    handles = [m.register_forward_hook(lambda mod, i, o, key=key: acts[key].append(o.detach()))
               for m, key, mod_ in regs if mod_ == modality]
    aggregated = defaultdict(lambda: defaultdict(list))
    for chunk in chunks:
        scores = defaultdict(lambda: defaultdict(list))
        for batch in chunk:
            acts.clear()
            with torch.no_grad():
                if modality == "multimodal":
                    model(**batch)
                else:  # their unimodal pass calls the language model alone
                    model.model.language_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            for key, outs in acts.items():
                a = torch.cat(outs, dim=0).float().clamp(min=-1e3, max=1e3)
                scores["I_abs"][key].append(a.abs().mean(dim=0))
                scores["I_freq"][key].append((a.abs() > 1e-1).float().mean(dim=0))
                scores["I_var"][key].append(a.std(dim=0))
                scores["I_rms"][key].append(torch.sqrt((a ** 2).mean(dim=0)))
        for metric, d in scores.items():
            for key, lst in d.items():
                aggregated[metric][key].append(torch.cat(lst).mean(dim=0))
    for h in handles:
        h.remove()
    return {metric: {key: torch.stack(v).mean(dim=0) for key, v in d.items()} for metric, d in aggregated.items()}


def their_combined(forget, retain, eps=1e-5):
    out = {}
    for metric in forget:
        for key in forget[metric]:
            s = WEIGHTS[metric] * (forget[metric][key] / (retain[metric][key] + eps) - 1)
            out[key] = s if key not in out else out[key] + s
    return out


def their_top_k(scores, pct):
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = int((pct / 100) * flat.numel())
    threshold = torch.topk(flat, k, largest=True).values[-1]
    return {key: (s >= threshold).float() for key, s in scores.items()}


def their_module(key):
    tower, rest = key.split("_", 1)
    proj, _, idx = rest.rpartition("_")
    return VISION.format(idx, proj) if tower == "vision" else LANG.format(idx, proj)


# ---------------------------------------------------------------- fixtures
def _examples(proc, n, image, seed):
    g = torch.Generator().manual_seed(seed)
    words = ["nurse", "teacher", "paris", "london", "blue", "green", "red"]
    out = []
    for i in range(n):
        answer = " ".join(words[int(j)] for j in torch.randint(0, len(words), (1 + i % 3,), generator=g))
        px = torch.rand(3, 32, 32, generator=g) if image else None
        out.append(qa_example(proc, [("what is this person 's job ?", answer)], px))
    return out


def _batches(examples, plan, pad_id):
    chunks = defaultdict(list)
    for c, idx in plan:
        b = collate([examples[i] for i in idx], pad_id)
        chunks[c].append({k: v for k, v in b.items() if k != "labels"})
    return [chunks[c] for c in sorted(chunks)]


def _ours(model, pooled, data, apply_last, alpha, layers=None):
    stats = OfficialActivationStatistics(PATTERNS, pooled=pooled)
    stats.attach(model)
    stats.num_chunks = {k: len(chunks) for k, chunks in data.items()}
    for key, chunks in data.items():
        for c, chunk in enumerate(chunks):
            for batch in chunk:
                stats.begin_batch(key, c)
                with torch.no_grad():
                    model(**{k: v for k, v in batch.items() if not (key.endswith("/text") and k == "pixel_values")})
                stats.end_batch()
    stats.detach()
    stats.finalize()
    w = {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}
    scores = official_scores(stats.stats, stats.units, stats.towers, pooled, apply_last, w, layers)
    return scores, official_top_k(scores, stats.towers, alpha), stats


@pytest.mark.parametrize("pooled,apply_last,alpha,layers", [(True, 3, 10.0, None), (True, 1, 2.0, None),
                                                             (False, 0, 20.0, None),
                                                             (True, 3, 10.0, {"vision": [0], "language": [0]}),
                                                             (True, 1, 10.0, {"vision": None, "language": [0]})])
def test_official_selection_equals_the_authors_computation(tiny_model, pooled, apply_last, alpha, layers):
    model, proc = tiny_model
    model.eval()
    pad = proc.tokenizer.pad_token_id
    n_forget = 7 if pooled else 8  # per layer, a one-row batch has no unbiased std (NaN there, an error here)
    forget_ex = {m: _examples(proc, n_forget, m == "multimodal", 1) for m in ("multimodal", "text")}
    retain_ex = {m: _examples(proc, 12, m == "multimodal", 2) for m in ("multimodal", "text")}
    n_batches = -(-n_forget // 2)  # forget batches at batch size 2; retain reads as many (their num_batches=...)
    data = {}
    for i, (name, ex) in enumerate((("forget", forget_ex), ("retain", retain_ex))):
        for j, m in enumerate(("multimodal", "text")):
            plan = official_batches(len(ex[m]), 2, n_batches, chunk_size=2, seed=10 * i + j)
            data[f"{name}/{m}"] = _batches(ex[m], plan, pad)
    ours_scores, ours, _ = _ours(model, pooled, data, apply_last, alpha, layers)

    n_vis, n_lang = len(model.model.vision_tower.encoder.layers), len(model.model.language_model.layers)
    targets = {"vision": list(range(n_vis))[-apply_last:], "language": list(range(n_lang))[-apply_last:]} \
        if pooled else None
    if layers:  # their keys name the layers; here the first, not the last; a null tower keeps its last apply_last
        targets = {t: targets[t] if layers[t] is None else layers[t] for t in targets}
    regs = their_registrations(model, targets)
    theirs = {}
    score_of = {}
    for their_mod, form in (("multimodal", "multimodal"), ("unimodal", "text")):
        f = their_collect(model, regs, data[f"forget/{form}"], their_mod)
        r = their_collect(model, regs, data[f"retain/{form}"], their_mod)
        combined = their_combined(f, r)
        score_of.update({their_module(k): v for k, v in combined.items()})
        theirs.update({their_module(k): v.bool() for k, v in their_top_k(combined, alpha).items()})

    assert set(ours) == set(theirs)
    for name in theirs:
        torch.testing.assert_close(ours_scores[name].float(), score_of[name], rtol=1e-4, atol=1e-4)
        assert torch.equal(ours[name].cpu(), theirs[name]), name
    assert sum(int(m.sum()) for m in ours.values()) > 0
    if pooled:  # pooled masks reach only the target layers, copies identical
        assert all(int(n.split(".")[-3]) in targets["vision" if "vision" in n else "language"] for n in ours)


def test_a_null_tower_in_manu_official_layers_reaches_the_callback():
    """`manu.official.layers.language=null` (what the error for a model without layers 29-31 advises, and what
    the settings check allows: that tower's last apply_last layers) reaches official_scores as None; it raised a
    TypeError in the callback's constructor until 2026-12-04."""
    from callbacks.neuron_pruning import NeuronPruning

    pruning = NeuronPruning(None, alpha=1.0, apply_last=2, layers={"vision": [21, 22], "language": None})
    assert pruning.layers == {"vision": [21, 22], "language": None}


def test_official_pruning_zeroes_output_rows_only(tiny_model):
    model, _ = tiny_model
    name = LANG.format(0, "gate_proj")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = torch.zeros(model.get_submodule(name).out_features, dtype=torch.bool)
    mask[[1, 7]] = True
    prune_neurons(model, {name: mask}, neuron="output")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {name + ".weight"}
    w = model.get_submodule(name).weight
    assert torch.all(w[[1, 7]] == 0) and torch.equal(w[~mask], before[name + ".weight"][~mask])


def test_official_pruning_zeroes_the_bias_of_an_output_row(tiny_model):
    """Their prune zeroes a selected row's weight and its bias (CLIP's fc1 / fc2 have one), nothing else."""
    model, _ = tiny_model
    name = VISION.format(0, "fc1")
    layer = model.get_submodule(name)
    assert layer.bias is not None
    with torch.no_grad():
        layer.bias.add_(0.5)  # no bias entry is zero before
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = torch.zeros(layer.out_features, dtype=torch.bool)
    mask[[0, 3]] = True
    prune_neurons(model, {name: mask}, neuron="output")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {name + ".weight", name + ".bias"}
    assert torch.all(layer.weight[mask] == 0) and torch.all(layer.bias[mask] == 0)
    assert torch.equal(layer.bias[~mask], before[name + ".bias"][~mask])


def test_official_batches_reshuffle_every_chunk_and_cap_the_count():
    # 6 rows at batch size 2: each permutation has 3 batches; chunk c reads its batches 2c, 2c+1 of a new one
    plan = official_batches(n_rows=6, batch_size=2, n_batches=5, chunk_size=2, seed=0)
    g = torch.Generator().manual_seed(0)
    perms = [torch.randperm(6, generator=g).tolist() for _ in range(3)]
    assert plan == [(0, perms[0][0:2]), (0, perms[0][2:4]), (1, perms[1][4:6])]


def test_official_batches_retain_subset_of_forget_size():
    plan = official_batches(n_rows=100, batch_size=4, n_batches=3, chunk_size=10, seed=1)
    rows = [i for _, idx in plan for i in idx]
    assert len(plan) == 3 and len(rows) == 12 == len(set(rows))
    assert plan == official_batches(100, 4, 3, 10, seed=1) and plan != official_batches(100, 4, 3, 10, seed=2)


def test_official_plans_size_each_retain_form_by_the_same_form_of_forget():
    """prune_incremental.py: retain multimodal reads num_batches=total_batches_forget_multimodal, retain
    unimodal total_batches_forget_unimodal; the forget loaders are read whole."""
    from unlearn.methods.manu import official_plans

    sizes = {"forget/multimodal": 8, "forget/text": 3, "retain/multimodal": 40, "retain/text": 40}
    plans = official_plans({k: range(n) for k, n in sizes.items()}, batch_size=2, chunk_size=10, seed=0)
    assert {k: len(v) for k, v in plans.items()} == {"forget/multimodal": 4, "forget/text": 2,
                                                     "retain/multimodal": 4, "retain/text": 2}
    whole = official_plans({k: range(n) for k, n in sizes.items()}, 2, 10, 0, retain_subset=False)
    assert len(whole["retain/multimodal"]) == len(whole["retain/text"]) == 20  # retain_subset=false: in full


def test_chunked_statistics_sum_across_ranks_exactly(tiny_model):
    """What the DDP all-reduce does (SUM of per-chunk tables) equals one process reading every batch."""
    model, proc = tiny_model
    model.eval()
    ex = _examples(proc, 9, True, 3)
    plan = official_batches(9, 2, 5, chunk_size=2, seed=0)
    batches = [(c, {k: v for k, v in collate([ex[i] for i in idx], proc.tokenizer.pad_token_id).items()
                    if k != "labels"}) for c, idx in plan]

    def read(part):
        stats = OfficialActivationStatistics(PATTERNS, pooled=True)
        stats.attach(model)
        stats.num_chunks = {"forget/multimodal": 3}
        for c, b in part:
            stats.begin_batch("forget/multimodal", c)
            with torch.no_grad():
                model(**b)
            stats.end_batch()
        stats.detach()
        return stats

    single, r0, r1 = read(batches), read(batches[0::2]), read(batches[1::2])
    for unit, table in single.chunked["forget/multimodal"].items():
        a, b = r0.chunked["forget/multimodal"][unit], r1.chunked["forget/multimodal"][unit]
        merged = ChunkedStatistics(3, table.sums.shape[-1])
        merged.sums, merged.positions = a.sums + b.sums, a.positions + b.positions
        for k, v in table.final().items():
            torch.testing.assert_close(merged.final()[k], v, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- padding routed by tower, not shape
class _Towers(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = nn.Linear(2, 2, bias=False)
        self.text = nn.Linear(2, 2, bias=False)
        for lin in (self.vision, self.text):
            nn.init.eye_(lin.weight)

    def forward(self, v, t):
        return self.vision(v), self.text(t)


def test_vision_activation_shaped_like_the_mask_is_not_masked():
    model = _Towers()
    stats = ActivationStatistics({"vision": "vision", "language": "text"}, tau=0.5, neuron="output")
    stats.attach(model)
    mask = torch.tensor([[1, 0]])
    v = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2): same leading shape as the mask
    stats.begin_batch("forget/multimodal", mask)
    with torch.no_grad():
        model(v, v.clone())
    stats.end_batch()
    assert stats.moments["forget/multimodal"]["vision"].count.item() == 2  # both patches counted
    assert stats.moments["forget/multimodal"]["text"].count.item() == 1  # padding dropped


def test_padding_counted_when_asked():
    model = _Towers()
    stats = ActivationStatistics({"vision": "vision", "language": "text"}, neuron="output", mask_padding=False)
    stats.attach(model)
    stats.begin_batch("forget/text", torch.tensor([[1, 0]]))
    with torch.no_grad():
        model(torch.ones(1, 2, 2), torch.ones(1, 2, 2))
    stats.end_batch()
    assert stats.moments["forget/text"]["text"].count.item() == 2


def test_language_activation_not_matching_the_mask_fails_loudly():
    model = _Towers()
    stats = ActivationStatistics({"vision": "vision", "language": "text"}, neuron="output")
    stats.attach(model)
    stats.begin_batch("forget/text", torch.tensor([[1, 0, 1]]))
    with torch.no_grad(), pytest.raises(ValueError, match="attention mask"):
        model(torch.ones(1, 2, 2), torch.ones(1, 2, 2))
    stats.end_batch()


# ---------------------------------------------------------------- configs and the whole method
def test_official_statistics_read_manu_tau(tmp_path):
    """Their frequency threshold is `abs() > 1e-1`, manu.tau's default; a tau given is not ignored."""
    from unlearn.config import compose_config
    from unlearn.methods.manu import official_statistics

    cfg = compose_config(["experiment=manu_official", "model=tiny_llava"], tmp_path, tmp_path / "cache")
    assert official_statistics(cfg.manu, cfg.model).tau == 0.1
    cfg = compose_config(["manu.selection=official", "manu.tau=0.3"], tmp_path, tmp_path / "cache")
    assert official_statistics(cfg.manu, cfg.model).tau == 0.3


def test_official_preset_composes(tmp_path):
    from unlearn.config import compose_config

    cfg = compose_config(["experiment=manu_official"], tmp_path, tmp_path)
    assert (cfg.model.name, cfg.data.name, cfg.data.forget_split) == ("llava_1_5_7b", "mllmu_bench", "forget_5")
    assert cfg.manu.selection == "official" and cfg.manu.alpha == 10 and cfg.manu.batch_size == 4
    assert cfg.manu.official.layers == {"vision": [21, 22, 23], "language": [29, 30, 31]}
    assert compose_config([], tmp_path, tmp_path).manu.selection == "project"


@pytest.mark.slow
def test_train_with_official_selection(tmp_path, taught_fast):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors import safe_open

    from tests.conftest import seed_cache

    seed_cache(taught_fast, tmp_path / "cache")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "train.py", "debug=fast", "method=manu", "manu.selection=official",
                          "manu.official.apply_last=1", "manu.sequences=manu", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with safe_open(str(tmp_path / "run" / "manu" / "mask.safetensors"), "pt") as f:
        assert f.metadata()["selection"] == "official" and f.metadata()["neuron"] == "output"
        names = set(f.keys())
    # pooled layers, apply_last=1: only the last layer (1 of 2) of each module type carries a mask
    assert names == {LANG.format(1, p) for p in ("gate_proj", "up_proj", "down_proj")} | \
        {VISION.format(1, p) for p in ("fc1", "fc2")}
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["artifacts"]["manu"]["selection"] == "official"
    assert summary["artifacts"]["manu"]["pruned"]["total"]["pruned"] > 0


def test_intermediate_unit_hooks_the_inputs(tiny_model):
    """manu.official.unit=intermediate (for measuring): the project's unit under the authors' statistics."""
    model, proc = tiny_model
    model.eval()
    stats = OfficialActivationStatistics({"language": r"model\.language_model\.layers\.\d+\.mlp\.down_proj"},
                                         pooled=False, unit="intermediate")
    stats.attach(model)
    stats.num_chunks = {"forget/text": 1}
    batch = collate(_examples(proc, 3, False, 0), proc.tokenizer.pad_token_id)
    stats.begin_batch("forget/text", 0)
    with torch.no_grad():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    stats.end_batch()
    stats.detach()
    stats.finalize()
    width = model.get_submodule(LANG.format(0, "down_proj")).in_features
    assert stats.neuron == "input" and stats.stats["forget/text"][LANG.format(0, "down_proj")]["abs"].shape == (width,)
    with pytest.raises(ValueError, match="manu.official.unit"):
        OfficialActivationStatistics({}, unit="rows")


def test_pooled_masks_reach_the_layers_their_keys_name():
    """Their keys are vision_fc1_21.._23 and *_29.._31 on every model: the last 3 of LLaVA-1.5-7B's 24 vision
    layers, but not of Idefics2-8B's 27, where apply_last=3 would prune 24-26."""
    from unlearn.manu.official import pooled_targets

    idefics_vision = [f"model.vision_model.encoder.layers.{i}.mlp.fc1" for i in range(27)]
    llava_vision = [f"model.vision_tower.encoder.layers.{i}.mlp.fc1" for i in range(24)]
    layer = lambda names: [int(n.split(".")[-3]) for n in names]  # noqa: E731
    assert layer(pooled_targets(idefics_vision, 3)) == [24, 25, 26]
    assert layer(pooled_targets(idefics_vision, 3, [21, 22, 23])) == [21, 22, 23]
    assert layer(pooled_targets(llava_vision, 3)) == layer(pooled_targets(llava_vision, 3, [23, 21, 22])) == [21, 22, 23]
    with pytest.raises(ValueError, match=r"manu.official.layers.vision=\[21, 22, 23\]: no layer \[21, 22, 23\]"):
        pooled_targets(idefics_vision[:2], 3, [21, 22, 23], "manu.official.layers.vision")


def test_official_pass_with_fewer_batches_than_processes_is_refused_naming_its_batch_size():
    """The plans deal whole batches to ranks; a rank with none would leave the others waiting in the sums'
    reduction (Lightning raises on its empty loader): every rank refuses alike, naming manu.batch_size."""
    from types import SimpleNamespace

    from unlearn.methods.manu import ActivationPass, official_plans

    datasets = {k: list(range(n)) for k, n in (("forget/multimodal", 3), ("retain/multimodal", 9))}
    plans = official_plans(datasets, batch_size=64, chunk_size=10, seed=0)
    module = ActivationPass(torch.nn.Linear(1, 1), datasets, 64, 0, plans)
    module._trainer = SimpleNamespace(global_rank=0, world_size=2)
    with pytest.raises(ValueError, match=r"statistics pass \(forget/multimodal\): 1 batches for 2 processes.*"
                                         r"manu.batch_size"):
        module.val_dataloader()
    module._trainer = SimpleNamespace(global_rank=0, world_size=1)
    assert len(module.val_dataloader()) == 2


def their_prune(model, masks):
    """apply_structural_pruning / apply_mask_to_layer: rows of every module whose key names its own layer."""
    layers = {"vision": model.model.vision_tower.encoder.layers, "lang": model.model.language_model.layers}
    for key, mask in masks.items():
        tower, rest = key.split("_", 1)
        proj, _, idx = rest.rpartition("_")
        layer = getattr(layers[tower][int(idx)].mlp, proj)
        layer.weight.data *= (1 - mask.view(-1, 1).expand_as(layer.weight.data))
        if layer.bias is not None:
            layer.bias.data *= (1 - mask)


def test_official_preset_at_llava_depth_equals_the_authors_computation(tmp_path):
    """The preset's fixed keys (vision 21-23, language 29-31) on a LLaVA of LLaVA-1.5-7B's depth (24 vision, 32
    language layers; tiny width): their hooks pool every layer under those keys, their prune reaches those
    layers only. The same reading order, scores, masks and pruned weights as ours, end to end."""
    import copy

    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from unlearn.config import compose_config
    from unlearn.methods.manu import official_plans

    m = compose_config(["experiment=manu_official"], tmp_path, tmp_path).manu
    layers = {k: list(v) for k, v in m.official.layers.items()}
    torch.manual_seed(0)
    image_token, pad = 500, 501
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=24, num_attention_heads=2,
                              image_size=28, patch_size=14)
    text = LlamaConfig(hidden_size=16, intermediate_size=20, num_hidden_layers=32, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=502, pad_token_id=pad)
    model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text,
                                                      image_token_id=image_token)).eval()
    with torch.no_grad():  # nonzero biases, so a pruned row's bias is seen to go too
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_()

    def rows(n, image, seed):
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(n):
            length = 3 + int(torch.randint(0, 6, (1,), generator=g))
            ids = [1] + [image_token] * 4 * image + torch.randint(2, 500, (length,), generator=g).tolist()
            out.append((ids, torch.randn(3, 28, 28, generator=g) * 2 if image else None))
        return out

    def batch(rs):
        width = max(len(ids) for ids, _ in rs)
        b = {"input_ids": torch.full((len(rs), width), pad),
             "attention_mask": torch.zeros(len(rs), width, dtype=torch.long)}
        for i, (ids, _) in enumerate(rs):
            b["input_ids"][i, :len(ids)] = torch.tensor(ids)
            b["attention_mask"][i, :len(ids)] = 1
        if rs[0][1] is not None:
            b["pixel_values"] = torch.stack([px for _, px in rs])
        return b

    sets = {"forget/multimodal": rows(9, True, 1), "forget/text": rows(7, False, 2),
            "retain/multimodal": rows(23, True, 3), "retain/text": rows(21, False, 4)}
    plans = official_plans(sets, batch_size=2, chunk_size=2, seed=5, retain_subset=True)
    data = {}
    for key, plan in plans.items():
        chunks = defaultdict(list)
        for c, idx in plan:
            chunks[c].append(batch([sets[key][i] for i in idx]))
        data[key] = [chunks[c] for c in sorted(chunks)]

    ours_model = copy.deepcopy(model)
    scores, masks, _ = _ours(ours_model, True, data, m.official.apply_last, 7.0, layers)
    prune_neurons(ours_model, masks, "output")

    theirs_model = copy.deepcopy(model)
    regs = their_registrations(theirs_model, layers)
    their_masks, their_scores = {}, {}
    for their_mod, form in (("multimodal", "multimodal"), ("unimodal", "text")):
        combined = their_combined(their_collect(theirs_model, regs, data[f"forget/{form}"], their_mod),
                                  their_collect(theirs_model, regs, data[f"retain/{form}"], their_mod))
        their_scores.update(combined)
        their_masks.update(their_top_k(combined, 7.0))
    their_prune(theirs_model, their_masks)

    assert len(their_masks) == 3 * 2 + 3 * 3 and set(masks) == {their_module(k) for k in their_masks}
    for key, mask in their_masks.items():
        torch.testing.assert_close(scores[their_module(key)].float(), their_scores[key], rtol=1e-4, atol=1e-4)
        assert torch.equal(masks[their_module(key)].cpu(), mask.bool()), key
    for (name, p), (_, q) in zip(theirs_model.named_parameters(), ours_model.named_parameters()):
        assert torch.equal(p, q), name
    changed = {n.rsplit(".", 1)[0] for n, p in ours_model.named_parameters()
               if not torch.equal(p, model.get_parameter(n))}
    assert changed and all(int(n.split(".")[-3]) in layers["vision" if "vision" in n else "language"] for n in changed)


def test_manu_reads_the_right_split_into_each_loader_and_its_configured_score(tmp_path, small_benchmark, tiny_model,
                                                                              monkeypatch):
    """Swapping the forget and retain rows, or pruning by another score than manu.score, passed every fast test
    until 2026-12-05 (a review's mutation run): the loaders' splits and forms, and what reaches NeuronPruning."""
    import unlearn.methods.manu as manu
    from unlearn.config import compose_config
    from unlearn.data.sequences import QASequences
    from unlearn.pipeline import RunContext

    model, proc = tiny_model
    cfg = compose_config(["debug=fast", "method=manu", "manu.score=random", "manu.alpha=7", "manu.scope=global",
                          "manu.weights={abs: 2}", "manu.prune.mode=scale", "manu.prune.factor=0.25", "seed=3"],
                         tmp_path, tmp_path / "cache")
    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    datasets = manu.statistics_datasets(ctx)
    sizes = {split: len(QASequences(small_benchmark.train_rows(split), proc, "multimodal"))
             for split in ("forget", "retain")}
    assert sizes["forget"] != sizes["retain"]
    assert {k: len(d) for k, d in datasets.items()} == {
        "forget/multimodal": sizes["forget"], "forget/text": sizes["forget"],
        "retain/multimodal": sizes["retain"], "retain/text": sizes["retain"]}
    assert all(datasets[f"{s}/multimodal"][0].pixel_values is not None for s in ("forget", "retain"))
    assert all(datasets[f"{s}/text"][0].pixel_values is None for s in ("forget", "retain"))

    class Stop(Exception):
        pass

    seen = {}

    def capture(stats, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(manu, "NeuronPruning", capture)
    with pytest.raises(Stop):
        manu.run(ctx)
    assert (seen["score"], seen["alpha"], seen["scope"]) == ("random", 7, "global")
    # every setting the callback reads (until 2026-12-06 only these three were held: weights, the prune mode and
    # the control's seed could be dropped on the way unnoticed)
    assert (seen["weights"], seen["mode"], seen["factor"], seen["seed"]) == ({"abs": 2}, "scale", 0.25, 3)
    assert (seen["apply_last"], seen["layers"]) == (0, None)


def test_the_pruning_callback_hands_its_settings_to_the_math(monkeypatch):
    """NeuronPruning wires manu.weights, manu.score's seed, manu.scope and manu.prune (mode, factor) into the pure
    functions it calls (until 2026-12-06 no test read them through the callback)."""
    from types import SimpleNamespace

    import callbacks.neuron_pruning as np_module

    calls = {}
    monkeypatch.setattr(np_module, "neuron_scores", lambda *a: calls.setdefault("scores", a) and {"s": 1})
    monkeypatch.setattr(np_module, "select_neurons", lambda *a: calls.setdefault("select", a) and {"m": torch.ones(2)})
    monkeypatch.setattr(np_module, "prune_neurons", lambda *a: calls.setdefault("prune", a))
    monkeypatch.setattr(np_module, "summarize", lambda masks, towers: {"towers": {}, "total": 2})
    stats = SimpleNamespace(moments={"k": 1}, towers={"t": "language"}, neuron="input")
    pruning = np_module.NeuronPruning(stats, alpha=5, score="random", weights={"abs": 2.0}, scope="layer",
                                      mode="scale", factor=0.5, out_dir=None, seed=7)
    model = object()
    pruning.on_validation_end(SimpleNamespace(is_global_zero=True), SimpleNamespace(model=model))
    assert calls["scores"] == ({"k": 1}, {"t": "language"}, "random", {"abs": 2.0}, 7)
    assert calls["select"][2:] == (5, "layer")
    assert calls["prune"] == (model, pruning.masks, "input", "scale", 0.5)


def test_ratio_score_reads_manu_weights_by_the_settings_rule():
    """One rule for manu.weights (unlearn.manu.choices.check_weights): a nan weight made every score nan until
    2026-12-05."""
    from unlearn.manu.official import ratio_score

    forget = {k: torch.tensor([2.0, 1.0]) for k in ("abs", "freq", "var", "rms")}
    retain = {k: torch.tensor([1.0, 1.0]) for k in forget}
    assert ratio_score(forget, retain, {"abs": 1.0, "rms": 0.5}, eps=0.0).tolist() == [1.5, 0.0]
    with pytest.raises(ValueError, match="manu.weights.abs=nan: expected a finite number"):
        ratio_score(forget, retain, {"abs": float("nan")})
    with pytest.raises(ValueError, match=r"manu.weights has no setting \['absolute'\]"):
        ratio_score(forget, retain, {"absolute": 1.0})


def test_the_official_clamp_bounds_activations_and_counts_them():
    """Their +-1e3 clamp (prune_utility.py) on one (rows, positions, neurons) batch, by hand: the tiny model never
    reaches it, so until 2026-12-06 dropping the clamp or its count passed every test."""
    from unlearn.manu.official import BatchPositionSums

    acts = torch.tensor([[[5000.0, 1.0]], [[-5000.0, 0.0625]]])  # 2 rows, 1 position, 2 neurons (exact in float)
    sums = BatchPositionSums()
    sums.add(acts, clamp=1000.0, tau=0.1)
    assert sums.clamped == 2
    assert sums.sums["sum_abs"].tolist() == [[2000.0, 1.0625]]
    assert sums.sums["sum"].tolist() == [[0.0, 1.0625]]
    assert sums.sums["above"].tolist() == [[2.0, 1.0]]
