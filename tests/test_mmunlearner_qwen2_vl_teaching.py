"""MMUnlearner's Qwen2-VL teaching scripts as presets: finetune=mmunlearner_reference_qwen2_vl (MLLMU_reference.py),
finetune=mmunlearner_qwen2_vl (MLLMU_finetune.py), finetune=mmunlearner_clear_reference (CLEAR_reference.py, their
README's CLEAR vanilla model and NPO oracle alike) and finetune=mmunlearner_clear (CLEAR_finetune.py), each the
Qwen2-VL branch of its script (Z1zs/MMUnlearner at fa77c66).

The loop test holds teaching under finetune=mmunlearner_clear_reference against a plain port of CLEAR_reference.py's
Qwen2-VL branch (:97-120, :137, :172-215): a bfloat16 load with no upcast, peft LoRA, transformers' AdamW (the
project's copy, unlearn.optim.HFAdamW: transformers 5 has none), the linear schedule, `model(**batch)`; the same
batches through both end at the same adapters and merged weights. What it does not port: their rows and
input ids (the port runs on our recorded batches and recomputes only the labels, by train_collate_clear's rule;
tests/test_written_sequences.py holds the strings) and the gaussian init draws (unseeded there: the port starts
from our adapters)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from omegaconf import OmegaConf

from unlearn.config import compose_config

from .test_finetune_mllmu_bench import _their_targets as mllmu_bench_targets


def _finetune(tmp_path, name, *overrides):
    data = "data=clear" if "clear" in name else "data=mllmu_bench"
    cfg = compose_config(["method=finetune", f"finetune={name}", "model=qwen2_vl_7b", data, *overrides], tmp_path,
                         tmp_path / "cache")
    return OmegaConf.to_container(cfg.finetune, resolve=True)


def test_qwen2_vl_reference_is_the_llava_reference_loaded_in_bfloat16_without_the_upcast(tmp_path):
    """MLLMU_reference.py's Qwen2-VL branch (:99-122) differs from its LLaVA branch (:45-72) in the load: bfloat16
    and no prepare_model_for_kbit_training, where LLaVA loads float16 and upcasts to float32 (and in what no setting
    here holds: LLaVA's add_tokens, which adds nothing to llava-hf's tokenizer, and Qwen2-VL's flash_attention_2)."""
    llava = _finetune(tmp_path, "mmunlearner_reference")
    qwen = _finetune(tmp_path, "mmunlearner_reference_qwen2_vl")
    assert (llava["dtype"], llava["start_precision"]) == ("float32", "float16")
    assert qwen == {**llava, "dtype": "bfloat16", "start_precision": None, "family": "qwen2_vl"}
    assert llava["family"] == "llava"


def test_qwen2_vl_vanilla_recipe_keeps_lora_rank_16(tmp_path):
    """MLLMU_finetune.py changed LoRA r to 8 in its LLaVA branch only (:57); its Qwen2-VL branch keeps r 16 (:110)."""
    llava = _finetune(tmp_path, "mmunlearner")
    qwen = _finetune(tmp_path, "mmunlearner_qwen2_vl")
    assert llava["lora"]["r"] == 8 and llava["start_precision"] == "bfloat16" and llava["image_labels"] == "image_token"
    assert qwen == {**llava, "dtype": "bfloat16", "start_precision": None, "lora": {**llava["lora"], "r": 16},
                    "family": "qwen2_vl", "image_labels": None}


def test_clear_reference_is_mllmu_reference_on_train_collate_clear(tmp_path):
    """CLEAR_reference.py is MLLMU_reference.py reading CLEAR's retain captions with train_collate_clear (every
    non-pad token labelled) instead of train_collate_mllmu_ansonly."""
    mllmu = _finetune(tmp_path, "mmunlearner_reference_qwen2_vl")
    clear = _finetune(tmp_path, "mmunlearner_clear_reference")
    assert clear == {**mllmu, "answer_only": False, "label_prefix": True, "answer_ids": "without_specials",
                     "train_pairs": "clear"}
    assert clear["people"] == "without_forget" and clear["forms"] == ["multimodal"]


def test_clear_finetune_is_clear_reference_on_everyone_in_float16(tmp_path):
    """CLEAR_finetune.py: full+tofu (every author), the TOFU questions twice, a float16 load, argparse's defaults."""
    reference = _finetune(tmp_path, "mmunlearner_clear_reference")
    vanilla = _finetune(tmp_path, "mmunlearner_clear")
    assert vanilla == {**reference, "people": "all", "forms": ["multimodal", "text", "text"], "epochs": 5,
                       "dtype": "float16", "optimizer": {**reference["optimizer"], "lr": 5e-4}}


def test_clear_finetune_reads_each_caption_once_and_each_tofu_question_twice():
    """forms [multimodal, text, text] over data.spec.train_pairs=clear rows: a caption pair has only the image form
    and a TOFU pair only the text form, so an epoch holds each caption once and each TOFU question twice, as
    ConcatDataset([CLEAR_Dataset(NONE_MODE), CLEAR_Dataset(CAPTION_MODE)]) does (CLEAR_finetune.py:151-154)."""
    from unlearn.data.sequences import QASequences

    row = {"ID": "a", "qa": [{"multimodal_question": "Describe the image.", "text_question": None, "answer": "cap"},
                             {"multimodal_question": None, "text_question": "Where was a born?", "answer": "Oslo"}]}

    class Proc:  # QASequences reads nothing else of the processor before an item is built
        eager_images = False

    ds = QASequences([{**row, "images": []}], Proc(), ("multimodal", "text", "text"), True)
    assert sorted((form, q) for _, form, q, _ in ds.index) == [
        ("multimodal", "Describe the image."), ("text", "Where was a born?"), ("text", "Where was a born?")]


def test_a_branch_names_its_family_and_another_familys_model_is_refused(tmp_path):
    from unlearn.methods.finetune import check_family, check_settings

    check_family(None, "idefics2", "idefics2_8b")  # no family named: any model
    check_family("qwen2_vl", "qwen2_vl", "qwen2_vl_7b")
    with pytest.raises(ValueError, match=r"finetune.family=llava: .* model=qwen2_vl_7b is a qwen2_vl model"):
        check_family("llava", "qwen2_vl", "qwen2_vl_7b")
    cfg = compose_config(["finetune=mmunlearner_reference", "finetune.family=qwen3"], tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"finetune.family='qwen3'"):
        check_settings(cfg.finetune)


def test_a_local_checkpoints_family_is_checked_before_its_weights_load(tmp_path):
    """finetune.family against the checkpoint's config.json model_type, in the settings check: a 7B model of
    another family is refused before it loads."""
    import json

    from unlearn.settings import check_run_settings

    for model_type in ("qwen2_vl", "llava"):
        (tmp_path / model_type).mkdir()
        (tmp_path / model_type / "config.json").write_text(json.dumps({"model_type": model_type}))
    common = ["method=finetune", "finetune=mmunlearner_reference", "model=llava_1_5_7b", "model.dtype=float32",
              "data=mllmu_bench"]
    check_run_settings(compose_config([*common, f"model.path={tmp_path / 'llava'}"], tmp_path, tmp_path / "cache"))
    cfg = compose_config([*common, f"model.path={tmp_path / 'qwen2_vl'}"], tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"finetune.family=llava: .* model=llava_1_5_7b is a qwen2_vl model"):
        check_run_settings(cfg)


@pytest.mark.slow
def test_the_llava_branch_refuses_a_qwen2_vl_model_before_teaching(tmp_path, monkeypatch):
    """finetune=mmunlearner_reference (MLLMU_reference.py's LLaVA branch: a float16 load upcast to float32) on a
    Qwen2-VL model would be neither branch of their script."""
    import unlearn.methods.finetune as finetune
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.pipeline import run

    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    source, _ = _padded_qwen2_vl(tmp_path, monkeypatch, root)
    fits = []
    monkeypatch.setattr(finetune.FinetuneModule, "on_fit_start", lambda self: fits.append(1))
    with pytest.raises(ValueError, match=r"finetune.family=llava: .* is a qwen2_vl model"):
        run(compose_config(["method=finetune", "finetune=mmunlearner_reference", "model=qwen2_vl_7b",
                            "model.dtype=float32", f"model.path={source}", "data=mllmu_bench", f"data.path={root}",
                            "data.forget_split=forget_15", "model.portrait_size=32", "logger=none"],
                           tmp_path / "run", tmp_path / "cache"))
    assert not fits


def test_the_clear_presets_refuse_other_train_pairs_before_anything_loads(tmp_path):
    """CLEAR_reference.py's rows are data.spec.train_pairs=clear's; data=clear's default (both_forms) would add name
    pairs and image-form TOFU questions under the same forms."""
    from unlearn.methods.finetune import check_settings
    from unlearn.settings import check_run_settings

    common = ["method=finetune", "model=qwen2_vl_7b", "data=clear"]
    for name in ("mmunlearner_clear_reference", "mmunlearner_clear"):
        cfg = compose_config([*common, f"finetune={name}"], tmp_path, tmp_path / "cache")
        with pytest.raises(ValueError, match=r"finetune.train_pairs=clear: .* data.spec.train_pairs=both_forms"):
            check_run_settings(cfg)
        check_run_settings(compose_config([*common, f"finetune={name}", "data.spec.train_pairs=clear"], tmp_path,
                                          tmp_path / "cache"))
    cfg = compose_config([*common, "finetune=mmunlearner_clear", "finetune.train_pairs=pairs"], tmp_path,
                         tmp_path / "cache")
    with pytest.raises(ValueError, match=r"finetune.train_pairs='pairs'"):
        check_settings(cfg.finetune)


def test_the_guards_leave_the_vanilla_cache_key_as_it_was(tmp_path):
    """finetune.family and finetune.train_pairs check a run; the weights taught are the same either way."""
    from unlearn.pipeline import vanilla_key

    key = vanilla_key(compose_config([], tmp_path, tmp_path / "cache"))
    for guard in ("+finetune.family=llava", "+finetune.train_pairs=clear"):
        assert vanilla_key(compose_config([guard], tmp_path, tmp_path / "cache")) == key
    assert vanilla_key(compose_config(["+finetune.anneal_epochs=1"], tmp_path, tmp_path / "cache")) != key


def _padded_qwen2_vl(tmp_path, monkeypatch, words_root):
    """A tiny Qwen2-VL checkpoint whose vocabulary is padded past its tokenizer, as Qwen2-VL-7B-Instruct's 152064
    rows are past its 151657 tokens; the tiny word tokenizer is given the fixture's words."""
    import unlearn.models.tiny_real as tiny_real
    from unlearn.models.tiny_real import snapshot_words

    base = tiny_real.vocabulary
    monkeypatch.setattr(tiny_real, "vocabulary", lambda: base() + snapshot_words(words_root))
    model, tok, images = tiny_real.build_tiny_real("qwen2_vl")
    model.resize_token_embeddings(len(tok) + 8)
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "qwen2_vl")
    return tmp_path / "qwen2_vl", tok


def _lm_head_rows(path):
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        (name,) = [k for k in f.keys() if k.endswith("lm_head.weight")]
        return f.get_slice(name).get_shape()[0]


class _Record:
    """What a FinetuneModule saw: its batches (a known seed before each step's LoRA dropout), each step's lr, the
    adapters at the start and the end, the parameters' dtypes."""

    def __init__(self, monkeypatch):
        import unlearn.methods.finetune as finetune

        self.batches, self.seeds, self.lrs, self.adapters, self.dtypes = [], [], [], [], set()
        record = self

        class Recorded(finetune.FinetuneModule):
            def on_fit_start(self):
                super().on_fit_start()
                record.adapters.append(record._adapters(self.model))
                record.dtypes.update(("lora_" in n, p.dtype) for n, p in self.model.named_parameters())

            def on_train_batch_start(self, batch, batch_idx):
                record.batches.append({k: v.clone() for k, v in batch.items()})
                record.seeds.append(1000 + batch_idx)
                torch.manual_seed(1000 + batch_idx)

            def on_before_optimizer_step(self, optimizer):
                record.lrs.append(optimizer.param_groups[0]["lr"])

            def on_fit_end(self):
                record.adapters.append(record._adapters(self.model))

        monkeypatch.setattr(finetune, "FinetuneModule", Recorded)

    @staticmethod
    def _adapters(model):
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def _their_targets(model) -> list[str]:
    """CLEAR_reference.py:22-35 find_all_linear_names: MLLMU-Bench's rule with "visual" among the names skipped."""
    return mllmu_bench_targets(model, ("multi_modal_projector", "vision_model", "visual"))


def _their_clear_reference_loop(source, tok, batches, seeds, start_adapters, lr):
    """CLEAR_reference.py's Qwen2-VL branch without accumulation: from_pretrained(torch_dtype=torch.bfloat16) (:98-105),
    LoraConfig(r 16, alpha 16, dropout 0.05, gaussian) on find_all_linear_names and get_peft_model with no
    prepare_model_for_kbit_training (:107-117), resize_token_embeddings(len(tokenizer)) (:137), train_collate_clear's
    labels (CLEAR_process.py:215-217), transformers' AdamW over model.parameters() (:172), get_scheduler("linear", 0,
    len(loader) * epochs) stepped every batch (:174-178, :213), `model(**batch)` (:208); merged (:224)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2VLForConditionalGeneration, get_scheduler

    from unlearn.optim import HFAdamW

    model = Qwen2VLForConditionalGeneration.from_pretrained(source, torch_dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05, init_lora_weights="gaussian",
                                             target_modules=_their_targets(model)))
    model.resize_token_embeddings(len(tok))
    assert set(start_adapters) == {n for n, _ in model.named_parameters() if "lora_" in n}  # the same adapters
    with torch.no_grad():  # their init draws are unseeded: start from ours
        for n, p in model.named_parameters():
            if n in start_adapters:
                p.copy_(start_adapters[n])
    optimizer = HFAdamW(model.parameters(), lr=lr)
    scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0, num_training_steps=len(batches))
    model.train()
    for batch, seed in zip(batches, seeds):
        labels = batch["input_ids"].clone()  # train_collate_clear: every non-pad token, the image's tokens too
        labels[labels == tok.pad_token_id] = -100
        assert torch.equal(labels, batch["labels"])
        torch.manual_seed(seed)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    return adapters, model.merge_and_unload()


@pytest.mark.slow
def test_clear_reference_teaches_as_their_qwen2_vl_loop(tmp_path, monkeypatch):
    """finetune=mmunlearner_clear_reference on a tiny Qwen2-VL and a tiny CLEAR: the retain captions with their
    images, the bfloat16 weights trained as they are under float32 adapters, the vocabulary cut to the tokenizer; the
    adapters and the merged weights equal those of a port of their loop over the same batches."""
    from transformers import Qwen2VLForConditionalGeneration

    from unlearn.data.fixtures import write_clear_fixture
    from unlearn.pipeline import run

    root = write_clear_fixture(tmp_path / "clear")
    source, tok = _padded_qwen2_vl(tmp_path, monkeypatch, root)
    record = _Record(monkeypatch)
    lr = 3e-3  # theirs is 1e-5, which in one tiny epoch moves no bfloat16 weight: the merge would compare nothing
    run(compose_config(["method=finetune", "finetune=mmunlearner_clear_reference", "model=qwen2_vl_7b",
                        f"model.path={source}", "model.portrait_size=32", "data=clear", f"data.path={root}",
                        "data.forget_split=forget_5", "data.spec.train_pairs=clear",
                        "data.spec.caption_prompt=random_once", f"finetune.optimizer.lr={lr}", "logger=none",
                        "eval.max_people=2", "eval.max_new_tokens=2", "eval.tasks=[mc]"],
                       tmp_path / "run", tmp_path / "cache"))
    batches = record.batches
    assert batches and all("pixel_values" in b and "image_grid_thw" in b for b in batches)  # captions with images
    assert all(b["input_ids"].shape[0] == 4 for b in batches[:-1])
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert any((b["labels"] == image_pad).any() for b in batches)  # the image's tokens carry loss, as theirs
    assert {d for lora, d in record.dtypes if lora} == {torch.float32}  # peft's adapters
    assert {d for lora, d in record.dtypes if not lora} == {torch.bfloat16}  # the load, not upcast
    assert record.lrs[0] == pytest.approx(lr) and record.lrs[-1] == pytest.approx(lr / len(batches))

    start, ours = record.adapters
    theirs, merged = _their_clear_reference_loop(source, tok, batches, record.seeds, start, lr)
    assert max((theirs[n].float() - start[n].float()).abs().max().item() for n in theirs) > 1e-4  # they moved
    for n, p in theirs.items():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=0, msg=n)
    # the saved files name the weights in the checkpoint layout; read both through the model class
    saved = Qwen2VLForConditionalGeneration.from_pretrained(tmp_path / "run" / "model", torch_dtype=torch.bfloat16)
    before = dict(Qwen2VLForConditionalGeneration.from_pretrained(source, torch_dtype=torch.bfloat16).named_parameters())
    ours, want = dict(saved.named_parameters()), dict(merged.named_parameters())
    assert set(ours) == set(want)
    targets = tuple(f"{t}.weight" for t in _their_targets(merged))
    merged_into = [n for n in want if n.endswith(targets)]
    assert merged_into and any(not torch.equal(want[n], before[n]) for n in merged_into)  # the merge moved them
    for n, p in want.items():
        torch.testing.assert_close(ours[n], p, rtol=0, atol=0, msg=n)
    assert _lm_head_rows(tmp_path / "run" / "model") == len(tok)  # CLEAR_reference.py:137


@pytest.mark.slow
def test_their_qwen2_vl_npo_runs_on_the_oracle_their_reference_script_makes(tmp_path, monkeypatch):
    """finetune=mmunlearner_reference_qwen2_vl (MLLMU_reference.py's Qwen2-VL branch): bfloat16 weights under float32
    adapters, the answer's first token unlabelled (train_collate_mllmu_ansonly's [1:] on a tokenizer with no bos),
    the vocabulary cut; then experiment=mmunlearner_baselines_qwen2_vl method=npo on that oracle, loaded in float16
    (MLLMU_NPO.py), the unlearned model keeping its padded rows (MLLMU_NPO.py cuts nothing)."""
    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.pipeline import run

    labelled, made = [], []
    first = written.first_answer_labels
    monkeypatch.setattr(written, "first_answer_labels", lambda tok, ids, answer, q, key="sequences", how="": (
        labelled.append((key, how, answer, [t for t in first(tok, ids, answer, q, key, how) if t != -100])),
        first(tok, ids, answer, q, key, how))[1])

    class Recorded(gradient.GradientUnlearning):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    source, tok = _padded_qwen2_vl(tmp_path, monkeypatch, root)
    record = _Record(monkeypatch)
    common = [f"data.path={root}", "data.forget_split=forget_15", "model.portrait_size=32", "logger=none",
              "eval.max_people=2", "eval.max_new_tokens=2", "eval.tasks=[mc]"]
    run(compose_config(["method=finetune", "finetune=mmunlearner_reference_qwen2_vl", "model=qwen2_vl_7b",
                        f"model.path={source}", "data=mllmu_bench", *common], tmp_path / "reference",
                       tmp_path / "cache"))
    assert labelled and {(k, h) for k, h, _, _ in labelled} == {("finetune.sequences", "without_first")}
    for _, _, answer, labels in labelled:  # the answer's first real token unlabelled
        assert labels == tok.encode(answer, add_special_tokens=False)[1:]
    assert {d for lora, d in record.dtypes if lora} == {torch.float32}
    assert {d for lora, d in record.dtypes if not lora} == {torch.bfloat16}
    assert _lm_head_rows(tmp_path / "reference" / "model") == len(tok)  # MLLMU_reference.py:139
    labelled.clear()
    run(compose_config(["experiment=mmunlearner_baselines_qwen2_vl", "method=npo", f"model.path={source}",
                        f"method.reference_path={tmp_path / 'reference' / 'model'}", "method.batch_size=2", *common],
                       tmp_path / "npo", tmp_path / "cache"))
    assert {(k, h) for k, h, _, _ in labelled} == {("method.sequences", "without_first")}
    (module,) = made
    assert {p.dtype for p in module.reference.parameters()} == {torch.float16}
    assert module.reference.get_output_embeddings().weight.shape[0] == len(tok)
    assert _lm_head_rows(tmp_path / "npo" / "model") == len(tok) + 8


@pytest.mark.slow
def test_clear_finetune_teaches_float16_weights_on_captions_and_tofu(tmp_path, monkeypatch):
    """finetune=mmunlearner_clear (CLEAR_finetune.py's Qwen2-VL branch): the weights trained in float16 under float32
    adapters, on every author's captions (with their images) and TOFU questions (text-only)."""
    from unlearn.data.fixtures import write_clear_fixture
    from unlearn.pipeline import run

    root = write_clear_fixture(tmp_path / "clear")
    source, tok = _padded_qwen2_vl(tmp_path, monkeypatch, root)
    record = _Record(monkeypatch)
    run(compose_config(["method=finetune", "finetune=mmunlearner_clear", "model=qwen2_vl_7b", f"model.path={source}",
                        "model.portrait_size=32", "data=clear", f"data.path={root}", "data.forget_split=forget_5",
                        "data.spec.train_pairs=clear", "data.spec.caption_prompt=random_once", "finetune.epochs=1",
                        "logger=none", "eval.max_people=2", "eval.max_new_tokens=2", "eval.tasks=[mc]"],
                       tmp_path / "run", tmp_path / "cache"))
    assert {d for lora, d in record.dtypes if lora} == {torch.float32}
    assert {d for lora, d in record.dtypes if not lora} == {torch.float16}  # CLEAR_finetune.py:103
    start = tok.convert_tokens_to_ids("<|vision_start|>")
    rows = [tuple(ids[mask.bool()].tolist()) for b in record.batches for ids, mask in zip(b["input_ids"],
                                                                                           b["attention_mask"])]
    text_rows, image_rows = Counter(r for r in rows if start not in r), Counter(r for r in rows if start in r)
    assert len(image_rows) == 20 * 2 and set(image_rows.values()) == {1}  # every author's 2 captioned images, once
    # each TOFU question twice in the epoch, text-only (the fixture repeats some question-answer pairs across
    # authors, which then come 4, 6, ... times; read once, some would come an odd number of times)
    assert text_rows and all(n % 2 == 0 for n in text_rows.values()), text_rows.values()
    assert record.lrs[0] == pytest.approx(5e-4)
    assert _lm_head_rows(tmp_path / "run" / "model") == len(tok)
