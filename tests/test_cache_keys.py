"""What the caches' keys read beyond their own sections: a setting that changes a cached vanilla model, base or
before-evaluation must change its key (else a run silently reads the artifact another setting made), and the
keys of what was cached before stay as they were (the thirty-first session's audit; unlearn/later_keys.py)."""

from __future__ import annotations

import pytest
import torch

from unlearn.config import compose_config
from unlearn.models import base as base_module
from unlearn.pipeline import before_cache_path, vanilla_key
from unlearn.runtime import torch_threads

VANILLA = "/cache/vanilla/tiny_llava-abc"


def _cfg(tmp_path, *overrides):
    return compose_config(["logger=none", *overrides], tmp_path / "out", tmp_path / "cache")


def _before(tmp_path, *overrides):
    return before_cache_path(_cfg(tmp_path, *overrides), VANILLA).name


def _vanilla(tmp_path, *overrides):
    with torch_threads(1):  # the frontier's workers' keys, whatever this process runs on
        return vanilla_key(_cfg(tmp_path, *overrides))


def test_how_the_model_is_loaded_keys_the_before_evaluation(tmp_path):
    """The cached vanilla model is loaded with model.dtype and model.attn_implementation before it is evaluated:
    `model.dtype=bfloat16` read the float32 model's before-evaluation until this key; the values every shipped
    config has leave the key as it was."""
    default = _before(tmp_path)
    assert _before(tmp_path, "model.dtype=float32") == default
    for change in ("model.dtype=bfloat16", "+model.attn_implementation=eager", "+model.forward_positions=sequential"):
        assert _before(tmp_path, change) != default, change


def test_a_group_taught_under_eval_rows_is_keyed_by_whose_people_it_holds(tmp_path, monkeypatch):
    """finetune.people (a forget-quality reference: without_forget) under CLEAR's data.eval_rows held the people of
    the evaluated rows until 2026-12-05, the source's whole groups since: those teachings are keyed anew; every
    teaching of all people, and any without eval_rows, keeps its key."""
    plain = ("data=clear", "data.path=/data/clear", "finetune.target_mc_acc=null", "data.on_bad_row=error")
    group = (*plain, "finetune.people=without_forget")
    assert _vanilla(tmp_path, *group, "data.eval_rows=300") != _vanilla(tmp_path, *group)
    # rows dropped under skip (the data configs' default) may leave a person unevaluated the same way: keyed too;
    # a group under error without eval_rows, and every teaching of all people, are not
    import unlearn.pipeline as pipeline

    keyed = {k: _vanilla(tmp_path, *k) for k in ((*group, "data.on_bad_row=skip"), group, plain)}
    monkeypatch.setattr(pipeline, "PEOPLE_NAMED_BY", "other")
    assert _vanilla(tmp_path, *group, "data.on_bad_row=skip") != keyed[(*group, "data.on_bad_row=skip")]
    assert _vanilla(tmp_path, *group) == keyed[group] and _vanilla(tmp_path, *plain) == keyed[plain]
    assert _vanilla(tmp_path, *plain, "data.eval_rows=300") == _vanilla(tmp_path, *plain)


def test_a_trainer_key_a_config_adds_keys_what_it_can_change(tmp_path):
    """`+trainer.limit_val_batches=1` evaluates a part of the items, `+trainer.max_steps=5` teaches five steps:
    both were cached under the full run's keys. The keys a teaching step reads stay out of the evaluation's."""
    before, vanilla = _before(tmp_path), _vanilla(tmp_path)
    assert _before(tmp_path, "+trainer.limit_val_batches=1") != before
    assert _vanilla(tmp_path, "+trainer.max_steps=5") != vanilla
    assert _vanilla(tmp_path, "+trainer.limit_val_batches=1") != vanilla  # the teaching probe validates too
    assert _before(tmp_path, "trainer.gradient_clip_val=0.5") == before
    assert _vanilla(tmp_path, "trainer.gradient_clip_val=0.5") != vanilla
    for same in ("trainer.precision=32", "+trainer.num_nodes=1"):  # Lightning's other spellings of the default
        assert _before(tmp_path, same) == before and _vanilla(tmp_path, same) == vanilla, same
    assert _vanilla(tmp_path, "trainer.precision=bf16") == _vanilla(tmp_path, "trainer.precision=bf16-mixed") != vanilla
    for neutral in ("trainer.log_every_n_steps=1", "+trainer.enable_progress_bar=false"):
        assert _before(tmp_path, neutral) == before and _vanilla(tmp_path, neutral) == vanilla, neutral
    # what the teaching sets itself (warned as replaced): until 2026-12-05 it keyed another model, taught again
    for replaced in ("+trainer.max_epochs=3", "+trainer.use_distributed_sampler=false"):
        assert _vanilla(tmp_path, replaced) == vanilla, replaced


def test_the_organisms_teaching_is_keyed_by_how_the_base_is_loaded_and_its_lora_targets(tmp_path):
    """Stage 2 starts from the base as load_configured loads it (model.dtype), and a LoRA teaching adapts
    model.lora_target_modules where finetune.lora names none; the embedded default builds its model afresh in
    float32, so there model.dtype moves only the evaluation."""
    organism = _vanilla(tmp_path, "experiment=organism")
    assert _vanilla(tmp_path, "experiment=organism", "model.dtype=bfloat16") != organism
    assert _vanilla(tmp_path, "model.dtype=bfloat16") == _vanilla(tmp_path)
    lora = _vanilla(tmp_path, "experiment=organism", "finetune.lora.enabled=true")
    assert _vanilla(tmp_path, "experiment=organism", "finetune.lora.enabled=true",
                    "model.lora_target_modules=[q_proj,v_proj]") != lora
    # the targets' shipped list, written out, is the key it was
    shipped = "model.lora_target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
    assert _vanilla(tmp_path, "experiment=organism", "finetune.lora.enabled=true", shipped) == lora
    assert _vanilla(tmp_path, "experiment=organism", "model.lora_target_modules=[q_proj]") == organism  # no LoRA


def test_a_new_generator_version_re_teaches(tmp_path, monkeypatch):
    """The embedded benchmark's generator version names the data cache and the before-evaluation; a bump (rows
    taught may change) now reaches the vanilla key, and the world's reaches the base key, at the versions the
    keys were made at absent."""
    import unlearn.data.world as world
    import unlearn.pipeline as pipeline

    vanilla, base = _vanilla(tmp_path), base_module.base_key(_cfg(tmp_path, "experiment=organism"))
    monkeypatch.setattr(pipeline, "GENERATOR_VERSION", pipeline.GENERATOR_VERSION + 1)
    monkeypatch.setattr(world, "WORLD_VERSION", world.WORLD_VERSION + 1)
    assert _vanilla(tmp_path) != vanilla
    assert base_module.base_key(_cfg(tmp_path, "experiment=organism")) != base


def test_a_base_pretrained_here_is_keyed_by_threads_and_the_shipped_one_is_not(tmp_path):
    """A cached base (not the shipped one) pretrained on 2 threads is not the one-thread base; the shipped base
    is every machine's and every thread count's, and the vanilla key reads which base the run starts from."""
    seed1 = _cfg(tmp_path, "experiment=organism", "model.base.seed=1")  # no shipped weights hold this base
    with torch_threads(1):
        one, vanilla_one = base_module.base_path(seed1), vanilla_key(seed1)
    with torch_threads(2):
        two, vanilla_two = base_module.base_path(seed1), vanilla_key(seed1)
    assert one != two and vanilla_one != vanilla_two
    assert one.name.endswith(base_module.base_key(seed1))  # the one-thread base keeps its key
    shipped = _cfg(tmp_path, "experiment=organism")
    assert base_module.shipped_key(shipped) == base_module.base_key(shipped)  # the shipped weights hold this base
    with torch_threads(1):
        key_one = base_module.base_identity(shipped)
    with torch_threads(2):
        assert base_module.base_identity(shipped) == key_one == base_module.base_key(shipped)


# (overrides, vanilla key on one thread, before-evaluation key), computed by the code before the audit; the two
# two-process teachings' vanilla keys are the later ones of callbacks/random_state.py
KEYS_BEFORE_THE_AUDIT = [
    ([], "92a619182db5", "ef146dc3eab7"),
    (["experiment=organism"], "aaaa0a250e56", "ef146dc3eab7"),
    (["experiment=organism", "finetune.lora.enabled=true"], "ef7affecb54e", "ef146dc3eab7"),
    (["debug=fast"], "ca35cbfa9742", "d9e9832a5c77"),
    (["finetune=mllmu_bench"], "ae30bb954ea8", "ef146dc3eab7"),
    # taught on two processes: re-keyed on purpose (the ranks keep the one process's random state since then)
    (["trainer=ddp_sim"], "063ec226858f", "dc7f4c14bcf2"),
    (["experiment=organism", "trainer=ddp_sim"], "495981cdbf68", "dc7f4c14bcf2"),
    (["experiment=organism", "model.base.seed=1"], "f584dbea161c", "ef146dc3eab7"),
    (["data=clear", "data.path=/x"], "5329d476dada", "3a69eaaf8cae"),
]


@pytest.mark.parametrize("overrides,vanilla,before", KEYS_BEFORE_THE_AUDIT)
def test_keys_cached_before_the_audit_are_unchanged(tmp_path, overrides, vanilla, before):
    """Keys are hashes of settings (no machine in them on one CPU thread): the models and evaluations cached
    before the audit's additions, none of which applies at the shipped values, keep their keys."""
    assert _vanilla(tmp_path, *overrides) == vanilla
    assert _before(tmp_path, *overrides) == f"tiny_llava-abc-{before}.json"


def test_a_local_snapshot_edited_in_place_is_another_vanilla_model_and_evaluation(tmp_path):
    """Until 2026-12-05 the keys read data.path as a string: rows changed in a local snapshot were read anew
    (unlearn.data.hub.datasets_cache) but the model taught on the old rows, and its evaluation, were reused."""
    import os

    from unlearn.pipeline import before_cache_path, vanilla_path

    snapshot = tmp_path / "CLEAR"
    snapshot.mkdir()
    (snapshot / "x.parquet").write_bytes(b"old rows")
    keys = lambda: (vanilla_path(cfg).name, before_cache_path(cfg, "m").name)  # noqa: E731
    with torch_threads(1):
        cfg = compose_config(["data=clear", f"data.path={snapshot}", "model=tiny_llava"], tmp_path / "run",
                             tmp_path / "cache")
        old = keys()
        assert old == keys()  # the same files: the same keys
        (snapshot / "x.parquet").write_bytes(b"new rows, another size")
        new = keys()
        os.utime(snapshot / "x.parquet", ns=(1, 1))
        touched = keys()
    assert new[0] != old[0] and new[1] != old[1]
    assert touched != new
    hub = compose_config(["data=clear", "model=tiny_llava"], tmp_path / "run", tmp_path / "cache")
    from unlearn.data.hub import local_files_state

    assert local_files_state(hub.data.path) is None  # a hub id: keyed as before


def test_accelerator_auto_is_keyed_as_the_device_it_picks(tmp_path, monkeypatch):
    from unlearn.pipeline import vanilla_path

    with torch_threads(1):
        auto = compose_config(["trainer.accelerator=auto"], tmp_path / "run", tmp_path / "cache")
        cpu = compose_config([], tmp_path / "run", tmp_path / "cache")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert vanilla_path(auto) == vanilla_path(cpu)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        assert vanilla_path(auto) != vanilla_path(cpu)


def test_a_benchmark_argument_set_apart_from_the_spec_keys_the_vanilla_model(tmp_path):
    """The shipped data configs fill `data.benchmark` from `data.spec` and the top-level data keys, which the
    vanilla key reads; an argument set there directly loads other rows, and was cached under the spec's key until
    2026-12-05. The same value written out leaves the key as it was."""
    default = _vanilla(tmp_path)
    spec = ("data.benchmark.spec={_target_: unlearn.data.mllmu_mini.MiniSpec, num_people: %d, num_untouched: 20, "
            "seed: 0, image_size: 32, train_variants: 8, forget_percents: [5, 10, 15]}")
    assert _vanilla(tmp_path, spec % 50) != default
    assert _vanilla(tmp_path, spec % 100) == default  # the spec's own values, written out
    assert _vanilla(tmp_path, "data.spec.num_people=50") == _vanilla(tmp_path, "data.spec.num_people=50", spec % 50)
    assert _vanilla(tmp_path, "data.benchmark.cache_dir=/elsewhere") == default  # where, not what
    real = ("data=mllmu_bench", "data.path=/data/MLLMU-Bench")
    assert _vanilla(tmp_path, *real, "data.benchmark.text_rule=clean") != _vanilla(tmp_path, *real)
    assert _vanilla(tmp_path, *real, "data.spec.text_rule=clean") == \
        _vanilla(tmp_path, *real, "data.spec.text_rule=clean", "data.benchmark.text_rule=clean")
    assert _vanilla(tmp_path, "data.benchmark._target_=mine.load") != default  # a user's own loader
    assert _vanilla(tmp_path, "+data.benchmark.extra=1") != default


def test_the_before_evaluation_is_shared_across_what_its_records_do_not_read(tmp_path):
    """eval.few_shot_seed is ${seed}: under the embedded protocol, which draws no shots, every seed evaluated the
    same vanilla model again until 2026-12-05. What the records do not depend on is keyed at the values a seed-0
    run keyed it by (so its cached evaluations keep their keys); where shots are drawn the seed still parts them."""
    default = _before(tmp_path)
    for same in ("seed=3", "eval.few_shot_seed=7", "eval.few_shot=false", "eval.truth_ratio_perturbed=pooled",
                 "data.forget_modality=text"):
        assert _before(tmp_path, same) == default, same
    real = ("data=mllmu_bench", "data.path=/data/MLLMU-Bench")
    shots = _before(tmp_path, *real)
    assert _before(tmp_path, *real, "seed=3") != shots  # other shot people, other items scored
    assert _before(tmp_path, *real, "eval.shot_people={mc: 2}") != shots
    zero_shot = _before(tmp_path, *real, "eval.few_shot=false")
    assert zero_shot != shots and _before(tmp_path, *real, "eval.few_shot=false", "seed=3") == zero_shot


def test_a_base_pretrained_here_is_not_keyed_as_the_shipped_base(tmp_path):
    """`model.base.shipped=null` pretrains this config's base here, on another machine than the shipped weights
    were: its vanilla models shared the key of those taught from the shipped base until 2026-12-05."""
    from unlearn.pipeline import vanilla_path

    shipped = _cfg(tmp_path, "experiment=organism")
    here = _cfg(tmp_path, "experiment=organism", "model.base.shipped=null")
    assert base_module.base_key(here) == base_module.base_key(shipped) in base_module.repository_shipped_keys()
    with torch_threads(1):
        assert base_module.base_identity(shipped) == base_module.base_key(shipped)
        assert base_module.base_identity(here) != base_module.base_identity(shipped)
        assert vanilla_path(here) != vanilla_path(shipped)
        seed1 = _cfg(tmp_path, "experiment=organism", "model.base.seed=1", "model.base.shipped=null")
        assert base_module.base_identity(seed1) == base_module.base_key(seed1)  # nothing shipped for it: as keyed


def test_a_trainer_key_a_stage_sets_itself_is_warned(tmp_path, caplog, monkeypatch):
    """`+trainer.max_epochs=3` and, under MMUnlearner, `trainer.gradient_clip_val` are replaced by the stage's own
    values: until 2026-12-05 silently. The values every trainer preset sets and the stages replace are not warned."""
    import unlearn.pipeline as pipeline
    from unlearn.pipeline import warn_unread_trainer_keys

    monkeypatch.setattr(pipeline, "_warned_trainer_keys", set())  # warned once per process
    added = _cfg(tmp_path, "+trainer.max_epochs=3", "trainer.gradient_clip_val=0.5").trainer
    assert warn_unread_trainer_keys(added, {"max_epochs": 4, "logger": False, "callbacks": []}) == ["max_epochs"]
    assert warn_unread_trainer_keys(added, {"max_epochs": 3}) == []  # the stage runs what was asked
    assert warn_unread_trainer_keys(added, {"gradient_clip_val": None}) == ["gradient_clip_val"]
    shipped = _cfg(tmp_path).trainer
    assert warn_unread_trainer_keys(shipped, {"max_epochs": 4, "gradient_clip_val": None,
                                              "enable_checkpointing": True}) == []
    assert "trainer.max_epochs=3 is not what this stage runs" in caplog.text


def test_every_spelling_of_one_trainer_precision_keys_one_model_and_other_precisions_apart(tmp_path):
    """trainer.precision=64 is Lightning's 64-true, not 32-true: a double-precision teaching is another model."""
    from unlearn.config import compose_config
    from unlearn.pipeline import vanilla_key
    from unlearn.runtime import torch_threads

    def key(*o):
        return vanilla_key(compose_config(["debug=fast", *o], tmp_path / "run", tmp_path / "cache"))

    with torch_threads(1):
        plain = key()
        assert key("trainer.precision=32") == plain
        assert key("trainer.precision=64") == key("trainer.precision=64-true") != plain
        assert key("trainer.precision=bf16") == key("trainer.precision=bf16-mixed") != plain


def test_a_teaching_away_from_the_default_recipe_names_what_departs(tmp_path):
    """A run that teaches its missing vanilla model under other trainer settings or weights says which (a preset
    for unlearning a given checkpoint, experiment=open_unlearning, taught the embedded model in bf16-true with
    gradient accumulation under the log line "vanilla model missing" alone)."""
    from unlearn.pipeline import teaching_departures

    def departures(*overrides):
        return teaching_departures(compose_config(list(overrides), tmp_path / "o", tmp_path / "c"))

    assert departures() == [] and departures("debug=fast") == [] and departures("experiment=organism") == []
    assert departures("experiment=open_unlearning") == ["trainer.precision=bf16-true",
                                                        "trainer.accumulate_grad_batches=4"]
    # the embedded model is built in float32 whatever model.dtype says, and keyed as the default's: no departure
    # (until the forty-eighth session warned as a vanilla model of its own); the organism loads its base in it
    assert departures("model.dtype=bfloat16") == []
    assert departures("experiment=organism", "model.dtype=bfloat16") == ["model.dtype=bfloat16"]
    assert departures("trainer=ddp_sim")[0] == "trainer.devices=2"
    # a checkpoint's teaching (a real model) has no default recipe to depart from
    assert departures("model=llava_1_5_7b", "trainer=gpu") == departures("experiment=manu_official") == []


def test_later_keys_read_by_hand():
    """later_keys.one_process and shot_order_read on small dicts: a trainer of one device on two nodes is two
    processes (whose token means differ), and eval.few_shot=false reads no shot order. Mutation audit:
    one_process ignoring num_nodes, shot_order_read ignoring few_shot, MMUnlearner's one person read as
    more (`>= 1`) and one family of several drawing one person read as all of them passed every test of this file."""
    from unlearn.later_keys import DOTTED, one_process, shot_order_read

    # every later data key under both places a saved config holds the data's (data.spec and data.benchmark)
    assert {k: DOTTED[k] for k in ("data.spec.caption_prompt", "data.benchmark.caption_prompt", "data.eval_rows",
                                   "data.benchmark.eval_rows")} == {"data.spec.caption_prompt": "cycle",
                                   "data.benchmark.caption_prompt": "cycle", "data.eval_rows": None,
                                   "data.benchmark.eval_rows": None}

    assert one_process({}) and one_process({"devices": 1, "num_nodes": None}) and one_process({"devices": "1"})
    assert not one_process({"devices": 1, "num_nodes": 2}) and not one_process({"devices": "auto"})
    assert shot_order_read({"protocol": "mllmu_bench"})  # shots on, no model: two people per task assumed
    assert not shot_order_read({"protocol": "mllmu_bench", "few_shot": False})
    assert not shot_order_read({"protocol": "embedded"})
    # MMUnlearner's protocol draws one person per task unless eval.shot_people says more
    assert not shot_order_read({"protocol": "mmunlearner"})
    assert shot_order_read({"protocol": "mmunlearner", "shot_people": {"cloze": 2}})
    # mllmu_bench: Idefics2 draws one person for each task, LLaVA two for cloze; a model that may be either draws two
    assert not shot_order_read({"protocol": "mllmu_bench"}, {"model_types": ["idefics2"]})
    assert shot_order_read({"protocol": "mllmu_bench"}, {"model_types": ["idefics2", "llava"]})
