"""finetune=mllmu_bench / mllmu_bench_reference: MLLMU-Bench's vanilla and NPO-reference recipes.

The loop test holds `teach` under the preset against a small plain-PyTorch port of their training loop
(franciscoliu/MLLMU-Bench finetune.py:112-221, the same in baselines/reference_model_FT.py): the same batches
through both end at the same merged weights."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from unlearn.config import CONFIG_DIR, compose_config
from unlearn.methods.finetune import check_settings, teach
from unlearn.methods.finetune_settings import PRECISIONS
from unlearn.models.precision import cast_parameters
from unlearn.optim import HFAdamW, linear_schedule
from unlearn.pipeline import RunContext, vanilla_key

from .test_experiments import _leaves

PRESETS = ("mllmu_bench", "mllmu_bench_reference", "mmunlearner_reference", "mmunlearner",
           "mmunlearner_reference_qwen2_vl", "mmunlearner_qwen2_vl", "mmunlearner_clear_reference", "mmunlearner_clear")
OPTIONAL_KEYS = {"lora", "dtype", "precision", "gradient_clip_val", "label_prefix", "anneal_epochs", "sequences",
                 "answer_ids", "resize_embeddings", "start_precision", "family", "image_labels"}


def _cfg(tmp_path, *overrides):
    return compose_config(list(overrides), tmp_path, tmp_path / "cache")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_every_value_lands(name, tmp_path):
    model = "qwen2_vl_7b" if "qwen2_vl" in name or "clear" in name else "llava_1_5_7b"  # their Qwen2-VL branches
    cfg = _cfg(tmp_path, f"finetune={name}", f"model={model}", "data=clear" if "clear" in name else "data=mllmu_bench")
    OmegaConf.resolve(cfg)
    text = (CONFIG_DIR / "finetune" / f"{name}.yaml").read_text()
    raw = yaml.safe_load(text)
    raw.pop("defaults", None)
    for key, value in _leaves(raw):
        if isinstance(value, str) and value.startswith("${"):  # per model: tests/test_training_processor.py
            continue
        assert OmegaConf.select(cfg.finetune, key) == value, f"{name}: finetune.{key}"
    check_settings(cfg.finetune)
    # every value names where it comes from, on its line or in a comment line just above
    lines = text.splitlines()
    for before, line in zip([""] + lines, lines):
        if ":" in line and not line.lstrip().startswith(("#", "-")) and not line.rstrip().endswith(":"):
            assert "#" in line or before.lstrip().startswith("#"), f"{name}: no source comment on {line.strip()!r}"


def test_reference_preset_is_the_vanilla_recipe_on_retain_people_for_one_epoch(tmp_path):
    vanilla = OmegaConf.to_container(_cfg(tmp_path, "finetune=mllmu_bench").finetune, resolve=True)
    reference = OmegaConf.to_container(_cfg(tmp_path, "finetune=mllmu_bench_reference").finetune, resolve=True)
    assert reference == {**vanilla, "people": "without_forget", "epochs": 1}
    assert vanilla["people"] == "all" and vanilla["epochs"] == 5


def test_mmunlearners_reference_is_mllmu_benchs_on_its_answer_only_collate(tmp_path):
    """MMUnlearner's MLLMU_reference.py is MLLMU-Bench's reference_model_FT.py with train_collate_mllmu_ansonly,
    lr 1e-5, the vocabulary cut to the tokenizer and the checkpoint's own processor."""
    theirs = OmegaConf.to_container(_cfg(tmp_path, "finetune=mllmu_bench_reference").finetune, resolve=True)
    ours = OmegaConf.to_container(_cfg(tmp_path, "finetune=mmunlearner_reference").finetune, resolve=True)
    changed = {"answer_only": True, "label_prefix": False, "sequences": "mmunlearner", "answer_ids": "without_first",
               "resize_embeddings": "tokenizer", "image_processor": None, "family": "llava",
               "optimizer": {**theirs["optimizer"], "lr": 1e-5}}
    assert ours == {**theirs, **changed}


def test_mmunlearners_vanilla_recipe_is_its_reference_recipe_on_everyone(tmp_path):
    """MLLMU_finetune.py is MLLMU_reference.py on the full set, LoRA r 8, a bfloat16 load, train_collate_clear."""
    reference = OmegaConf.to_container(_cfg(tmp_path, "finetune=mmunlearner_reference").finetune, resolve=True)
    vanilla = OmegaConf.to_container(_cfg(tmp_path, "finetune=mmunlearner").finetune, resolve=True)
    changed = {"people": "all", "answer_only": False, "label_prefix": True, "answer_ids": "without_specials",
               "start_precision": "bfloat16", "lora": {**reference["lora"], "r": 8}, "image_labels": "image_token"}
    assert vanilla == {**reference, **changed}


def test_new_keys_are_part_of_the_vanilla_cache_key_and_absent_from_the_default(tmp_path):
    default = _cfg(tmp_path)
    assert not OPTIONAL_KEYS & set(default.finetune)  # the default recipe's cached models keep their keys
    keys = {vanilla_key(default), vanilla_key(_cfg(tmp_path, "finetune=mllmu_bench")),
            vanilla_key(_cfg(tmp_path, "finetune=mllmu_bench_reference")),
            vanilla_key(_cfg(tmp_path, "finetune=mmunlearner_reference"))}
    for override in ("finetune.dtype=bfloat16", "finetune.precision=bf16-mixed", "finetune.gradient_clip_val=1.0",
                     "finetune.label_prefix=false", "finetune.lora.r=8", "finetune.scheduler.warmup_steps=3",
                     "finetune.sequences=template", "+finetune.resize_embeddings=tokenizer"):
        keys.add(vanilla_key(_cfg(tmp_path, "finetune=mllmu_bench", override)))
    keys.add(vanilla_key(_cfg(tmp_path, "finetune=mmunlearner_reference", "finetune.answer_ids=without_specials")))
    keys.add(vanilla_key(_cfg(tmp_path, "finetune=mmunlearner")))
    keys.add(vanilla_key(_cfg(tmp_path, "finetune=mmunlearner", "finetune.start_precision=float16")))
    keys.add(vanilla_key(_cfg(tmp_path, "finetune=mmunlearner", "finetune.image_labels=null")))
    assert len(keys) == 16
    # null is left out of the key: the models cached before image_labels existed keep theirs
    assert vanilla_key(_cfg(tmp_path, "+finetune.image_labels=null")) == vanilla_key(default)


@pytest.mark.parametrize("override,match", [
    ("finetune.dtype=float64", r"finetune.dtype='float64'"),
    ("finetune.precision=bf17", r"finetune.precision='bf17'"),
    ("finetune.gradient_clip_val=-1", r"finetune.gradient_clip_val=-1"),
    ("finetune.label_prefix=yes", r"finetune.label_prefix='yes'"),
    ("finetune.answer_only=true", r"finetune.label_prefix=true .* finetune.answer_only=false"),
    ("finetune.lora.r=0", r"finetune.lora.r=0"),
    ("finetune.lora.alpha=0", r"finetune.lora.alpha=0"),
    ("finetune.lora.dropout=1.0", r"finetune.lora.dropout=1.0"),
    ("finetune.lora.init=uniform", r"finetune.lora.init='uniform'"),
    ("finetune.people=forget", r"finetune.people='forget'"),
    ("finetune.sequences=official", r"finetune.sequences='official'"),
    ("finetune.label_prefix=false", r"finetune.sequences=mllmu_bench labels every token.*finetune.label_prefix=true"),
    ("+finetune.answer_ids=without_first", r"finetune.answer_ids=without_first .* needs finetune.sequences=mmunlearner"),
    ("+finetune.resize_embeddings=vocab", r"finetune.resize_embeddings='vocab'"),
    ("finetune.start_precision=float32", r"finetune.start_precision='float32'"),
])
def test_bad_values_name_their_key(override, match, tmp_path):
    cfg = _cfg(tmp_path, "finetune=mllmu_bench", override)
    with pytest.raises(ValueError, match=match):
        check_settings(cfg.finetune)


def test_bad_warmup_names_its_key():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="finetune.scheduler.warmup_steps"):
            linear_schedule(opt, total_steps=10, warmup_steps=bad)
    with pytest.raises(ValueError, match="finetune.scheduler.warmup_steps=10 is not below the 10 steps"):
        linear_schedule(opt, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match=r"finetune.scheduler: \['pct_start'\] not understood"):  # debug=fast's key
        linear_schedule(opt, total_steps=10, pct_start=0.3)


def test_precisions_are_lightnings():
    from typing import get_args

    from lightning.fabric.connector import _PRECISION_INPUT_STR

    assert set(PRECISIONS) <= set(get_args(_PRECISION_INPUT_STR))


def _lrs(make, lr: float, steps: int = 12) -> list[float]:
    """The learning rate at each of `steps` steps of the scheduler `make(optimizer)` builds."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("warmup", [0, 3])
def test_linear_schedule_is_transformers_linear(warmup):
    from transformers import get_scheduler

    ours = _lrs(lambda o: linear_schedule(o, total_steps=10, warmup_steps=warmup), 2e-5)
    theirs = _lrs(lambda o: get_scheduler("linear", optimizer=o, num_warmup_steps=warmup, num_training_steps=10),
                  2e-5)
    assert ours == theirs and ours[-1] == 0.0


def test_warmup_epochs_is_one_epochs_steps_of_transformers_linear():
    """CLEAR's finetune.py / forget.py: get_scheduler("linear") with warmup_steps = max_steps // num_epochs; here
    `warmup_epochs` of the run's `epochs`: 12 steps over 3 epochs warm up over 4."""
    from transformers import get_scheduler

    ours = _lrs(lambda o: linear_schedule(o, total_steps=12, warmup_epochs=1, epochs=3), 1e-5)
    theirs = _lrs(lambda o: get_scheduler("linear", optimizer=o, num_warmup_steps=12 // 3, num_training_steps=12),
                  1e-5)
    assert ours == theirs
    assert ours[:5] == pytest.approx([0.0, 2.5e-6, 5e-6, 7.5e-6, 1e-5], rel=1e-12)  # rising over 4 steps
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="finetune.scheduler.warmup_epochs=1 needs the run's epochs"):
        linear_schedule(opt, total_steps=12, warmup_epochs=1)
    with pytest.raises(ValueError, match="warmup_epochs=3 is not below the run's 3 epochs"):
        linear_schedule(opt, total_steps=12, warmup_epochs=3, epochs=3)
    # 2 steps over 3 epochs (trainer.max_steps=2): one epoch's share is no step; until 2026-12-06 no warm-up, unsaid
    with pytest.raises(ValueError, match=r"warmup_epochs=1 of the run's 3 epochs is no step of its 2: .*warmup_steps"):
        linear_schedule(opt, total_steps=2, warmup_epochs=1, epochs=3)
    assert _lrs(lambda o: linear_schedule(o, total_steps=3, warmup_epochs=1, epochs=3), 1e-5)[:2] == [0.0, 1e-5]
    with pytest.raises(ValueError, match="warmup_steps and warmup_epochs both set"):
        linear_schedule(opt, total_steps=12, warmup_steps=2, warmup_epochs=1, epochs=3)


def test_method_warmup_needs_the_linear_decay():
    from unlearn.methods.gradient import GradientUnlearning

    with pytest.raises(ValueError, match="method.warmup_epochs=1 warms up the linear decay: it needs method.lr_decay"):
        GradientUnlearning(torch.nn.Linear(1, 1), "ga", lambda p: torch.optim.SGD(p, lr=1.0), warmup_epochs=1,
                           epochs=2)


def test_label_prefix_labels_text_before_the_question_but_not_image_tokens(small_benchmark, tiny_model):
    from unlearn.data.collate import IGNORE
    from unlearn.data.sequences import QASequences
    from unlearn.data.sequences import PrefixLabels

    _, proc = tiny_model
    rows = small_benchmark.train_rows("forget")
    plain = QASequences(rows, proc, ("multimodal", "text"), answer_only=False)
    labelled = PrefixLabels(QASequences(rows, proc, ("multimodal", "text"), answer_only=False), proc)
    for i in (0, 1):  # one multimodal, one text-only sequence
        ex, ref = labelled[i], plain[i]
        assert ex.input_ids == ref.input_ids
        want = [IGNORE if t == proc.image_token_id else t for t in ex.input_ids]
        assert ex.labels == want
        assert ref.labels[0] == IGNORE and ex.labels[0] == proc.tokenizer.bos_token_id
    assert proc.image_token_id in labelled[0].input_ids


def test_dtype_casts_parameters_not_buffers():
    model = torch.nn.BatchNorm1d(3).to(torch.bfloat16)
    cast_parameters(model, torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.running_mean.dtype == torch.bfloat16 and model.num_batches_tracked.dtype == torch.int64


# --- their loop, ported ------------------------------------------------------------------------------------

def _their_targets(model, skipped=("multi_modal_projector", "vision_model", "vision_tower")) -> list[str]:
    """finetune.py:34-47 find_all_linear_names: the last name component of every Linear whose name holds none of
    `skipped` (the tower and the projector), minus lm_head. Under their transformers 4.45.1 the tower is
    vision_tower.vision_model.*; this transformers names it vision_tower.encoder.*, so `vision_tower` stands in for
    `vision_model`."""
    names = set()
    for name, module in model.named_modules():
        if any(k in name for k in skipped):
            continue
        if isinstance(module, torch.nn.Linear):
            parts = name.split(".")
            names.add(parts[0] if len(parts) == 1 else parts[-1])
    names.discard("lm_head")
    return sorted(names)


def _their_loop(model, batches, lr, epochs, pad_id, image_id, seed, batch_seeds):
    """finetune.py:112-214 without accumulation: LoRA r16/alpha16/dropout .05/gaussian on their targets after
    prepare_model_for_kbit_training (freeze, fp16/bf16 -> fp32), transformers' AdamW, get_scheduler("linear",
    0 warm-up, len(loader) * epochs) stepped every batch, no clipping; merged at the end (finetune.py:220)."""
    from peft import LoraConfig, get_peft_model
    from transformers import get_scheduler

    for p in model.parameters():  # prepare_model_for_kbit_training on an unquantised model
        p.requires_grad = False
        if p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.to(torch.float32)
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05,
                                             target_modules=_their_targets(model), init_lora_weights="gaussian"))
    optimizer = HFAdamW(model.parameters(), lr=lr)
    scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0,
                              num_training_steps=len(batches) * epochs)
    model.train()
    for batch, batch_seed in zip(batches, batch_seeds):
        labels = batch["input_ids"].clone()  # data_preprocess.py:372-374: every non-pad token
        labels[labels == pad_id] = -100
        labels[labels == image_id] = -100  # their legacy LLaVA path masks the image positions
        assert torch.equal(labels, batch["labels"])  # ours labels the same tokens (label_prefix, answer_only false)
        torch.manual_seed(batch_seed)  # the same LoRA dropout masks as our step
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch["pixel_values"], labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return model.merge_and_unload()


def test_preset_loop_ends_at_the_weights_of_their_loop(tmp_path, small_benchmark, tiny_model):
    model, proc = tiny_model
    cfg = _cfg(tmp_path, "finetune=mllmu_bench", "finetune.epochs=1")
    start = copy.deepcopy(model)
    batches, seeds, lrs = [], [], []

    class Record(L.Callback):  # the batches our epoch saw, in order; a known seed before each step's dropout
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batches.append({k: v.clone() for k, v in batch.items()})
            seeds.append(1000 + batch_idx)
            torch.manual_seed(1000 + batch_idx)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            lrs.append(optimizer.param_groups[0]["lr"])

    ctx = RunContext(cfg, small_benchmark, model, proc, tmp_path)
    real_trainer = ctx.trainer
    seen = {}

    def trainer(**kw):
        seen.update(kw)
        return real_trainer(**{**kw, "callbacks": [*kw.get("callbacks", []), Record()]})

    ctx.trainer = trainer
    torch.manual_seed(0)  # the LoRA init draws (nothing in teach draws from torch before it)
    teach(ctx, cfg.finetune)
    assert seen["precision"] == "32-true" and seen["gradient_clip_val"] is None
    assert all("pixel_values" in b for b in batches) and batches[0]["input_ids"].shape[0] == 4  # image form, 4 rows
    n_rows = sum(len(r["qa"]) for r in small_benchmark.train_rows("all"))
    assert len(batches) == -(-n_rows // 4)  # every QA pair of every person once
    assert lrs[0] == 2e-5 and lrs[-1] == pytest.approx(2e-5 / len(batches))  # linear to 0 over the epoch

    loaded = copy.deepcopy(start)  # finetune.py:58-62: from_pretrained(torch_dtype=torch.float16) casts the params
    cast_parameters(loaded, torch.float16)
    theirs = _their_loop(loaded, batches, 2e-5, 1, proc.tokenizer.pad_token_id, proc.image_token_id,
                         seed=0, batch_seeds=seeds)
    ours = dict(ctx.model.named_parameters())
    assert set(ours) == {n for n, _ in theirs.named_parameters()}
    moved = 0.0
    for n, p in theirs.named_parameters():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=1e-7, msg=n)
        moved = max(moved, (p - start.get_parameter(n)).abs().max().item())
    assert moved > 1e-5  # the loops changed weights, so the equality is not two untouched models
