"""The cached before-evaluation: keyed by what shapes an evaluation, never by the method that follows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn.config import compose_config
from unlearn.pipeline import before_cache_path

VANILLA = "/cache/vanilla/tiny_llava-abc"


def path(tmp_path, *overrides):
    out = tmp_path / "out" / "-".join(overrides)  # each run has its own output dir, as in real use
    return before_cache_path(compose_config(["logger=none", *overrides], out, tmp_path / "c"), VANILLA)


def test_key_ignores_the_method_and_follows_the_evaluation(tmp_path):
    base = path(tmp_path, "method=manu")
    assert base.parent == tmp_path / "c" / "eval_before" and base.name.startswith("tiny_llava-abc-")
    assert path(tmp_path, "method=ga", "method.optimizer.lr=1e-3") == base
    assert path(tmp_path, "method=manu", "eval.relearn.enabled=true") == base  # after-stage settings
    assert path(tmp_path, "method=manu", "eval.reference_run=/runs/ref") == base  # read after the evaluation
    assert path(tmp_path, "method=manu", "eval.tasks=[mc]") != base
    assert path(tmp_path, "method=manu", "eval.max_people=2") != base
    assert path(tmp_path, "method=manu", "data.forget_split=forget_5") != base
    assert path(tmp_path, "method=manu", "trainer.precision=bf16-true") != base

    moved = before_cache_path(compose_config(["logger=none", "method=manu"], tmp_path / "o2", tmp_path / "moved"),
                              VANILLA)
    assert moved.parent == tmp_path / "moved" / "eval_before" and moved.name == base.name  # a copied .cache

    import unlearn.pipeline as pipeline  # a new generator version changes the questions under the same config
    pipeline.GENERATOR_VERSION += 1
    try:
        assert path(tmp_path, "method=manu") != base
    finally:
        pipeline.GENERATOR_VERSION -= 1


def _counting_evaluation(monkeypatch, cfg):
    """The pipeline's evaluation replaced by one that counts its calls (an evaluation gives
    {"before/forget/text/mc_acc": 1.0}, a cached one read back {"read": 1.0}), and a run context for `cfg`."""
    from types import SimpleNamespace

    import unlearn.pipeline as pipeline

    calls = []

    def evaluate(ctx, stage):
        calls.append(stage)
        return {"before/forget/text/mc_acc": 1.0}, []

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    monkeypatch.setattr(pipeline, "aggregate", lambda records, stage, perturbed: {"read": 1.0})
    return calls, SimpleNamespace(cfg=cfg, is_global_zero=True)


def test_a_model_taught_again_under_its_key_is_evaluated_again(tmp_path, monkeypatch):
    """The vanilla directory's name is its key; a model deleted and taught again keeps it. The cached
    before-evaluation records which teaching it is of and is read only for that one (until 2026-12-05 the old
    model's numbers were read); its file name stays, so the keys of what was cached before do not move. A file
    written before the record counts as stale when the teaching record is newer."""
    import json
    import os
    import shutil

    import unlearn.pipeline as pipeline

    vanilla = tmp_path / "cache" / "vanilla" / "tiny_llava-abc"
    vanilla.mkdir(parents=True)
    (vanilla / "teaching.json").write_text(json.dumps({"seconds": 61.2, "probe": [{"epoch": 10}]}))
    cfg = compose_config(["logger=none"], tmp_path / "out", tmp_path / "c")
    cache = before_cache_path(cfg, vanilla)
    calls, ctx = _counting_evaluation(monkeypatch, cfg)
    assert pipeline.evaluate_before(ctx, cache, vanilla) == ({"before/forget/text/mc_acc": 1.0}, [])
    assert pipeline.evaluate_before(ctx, cache, vanilla)[0] == {"read": 1.0} and calls == ["before"]
    copy = shutil.copytree(vanilla, tmp_path / "elsewhere" / "tiny_llava-abc")  # a copied cache: the same teaching
    assert before_cache_path(cfg, copy) == cache and pipeline.evaluate_before(ctx, cache, copy)[0] == {"read": 1.0}
    (vanilla / "teaching.json").write_text(json.dumps({"seconds": 58.7, "probe": [{"epoch": 11}]}))  # taught again
    assert before_cache_path(cfg, vanilla) == cache  # the same name
    assert pipeline.evaluate_before(ctx, cache, vanilla)[0] == {"before/forget/text/mc_acc": 1.0}
    assert calls == ["before", "before"]
    # a file from before the record: read unless the model's teaching record is newer than it
    saved = json.loads(cache.read_text())
    del saved["vanilla"]
    cache.write_text(json.dumps(saved))
    assert pipeline.evaluate_before(ctx, cache, vanilla)[0] == {"read": 1.0}
    stamp = cache.stat().st_mtime_ns
    os.utime(vanilla / "teaching.json", ns=(stamp + 10**9, stamp + 10**9))
    pipeline.evaluate_before(ctx, cache, vanilla)
    assert calls == ["before", "before", "before"]


def test_a_users_checkpoint_is_evaluated_once(tmp_path, monkeypatch):
    """A checkpoint without a teaching record is known by its weights files' sizes and times; the cache file read
    them back as lists, never equal to the tuples made now, so every run evaluated it again (until 2026-12-05)."""

    import unlearn.pipeline as pipeline

    checkpoint = tmp_path / "my_llava"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    cfg = compose_config(["logger=none", f"model.path={checkpoint}"], tmp_path / "out", tmp_path / "c")
    cache = before_cache_path(cfg, checkpoint)
    calls, ctx = _counting_evaluation(monkeypatch, cfg)
    pipeline.evaluate_before(ctx, cache, checkpoint)
    assert pipeline.evaluate_before(ctx, cache, checkpoint)[0] == {"read": 1.0} and calls == ["before"]


def test_no_cache_for_hub_checkpoints_teaching_or_when_off(tmp_path):
    assert path(tmp_path, "model.path=someone/ckpt") is None  # a hub id: its revision is not read offline
    assert path(tmp_path, "model.path=/some/ckpt") is None  # not there (the load names it)
    assert path(tmp_path, "method=finetune") is None
    assert path(tmp_path, "eval.cache_before=false") is None
    assert isinstance(path(tmp_path), Path)


@pytest.mark.slow
def test_second_run_reads_the_same_before_numbers(tmp_path, monkeypatch, taught_fast):
    import json

    from tests.conftest import seed_cache
    from unlearn.pipeline import run

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cache = tmp_path / "c"
    seed_cache(taught_fast, cache)  # the vanilla model both runs start from (no before-evaluation cached)
    first = run(compose_config(["debug=fast", "method=manu", "save_model=false"], tmp_path / "a", cache))
    (saved,) = (cache / "eval_before").iterdir()
    data = json.loads(saved.read_text())
    marked = 0
    for r in data["records"]:  # every forget text MC item scored 0.25: a mean no real (0/1) scoring gives
        if (r["split"], r["modality"], r["task"]) == ("forget", "text", "mc") and "metric" not in r:
            r["score"], marked = 0.25, marked + 1
    assert marked
    saved.write_text(json.dumps(data))
    second = run(compose_config(["debug=fast", "method=ga", "save_model=false"], tmp_path / "b", cache))
    assert second["before/forget/text/mc_acc"] == 0.25  # read from the cache, not re-evaluated
    assert {k: v for k, v in second.items() if k.startswith("before/") and k != "before/forget/text/mc_acc"} == {
        k: v for k, v in first.items() if k.startswith("before/") and k != "before/forget/text/mc_acc"}
    assert json.loads((tmp_path / "b" / "items.json").read_text())["before"] == data["records"]
    # the run dir holds its configuration resolved: the lr GA read from the model's unlearn_lr, not the interpolation
    resolved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert resolved["method"]["optimizer"]["lr"] == resolved["model"]["unlearn_lr"]["ga"]
    assert resolved["teach_seed"] == resolved["seed"] == 0
    # every Trainer that trains records the weights its first step cannot move (callbacks/lost_updates.py,
    # tests/test_lost_updates.py): GA's, in float32, none
    (lost,) = json.loads((tmp_path / "b" / "metrics.json").read_text())["artifacts"]["lost_steps"]
    assert lost["stage"] == "GradientUnlearning" and lost["fraction"] == 0.0 and list(lost["dtypes"]) == ["float32"]
    # and what each fit trained (callbacks/trained_batches.py): GA's epochs; MANU, training-free, none
    (trained,) = json.loads((tmp_path / "b" / "metrics.json").read_text())["artifacts"]["trained"]
    assert trained["stage"] == "GradientUnlearning" and trained["epochs"] == resolved["method"]["epochs"]
    assert trained["batches"] == trained["optimizer_steps"] > 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["artifacts"]["trained"] == []


def test_a_scorer_with_generation_columns_keys_its_records_apart(tmp_path, monkeypatch):
    """Records of a scorer that reports the official ROUGE-1 / ROUGE-2 / BLEU columns hold them since they were
    added: its cached before-evaluations from before then are not reused; other scorers' keys are unchanged."""
    from dataclasses import replace

    import unlearn.eval.scorers as scorers

    overrides = ("eval.scorer=mllmu_bench",)
    with_columns, default = path(tmp_path, *overrides), path(tmp_path)
    monkeypatch.setitem(scorers.SCORERS, "mllmu_bench", replace(scorers.SCORERS["mllmu_bench"], columns=None))
    assert path(tmp_path, *overrides) != with_columns
    assert path(tmp_path) == default


def test_a_local_checkpoint_is_cached_under_its_files(tmp_path):
    """Every run of a sweep on a user's checkpoint evaluated it again (hours at 7B) until 2026-12-05: a local
    model.path is keyed by where it is and its files' sizes and times, so a checkpoint changed in place, or
    another run's model/ of the same name, gets another key."""
    import os

    ckpt = tmp_path / "run" / "model"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"0" * 8)
    first = path(tmp_path, f"model.path={ckpt}")
    assert first is not None and first == path(tmp_path, f"model.path={ckpt}")
    stamp = (ckpt / "model.safetensors").stat().st_mtime_ns + 10**9
    os.utime(ckpt / "model.safetensors", ns=(stamp, stamp))  # trained again in place
    assert path(tmp_path, f"model.path={ckpt}") != first
    other = tmp_path / "other" / "model"
    other.mkdir(parents=True)
    for f in ckpt.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
        os.utime(other / f.name, ns=(f.stat().st_mtime_ns, f.stat().st_mtime_ns))
    assert path(tmp_path, f"model.path={other}") != path(tmp_path, f"model.path={ckpt}")


def test_a_shared_cache_read_only_here_refuses_teaching_before_it_and_keeps_an_evaluation(tmp_path, monkeypatch,
                                                                                         caplog):
    """A cache whose subdirectories another user made can be read, not written: teaching into it is refused before
    the teaching, and a before-evaluation that cannot be cached is kept for the run (until 2026-12-05 both failed
    after the work, with a bare PermissionError)."""
    import os
    from types import SimpleNamespace

    import unlearn.pipeline as pipeline
    from unlearn.run_dir import NotWritableError

    cfg = compose_config(["logger=none", "debug=fast"], tmp_path / "out", tmp_path / "c")
    vanilla = pipeline.vanilla_path(cfg)
    access = os.access
    monkeypatch.setattr(pipeline.os, "access", lambda p, mode: Path(p) != vanilla.parent and access(p, mode))
    monkeypatch.setattr("unlearn.methods.finetune.teach", lambda *a: pytest.fail("taught into a read-only cache"))
    with pytest.raises(NotWritableError, match=r"paths.cache_dir=.*/c: .*/c/vanilla is not writable here, and the "
                                               r"taught model would be cached there"):
        pipeline.ensure_vanilla(cfg, None)

    def read_only(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pipeline, "evaluate", lambda ctx, stage: ({"before/forget/text/mc_acc": 1.0}, []))
    monkeypatch.setattr(pipeline, "write_json", read_only)
    ctx = SimpleNamespace(cfg=cfg, is_global_zero=True)
    with caplog.at_level("WARNING"):
        assert pipeline.evaluate_before(ctx, tmp_path / "c" / "eval_before" / "x.json", None)[0] == {
            "before/forget/text/mc_acc": 1.0}
    assert "before-evaluation not cached (PermissionError" in caplog.text


def test_a_damaged_cache_file_is_evaluated_again_and_a_damaged_teaching_record_named(tmp_path, monkeypatch, caplog):
    """Cache files are written atomically, so only outside damage (a disk fault, a partial copy of a cache) cuts
    one short: a bare JSONDecodeError stopped the run (until 2026-12-05)."""
    from types import SimpleNamespace

    import unlearn.pipeline as pipeline

    vanilla = tmp_path / "cache" / "vanilla" / "tiny_llava-abc"
    vanilla.mkdir(parents=True)
    cfg = compose_config(["logger=none"], tmp_path / "out", tmp_path / "c")
    cache = before_cache_path(cfg, vanilla)
    cache.parent.mkdir(parents=True)
    cache.write_text('{"metrics": {"before/forget')
    monkeypatch.setattr(pipeline, "evaluate", lambda ctx, stage: ({"before/forget/text/mc_acc": 1.0}, []))
    with caplog.at_level("WARNING"):
        pipeline.evaluate_before(SimpleNamespace(cfg=cfg, is_global_zero=True), cache, vanilla)
    assert "unreadable (JSONDecodeError" in caplog.text
    assert json.loads(cache.read_text())["metrics"] == {"before/forget/text/mc_acc": 1.0}  # written anew
    (vanilla / "teaching.json").write_text('{"seconds": 6')
    with pytest.raises(ValueError, match=r"teaching.json: unreadable .* delete .*tiny_llava-abc to teach it again"):
        pipeline.teaching_record(vanilla)


def test_a_real_checkpoints_before_evaluation_is_keyed_apart_from_the_old_answer_tokens(tmp_path):
    """Since 2026-12-06 a real checkpoint's answers are tokenized after the prompt's closing text (LLaVA's read an
    extra token before): its cached before-evaluations of the old tokens are not reused; the embedded model's
    keys stay (tests/test_cache_keys.py holds them)."""
    from unlearn.config import compose_config
    from unlearn.pipeline import before_cache_path

    ckpt = tmp_path / "llava"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    cfg = compose_config(["model=llava_1_5_7b", f"model.path={ckpt}", "logger=none"], tmp_path, tmp_path / "c")
    real = before_cache_path(cfg, ckpt)
    cfg.model.build = {"stand_in": True}  # the same settings read as a built model's
    assert real is not None and before_cache_path(cfg, ckpt) != real
