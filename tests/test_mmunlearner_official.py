"""MMUnlearner's official-code settings, each held against a small plain-PyTorch port of the authors' semantics
(Z1zs/MMUnlearner: baselines/MLLMU_manifold.py, data_process/MLLMU_gen_mask.py, data_process/SFRon.py) or
against hand-computed values. The ports are written here from what that code does, not copied."""

import copy
import math

import pytest
import torch

from unlearn.mmunlearner.schedule import ScheduledBatches, official_schedule


def _port_loop_events(n_forget: int, n_retain: int) -> list[tuple[str, int]]:
    """MLLMU_manifold.py's epoch: for iter in range(len(retain)): a forget step first if iter % forget_freq == 0
    (next(forget) in a try: once forget is exhausted, nothing), then the next retain batch."""
    freq = n_retain // n_forget
    forget, retain, events = iter(range(n_forget)), iter(range(n_retain)), []
    for i in range(n_retain):
        if i % freq == 0:
            try:
                events.append(("forget", next(forget)))
            except StopIteration:
                pass
        events.append(("retain", next(retain)))
    return events


def _our_events(schedule):
    return [e for j, chunks in enumerate(schedule) for e in [("forget", j)] + [("retain", i) for i in chunks]]


# (75, 425): MLLMU forget_15 at batch 4 (floor 5, round 6); (4, 7): floor 1, round 2; (5, 14): floor 2, round 3
@pytest.mark.parametrize("n_forget,n_retain", [(75, 425), (4, 7), (5, 14), (3, 3), (1, 5), (7, 20), (19, 107)])
def test_schedule_equals_the_official_loop(n_forget, n_retain):
    ours = official_schedule(n_forget, n_retain)
    assert _our_events(ours) == _port_loop_events(n_forget, n_retain)
    assert len(ours) == n_forget and sorted(i for c in ours for i in c) == list(range(n_retain))


def test_schedule_hand_computed():
    # 3 forget, 7 retain batches: forget_freq 2, forget steps before retain 0, 2, 4; the last takes 4, 5, 6
    assert official_schedule(3, 7) == [[0, 1], [2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="mmunlearner.retain_steps=official"):
        official_schedule(4, 3)


class _Order:
    """An index sampler with set_epoch (a stand-in for EpochShuffle)."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def set_epoch(self, e):
        self.epoch = e

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch)).tolist())

    def __len__(self):
        return self.n


def test_scheduled_batches_use_every_batch_each_epoch_and_follow_set_epoch():
    sampler = ScheduledBatches(_Order(10), _Order(23), 3)  # 4 forget and 8 retain batches: freq 2
    assert sampler.sampler is sampler and len(sampler) == 4
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        steps = list(sampler)
        assert len(steps) == 4
        assert sorted(i for s in steps for k, _, i in s if k == "forget") == list(range(10))
        assert sorted(i for s in steps for k, _, i in s if k == "retain") == list(range(23))
        assert [len({c for k, c, _ in s if k == "retain"}) for s in steps] == [2, 2, 2, 2]
        epochs.append(steps)
    assert epochs[0] != epochs[1]


def test_each_retain_chunk_is_its_own_step_in_the_schedules_order():
    """collate_scheduled keeps a forget step's retain chunks apart and in order: one optimiser step each, as their
    loop steps once per retain batch (until 2026-12-06 merging them into one step passed every test)."""
    from unlearn.mmunlearner.schedule import Tagged, collate_scheduled

    sampler = ScheduledBatches(_Order(10), _Order(23), 3)
    tagged = Tagged([f"f{i}" for i in range(10)], [f"r{i}" for i in range(23)])
    for step in sampler:
        batch = collate_scheduled([tagged[item] for item in step], collate=list)
        chunks = [[i for k, c, i in step if k == "retain" and c == n] for n in range(2)]
        assert batch["forget"] == [f"f{i}" for k, _, i in step if k == "forget"]
        assert batch["retain"] == [[f"r{i}" for i in chunk] for chunk in chunks]  # two steps, in order
        assert all(len(c) == 3 for c in batch["retain"][:1])


def test_two_ranks_walk_the_one_process_schedule():
    from unlearn.data.sampling import EpochShuffle

    def steps(bs, **kw):
        return list(ScheduledBatches(EpochShuffle(14, 3, **kw), EpochShuffle(47, 4, **kw), bs))

    one = steps(6)
    ranks = [steps(3, rank=r, world_size=2) for r in (0, 1)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3
    for k, step in enumerate(one):
        for kind in ("forget", "retain"):
            for chunk in {c for t, c, _ in step if t == kind}:
                pick = lambda s: sorted(i for t, c, i in s if t == kind and c == chunk)  # noqa: E731
                both, mine = sorted(pick(ranks[0][k]) + pick(ranks[1][k])), pick(one[k])
                if len(mine) == 6:
                    assert both == mine, (k, kind, chunk)
                else:  # the last batch: EpochShuffle pads odd sizes (47) with one index
                    assert set(mine) <= set(both) and len(both) - len(mine) in (0, 1), (k, kind, chunk)


@pytest.mark.parametrize("scope,a,b", [
    # unlearned: ||a.grad|| = 5 -> [0.6, 0.8], masked -> [0.6, 0]; b (outside the mask) keeps [30, 40]
    ("unlearned", [0.6, 0.0], [30.0, 40.0]),
    # all (official): ||(a, b)|| = sqrt(2525) = 50.2494; both scaled by 1 / 50.2494, then a masked
    ("all", [3 / 2525 ** 0.5, 0.0], [30 / 2525 ** 0.5, 40 / 2525 ** 0.5]),
])
def test_clip_scope_hand_computed(scope, a, b):
    from unlearn.methods.mmunlearner import MaskedUnlearning

    pa, pb = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    module = MaskedUnlearning(torch.nn.ParameterList([pa, pb]), {pa: torch.tensor([True, False])}, None, None,
                              optimizers="one", restore_masked=False, clip_scope=scope)
    pa.grad, pb.grad = torch.tensor([3.0, 4.0]), torch.tensor([30.0, 40.0])
    module._phase = "forget"
    module.on_before_optimizer_step(None)
    torch.testing.assert_close(pa.grad, torch.tensor(a), rtol=1e-5, atol=0)
    torch.testing.assert_close(pb.grad, torch.tensor(b), rtol=1e-5, atol=0)
    if scope == "all":  # the port: clip_grad_norm_(model.parameters(), 1.0), then p.grad *= mask
        ga, gb = torch.tensor([3.0, 4.0]), torch.tensor([30.0, 40.0])
        scale = 1.0 / (torch.cat([ga, gb]).norm() + 1e-6)
        torch.testing.assert_close(pa.grad, ga * scale * torch.tensor([1.0, 0.0]))
        torch.testing.assert_close(pb.grad, gb * scale)
    with pytest.raises(ValueError, match="mmunlearner.clip_scope='some'"):
        MaskedUnlearning(torch.nn.ParameterList([pa]), {}, None, None, clip_scope="some")


@pytest.mark.parametrize("clip_retain,expected", [(True, [0.6, 0.8]), (False, [3.0, 4.0])])
def test_retain_step_clipped_unless_clip_retain_false(clip_retain, expected):
    """MLLMU_manifold.py clips the retain step's norm to 1.0 as the forget step's; CLEAR_manifold.py's retain
    step is backward, step, with no clip (mmunlearner.clip_retain=false)."""
    from unlearn.methods.mmunlearner import MaskedUnlearning

    pa = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([pa], lr=0.0)
    module = MaskedUnlearning(torch.nn.ParameterList([pa]), {pa: torch.tensor([True, False])}, None, None,
                              clip_retain=clip_retain)
    pa.grad = torch.tensor([3.0, 4.0])
    module._phase = "retain"
    module.on_before_optimizer_step(opt)
    torch.testing.assert_close(pa.grad, torch.tensor(expected), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="mmunlearner.clip_retain='no'"):
        MaskedUnlearning(torch.nn.ParameterList([pa]), {}, None, None, clip_retain="no")


def test_bf16_fisher_and_rule_as_clear_gen_mask():
    """CLEAR_gen_mask.py loads Qwen2-VL in bfloat16: SFRon.py's sum and rule run in bfloat16, where 1e-15 is
    representable, so 0/0 = 1 selects the weight (float16: nan, not selected) and x/0 stays finite."""
    from unlearn.mmunlearner.saliency import half_fisher_add, official_half_mask

    acc = half_fisher_add(torch.zeros(3, dtype=torch.bfloat16), torch.tensor([1e-4, 1e-3, 0.1]), 2, torch.bfloat16)
    port = torch.zeros(3, dtype=torch.bfloat16) + torch.tensor([1e-4, 1e-3, 0.1]).bfloat16() ** 2 / 2
    assert acc.dtype == torch.bfloat16 and torch.equal(acc, port)
    assert acc[0] > 0  # no underflow in bfloat16 (float16 gives 0 here)
    f = torch.tensor([0.0, 1e-3, 2e-3, 1e-3])
    p = torch.tensor([0.0, 0.0, 1e-3, 2e-3])
    assert official_half_mask(f, p, 1.0, torch.bfloat16).tolist() == [True, True, True, False]
    assert official_half_mask(f, p, 1.0).tolist() == [False, True, True, False]  # float16
    # gamma 2: 0/0 = 1 < 2 is not selected; 2e-3 / 1e-3 = 2 exactly in bfloat16 (a power of two apart): a tie, selected
    assert official_half_mask(f, p, 2.0, torch.bfloat16).tolist() == [False, True, True, False]


def test_fp16_fisher_underflows_as_theirs():
    from unlearn.mmunlearner.saliency import half_fisher_add, official_half_mask, saliency_mask

    acc = torch.zeros(3, dtype=torch.float16)
    acc = half_fisher_add(acc, torch.tensor([1e-4, 1e-3, 0.1]), 2)
    # 1e-4 ** 2 = 1e-8 < 2 ** -25: 0. fp16(1e-3) ** 2 -> 17 * 2 ** -24, / 2 -> 8.5 -> 8 * 2 ** -24 (to even).
    # fp16(0.1) = 0.0999755859375, squared and halved -> 0.00499725341796875
    assert acc.dtype == torch.float16 and acc.tolist() == [0.0, 8 * 2.0 ** -24, 0.00499725341796875]
    # mask: 0/0 = nan -> no; x/0 = inf -> yes (a preserve square that underflowed selects the weight)
    f = torch.tensor([0.0, 1e-3, 2e-3, 1e-3], dtype=torch.float16)
    p = torch.tensor([0.0, 0.0, 1e-3, 2e-3], dtype=torch.float16)
    assert official_half_mask(f, p, 1.0).tolist() == [False, True, True, False]
    # the same gradients in float32: preserve 1e-8 is not 0, so forget 1e-8 against it is a tie (selected),
    # and in float16 both are 0: 0/0, not selected
    grads_f, grads_p = torch.tensor([1e-4]), torch.tensor([1e-4])
    f16 = half_fisher_add(torch.zeros(1, dtype=torch.float16), grads_f, 1)
    p16 = half_fisher_add(torch.zeros(1, dtype=torch.float16), grads_p, 1)
    assert official_half_mask(f16, p16).tolist() == [False]
    assert saliency_mask(grads_f ** 2, grads_p ** 2).tolist() == [True]
    # port of SFRon.py with a preserve gradient that underflows and a forget one that does not
    port = ((torch.tensor([1e-3]).half() ** 2 / 1 + 1e-15) / (torch.tensor([1e-4]).half() ** 2 / 1 + 1e-15)) >= 1
    ours = official_half_mask(half_fisher_add(torch.zeros(1, dtype=torch.float16), torch.tensor([1e-3]), 1),
                              half_fisher_add(torch.zeros(1, dtype=torch.float16), torch.tensor([1e-4]), 1))
    assert ours.tolist() == port.tolist() == [True]


def test_hf_adamw_first_step_hand_computed():
    from unlearn.optim import HFAdamW

    # step 1, g = 1e-4: m = 0.1 g, v = 0.001 g^2, step size lr sqrt(0.001) / 0.1, denominator sqrt(v) + 1e-6:
    # update = -lr * sqrt(0.001) * 1e-4 / (sqrt(0.001) * 1e-4 + 1e-6) = -0.759746 lr (torch AdamW, eps 1e-6: -0.990 lr)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = HFAdamW([w], lr=1e-3)
    assert opt.defaults["eps"] == 1e-6 and opt.defaults["weight_decay"] == 0.0
    w.grad = torch.tensor([1e-4])
    opt.step()
    r = math.sqrt(1e-3) * 1e-4
    assert w.item() == pytest.approx(-1e-3 * r / (r + 1e-6), rel=1e-5)
    assert w.item() == pytest.approx(-0.759746e-3, rel=1e-5)


def test_all_linear_targets_are_their_find_all_linear_names(tiny_model):
    from peft import LoraConfig, get_peft_model

    from unlearn.mmunlearner.lora import all_linear_targets

    model = tiny_model[0]
    ours = all_linear_targets(model)
    assert ours == ["mlp.down_proj", "mlp.fc1", "mlp.fc2", "mlp.gate_proj", "mlp.up_proj", "multi_modal_projector.linear_1",
                    "multi_modal_projector.linear_2", "self_attn.k_proj", "self_attn.o_proj", "self_attn.out_proj",
                    "self_attn.q_proj", "self_attn.v_proj"]
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)} - {"lm_head"}
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=ours, init_lora_weights="gaussian"))
    adapted = {n.split(".lora_A")[0] for n, _ in wrapped.named_parameters() if ".lora_A." in n}
    assert {n.removeprefix("base_model.model.") for n in adapted} == linears  # vision, projector, language


def _their_layout(name: str) -> str:
    """A LLaVA module name of this transformers as transformers 4.45-4.49 wrote it, the versions their scripts
    run on (MLLMU_manifold.py:15 and SFRon.py:8 import transformers.AdamW, removed in 4.50)."""
    if name == "lm_head":
        return "language_model.lm_head"
    for new, old in (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def _their_find_all_linear_names(linear_names):
    """MLLMU_manifold.py:24-40 find_all_linear_names, over the names of the model's Linears."""
    lora_module_names = set()
    multimodal_keywords = ["embeddings", "embed_tokens", "patch_embed"]
    for name in linear_names:
        if any(mm_keyword in name for mm_keyword in multimodal_keywords):
            continue
        names = name.split('.')
        lora_module_names.add(names[0] if len(names) == 1 else ".".join(names[-2:]))
    if 'lm_head' in lora_module_names:  # needed for 16-bit
        lora_module_names.remove('lm_head')
    return list(lora_module_names)


def _their_adapted(model, layout=_their_layout) -> set[str]:
    """This transformers' names of the Linears their targets adapt: found on `layout`'s names as peft finds them
    (the name equals a key or ends with '.' + key)."""
    names = {n: layout(n) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    keys = _their_find_all_linear_names(names.values())
    return {n for n, old in names.items() if any(old == k or old.endswith("." + k) for k in keys)}


def test_all_linear_and_head_adapts_what_their_rule_adapts_under_their_transformers(tiny_model):
    """Their rule drops a bare 'lm_head' only; under their transformers LLaVA's head is language_model.lm_head,
    so their LLaVA runs adapt it (on this transformers' names the same rule would drop it)."""
    from peft import LoraConfig, get_peft_model

    from unlearn.mmunlearner.lora import all_linear_targets

    model = tiny_model[0]
    theirs = _their_adapted(model)
    assert "lm_head" in theirs and _their_adapted(model, layout=lambda n: n) == theirs - {"lm_head"}
    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=all_linear_targets(model, head=True),
                                                              init_lora_weights="gaussian"))
    adapted = {n.split(".lora_A")[0].removeprefix("base_model.model.") for n, _ in wrapped.named_parameters()
               if ".lora_A." in n}
    assert adapted == theirs
    assert all_linear_targets(model) == sorted(set(all_linear_targets(model, head=True)) - {"lm_head"})
    with pytest.raises(ValueError, match="no lm_head"):
        all_linear_targets(torch.nn.Sequential(torch.nn.Linear(2, 2)), head=True)


def _official_cfg(tmp_path, *overrides):
    from .test_finetune import _cfg

    return _cfg(tmp_path, "experiment=mmunlearner_official", "model=tiny_llava", "data=mllmu_mini",
                "data.forget_split=forget_10", *overrides)


def _hf_adamw_port(params, lr, eps=1e-6, betas=(0.9, 0.999)):
    """transformers.AdamW (v4) step: eps added to sqrt(v), bias correction in the step size; decay 0."""
    state = {p: [0, torch.zeros_like(p), torch.zeros_like(p)] for p in params}

    def step():
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    continue
                s = state[p]
                s[0] += 1
                s[1].mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
                s[2].mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
                size = lr * math.sqrt(1 - betas[1] ** s[0]) / (1 - betas[0] ** s[0])
                p.addcdiv_(s[1], s[2].sqrt().add_(eps), value=-size)
    return step


def _their_batches(cfg, benchmark, proc):
    """Forget and retain batches of their collate's sequences, every non-pad token labelled (the image positions as
    the preset's image_labels says; tests/test_written_sequences.py holds these against a port of that collate),
    in the order the run's loaders draw them (data plumbing, not the method: theirs shuffles unseeded)."""
    from torch.utils.data import ConcatDataset

    from unlearn.data.collate import collate
    from unlearn.data.sampling import EpochShuffle
    from unlearn.data.written import WrittenSequences

    from unlearn.models.loading import with_image_labels

    pad, B = proc.tokenizer.pad_token_id, cfg.mmunlearner.batch_size
    proc = with_image_labels(proc, cfg.mmunlearner.image_labels, "mmunlearner.image_labels")  # their processor's
    forget = WrittenSequences(benchmark.train_rows("forget"), proc, "multimodal", "mmunlearner")
    retain = ConcatDataset([WrittenSequences(benchmark.train_rows("retain"), proc, "multimodal", "mmunlearner")])

    def batches(ds, seed):
        order = list(EpochShuffle(len(ds), seed))
        return [collate([ds[i] for i in order[j:j + B]], pad) for j in range(0, len(order), B)]
    return batches(forget, cfg.seed), batches(retain, cfg.seed + 1)


def _their_loop(model, fb, rb, lr, grad_mask=None, clip_retain=True):
    """MLLMU_manifold.py:224-266 (CLEAR_manifold.py:183-213 without the retain clip): one transformers AdamW over
    every trainable tensor; a forget step before retain batch i when i % forget_freq == 0 and forget batches
    remain: ascent, clip over all gradients, then `grad *= mask` for the names in the mask, step."""
    params = [p for p in model.parameters() if p.requires_grad]
    step = _hf_adamw_port(params, lr=lr)

    def loss_of(batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     pixel_values=batch.get("pixel_values"), labels=batch["labels"]).loss

    freq, f_iter = len(rb) // len(fb), iter(fb)
    assert freq > 1 and len(rb) % len(fb)  # a last forget step followed by more retain batches than the others
    for i, retain_batch in enumerate(rb):
        if i % freq == 0:
            try:
                batch = next(f_iter)
                (-loss_of(batch)).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                for name, p in model.named_parameters():
                    if grad_mask is not None and p.grad is not None and name in grad_mask:
                        p.grad *= grad_mask[name]
                step()
                model.zero_grad()
            except StopIteration:
                pass
        loss_of(retain_batch).backward()
        if clip_retain:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        step()
        model.zero_grad()


@pytest.mark.slow
def test_official_lora_run_without_mask_equals_their_loop(tmp_path, small_benchmark, tiny_model):
    """experiment=mmunlearner_official (apply_mask false): unmasked LoRA ascent / descent, as their loop."""
    from peft import LoraConfig, get_peft_model

    from unlearn.methods.mmunlearner import run
    from unlearn.models.precision import cast_parameters
    from unlearn.pipeline import RunContext

    start, proc = tiny_model
    cfg = _official_cfg(tmp_path, "mmunlearner.lora.dropout=0.0", "mmunlearner.forget_optimizer.lr=1e-3",
                        "mmunlearner.retain_optimizer.lr=1e-3")  # no dropout noise; an lr that moves the tiny model
    m = cfg.mmunlearner
    assert not m.apply_mask and m.lora.init == "gaussian" and m.clip_scope == "all" and m.optimizers == "one"
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path)
    torch.manual_seed(123)
    run(ctx)
    assert not (tmp_path / "mmunlearner" / "mask.safetensors").exists() and ctx.artifacts["mmunlearner"] == {
        "apply_mask": False}

    # the port: their LoRA config, their loop, one optimiser, clip over everything, no mask
    torch.manual_seed(123)
    loaded = copy.deepcopy(start)  # MLLMU_manifold.py:53: torch_dtype=float16, then the float32 upcast
    cast_parameters(loaded, torch.float16)
    cast_parameters(loaded, torch.float32)
    assert m.start_precision == "float16"
    assert m.lora.target_modules == "all_linear_and_head"
    model = get_peft_model(copy.deepcopy(loaded), LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0,
                                                             target_modules=sorted(_their_adapted(start)),
                                                             init_lora_weights="gaussian"))
    model.train()
    _their_loop(model, *_their_batches(cfg, small_benchmark, proc), lr=1e-3)
    official = model.merge_and_unload()
    moved = 0
    for n, p in official.named_parameters():
        torch.testing.assert_close(ctx.model.get_parameter(n), p, rtol=1e-4, atol=1e-6, msg=n)
        moved += not torch.equal(p, loaded.get_parameter(n))
    assert moved > 0


@pytest.mark.slow
def test_official_masked_full_parameter_run_equals_their_loop(tmp_path, small_benchmark, tiny_model):
    """The masked update the Qwen2-VL and CLEAR presets run (full parameters, one AdamW, clip over every
    gradient, then `grad *= mask` for the mask's eligible names, unmasked ascent outside them, the momentum
    moving masked-out elements), against their loop given the mask this run saved."""
    from safetensors.torch import load_file

    from unlearn.methods.mmunlearner import run
    from unlearn.models.precision import cast_parameters
    from unlearn.pipeline import RunContext

    start, proc = tiny_model
    cfg = _official_cfg(tmp_path, "mmunlearner.apply_mask=true", "mmunlearner.lora.enabled=false",
                        "mmunlearner.forget_optimizer.lr=1e-3", "mmunlearner.retain_optimizer.lr=1e-3")
    m = cfg.mmunlearner
    assert m.clip_scope == "all" and m.optimizers == "one" and not m.restore_masked and m.groups == "language"
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path)
    torch.manual_seed(123)
    run(ctx)

    # MLLMU_manifold.py:158-175 keeps the mask file's names that hold one of these
    saved = load_file(str(tmp_path / "mmunlearner" / "mask.safetensors"))
    grad_mask = {n: v.float() for n, v in saved.items() if any(k in n for k in ("proj", "fc", "linear", "mlp", "qkv"))}
    assert grad_mask
    selected = sum(int(v.sum()) for v in grad_mask.values())
    assert 0 < selected < sum(v.numel() for v in grad_mask.values())  # a mask that masks

    torch.manual_seed(123)
    model = copy.deepcopy(start)
    cast_parameters(model, torch.float16)  # start_precision: their float16 load (then trained in float32 here)
    cast_parameters(model, torch.float32)
    loaded = copy.deepcopy(model)
    model.train()
    _their_loop(model, *_their_batches(cfg, small_benchmark, proc), lr=1e-3, grad_mask=grad_mask)
    moved_out = 0
    for n, p in model.named_parameters():
        torch.testing.assert_close(ctx.model.get_parameter(n), p, rtol=1e-4, atol=1e-6, msg=n)
        if n not in grad_mask:
            moved_out += not torch.equal(p, loaded.get_parameter(n))  # unmasked ascent outside the mask
    assert moved_out > 0


@pytest.mark.slow
def test_official_settings_with_apply_mask_still_mask(tmp_path, small_benchmark, tiny_model):
    import json

    from unlearn.methods.mmunlearner import run
    from unlearn.pipeline import RunContext

    model, proc = tiny_model
    cfg = _official_cfg(tmp_path, "mmunlearner.apply_mask=true", "mmunlearner.lora.init=pissa",
                        "mmunlearner.fisher_shuffle=false")
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path)
    run(ctx)
    summary = json.loads((tmp_path / "mmunlearner" / "mask_summary.json").read_text())
    assert 0 < summary["selected"] < summary["elements"]
    assert all("lora_" in n and "language_model" in n for n in summary["tensors"])  # groups: language
    # gaussian init is refused while a mask applies (lora_A could never be selected)
    cfg = _official_cfg(tmp_path, "mmunlearner.apply_mask=true")
    with pytest.raises(ValueError, match="mmunlearner.lora.init='gaussian'"):
        run(RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path))
    cfg = _official_cfg(tmp_path, f"mmunlearner.mask_path={tmp_path / 'mmunlearner' / 'mask.safetensors'}")
    with pytest.raises(ValueError, match="mmunlearner.apply_mask=false applies none"):
        run(RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path))


@pytest.mark.slow
def test_the_mask_pass_scores_the_model_before_the_vocabulary_is_cut(tmp_path, monkeypatch):
    """Their mask scripts score the vanilla model as loaded; only the update scripts resize the vocabulary
    (MLLMU_manifold.py:112): the Fisher sees the padded rows, the update the cut model, with the masks of the
    resized tensors cut to its rows."""
    from safetensors import safe_open

    import unlearn.methods.mmunlearner as mmu
    from unlearn.config import compose_config
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import build_tiny_real
    from unlearn.pipeline import run

    model, tok, images = build_tiny_real("llava")
    model.resize_token_embeddings(len(tok) + 8)  # padded, as llava-1.5-7b-hf's 32064 rows against 32002
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "llava")
    seen = {}
    compute, update = mmu.compute_masks, mmu.masked_update
    monkeypatch.setattr(mmu, "compute_masks", lambda ctx, *a, **k: (
        seen.setdefault("fisher_rows", ctx.model.get_input_embeddings().weight.shape[0]), compute(ctx, *a, **k))[1])

    def checked_update(ctx, masks, m, *a, **k):
        params = dict(ctx.model.named_parameters())
        assert all(any(p is q for q in params.values()) for p in masks)  # keyed to the resized model's tensors
        seen["update_rows"] = params["lm_head.weight"].shape[0]
        seen["head_mask_rows"] = next(m_.shape[0] for p, m_ in masks.items() if p is params["lm_head.weight"])
        return update(ctx, masks, m, *a, **k)
    monkeypatch.setattr(mmu, "masked_update", checked_update)
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config(["experiment=mmunlearner_official", f"data.path={root}", f"model.path={tmp_path / 'llava'}",
                          "data.forget_split=forget_15", "logger=none", "eval.before=false", "eval.max_people=2",
                          "eval.max_new_tokens=2", "eval.tasks=[mc]", "mmunlearner.apply_mask=true",
                          "mmunlearner.lora.enabled=false", "mmunlearner.eligible=null"],
                         tmp_path / "run", tmp_path / "cache")
    run(cfg)
    assert seen == {"fisher_rows": len(tok) + 8, "update_rows": len(tok), "head_mask_rows": len(tok)}
    with safe_open(str(next((tmp_path / "run").rglob("mask.safetensors"))), "pt") as f:
        assert f.get_slice("lm_head.weight").get_shape()[0] == len(tok) + 8  # the mask as their script saves it


def test_image_labels_reach_the_mask_pass_and_the_update(tmp_path, small_benchmark, tiny_model):
    """mmunlearner.image_labels=image_token (the preset's): both data paths of the method read it through the recipe's
    processor (the LLaVA image positions labelled with the image token id), and only they: the evaluation's
    processor is untouched."""
    from unlearn.methods.mmunlearner import fisher_datasets, update_loader
    from unlearn.pipeline import RunContext

    model, proc = tiny_model
    counts = {}
    for labels in (None, "image_token"):
        cfg = _official_cfg(tmp_path, f"mmunlearner.image_labels={labels or 'null'}")
        ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
        fisher = fisher_datasets(ctx, "all", "eval_mc", "mmunlearner")["forget"]
        loader, _ = update_loader(ctx, 4, "official", 0, labels="all", retain_text=False, sequences="mmunlearner")
        batch = next(iter(loader))
        counts[labels] = (sum(proc.image_token_id in fisher[i].labels for i in range(len(fisher))),
                          int((batch["forget"]["labels"] == proc.image_token_id).sum())
                          + sum(int((b["labels"] == proc.image_token_id).sum()) for b in batch["retain"]))
    assert counts[None] == (0, 0)
    assert counts["image_token"][0] == len(fisher) and counts["image_token"][1] > 0
    assert not hasattr(proc, "image_labels")


def test_official_presets_average_each_process_own_tokens(tmp_path):
    """Their update backpropagates each device's `outputs.loss` (mmunlearner.token_mean=process); the default is
    the global batch's mean, and the module takes the mean each names."""
    from unlearn.config import compose_config
    from unlearn.methods.gradient import global_batch_mean, process_batch_mean
    from unlearn.methods.mmunlearner import MaskedUnlearning

    for preset in ("mmunlearner_official", "mmunlearner_qwen2_vl_official", "mmunlearner_clear_official"):
        assert compose_config([f"experiment={preset}"], tmp_path, tmp_path / "c").mmunlearner.token_mean == "process"
    assert compose_config(["method=mmunlearner"], tmp_path, tmp_path / "c").mmunlearner.token_mean == "global"
    for mean, fn in (("global", global_batch_mean), ("process", process_batch_mean)):
        assert MaskedUnlearning(torch.nn.Linear(1, 1), None, None, None, token_mean=mean).batch_mean is fn
    with pytest.raises(ValueError, match="mmunlearner.token_mean='rank'"):
        MaskedUnlearning(torch.nn.Linear(1, 1), None, None, None, token_mean="rank")


def test_the_half_fisher_bench_finds_no_rounding_apart_from_their_cpu_division():
    """bench/half_fisher_check.py, meant for a lent GPU (where a Python divisor rounds some float16 subnormals the
    other way), runs here on CPU: every positive float16 value, 1..8 batches, 0 pairs apart."""
    from bench.half_fisher_check import main

    assert main(["--device", "cpu", "--max-batches", "8"])["differ"] == 0


def test_half_fisher_divides_as_their_cpu_arithmetic_in_both_half_dtypes():
    """The bench a lent GPU runs (bench/half_fisher_check.py), here on CPU: every bfloat16 from 2^-30 to 2^30 and
    batch counts past bfloat16's exact integers (257, 1001), against their `grad.cpu() ** 2 / len(loader)`. On CUDA
    a divisor tensor is cast to the half dtype before dividing (257 reads 256): the division is made in float32."""
    from bench.half_fisher_check import main

    for dtype in ("bfloat16", "float16"):
        got = main(["--device", "cpu", "--dtype", dtype, "--max-batches", "3", "--also", "257", "1001", "2049"])
        assert got["differ"] == 0 and got["batch_counts"] == [1, 2, 3, 257, 1001, 2049]


def test_a_loss_scaler_unscales_only_the_stepped_optimisers_gradients(tmp_path):
    """Why clip_scope=all with two optimisers is refused under 16-mixed: Lightning's scaler unscales the gradients
    of the optimiser it steps, and leaves the others multiplied by the scale (a CPU GradScaler shows it here; if
    Lightning ever unscales them all, this fails and the refusal can go)."""
    import lightning as L
    from lightning.pytorch.plugins import MixedPrecision

    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    seen = {}

    class TwoOptimisers(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
            self.automatic_optimization = False

        def training_step(self, batch, i):
            first, _ = self.optimizers()
            self.manual_backward((self.a * self.b * batch[0]).sum())  # d/da = b * x = 1, d/db = a * x = 1
            first.step()

        def on_before_optimizer_step(self, optimizer):
            seen.update(a=self.a.grad.clone(), b=self.b.grad.clone())

        def configure_optimizers(self):
            return [torch.optim.SGD([self.a], lr=0.0), torch.optim.SGD([self.a, self.b], lr=0.0)]

    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    trainer = L.Trainer(accelerator="cpu", plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], max_steps=1,
                        logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(TwoOptimisers(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(1, 2))))
    torch.testing.assert_close(seen["a"], torch.ones(2))  # unscaled
    torch.testing.assert_close(seen["b"], torch.full((2,), 8.0))  # still scaled
    for overrides, refused in ((["mmunlearner.clip_scope=all", "trainer.precision=16-mixed"], True),
                               (["mmunlearner.clip_scope=all", "mmunlearner.optimizers=one", "trainer.precision=16-mixed"],
                                False),
                               (["mmunlearner.clip_scope=all", "trainer.precision=bf16-mixed"], False),
                               (["trainer.precision=16-mixed"], False)):
        cfg = compose_config(["method=mmunlearner", *overrides], tmp_path / "run", tmp_path / "cache")
        if refused:
            with pytest.raises(ValueError, match="clip_scope=all with mmunlearner.optimizers=two under trainer"):
                check_run_settings(cfg)
        else:
            check_run_settings(cfg)
