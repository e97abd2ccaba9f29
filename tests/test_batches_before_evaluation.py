"""The refusals a method's passes make from the data sizes and the process count alone come before the
before-evaluation (pipeline.check_method_before_evaluation): until 2026-12-06 MANU's statistics pass and MMUnlearner's Fisher
pass refused "N batches for W processes" only after it (tens of minutes at 7B)."""

import pytest

from tests.conftest import seed_cache
from unlearn.config import compose_config
from unlearn.models.loading import save_model

TWO = ["trainer=ddp_sim", "debug=fast", "logger=none", "eval.cache_before=false"]


@pytest.fixture()
def checkpoint(tmp_path, tiny_model):
    model, proc = tiny_model
    save_model(model, proc, tmp_path / "ckpt")  # given: no teaching, so no trainer (no process) starts before it
    return tmp_path / "ckpt"


@pytest.fixture()
def never_evaluated(monkeypatch):
    import unlearn.pipeline as pipeline

    def never(*a, **k):
        raise AssertionError("evaluated before the passes' batch counts were checked")

    monkeypatch.setattr(pipeline, "evaluate", never)
    monkeypatch.setattr(pipeline, "evaluate_before", never)
    return pipeline


@pytest.mark.parametrize("overrides, message", [
    (["method=manu", "manu.selection=official", "manu.official.apply_last=1", "manu.sequences=manu"],
     r"MANU's statistics pass \(forget/multimodal\): 1 batches for 2 processes.*manu.batch_size"),
    (["method=mmunlearner", "mmunlearner.fisher_batch_size=512"],
     r"the Fisher pass \(forget\): 1 batches for 2 processes.*mmunlearner.fisher_batch_size"),
    (["method=mmunlearner", "mmunlearner.fisher_batch_size=512", "mmunlearner.preserve_batches=mixed",
      "mmunlearner.fisher_shuffle=true"],
     r"the Fisher pass \(forget\): 1 batches for 2 processes.*mmunlearner.fisher_batch_size"),
])
def test_a_pass_with_fewer_batches_than_processes_is_refused_before_the_before_evaluation(
        tmp_path, checkpoint, never_evaluated, overrides, message):
    from unlearn.settings import refused_before_run

    cfg = compose_config([*TWO, *overrides, f"model.path={checkpoint}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=message) as refused:
        never_evaluated.run(cfg)
    assert refused_before_run(refused.value)  # train.py prints its message alone, as the settings' refusals


@pytest.mark.parametrize("overrides", [
    ["method=manu", "manu.selection=official", "manu.official.apply_last=1", "manu.sequences=manu",
     "manu.batch_size=2"],
    ["method=mmunlearner", "mmunlearner.fisher_batch_size=2"],
    ["method=mmunlearner", "mmunlearner.apply_mask=false", "mmunlearner.fisher_batch_size=512"],  # no Fisher pass
    ["method=manu", "manu.batch_size=512"],  # the project's selection shards rows, not fixed batches
    ["method=manu", "manu.selection=official", "manu.sequences=manu", "manu.batch_size=1"],  # pooled: 2 layers' rows
    ["method=ga"],  # its check reads the LoRA targets alone (method.lora off here)
])
def test_passes_with_a_batch_for_every_process_reach_the_before_evaluation(tmp_path, checkpoint, never_evaluated,
                                                                            overrides):
    cfg = compose_config([*TWO, *overrides, f"model.path={checkpoint}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(AssertionError, match="evaluated before"):
        never_evaluated.run(cfg)


def test_the_check_counts_the_batches_the_pass_reads(small_benchmark, tiny_model):
    """fisher_batches is what FisherPass deals out: the check and the pass cannot count apart."""
    from types import SimpleNamespace

    from unlearn.data.sequences import QASequences
    from unlearn.methods.mmunlearner import FisherPass, fisher_batches

    model, proc = tiny_model
    ds = QASequences(small_benchmark.train_rows("forget"), proc, "multimodal")
    for seed in (None, 3):
        module = FisherPass(model, {"a": ds, "forget": ds}, {"a": [], "forget": []}, 3, proc.tokenizer.pad_token_id,
                            seed)
        module._trainer = SimpleNamespace(global_rank=0, world_size=1)
        loaders = module.val_dataloader()
        for j, loader in enumerate(loaders):
            assert list(loader.batch_sampler) == fisher_batches(len(ds), 3, seed, j)


@pytest.mark.parametrize("overrides, message", [
    (["method=mmunlearner", "model.param_groups.vision=nomatch"],
     r"model.param_groups.vision='nomatch' matches no parameter"),
    (["method=mmunlearner", "mmunlearner.eligible=nomatch"], r"mmunlearner.eligible='nomatch' leaves no parameter"),
    (["method=manu", "model.mlp_modules.vision=nomatch"], r"model.mlp_modules.vision='nomatch' matches no module"),
    (["method=manu", "manu.selection=official", "manu.sequences=manu", "model.manu_official_modules.vision=nomatch"],
     r"model.manu_official_modules.vision='nomatch' matches no module"),  # until 2026-12-06 named model.mlp_modules
    (["method=manu", "manu.selection=official", "manu.sequences=manu",
      "manu.official.layers={vision:[7],language:[7]}"],
     r"manu.official.layers.\w+=\[7\]: no layer \[7\]"),  # until 2026-12-06 after the whole statistics pass
    (["method=manu", "manu.selection=official", "manu.sequences=manu", "manu.batch_size=1",
      "manu.official.pooled_layers=false"], r"a batch with one row has no unbiased std"),  # in the pass until then
])
def test_patterns_the_model_lacks_are_refused_before_the_before_evaluation(tmp_path, never_evaluated, overrides,
                                                                           message, taught_fast):
    """The cached vanilla model's structure (no model.path: settings.check_official_layers reads a checkpoint's
    config only) decides these: refused once it is loaded, before it is evaluated. The cache holds the session's
    debug=fast model (conftest.taught_fast), which each case taught again until then."""
    seed_cache(taught_fast, tmp_path / "cache")
    cfg = compose_config(["debug=fast", "logger=none", "eval.cache_before=false", *overrides], tmp_path / "run",
                         tmp_path / "cache")
    with pytest.raises(ValueError, match=message):
        never_evaluated.run(cfg)


def test_a_frozen_pattern_the_model_lacks_is_refused_before_method_finetunes_before_evaluation(tmp_path,
                                                                                               never_evaluated):
    cfg = compose_config(["method=finetune", "debug=fast", "logger=none", "finetune.frozen=[nomatch]"],
                         tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=r"finetune.frozen pattern 'nomatch' matches no parameter"):
        never_evaluated.run(cfg)


@pytest.mark.parametrize("overrides, key", [
    (["method=grad_diff", "method.lora.enabled=true", "method.lora.target_modules=[nomatch]"],
     "method.lora.target_modules"),
    (["method=mmunlearner", "mmunlearner.lora.enabled=true", "mmunlearner.lora.init=pissa",
      "mmunlearner.lora.target_modules=[nomatch]"], "mmunlearner.lora.target_modules"),
    (["method=finetune", "+finetune.lora={enabled: true, r: 2, alpha: 4, target_modules: [nomatch]}"],
     "finetune.lora.target_modules"),
    (["method=ga", "method.lora.enabled=true", "model.lora_target_modules=[nomatch]"], "model.lora_target_modules"),
])
def test_lora_targets_the_model_lacks_are_refused_before_the_before_evaluation(tmp_path, never_evaluated, overrides,
                                                                               key, taught_fast):
    """peft refused them (NoMatchingPeftModuleError) only as the method made its adapters."""
    seed_cache(taught_fast, tmp_path / "cache")  # the model the refusal reads, not taught again
    cfg = compose_config(["debug=fast", "logger=none", *overrides], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=rf"{key}=\['nomatch'\] matches no module"):
        never_evaluated.run(cfg)


@pytest.mark.parametrize("targets", [None, "all_linear", "[q_proj]"])
def test_lora_targets_the_model_has_reach_the_before_evaluation(tmp_path, never_evaluated, targets, taught_fast):
    seed_cache(taught_fast, tmp_path / "cache")
    given = [] if targets is None else [f"method.lora.target_modules={targets}"]
    cfg = compose_config(["debug=fast", "logger=none", "method=grad_diff", "method.lora.enabled=true", *given],
                         tmp_path / "run", tmp_path / "cache")
    with pytest.raises(AssertionError, match="evaluated before"):
        never_evaluated.run(cfg)


def test_an_interleaved_schedule_with_fewer_retain_than_forget_batches_is_refused_before_the_before_evaluation(
        tmp_path, monkeypatch, never_evaluated, taught_fast):
    """method.schedule=interleaved (MMUnlearner's baselines) needs as many retain batches as forget batches; the
    loader refused fewer only as the method made it, after the before-evaluation. Here the unlearning data are
    10 forget rows and 2 retain rows (the shipped splits always have more retain rows)."""
    from unlearn.methods import gradient
    from unlearn.settings import refused_before_run

    monkeypatch.setattr(gradient, "_unlearning_data", lambda ctx, *a, **k: (list(range(10)), list(range(2))))
    seed_cache(taught_fast, tmp_path / "cache")
    cfg = compose_config(["debug=fast", "logger=none", "method=grad_diff", "method.schedule=interleaved",
                          "method.batch_size=1"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=r"method.schedule=interleaved: the official schedule needs at least as many "
                                         r"retain batches \(2\) as forget batches \(10\)") as refused:
        never_evaluated.run(cfg)
    assert refused_before_run(refused.value)


def _cut_statistics_sets(monkeypatch, splits):
    """MANU's statistics sets with one row each in `splits` (forget, retain), as a forget set of one QA pair."""
    from torch.utils.data import Subset

    import unlearn.methods.manu as manu

    whole = manu.statistics_datasets
    monkeypatch.setattr(manu, "statistics_datasets", lambda *a, **k: {
        key: Subset(ds, [0]) if key.split("/")[0] in splits else ds for key, ds in whole(*a, **k).items()})


def test_manu_with_no_row_for_a_process_in_any_statistics_set_is_refused_before_the_before_evaluation(
        tmp_path, checkpoint, never_evaluated, monkeypatch):
    """Such a process skips Lightning's whole validation, its all-reduce of the statistics too: the others waited
    for it (a crash or a hang, after the before-evaluation)."""
    from unlearn.settings import refused_before_run

    _cut_statistics_sets(monkeypatch, ("forget", "retain"))
    cfg = compose_config([*TWO, "method=manu", f"model.path={checkpoint}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=r"every statistics set has fewer rows than the 2 processes.*"
                                         r"data.forget_split, manu.max_retain_people.*trainer.devices") as refused:
        never_evaluated.run(cfg)
    assert refused_before_run(refused.value)


def test_manu_with_fewer_forget_rows_than_processes_reaches_the_before_evaluation(tmp_path, checkpoint,
                                                                                   never_evaluated, monkeypatch):
    """One forget row on two processes: process 1 reads none of it and adds zeros (tests/test_ddp.py: the
    one-process statistics)."""
    _cut_statistics_sets(monkeypatch, ("forget",))
    cfg = compose_config([*TWO, "method=manu", f"model.path={checkpoint}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(AssertionError, match="evaluated before"):
        never_evaluated.run(cfg)


@pytest.mark.parametrize("size, world", [(0, 2), (1, 2), (2, 2), (5, 2), (7, 3)])
def test_row_share_hands_every_row_to_one_process(size, world):
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    from unlearn.methods.manu import row_share

    shares = [row_share(size, r, world) for r in range(world)]
    assert sorted(i for s in shares for i in s) == list(range(size))
    if size >= world:  # where Lightning's sampler takes it, the same shares
        assert shares == [list(UnrepeatedDistributedSampler(range(size), world, r, shuffle=False))
                          for r in range(world)]
