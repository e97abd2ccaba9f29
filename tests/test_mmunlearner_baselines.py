"""experiment=mmunlearner_baselines end to end: MMUnlearner's baselines (MLLMU_GA.py, MLLMU_KL_Min.py) on a tiny
LLaVA and a tiny MLLMU-Bench snapshot, through train.py's path. Their loops and collates are held against ports in
tests/test_gradient_schedules.py and tests/test_written_sequences.py; this checks the preset wires them."""

from __future__ import annotations

import pytest
import torch

from unlearn.config import compose_config


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kl", "ga"])
def test_mmunlearner_baselines_run_as_their_scripts(tmp_path, monkeypatch, method):
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.methods.gradient as gradient
    import unlearn.models.tiny_real as tiny_real
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.mmunlearner.schedule import official_schedule
    from unlearn.models.loading import load_model
    from unlearn.pipeline import run
    from tests.test_model_adapters import words_in

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
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    # the tiny word tokenizer reads an unknown word as <unk>, a special token, which the answer-only collate
    # drops from the answer tokenised alone (LLaVA's real tokenizer spells every word)
    base = tiny_real.vocabulary
    monkeypatch.setattr(tiny_real, "vocabulary", lambda: base() + sorted(words_in(root)))
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
