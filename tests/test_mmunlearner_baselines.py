"""experiment=mmunlearner_baselines end to end: MMUnlearner's baselines (MLLMU_GA.py, MLLMU_KL_Min.py) on a tiny
LLaVA and a tiny MLLMU-Bench snapshot, through train.py's path. Their loops and collates are held against ports in
tests/test_gradient_schedules.py and tests/test_written_sequences.py; this checks the preset wires them."""

from __future__ import annotations

import pytest
import torch

from unlearn.config import compose_config


def _snapshot(tmp_path, monkeypatch):
    """A tiny MLLMU-Bench snapshot, and the tiny word tokenizer given its words: an unknown word reads as <unk>, a
    special token, which the answer-only collates drop from the answer (real tokenizers spell every word)."""
    import unlearn.models.tiny_real as tiny_real
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import snapshot_words

    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    base = tiny_real.vocabulary
    monkeypatch.setattr(tiny_real, "vocabulary", lambda: base() + snapshot_words(root))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kl", "ga"])
def test_mmunlearner_baselines_run_as_their_scripts(tmp_path, monkeypatch, method):
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    import unlearn.models.tiny_real as tiny_real
    from unlearn.mmunlearner.schedule import official_schedule
    from unlearn.models.loading import load_model
    from unlearn.pipeline import run

    seen, answers, made, kinds = set(), [], [], []
    original, first = written.written_text, written.first_answer_labels
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        seen.add((key, w, form)), original(q, a, form, family, w, key))[1])
    monkeypatch.setattr(written, "first_answer_labels", lambda *a: (answers.append(a[2]), first(*a))[1])

    class Recorded(gradient.GradientUnlearning):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

        def training_step(self, batch, batch_idx):
            kinds.append("F" if "forget" in batch else "R")
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    root = _snapshot(tmp_path, monkeypatch)
    source = tiny_real.write_tiny_real("llava", tmp_path / "llava")
    cfg = compose_config(["experiment=mmunlearner_baselines", f"method={method}", f"data.path={root}",
                          f"model.path={source}", "data.forget_split=forget_15", "logger=none", "method.batch_size=2",
                          "eval.max_people=2", "eval.max_new_tokens=2", "eval.tasks=[mc]"], tmp_path / "run",
                         tmp_path / "cache")
    metrics = run(cfg)
    assert seen == {("method.sequences", "mmunlearner", "multimodal")}  # their collate, image + question pairs
    assert answers  # the answer-only labels (their --ans_only True)
    (module,) = made
    if method == "kl":  # MLLMU_KL_Min.py: forget steps spread through the retain pass, every batch once
        n_forget, n_retain = kinds.count("F"), kinds.count("R")
        assert n_forget >= 1 and n_retain > n_forget
        order = "".join("F" + "R" * len(chunk) for chunk in official_schedule(n_forget, n_retain))
        assert "".join(kinds) == order
        # its reference: the checkpoint loaded in bfloat16 and upcast, as deepcopy(model) after the kbit cast
        stored = dict(load_model(source, "float32", template=cfg.model.template)[0].named_parameters())
        theirs = dict(load_model(source, "bfloat16", template=cfg.model.template)[0].named_parameters())
        ref = dict(module.reference.named_parameters())
        assert ref.keys() == theirs.keys()
        assert all(ref[n].dtype == torch.float32 and torch.equal(ref[n], theirs[n].float()) for n in ref)
        assert any(not torch.equal(ref[n], stored[n]) for n in ref)  # the rounding rounded something
    else:  # MLLMU_GA.py: the forget loader alone, the lr decayed to 0 at its last step
        assert set(kinds) == {"F"}
        assert module.trainer.optimizers[0].param_groups[0]["lr"] == 0.0
    before, after = load_file(str(source / "model.safetensors")), load_file(str(tmp_path / "run" / "model" /
                                                                                 "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)
    assert metrics["after/retain/multimodal/n_mc_acc"] > 0  # scored by their evaluation


@pytest.mark.slow
def test_mmunlearner_baselines_run_as_their_qwen2_vl_branch(tmp_path, monkeypatch):
    """experiment=mmunlearner_baselines_qwen2_vl, method=grad_diff (MLLMU_GA_Diff.py's Qwen2-VL branch): the model
    in bfloat16 with float32 LoRA adapters (peft's default upcast), the rows of train_collate_mllmu_ansonly with
    the answer's first token unlabelled (tokenizer(answer)[1:], Qwen2's tokenizer adding no bos), the interleaved
    loop, MLLMU_eval.py's zero-shot Qwen2-VL evaluation."""
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    import unlearn.models.tiny_real as tiny_real
    from unlearn.pipeline import run

    labelled, dtypes, kinds = [], set(), []
    first = written.first_answer_labels
    monkeypatch.setattr(written, "first_answer_labels", lambda tok, ids, answer, *a: (
        labelled.append((answer, [t for t in first(tok, ids, answer, *a) if t != -100], tok)),
        first(tok, ids, answer, *a))[1])

    class Recorded(gradient.GradientUnlearning):
        def training_step(self, batch, batch_idx):
            kinds.append("F" if "forget" in batch else "R")
            dtypes.update(("lora_" in n, n if p.dtype == torch.float32 and "lora_" not in n else "", p.dtype)
                          for n, p in self.model.named_parameters())
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    root = _snapshot(tmp_path, monkeypatch)
    source = tiny_real.write_tiny_real("qwen2_vl", tmp_path / "qwen2_vl")
    cfg = compose_config(["experiment=mmunlearner_baselines_qwen2_vl", "method=grad_diff", f"data.path={root}",
                          f"model.path={source}", "data.forget_split=forget_15", "model.portrait_size=32",
                          "logger=none", "method.batch_size=2", "eval.max_people=2", "eval.max_new_tokens=2",
                          "eval.tasks=[mc]"], tmp_path / "run", tmp_path / "cache")
    metrics = run(cfg)
    assert labelled
    for answer, labels, tok in labelled:  # every answer's first token unlabelled, the rest labelled
        assert labels == tok.encode(answer, add_special_tokens=False)[1:]
    assert "F" in kinds and kinds.count("R") > kinds.count("F") and kinds[0] == "F"
    assert {d for lora, _, d in dtypes if lora} == {torch.float32}  # the adapters
    assert {d for lora, _, d in dtypes if not lora} == {torch.bfloat16}, dtypes  # the model's own weights
    before = load_file(str(source / "model.safetensors"))
    after = {k: v for f in (tmp_path / "run" / "model").glob("*.safetensors") for k, v in load_file(f).items()}
    assert any(k in after and not torch.equal(before[k].to(after[k].dtype), after[k]) for k in before)
    assert "after/forget/multimodal/mc_acc" in metrics


@pytest.mark.slow
def test_their_npo_runs_on_the_reference_their_reference_script_makes(tmp_path, monkeypatch):
    """finetune=mmunlearner_reference (MLLMU_reference.py) on the off-the-shelf model, then
    experiment=mmunlearner_baselines method=npo (MLLMU_NPO.py) with that model as its float16 oracle. The checkpoint's
    vocabulary is padded past the tokenizer, as llava-1.5-7b-hf's 32064 rows are past its 32002: the oracle is cut
    to the tokenizer (MLLMU_reference.py:139); NPO, whose script cuts nothing, keeps the padded rows and scores
    each model over its own vocabulary, as their two separate losses do."""
    from safetensors import safe_open

    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    import unlearn.models.tiny_real as tiny_real
    from unlearn.pipeline import run

    labelled, made = [], []
    first = written.first_answer_labels
    monkeypatch.setattr(written, "first_answer_labels", lambda tok, ids, answer, q, key="sequences", how="": (
        labelled.append((key, how)), first(tok, ids, answer, q, key, how))[1])

    class Recorded(gradient.GradientUnlearning):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    root = _snapshot(tmp_path, monkeypatch)
    model, tok, images = tiny_real.build_tiny_real("llava")
    model.resize_token_embeddings(len(tok) + 8)  # the checkpoint's padded rows
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "llava")
    common = [f"data.path={root}", "data.forget_split=forget_15", "logger=none", "eval.max_people=2",
              "eval.max_new_tokens=2", "eval.tasks=[mc]"]
    run(compose_config(["method=finetune", "finetune=mmunlearner_reference", "model=llava_1_5_7b",
                        "model.dtype=float32", f"model.path={tmp_path / 'llava'}", "data=mllmu_bench", *common],
                       tmp_path / "reference", tmp_path / "cache"))
    assert labelled and set(labelled) == {("finetune.sequences", "without_first")}

    def rows(path):
        with safe_open(str(path / "model.safetensors"), "pt") as f:
            (name,) = [k for k in f.keys() if k.endswith("lm_head.weight")]
            return f.get_slice(name).get_shape()[0]

    assert rows(tmp_path / "reference" / "model") == len(tok)  # MLLMU_reference.py:139
    labelled.clear()
    run(compose_config(["experiment=mmunlearner_baselines", "method=npo", f"model.path={tmp_path / 'llava'}",
                        f"method.reference_path={tmp_path / 'reference' / 'model'}", "method.batch_size=2", *common],
                       tmp_path / "npo", tmp_path / "cache"))
    assert set(labelled) == {("method.sequences", "without_first")}
    (module,) = made
    assert {p.dtype for p in module.reference.parameters()} == {torch.float16}  # MLLMU_NPO.py's oracle load
    assert module.reference.get_output_embeddings().weight.shape[0] == len(tok)
    assert rows(tmp_path / "npo" / "model") == len(tok) + 8  # MLLMU_NPO.py cuts nothing


@pytest.mark.slow
def test_their_vanilla_recipe_teaches_from_the_bfloat16_load_on_their_collate(tmp_path, monkeypatch):
    """finetune=mmunlearner (MLLMU_finetune.py): teaching starts from the checkpoint loaded in bfloat16 and upcast
    (:50, :66), its vocabulary cut to the tokenizer (:139), on train_collate_clear's rows (every person, every
    token but the pads and, on LLaVA, the image positions labelled)."""
    import unlearn.data.written as written
    import unlearn.methods.finetune as finetune
    import unlearn.models.tiny_real as tiny_real
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.loading import load_model
    from unlearn.pipeline import run

    seen, starts = set(), []
    original = written.written_text
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        seen.add((key, w, form)), original(q, a, form, family, w, key))[1])

    class Recorded(finetune.FinetuneModule):
        def on_fit_start(self):
            starts.append({n.removeprefix("base_model.model."): p.detach().clone()
                           for n, p in self.model.named_parameters() if "lora_" not in n})
            super().on_fit_start()

    monkeypatch.setattr(finetune, "FinetuneModule", Recorded)
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    model, tok, images = tiny_real.build_tiny_real("llava")
    model.resize_token_embeddings(len(tok) + 8)  # llava-1.5-7b-hf: 32064 rows, 32002 tokens
    for part in (model, tok, images):
        part.save_pretrained(tmp_path / "llava")
    cfg = compose_config(["method=finetune", "finetune=mmunlearner", "model=llava_1_5_7b", "model.dtype=float32",
                          f"model.path={tmp_path / 'llava'}", "data=mllmu_bench", f"data.path={root}",
                          "data.forget_split=forget_15", "logger=none", "eval.max_people=2", "eval.max_new_tokens=2",
                          "eval.tasks=[mc]"], tmp_path / "run", tmp_path / "cache")
    run(cfg)
    assert seen == {("finetune.sequences", "mmunlearner", "multimodal")}
    (start,) = starts
    theirs = dict(load_model(tmp_path / "llava", "bfloat16", template=cfg.model.template)[0].named_parameters())
    names = [n for n in start if n in theirs and "embed_tokens" not in n and "lm_head" not in n]
    assert names and all(start[n].dtype == torch.float32 and torch.equal(start[n], theirs[n].float()) for n in names)
    assert start[next(n for n in start if n.endswith("lm_head.weight"))].shape[0] == len(tok)  # cut first


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ga", "kl"])
def test_their_clear_baselines_run_on_captions(tmp_path, monkeypatch, method):
    """experiment=mmunlearner_clear_baselines on a tiny Qwen2-VL and a tiny CLEAR snapshot: the rows are CLEAR's
    captions on train_collate_clear_ansonly; CLEAR_GA.py trains the whole model (no adapters) on the forget pass
    alone, CLEAR_KL_Min.py LoRA adapters in the interleaved loop."""
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    import unlearn.models.tiny_real as tiny_real
    from unlearn.data.fixtures import write_clear_fixture
    from unlearn.pipeline import run
    from unlearn.models.tiny_real import snapshot_words

    seen, kinds, adapters = set(), [], []
    original = written.written_text
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        seen.add((key, w, form)), original(q, a, form, family, w, key))[1])

    class Recorded(gradient.GradientUnlearning):
        def training_step(self, batch, batch_idx):
            kinds.append("F" if "forget" in batch else "R")
            adapters.append(any("lora_" in n for n, _ in self.model.named_parameters()))
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(gradient, "GradientUnlearning", Recorded)
    root = write_clear_fixture(tmp_path / "clear")
    source = tiny_real.write_tiny_real("qwen2_vl", tmp_path / "qwen2_vl", extra_words=snapshot_words(root))
    cfg = compose_config(["experiment=mmunlearner_clear_baselines", f"method={method}", f"data.path={root}",
                          f"model.path={source}", "model.portrait_size=32", "data.forget_split=forget_10",
                          "logger=none", "method.batch_size=2", "eval.max_people=2", "eval.max_new_tokens=2"],
                         tmp_path / "run", tmp_path / "cache")
    run(cfg)
    assert seen == {("method.sequences", "mmunlearner", "multimodal")}  # captions with their images
    assert set(adapters) == {method != "ga"}
    if method == "ga":
        assert set(kinds) == {"F"}
    else:
        assert "F" in kinds and kinds.count("R") >= kinds.count("F")
    before = load_file(str(source / "model.safetensors"))
    after = {k: v for f in (tmp_path / "run" / "model").glob("*.safetensors") for k, v in load_file(f).items()}
    assert any(k in after and not torch.equal(before[k].to(after[k].dtype), after[k]) for k in before)
