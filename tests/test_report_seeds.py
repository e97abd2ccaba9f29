"""Seed aggregation in unlearn.report: runs that differ only by `seed` become one row of mean ± std."""

from __future__ import annotations

import json
import math

import pytest

from tests.test_report import GA_AFTER, metrics_for, parse_table, write_run
from unlearn.report import aggregate, group_by_seed, load_runs, main, mean_std, seed_table


def test_mean_std_hand_computed():
    # mean of 0.8, 0.9, 1.0 = 0.9; squared deviations 0.01 + 0 + 0.01 = 0.02; / (3 - 1) = 0.01; sqrt = 0.1
    mean, std = mean_std([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([0.2, 0.2]) == (pytest.approx(0.2), 0.0)
    # three seeds at the same accuracy: (0.1 + 0.1 + 0.1) / 3 is not 0.1 in floats, and a std of 1.7e-17
    # would print as a spread and count as one in unlearn.reproduce's tests
    assert mean_std([5 / 50] * 3) == (5 / 50, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_aggregate_skips_runs_without_the_key():
    ms = [{"k": 1.0}, {"k": 0.0}, {"other": 3.0}, {"k": None}]
    mean, std, n = aggregate(ms, "k")
    assert (mean, n) == (0.5, 2) and std == pytest.approx(math.sqrt(0.5))
    assert aggregate(ms, "missing") is None


def _seeded_sweep(root):
    """ga at seeds 0-2 (forget MM 0.2, 0.3, 0.4), ga lr=1e-3 at seed 0, manu alpha=5 at seeds 0-1."""
    for i, (seed, f) in enumerate([(0, 0.2), (1, 0.3), (2, 0.4)]):
        write_run(root / f"{i}_ga", "ga", metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": f}, 1.0),
                  ["method=ga", f"seed={seed}", "logger=none"])
    write_run(root / "3_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0", "method.optimizer.lr=1e-3",
                                                               "logger=none"])
    for i, seed in enumerate([0, 1]):
        write_run(root / f"{4 + i}_manu", "manu", metrics_for({**GA_AFTER, "retain/text/mc_acc": 0.9 + 0.1 * i}, 1.0),
                  ["method=manu", "manu.alpha=5", f"seed={seed}", "logger=none"])
    return root


def test_groups_differ_only_by_seed(tmp_path):
    groups = group_by_seed(load_runs([_seeded_sweep(tmp_path / "sw")]))
    assert [(g.name, len(g.runs)) for g in groups] == [("ga", 3), ("ga optimizer.lr=1e-3", 1), ("manu alpha=5", 2)]
    assert [r.seed for r in groups[0].runs] == [0, 1, 2]


def test_seed_table_mean_and_std(tmp_path):
    table = parse_table(seed_table(group_by_seed(load_runs([_seeded_sweep(tmp_path / "sw")]))))
    assert table["ga"]["seeds"] == "3"
    assert table["ga"]["MM forget MC ↓"] == "0.300 ± 0.100"
    assert table["ga optimizer.lr=1e-3"]["MM forget MC ↓"] == "0.200"  # one seed: no spread to print
    assert table["manu alpha=5"]["text retain MC ↑"] == "0.950 ± 0.071"  # 0.9, 1.0: std sqrt(0.005)
    assert table["vanilla"]["seeds"] == "3"  # seeds 0, 1, 2 across all groups


def test_main_adds_seed_section_only_with_repeated_seeds(tmp_path, capsys):
    md = main([str(_seeded_sweep(tmp_path / "sw")), "--out", str(tmp_path / "out")])
    assert "## Over seeds" in md.read_text() and "0.300 ± 0.100" in md.read_text()
    single = tmp_path / "single"
    write_run(single / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga"])
    md = main([str(single), "--out", str(tmp_path / "out2")])
    assert "Over seeds" not in md.read_text()


def test_likelihood_table_over_seeds_only_when_runs_carry_it(tmp_path):
    from unlearn.report import has_likelihood, likelihood_table

    root = tmp_path / "lk"
    for seed, tr in [(0, 0.5), (1, 0.7)]:
        m = metrics_for(GA_AFTER, 1.0) | {"before/forget/multimodal/truth_ratio": 0.2,
                                          "after/forget/multimodal/truth_ratio": tr,
                                          "after/forget/text/forget_quality": 0.01 * (seed + 1)}
        write_run(root / f"{seed}_ga", "ga", m, ["method=ga", f"seed={seed}"])
    runs = load_runs([root])
    assert has_likelihood(runs) and not has_likelihood(load_runs([_seeded_sweep(tmp_path / "sw")]))
    table = parse_table(likelihood_table(group_by_seed(runs)))
    assert table["ga"]["MM forget TR (1 best)"] == "0.600 ± 0.141"  # 0.5, 0.7: std sqrt(0.02)
    assert table["ga"]["text forget quality ↑"] == "0.015 ± 0.007"
    assert table["vanilla"]["MM forget TR (1 best)"] == "0.200 ± 0.000"
    assert table["ga"]["MM retain TR ↑"] == "n/a"
    md = main([str(root), "--out", str(tmp_path / "out")]).read_text()
    assert "## Likelihood metrics" in md
    assert "## Likelihood metrics" not in main([str(_seeded_sweep(tmp_path / "sw2")), "--out",
                                               str(tmp_path / "out2")]).read_text()


def test_vanilla_row_counts_taught_models_not_method_seeds(tmp_path):
    """Method seeds 0-2 on one model taught with teach_seed=0: one vanilla model, not three."""
    root = tmp_path / "sw"
    for seed in range(3):
        write_run(root / f"{seed}_ga", "ga", metrics_for(GA_AFTER, 1.0),
                  ["method=ga", f"seed={seed}", "teach_seed=0", "logger=none"])
        summary = json.loads((root / f"{seed}_ga" / "metrics.json").read_text())
        (root / f"{seed}_ga" / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": 0}))
    runs = load_runs([root])
    assert [(r.seed, r.teach_seed) for r in runs] == [(0, 0), (1, 0), (2, 0)]
    text = seed_table(group_by_seed(runs))
    table = parse_table(text)
    assert table["vanilla"]["seeds"] == "1" and table["ga"]["seeds"] == "3"
    assert "runs of one taught model (method seeds at one `teach_seed`): ga (3 runs, 1 taught)" in text
    assert "runs of one taught model" not in seed_table(group_by_seed(load_runs([_seeded_sweep(tmp_path / "s")])))


def test_a_repeated_seed_in_one_setting_is_refused_naming_both_runs(tmp_path):
    """A single default run (seed 0) beside a sweep of the same setting would make seeds [0, 1, 0]."""
    root = _seeded_sweep(tmp_path / "sw")
    single = tmp_path / "single"
    write_run(single / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0", "logger=none"])
    with pytest.raises(ValueError, match=r"0_ga and .*single/0_ga: the same setting \(ga\) at the same seed 0"):
        group_by_seed(load_runs([root, single]))
    # the same seed on another taught model is another sample
    other = tmp_path / "other"
    write_run(other / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0", "logger=none"])
    summary = json.loads((other / "0_ga" / "metrics.json").read_text())
    (other / "0_ga" / "metrics.json").write_text(json.dumps({**summary, "teach_seed": 7}))
    assert [len(g.runs) for g in group_by_seed(load_runs([root, other]))][0] == 4


def test_a_cell_fewer_runs_carry_says_how_many(tmp_path):
    root = tmp_path / "sw"
    for seed, forget in [(0, 0.2), (1, 0.4), (2, None)]:
        m = metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0)
        if forget is None:
            m = {k: v for k, v in m.items() if k != "after/forget/multimodal/mc_acc"}
        write_run(root / f"{seed}_ga", "ga", m, ["method=ga", f"seed={seed}"])
    table = parse_table(seed_table(group_by_seed(load_runs([root]))))
    assert table["ga"]["seeds"] == "3"
    assert table["ga"]["MM forget MC ↓"] == "0.300 ± 0.141 (2 of 3)"  # 0.2, 0.4: std sqrt(0.02)
    assert "of" not in table["ga"]["MM retain MC ↑"]


def _with_config(run_dir, lr, seed, logger="none", cache="/cache"):
    """The composed config Hydra saves beside the overrides (interpolations kept)."""
    import yaml

    config = {"seed": seed, "teach_seed": "${seed}", "logger": None if logger == "none" else {"project": "x"},
              "paths": {"cache_dir": cache, "output_dir": "${hydra:runtime.output_dir}"},
              "eval": {"few_shot_seed": "${seed}", "before": True, "dtype": None},
              "method": {"name": "ga", "optimizer": {"lr": lr}}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    summary = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**summary, "seed": seed}))


def test_runs_are_grouped_by_the_setting_they_ran_not_by_their_command_line(tmp_path):
    """The same overrides under two defaults (GA's lr changed default) are two settings; an override that
    changes nothing, given in one sweep only, does not split one; seeds, paths and loggers are not settings."""
    old, new = tmp_path / "old", tmp_path / "new"
    for i, (root, lr, forget) in enumerate([(old, 5e-4, 0.1), (new, 5e-5, 0.8), (new, 5e-5, 0.9)]):
        seed = i
        d = root / f"{i}_ga"
        overrides = ["method=ga", f"seed={seed}"] + (["logger=none"] if root == new else [])
        write_run(d, "ga", metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0), overrides)
        _with_config(d, lr, seed, logger="none" if root == new else "wandb", cache=str(root))
    groups = group_by_seed(load_runs([old, new]))
    assert [(g.name, [r.seed for r in g.runs]) for g in groups] == [
        ("ga [method.optimizer.lr=0.0005]", [0]), ("ga [method.optimizer.lr=5e-05]", [1, 2])]
    table = parse_table(seed_table(groups))
    assert table["ga [method.optimizer.lr=5e-05]"]["MM forget MC ↓"] == "0.850 ± 0.071"  # not 0.6 ± 0.4 merged
    # the same default under both: one setting over three seeds, whatever each command line said of the logger
    _with_config(old / "0_ga", 5e-5, 0, logger="wandb", cache=str(old))
    assert [(g.name, len(g.runs)) for g in group_by_seed(load_runs([old, new]))] == [("ga", 3)]


def test_a_group_on_another_vanilla_evaluation_is_named_under_the_seed_table(tmp_path):
    """The vanilla row takes each teaching seed's first before stage; a group whose before values differ at
    the same seed (another forget split) is named beneath it instead of read against it."""
    root = tmp_path / "sw"
    for seed in (0, 1):
        write_run(root / f"{seed}_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", f"seed={seed}"])
        other = {**metrics_for(GA_AFTER, 1.0), "before/forget/multimodal/mc_acc": 0.8}
        write_run(root / f"{2 + seed}_ga", "ga", other, ["method=ga", f"seed={seed}", "data.forget_split=forget_5"])
    table = seed_table(group_by_seed(load_runs([root])))
    assert "ga data.forget_split=forget_5 evaluated another" in table
    same = tmp_path / "same"
    for seed in (0, 1):
        write_run(same / f"{seed}_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", f"seed={seed}"])
    assert "the vanilla row is" not in seed_table(group_by_seed(load_runs([same])))


def test_the_vanilla_row_does_not_mix_two_vanilla_models(tmp_path):
    """Setting A at seed 0 on one vanilla evaluation, setting B (another forget split) at seeds 0 and 1 on
    another: the row is A's model alone, B named beneath it (until 2026-12-05 the row averaged A's seed 0 with
    B's seed 1, 0.900 ± 0.141, a model of neither)."""
    root = tmp_path / "sw"
    write_run(root / "0_ga", "ga", {**metrics_for(GA_AFTER, 1.0), "before/forget/multimodal/mc_acc": 1.0},
              ["method=ga", "seed=0"])
    for seed in (0, 1):
        write_run(root / f"{1 + seed}_ga", "ga", {**metrics_for(GA_AFTER, 1.0), "before/forget/multimodal/mc_acc": 0.8},
                  ["method=ga", f"seed={seed}", "data.forget_split=forget_5"])
    text = seed_table(group_by_seed(load_runs([root])))
    row = parse_table(text)["vanilla"]
    assert row["seeds"] == "1" and row["MM forget MC ↓"] == "1.000"
    assert "ga data.forget_split=forget_5 evaluated another" in text


def test_a_setting_reads_keys_newer_code_added_with_empty_defaults_as_absent():
    """Runs made before a key existed group with runs made after it at its default (null, false or empty);
    a value set is a setting; seeds, paths and loggers never are."""
    from unlearn.report import setting_of

    old = {"seed": 0, "method": {"name": "npo", "alpha": 0.0, "optimizer": {"lr": 5e-5}}}
    new = {"seed": 1, "paths": {"cache_dir": "/c"}, "logger": None,
           "method": {"name": "npo", "alpha": 0.0, "optimizer": {"lr": 5e-5}, "reference_required": False,
                      "image_processor": {}, "reference_dtype": None, "targets": []}}
    assert setting_of(old) == setting_of(new) == {"method.name": "npo", "method.alpha": 0.0,
                                                   "method.optimizer.lr": 5e-5}
    new["method"]["reference_required"] = True
    assert setting_of(new) != setting_of(old)


def test_keys_added_later_at_their_defaults_read_as_absent():
    """method.warmup_epochs 0, mmunlearner.clip_retain true, CLEAR's data.spec.train_pairs both_forms and
    caption_prompt cycle, method.retain_draw epoch (added 2026-12-03): a sweep resumed across that change keeps
    its seed groups."""
    from unlearn.report import setting_of

    old = {"method": {"name": "ga", "lr_decay": "linear"}, "mmunlearner": {"clip": 1.0},
           "data": {"spec": {"seed": 0}}, "model": {"name": "qwen2_vl_7b"}}
    new = {"method": {"name": "ga", "lr_decay": "linear", "warmup_epochs": 0, "retain_draw": "epoch"},
           "mmunlearner": {"clip": 1.0, "clip_retain": True},
           "data": {"spec": {"seed": 0, "train_pairs": "both_forms", "caption_prompt": "cycle"}},
           "model": {"name": "qwen2_vl_7b", "forward_positions": "mrope"}}  # (model.forward_positions: 2026-12-03)
    assert setting_of(old) == setting_of(new)
    for key, value in (("method", {"warmup_epochs": 1}), ("mmunlearner", {"clip_retain": False}),
                       ("method", {"retain_draw": "with_replacement"}), ("model", {"forward_positions": "sequential"})):
        changed = {**new, key: {**new[key], **value}}
        assert setting_of(changed) != setting_of(old), key
    clear = {**new, "data": {"spec": {"seed": 0, "train_pairs": "clear", "caption_prompt": "cycle"}}}
    assert setting_of(clear)["data.spec.train_pairs"] == "clear"


def test_the_split_probe_floor_is_a_setting_only_where_it_is_read():
    """finetune.target_split_mc_acc (2026-12-04) separates seed groups where a probe reads it, and reads as
    absent without one (`target_mc_acc: null`), as in the vanilla key."""
    from unlearn.report import setting_of

    def finetune(**keys):
        return {"finetune": {"epochs": 150, **keys}}

    before = setting_of(finetune(target_mc_acc=0.97))
    assert setting_of(finetune(target_mc_acc=0.97, target_split_mc_acc=0.95)) != before
    assert setting_of(finetune(target_mc_acc=None, target_split_mc_acc=0.95)) == setting_of(finetune())


def test_token_means_part_no_one_process_runs():
    """The official presets write token_mean process (2026-12-04): on one process that is the step global takes,
    so their runs keep the seed group of runs made before the keys existed; on several it is a setting."""
    from unlearn.report import setting_of

    old = {"method": {"name": "ga", "lr_decay": "linear"}, "trainer": {"devices": 1}}
    new = {"method": {"name": "ga", "lr_decay": "linear", "token_mean": "process"}, "trainer": {"devices": 1},
           "finetune": {"token_mean": "process"}, "mmunlearner": {"token_mean": "process"}}
    assert setting_of(old) == setting_of(new)
    for devices in (2, "auto"):
        several = {**new, "trainer": {"devices": devices}}
        assert setting_of(several) != setting_of({**old, "trainer": {"devices": devices}}), devices


def test_trainer_keys_that_move_no_number_do_not_part_seed_groups():
    """A log interval or a progress bar is not a setting: runs differing only there are one seed group; a trainer
    key that moves the numbers still parts them."""
    from unlearn.report import setting_of

    base = {"method": {"name": "ga"}, "trainer": {"devices": 1, "log_every_n_steps": 10}}
    assert setting_of(base) == setting_of({**base, "trainer": {"devices": 1, "log_every_n_steps": 1,
                                                                "enable_progress_bar": True}})
    assert setting_of(base) != setting_of({**base, "trainer": {"devices": 1, "limit_val_batches": 1}})


def test_runs_that_differ_only_by_teach_seed_are_one_setting_without_a_config(tmp_path):
    root = tmp_path / "sw"
    for teach in (0, 1):
        run = write_run(root / f"{teach}_ga", "ga", metrics_for(GA_AFTER, 1.0),
                        ["method=ga", "seed=0", f"teach_seed={teach}"])
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "teach_seed": teach}))  # as every run records it
    groups = group_by_seed(load_runs([root]))
    assert [(g.name, sorted(r.teach_seed for r in g.runs)) for g in groups] == [("ga", [0, 1])]


def _bare_run(run_dir, method, seed, forget, config=None, follows=None, sweep_overrides=None, source="/c/vanilla/x"):
    """A run dir without .hydra/ (the frontier's, or hydra.output_subdir=null): metrics.json, and config.json
    and the frontier's overrides.json where given."""
    run_dir.mkdir(parents=True)
    summary = {"method": method, "seed": seed, "teach_seed": seed, "source_model": source,
               "metrics": metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0)}
    if follows is not None:
        summary["follows_run"] = follows
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(config))
    if sweep_overrides is not None:
        (run_dir / "overrides.json").write_text(json.dumps(sweep_overrides))
    return run_dir


def _resolved(method, seed, lr, gamma=1.0):
    return {"seed": seed, "teach_seed": seed, "method": {"name": method, "optimizer": {"lr": lr}, "gamma": gamma},
            "eval": {"few_shot_seed": seed, "batch_size": 8}, "paths": {"output_dir": f"/out/{seed}"}}


def test_runs_without_hydra_dir_are_grouped_by_their_resolved_config(tmp_path):
    """Until 2026-12-05 runs without .hydra/ (the frontier's, hydra.output_subdir=null) were grouped by method
    alone: lr 1e-3 and 5e-5 made one row of mean ± std. Their resolved config.json less the keys that follow the
    seed sets them apart, and numbers are compared by value (gamma 1 and 1.0 are one setting)."""
    follows = ["eval.few_shot_seed"]
    runs = [_bare_run(tmp_path / "a0", "ga", 0, 0.2, _resolved("ga", 0, 5e-5), follows),
            _bare_run(tmp_path / "a1", "ga", 1, 0.4, _resolved("ga", 1, 5e-5, gamma=1), follows),
            _bare_run(tmp_path / "b0", "ga", 0, 0.9, _resolved("ga", 0, 1e-3), follows),
            _bare_run(tmp_path / "b1", "ga", 1, 0.7, _resolved("ga", 1, 1e-3), follows)]
    groups = group_by_seed(load_runs(runs))
    assert sorted(sorted(r.path.name for r in g.runs) for g in groups) == [["a0", "a1"], ["b0", "b1"]]
    # told that nothing follows the seed, the few-shot seed, which does, sets the two seeds apart
    assert len(group_by_seed(load_runs([_bare_run(tmp_path / "c0", "ga", 0, 0.2, _resolved("ga", 0, 5e-5), []),
                                        _bare_run(tmp_path / "c1", "ga", 1, 0.2, _resolved("ga", 1, 5e-5), [])]))) == 2


def test_frontier_runs_are_grouped_by_their_overrides_and_unrecorded_runs_alone(tmp_path):
    """A frontier run without config.json holds overrides.json: read as its overrides. A run that recorded
    neither its config nor its overrides is a setting of its own, said in a warning."""
    over = lambda lr, s: ["method=ga", f"method.optimizer.lr={lr}", f"seed={s}", "logger=none"]  # noqa: E731
    runs = [_bare_run(tmp_path / f"lr{lr}s{s}", "ga", s, 0.5, sweep_overrides=over(lr, s))
            for lr in ("5e-05", "0.001") for s in (0, 1)]
    groups = group_by_seed(load_runs(runs))
    assert sorted(len(g.runs) for g in groups) == [2, 2] and len({g.name for g in groups}) == 2
    bare = [_bare_run(tmp_path / f"n{s}", "ga", s, 0.5) for s in (0, 1)]
    with pytest.warns(UserWarning, match="neither its configuration nor its overrides recorded"):
        loaded = load_runs(bare)
    assert [len(g.runs) for g in group_by_seed(loaded)] == [1, 1]


def test_runs_from_other_vanilla_models_at_one_teaching_seed_are_not_paired(tmp_path):
    """Two settings at teach seeds 0 and 1, but the second's runs started from another cache's model (another
    thread count, machine or recipe): until 2026-12-05 paired seed by seed as runs of one taught model."""
    from unlearn.report import paired_seed_table

    follows = ["eval.few_shot_seed"]

    def runs(lr, source, forgets):
        return [_bare_run(tmp_path / f"{lr}_{s}", "ga", s, f, _resolved("ga", s, lr), follows, source=source)
                for s, f in zip((0, 1), forgets)]

    same = group_by_seed(load_runs(runs(5e-5, "/c/vanilla/m", (0.2, 0.3)) + runs(1e-3, "/c/vanilla/m", (0.5, 0.4))))
    assert paired_seed_table(same) is not None
    other = group_by_seed(load_runs(runs(1e-4, "/c/vanilla/m", (0.2, 0.3)) + runs(2e-3, "/d/vanilla/n", (0.5, 0.4))))
    assert paired_seed_table(other) is None
    # two settings from models that share none: a vanilla row each (until 2026-12-07 one row of all four)
    table = parse_table(seed_table(other))
    assert [(name, row["seeds"]) for name, row in table.items() if name.startswith("vanilla")] == \
        [("vanilla of ga [method.optimizer.lr=0.0001]", "2"), ("vanilla of ga [method.optimizer.lr=0.002]", "2")]


def test_the_keys_that_follow_the_run_are_found_by_resolving_again(tmp_path):
    from unlearn.config import compose_config
    from unlearn.pipeline import run_following_keys

    cfg = compose_config(["method=manu", "+eval.mine=run${seed}"], tmp_path / "out", tmp_path / "cache")
    keys = run_following_keys(cfg)
    assert {"eval.few_shot_seed", "eval.mine", "manu.official.seed", "model.build.spec.init_seed",
            "data.benchmark.cache_dir"} <= set(keys)
    assert "seed" not in keys and "manu.alpha" not in keys and not any(k.startswith(("finetune.", "paths."))
                                                                       for k in keys)
    assert cfg.seed == 0 and cfg.teach_seed == 0  # the run's own config is left as it was
    fixed = compose_config(["method=ga", "teach_seed=3"], tmp_path / "out", tmp_path / "cache")
    assert "model.build.spec.init_seed" in run_following_keys(fixed)  # follows teach_seed, set apart from seed
    # docs/guide/evaluation.md's per-seed reference: through ${seed} it follows the run, so the seeds' runs pool
    # (written out, runs/ref_0 and runs/ref_1 were two settings of one run each, and no table over seeds was made)
    per_seed = compose_config(["method=manu", "eval.reference_run=runs/ref_${seed}"], tmp_path / "out",
                              tmp_path / "cache")
    assert "eval.reference_run" in run_following_keys(per_seed)


@pytest.mark.parametrize("overrides", [["method=manu"], ["method=ga"], ["method=kl"], ["method=npo"],
                                       ["method=grad_diff"], ["method=mmunlearner"], ["experiment=organism"],
                                       ["experiment=manu_official"], ["experiment=mllmu_baselines"],
                                       ["experiment=mmunlearner_official"], ["experiment=clear_baselines"]])
def test_the_shipped_configs_follow_the_run_where_the_report_says(tmp_path, overrides):
    """A run made before metrics.json recorded `follows_run` is read less RUN_FOLLOWING: it must hold every key a
    shipped config lets follow the seeds or the paths."""
    from unlearn.config import compose_config
    from unlearn.pipeline import run_following_keys
    from unlearn.report import RUN_FOLLOWING

    cfg = compose_config([*overrides, "logger=wandb"], tmp_path / "out", tmp_path / "cache")
    assert set(run_following_keys(cfg)) <= set(RUN_FOLLOWING)


def test_runs_of_older_code_pool_with_runs_that_record_what_follows_the_run(tmp_path):
    """An interrupted sweep of older code, finished with this one: its run has config.json but no follows_run, and
    a cache elsewhere (data.benchmark.cache_dir follows paths.cache_dir)."""
    old = _resolved("ga", 0, 5e-5)
    old["data"] = {"benchmark": {"cache_dir": "/old/cache"}}
    new = _resolved("ga", 1, 5e-5)
    new["data"] = {"benchmark": {"cache_dir": "/new/cache"}}
    runs = [_bare_run(tmp_path / "old", "ga", 0, 0.2, old), _bare_run(tmp_path / "new", "ga", 1, 0.3, new,
                                                                       ["eval.few_shot_seed", "data.benchmark.cache_dir"])]
    assert [len(g.runs) for g in group_by_seed(load_runs(runs))] == [2]


def test_a_teaching_run_beside_unlearning_runs_is_left_out(tmp_path):
    """Its before stage is the untaught model: as the first run it made the vanilla row (until 2026-12-05)."""
    taught = write_run(tmp_path / "0_finetune", "finetune", metrics_for(GA_AFTER, 1.0), ["method=finetune"])
    ga = write_run(tmp_path / "1_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga"])
    with pytest.warns(UserWarning, match="a teaching run"):
        assert [r.method for r in load_runs([taught, ga])] == ["ga"]
    assert [r.method for r in load_runs([taught])] == ["finetune"]  # teaching runs alone: as they are


def test_a_skipped_run_is_named_on_the_page(tmp_path):
    """A job without metrics.json changes the row it would have joined: until 2026-12-05 said on stderr only."""
    sweep = _seeded_sweep(tmp_path / "sw")
    (sweep / "6_npo").mkdir()  # a job killed before it finished
    with pytest.warns(UserWarning, match="skipping .*6_npo"):
        md = main([str(sweep), "--out", str(tmp_path / "rep")])
    text = md.read_text()
    assert "## Left out or read apart" in text and "6_npo: no metrics.json" in text
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit):  # refused before anything is drawn
        main([str(sweep), "--out", str(tmp_path / "afile")])


def test_runs_made_by_different_code_are_said_to_be(tmp_path):
    a = _bare_run(tmp_path / "a", "ga", 0, 0.2, sweep_overrides=["method=ga", "seed=0"])
    b = _bare_run(tmp_path / "b", "ga", 1, 0.3, sweep_overrides=["method=ga", "seed=1"])
    for run, code in ((a, {"commit": "abcdef0123", "dirty": False}), (b, {"commit": "1234567890", "dirty": True})):
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "code": code}))
    with pytest.warns(UserWarning, match=r"runs made by different code: abcdef0 \(1 run\), 1234567\+edits \(1 run\)"):
        load_runs([a, b])


def test_a_non_finite_metric_is_named_with_its_run(tmp_path):
    run = _bare_run(tmp_path / "a", "ga", 0, float("nan"), sweep_overrides=["method=ga", "seed=0"])
    with pytest.warns(UserWarning, match=r"a/metrics.json: non-finite \['after/forget/multimodal/mc_acc'\]"):
        load_runs([run])


def test_a_sweep_dir_below_the_one_given_is_named_as_one(tmp_path):
    _seeded_sweep(tmp_path / "all" / "sw")
    with pytest.warns(UserWarning, match=r"skipping .*sw: a sweep dir \(its runs one level down\)"):
        assert load_runs([tmp_path / "all"]) == []


def test_frontier_overrides_that_name_no_setting_split_none(tmp_path):
    """The frontier evaluates each seed's vanilla model in one run: its overrides.json carried eval.before=true
    where the others' said false, and grouped by overrides the two were two settings."""
    over = lambda s, before: ["method=ga", "method.optimizer.lr=5e-05", f"seed={s}", "logger=none",  # noqa: E731
                              f"eval.before={before}"]
    runs = [_bare_run(tmp_path / "s0", "ga", 0, 0.5, sweep_overrides=over(0, "true")),
            _bare_run(tmp_path / "s1", "ga", 1, 0.5, sweep_overrides=over(1, "false"))]
    assert [len(g.runs) for g in group_by_seed(load_runs(runs))] == [2]


def test_two_user_checkpoints_named_model_are_two_vanilla_models(tmp_path):
    from unlearn.report import vanilla_model

    assert vanilla_model(0, "/a/cache/vanilla/tiny-abc", "t") == vanilla_model(0, "/b/copy/vanilla/tiny-abc", "t")
    assert vanilla_model(0, "runs/a/model", "t") != vanilla_model(0, "runs/b/model", "t")


def test_the_vanilla_row_reads_a_run_that_has_the_before_evaluation(tmp_path):
    """A frontier's runs after a seed's first carry no before/*: until 2026-12-06 the vanilla row read the first
    run of each taught model, and was n/a where that one had none."""
    root = tmp_path / "sw"
    for i, seed in enumerate((0, 1)):
        bare = {k: v for k, v in metrics_for(GA_AFTER, 1.0).items() if not k.startswith("before/")}
        write_run(root / f"{i}_manu", "manu", bare, ["method=manu", f"seed={seed}", "logger=none"])
        write_run(root / f"{2 + i}_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", f"seed={seed}",
                                                                           "logger=none"])
    table = parse_table(seed_table(group_by_seed(load_runs([root]))))
    assert table["vanilla"]["MM forget MC ↓"] == "1.000 ± 0.000"


def test_a_frontier_sweep_is_refused_naming_the_command_that_reads_it(tmp_path):
    """Its runs are three levels down and share one before-evaluation per seed: until 2026-12-06 the report said
    "no runs found" and named each method's directory a failed run."""
    write_run(tmp_path / "fr" / "ga" / "lr=0.0001" / "seed0", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga"])
    with pytest.raises(ValueError, match=r"fr is a frontier sweep .*python -m unlearn.frontier --out .*fr "
                                         r"--report-only"):
        load_runs([tmp_path / "fr"])


def test_runs_of_one_config_under_two_score_readings_are_two_settings(tmp_path):
    """data.on_bad_row=score's reading (metrics.json `score_reading`) changes which questions a config scores: runs
    of two readings are two seed groups, named apart; runs that recorded none keep grouping as they did."""
    config = lambda seed: {**_resolved("ga", seed, 5e-5), "data": {"on_bad_row": "score"}}  # noqa: E731
    runs = [_bare_run(tmp_path / f"{name}{seed}", "ga", seed, 0.2, config(seed), ["eval.few_shot_seed"])
            for name in ("old", "new", "newer") for seed in (0, 1)]
    for name, reading in (("new", 3), ("newer", 4)):
        for seed in (0, 1):
            mfile = tmp_path / f"{name}{seed}" / "metrics.json"
            mfile.write_text(json.dumps({**json.loads(mfile.read_text()), "score_reading": reading}))
    groups = group_by_seed(load_runs(runs))
    assert sorted(sorted(r.path.name for r in g.runs) for g in groups) == [
        ["new0", "new1"], ["newer0", "newer1"], ["old0", "old1"]]
    assert sorted(g.name for g in groups) == ["ga [score_reading=3]", "ga [score_reading=4]", "ga [score_reading=None]"]


def _split_run(run_dir, seed, split, before_forget, after_forget):
    """A GA run on forget split `split`, from that split's own taught model at `seed` (the forget split is part
    of the taught model's cache key), with its before and after image+text forget MC."""
    metrics = {**metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": after_forget}, 1.0),
               "before/forget/multimodal/mc_acc": before_forget}
    write_run(run_dir, "ga", metrics, ["method=ga", f"seed={seed}", f"data.forget_split={split}"])
    summary = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": seed,
                                                      "source_model": f"/c/vanilla/{split}-{seed}"}))
    return run_dir


def test_settings_from_taught_models_that_share_none_get_a_vanilla_row_each(tmp_path):
    """forget_10 and forget_5 teach other models (the split is in the cache key), so no teaching seed's model
    is shared and other_vanilla names neither: until 2026-12-07 one vanilla row averaged all four models, the
    forget MC of two different forget sets. Each family's row counts its own models and stands above its rows."""
    root = tmp_path / "sw"
    for seed, (ten, five) in enumerate([(1.0, 0.8), (0.98, 0.6)]):
        _split_run(root / f"{seed}_a", seed, "forget_10", ten, 0.2)
        _split_run(root / f"{seed}_b", seed, "forget_5", five, 0.4)
        run = _split_run(root / f"{seed}_c", seed, "forget_10", ten, 0.3)
        overrides = run / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text() + "- method.optimizer.lr=1e-3\n")
    text = seed_table(group_by_seed(load_runs([root])))
    table = parse_table(text)
    assert [(name, row["seeds"], row["MM forget MC ↓"]) for name, row in table.items()] == [
        ("vanilla (data.forget_split=forget_10)", "2", "0.990 ± 0.014"),
        ("ga data.forget_split=forget_10", "2", "0.200 ± 0.000"),
        ("ga data.forget_split=forget_10 optimizer.lr=1e-3", "2", "0.300 ± 0.000"),
        ("vanilla (data.forget_split=forget_5)", "2", "0.700 ± 0.141"),
        ("ga data.forget_split=forget_5", "2", "0.400 ± 0.000")]
    assert "2 sets of taught models that share none" in text and "evaluated another" not in text
    # seed by seed, the splits pair with nothing of each other's, and the page says why
    from unlearn.report import paired_seed_table

    paired = paired_seed_table(group_by_seed(load_runs([root])))
    assert "| n/a" in paired and "n/a: the two settings share no taught model" in paired
    one_split = group_by_seed([r for r in load_runs([root]) if "forget_10" in " ".join(r.overrides)])
    assert "n/a:" not in paired_seed_table(one_split)


def test_settings_that_share_a_taught_model_through_a_third_are_one_family(tmp_path):
    """Seeds 0-1 and 2-3 of one teaching share no model, but a third setting at seeds 1-2 joins them: one
    vanilla row of the four models, as a frontier of 3 seeds beside one of 5 reads."""
    from unlearn.report import vanilla_families

    def setting(lr, seeds, root="apart"):
        return [_bare_run(tmp_path / root / f"{lr}_{s}", "ga", s, 0.2, _resolved("ga", s, lr), ["eval.few_shot_seed"],
                          source=f"/c/vanilla/m{s}") for s in seeds]

    apart = group_by_seed(load_runs(setting(1e-4, (0, 1)) + setting(2e-4, (2, 3))))
    assert [[g.name for g in f] for f in vanilla_families(apart)] == [["ga [method.optimizer.lr=0.0001]"],
                                                                      ["ga [method.optimizer.lr=0.0002]"]]
    bridged = group_by_seed(load_runs(setting(1e-4, (0, 1), "b") + setting(2e-4, (2, 3), "b")
                                      + setting(1e-3, (0,), "b") + setting(5e-4, (1, 2), "b")))
    # one family, its groups in the order they came (not the order the families were merged in)
    assert [[g.name for g in f] for f in vanilla_families(bridged)] == [
        ["ga [method.optimizer.lr=0.0001]", "ga [method.optimizer.lr=0.0002]", "ga [method.optimizer.lr=0.001]",
         "ga [method.optimizer.lr=0.0005]"]]
    assert parse_table(seed_table(bridged))["vanilla"]["seeds"] == "4"


def _reference(run_dir, seed, people="without_forget"):
    """A finished reference run's record: its resolved config (less what follows the seed) and metrics.json."""
    config = {"seed": seed, "teach_seed": seed, "method": {"name": "finetune"}, "finetune": {"people": people},
              "eval": {"few_shot_seed": seed}, "paths": {"output_dir": str(run_dir)}}
    return _bare_run(run_dir, "finetune", seed, 0.9, config, ["eval.few_shot_seed"])


def test_a_reference_run_is_read_as_its_setting_not_its_path(tmp_path):
    """The digest ignores the reference's seed and where it lies, and tells two recipes apart; a directory with no
    recorded config has none."""
    from unlearn.report import reference_setting

    a0, a1 = _reference(tmp_path / "ref_0", 0), _reference(tmp_path / "elsewhere" / "ref_1", 1)
    other = _reference(tmp_path / "full_0", 0, people="all")
    assert reference_setting(a0) == reference_setting(a1) != reference_setting(other)
    assert reference_setting(a0) is not None
    (tmp_path / "by_hand").mkdir()
    assert reference_setting(tmp_path / "by_hand") is None


def test_runs_against_each_seeds_reference_written_out_are_one_setting(tmp_path):
    """`eval.reference_run=runs/ref_0` at seed 0, `runs/ref_1` at seed 1: until 2026-12-07 two settings of one run
    each (no forget quality over seeds); with the references' setting recorded, one of two seeds. References of
    two recipes stay two settings, named apart; runs of older code (no record) read as before."""
    def run(name, seed, ref, digest):
        config = {**_resolved("ga", seed, 5e-5), "eval": {"few_shot_seed": seed, "batch_size": 8,
                                                         "reference_run": ref}}
        d = _bare_run(tmp_path / name, "ga", seed, 0.2 + 0.1 * seed, config, ["eval.few_shot_seed"])
        if digest is not None:
            summary = json.loads((d / "metrics.json").read_text())
            (d / "metrics.json").write_text(json.dumps({**summary, "reference_setting": digest}))
        return d

    same = group_by_seed(load_runs([run("a0", 0, "runs/ref_0", "d1"), run("a1", 1, "runs/ref_1", "d1")]))
    assert [len(g.runs) for g in same] == [2]
    two = group_by_seed(load_runs([run("b0", 0, "runs/ref_0", "d1"), run("b1", 1, "runs/ref_1", "d2")]))
    assert [len(g.runs) for g in two] == [1, 1]
    assert [g.name for g in two] == ["ga [eval.reference_run=a run of setting d1]",
                                     "ga [eval.reference_run=a run of setting d2]"]
    older = group_by_seed(load_runs([run("c0", 0, "runs/ref_0", None), run("c1", 1, "runs/ref_1", None)]))
    assert [len(g.runs) for g in older] == [1, 1]


def test_the_test_set_is_tabulated_per_modality_against_its_own_split_s_vanilla(tmp_path):
    """MLLMU-Bench's layout reads forget, test and retain per modality; every run evaluates the test set (the forget
    people's held-out questions and portraits), but until the fiftieth session the report printed none of it."""
    from unlearn.report import forget_test_table, has_test

    root = tmp_path / "sw"
    for seed in (0, 1):
        for split, before, after in (("forget_10", 0.9, 0.5 + 0.1 * seed), ("forget_5", 0.7, 0.6)):
            run = _split_run(root / f"{seed}_{split}", seed, split, 1.0, 0.2)
            summary = json.loads((run / "metrics.json").read_text())
            summary["metrics"] |= {"before/test/multimodal/mc_acc": before, "after/test/multimodal/mc_acc": after,
                                   "before/test/text/mc_acc": before - 0.1 * seed, "after/test/text/mc_acc": 0.8}
            (run / "metrics.json").write_text(json.dumps(summary))
    runs = load_runs([root])
    assert has_test(runs) and not has_test(load_runs([_seeded_sweep(tmp_path / "none")]))
    table = parse_table(forget_test_table(group_by_seed(runs)))
    assert {name: (row["MM test MC"], row["text test MC"]) for name, row in table.items()} == {
        "vanilla (data.forget_split=forget_10)": ("0.900 ± 0.000", "0.850 ± 0.071"),  # 0.9, 0.8
        "ga data.forget_split=forget_10": ("0.550 ± 0.071", "0.800 ± 0.000"),  # 0.5, 0.6
        "vanilla (data.forget_split=forget_5)": ("0.700 ± 0.000", "0.650 ± 0.071"),  # 0.7, 0.6
        "ga data.forget_split=forget_5": ("0.600 ± 0.000", "0.800 ± 0.000")}
    assert "## Test set" in main([str(root), "--out", str(tmp_path / "out")]).read_text()


def test_the_modality_gap_over_seeds_reads_each_run_against_its_own_vanilla(tmp_path):
    """The MANU paper's claim is about the gap (GA on image+text data forgets image+text more than text-only); the
    run table gave each run's, nothing gave a setting's over its seeds. Hand values: seed 0 drops 1.0 - 0.2 = 0.8
    (image+text) and 1.0 - 0.9 = 0.1 (text), gap 0.7; seed 1, from a vanilla model at 0.9 image+text, drops 0.5 and
    0.2, gap 0.3: means 0.65, 0.15, 0.5; stds sqrt(0.045) = 0.212, sqrt(0.005) = 0.071, sqrt(0.08) = 0.283."""
    from unlearn.report import gap_table

    root = tmp_path / "sw"
    for seed, (before_mm, after_mm, after_text) in enumerate([(1.0, 0.2, 0.9), (0.9, 0.4, 0.8)]):
        metrics = {**metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": after_mm, "forget/text/mc_acc": after_text},
                                 1.0), "before/forget/multimodal/mc_acc": before_mm}
        write_run(root / f"{seed}_ga", "ga", metrics, ["method=ga", f"seed={seed}"])
    no_text = {k: v for k, v in metrics_for(GA_AFTER, 1.0).items() if k != "after/forget/text/mc_acc"}
    write_run(root / "2_npo", "npo", no_text, ["method=npo", "seed=0"])
    table = parse_table(gap_table(group_by_seed(load_runs([root]))))
    assert table["ga"] == {"setting": "ga", "seeds": "2", "MM forget MC drop": "0.650 ± 0.212",
                           "text forget MC drop": "0.150 ± 0.071", "gap (MM - text)": "0.500 ± 0.283"}
    assert table["npo"]["text forget MC drop"] == "n/a" and table["npo"]["gap (MM - text)"] == "n/a"
    assert table["npo"]["MM forget MC drop"] == "0.800"  # 1.0 - GA_AFTER's 0.2, one run
    assert "### Modality gap" in main([str(root), "--out", str(tmp_path / "out")]).read_text()


def test_runs_that_recorded_no_seed_part_no_vanilla_family(tmp_path):
    """A run with no seed recorded (no metrics.json seed, no seed= override) names no taught model: it joins the
    first family instead of standing as one of its own, so a sweep of such runs keeps one vanilla row."""
    from unlearn.report import vanilla_families

    root = tmp_path / "sw"
    write_run(root / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga"])
    write_run(root / "1_npo", "npo", metrics_for(GA_AFTER, 1.0), ["method=npo"])
    groups = group_by_seed(load_runs([root]))
    assert [r.seed for g in groups for r in g.runs] == [None, None]
    assert [[g.name for g in f] for f in vanilla_families(groups)] == [["ga", "npo"]]


def test_equal_drops_from_other_levels_show_no_spread(tmp_path):
    """1.0 -> 0.96 and 0.96 -> 0.92 drop 0.04 each, but not to the last bit: the gap table printed 0.040 ± 7.9e-17."""
    from unlearn.report import gap_table

    root = tmp_path / "sw"
    for seed, (before, after) in enumerate([(1.0, 0.96), (0.96, 0.92)]):
        metrics = {**metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": after}, 1.0),
                   "before/forget/multimodal/mc_acc": before}
        write_run(root / f"{seed}_ga", "ga", metrics, ["method=ga", f"seed={seed}"])
    assert parse_table(gap_table(group_by_seed(load_runs([root]))))["ga"]["MM forget MC drop"] == "0.040 ± 0.000"


def test_seeds_of_one_given_checkpoint_are_one_taught_model(tmp_path):
    """`model.path=DIR` (data of a user's own, a stand-in taught once) unlearns that checkpoint at every seed;
    `teach_seed` follows `seed` in the config but teaches nothing. Until the fifty-second session the report read
    seeds 0 and 1 as two taught models: the vanilla row said 2 and no note said the runs share one model."""
    root = tmp_path / "sw"
    for seed in range(2):
        run = write_run(root / f"{seed}_grad_diff", "grad_diff", metrics_for(GA_AFTER, 1.0),
                        ["method=grad_diff", "model.path=/mine/runs/vanilla/model", f"seed={seed}"])
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": seed,
                                                      "source_model": "/mine/runs/vanilla/model",
                                                      "source_teaching": {}}))
        (run / "config.json").write_text(json.dumps({"method": {"name": "grad_diff"}, "seed": seed,
                                                     "teach_seed": seed,
                                                     "model": {"path": "/mine/runs/vanilla/model"}}))
    text = seed_table(group_by_seed(load_runs([root])))
    assert parse_table(text)["vanilla"]["seeds"] == "1"
    assert "grad_diff (2 runs, 1 taught)" in text


def test_a_familys_vanilla_row_is_named_by_its_data_not_by_its_method(tmp_path):
    """Where each family's runs are of one method, `method=` is shared within the family and not across: the
    vanilla row (the taught model, which no method makes) is still named by the split alone. Mutation audit:
    family_label keeping `method=` survived every test."""
    from unlearn.report import family_label, vanilla_families

    root = tmp_path / "sw"
    for seed in (0, 1):
        _split_run(root / f"{seed}_a", seed, "forget_10", 1.0, 0.2)
        run = _split_run(root / f"{seed}_b", seed, "forget_5", 0.8, 0.4)
        overrides = run / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text().replace("method=ga", "method=npo"))
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "method": "npo"}))
    groups = group_by_seed(load_runs([root]))
    assert sorted(family_label(f, groups) for f in vanilla_families(groups)) == [
        "(data.forget_split=forget_10)", "(data.forget_split=forget_5)"]


def _own_vanilla_runs(root, method="grad_diff", forgets=(0.2, 0.4, 0.3)):
    """Runs unlearning a vanilla model of the user's own per seed (model.path differs with the seed), each with
    its recorded config and a forget MC after unlearning as given."""
    for seed, forget in enumerate(forgets):
        path = f"/mine/vanilla_s{seed}/model"
        run = write_run(root / f"{method}_{seed}", method,
                        metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0),
                        [f"method={method}", f"model.path={path}", f"seed={seed}"])
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": seed,
                                                      "source_model": path, "source_teaching": {}}))
        (run / "config.json").write_text(json.dumps({"method": {"name": method}, "seed": seed, "teach_seed": seed,
                                                     "model": {"path": path}}))


def test_pool_over_reads_a_vanilla_model_per_seed_as_one_settings_samples(tmp_path):
    """A researcher who taught a vanilla model per seed and unlearned each (model.path per seed) got three
    settings of one run each, no mean ± std; `--pool-over model.path` makes them one setting over three taught
    models (each its own vanilla model), and a sample is still counted once."""
    root = tmp_path / "sw"
    _own_vanilla_runs(root)
    runs = load_runs([root])
    assert len(group_by_seed(runs)) == 3  # without it: a setting per checkpoint
    groups = group_by_seed(runs, ["model.path"])
    assert [len(g.runs) for g in groups] == [3]
    text = seed_table(groups, ["model.path"])
    row = parse_table(text)
    assert row["grad_diff"]["seeds"] == "3" and row["grad_diff"]["MM forget MC ↓"] == "0.300 ± 0.100"
    assert row["vanilla"]["seeds"] == "3"  # three taught models, not one shared
    assert "taught)" not in text and "`model.path`, pooled as seeds by `--pool-over`" in text
    # the same seed and checkpoint twice is one sample counted twice: refused as without pooling
    _own_vanilla_runs(tmp_path / "again", forgets=(0.2,))
    with pytest.raises(ValueError, match="same seed 0"):
        group_by_seed(load_runs([root, tmp_path / "again"]), ["model.path"])


def test_pool_over_refuses_what_is_not_a_sample(tmp_path, capsys):
    """A misspelt key would pool nothing without a word; the method's keys would pool what the report compares."""
    root = tmp_path / "sw"
    _own_vanilla_runs(root)
    for key, said in (("model.pth", "no run's config or overrides set it"),
                      ("method.optimizer.lr", "a method's settings are what the report compares"),
                      ("seed", "already not a setting"), ("model path", "not a config key")):
        with pytest.raises(SystemExit):
            main([str(root), "--out", str(tmp_path / "out"), "--pool-over", key])
        assert said in capsys.readouterr().err
    out = main([str(root), "--out", str(tmp_path / "out"), "--pool-over", "model.path"])
    assert "| grad_diff | 3 |" in out.read_text()


def test_without_pool_over_the_page_names_it_where_it_would_pool(tmp_path):
    """Runs of a vanilla model per seed read as settings of one run each; nothing on the page named the flag that
    pools them (until 2026-12-07). Runs of one shared model.path, or of none, get no such line."""
    root = tmp_path / "sw"
    _own_vanilla_runs(root)
    text = main([str(root), "--out", str(tmp_path / "out")]).read_text()
    assert ("3 settings differ only in `model.path` and the seeds, one setting each here: where each `model.path` "
            "is a vanilla model of one recipe taught per seed (`method=finetune teach_seed=S`), `--pool-over "
            "model.path` reads them as 1, mean ± std over those taught models") in text
    text = main([str(root), "--out", str(tmp_path / "out2"), "--pool-over", "model.path"]).read_text()
    assert "settings differ only in `model.path`" not in text
    one = tmp_path / "one"
    _own_vanilla_runs(one, forgets=(0.2,))
    assert "--pool-over" not in main([str(one), "--out", str(tmp_path / "out3")]).read_text()



def test_one_vanilla_model_named_two_ways_is_one_taught_model(tmp_path):
    """GA given `model.path=/work/v_s0/model`, NPO `model.path=../work/v_s0/model/` from another directory: one
    model, yet metrics.json keeps each path as given, and the report read 3 taught models (a vanilla row of 3) and
    paired no runs of seed 0 (no seed-by-seed table at 2 models) until 2026-12-07."""
    import yaml

    from unlearn.report import paired_seed_table

    for method, written in (("ga", ("{d}/v_s0/model", "{d}/v_s1/model")),
                            ("npo", ("../w/v_s0/model/", "{d}/v_s1/model"))):
        for seed, (path, forget) in enumerate(zip(written, (0.2, 0.6) if method == "ga" else (0.4, 0.6))):
            path = path.format(d=tmp_path / "w")
            run = write_run(tmp_path / "sw" / f"{method}_{seed}", method,
                            metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0),
                            [f"method={method}", f"model.path={path}", f"seed={seed}"])
            summary = json.loads((run / "metrics.json").read_text())
            (run / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": seed,
                                                          "source_model": path, "source_teaching": {}}))
            (run / "config.json").write_text(json.dumps({"method": {"name": method}, "seed": seed,
                                                         "teach_seed": seed, "model": {"path": path}}))
            (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {
                "cwd": str(tmp_path / "elsewhere")}}}))
    groups = group_by_seed(load_runs([tmp_path / "sw"]), ["model.path"])
    assert parse_table(seed_table(groups, ["model.path"]))["vanilla"]["seeds"] == "2"
    assert paired_seed_table(groups) is not None  # GA and NPO paired on both models


def test_a_moved_checkpoint_is_read_as_the_run_resolved_it(tmp_path):
    """`model.path=runs/model` (one slash, as a hub id `owner/name` has) read from a directory that is gone by the
    time of the report was guessed a hub id, apart from the same model given absolute (until 2026-12-07): a run
    records how it read the path (source_model_resolved), which the report takes over any guess."""
    import yaml

    from unlearn.report import given_source

    absolute = str(tmp_path / "gone" / "runs" / "model")
    hydra = tmp_path / "r" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"cwd": str(tmp_path / "gone")}}}))
    assert given_source("runs/model", tmp_path / "r") == "runs/model"  # the guess: a hub id
    assert given_source("runs/model", tmp_path / "r", absolute) == absolute
    assert given_source("owner/name", tmp_path / "r", "owner/name") == "owner/name"  # a hub id stays one
    for seed, (path, resolved) in enumerate((("runs/model", absolute), (absolute, absolute))):
        run = write_run(tmp_path / "sw" / f"ga_{seed}", "ga", metrics_for(GA_AFTER, 1.0),
                        ["method=ga", f"model.path={path}", f"seed={seed}"])
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "seed": seed, "teach_seed": seed,
                                                      "source_model": path, "source_model_resolved": resolved,
                                                      "source_teaching": {}}))
        (run / "config.json").write_text(json.dumps({"method": {"name": "ga"}, "seed": seed, "teach_seed": seed,
                                                     "model": {"path": path}}))
    runs = load_runs([tmp_path / "sw"])
    assert {r.source_model for r in runs} == {absolute}
    groups = group_by_seed(runs, ["model.path"])
    assert parse_table(seed_table(groups, ["model.path"]))["vanilla"]["seeds"] == "1"  # one model, given twice


def test_a_run_records_how_it_read_its_model_path(tmp_path, monkeypatch):
    """pipeline.source_record: the path as given, and as read (absolute for a local directory, however written;
    a hub id as it is); a run of the cached vanilla model records the path alone."""
    from unlearn.config import compose_config
    from unlearn.pipeline import source_record

    (tmp_path / "runs" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for given, read in (("runs/model", str(tmp_path / "runs" / "model")), ("./runs/model/", str(tmp_path / "runs" / "model")),
                        ("owner/name", "owner/name")):
        cfg = compose_config(["logger=none", f"model.path={given}"], tmp_path / "o", tmp_path / "c")
        assert source_record(cfg, given) == {"source_model": given, "source_model_resolved": read}
    cfg = compose_config(["logger=none"], tmp_path / "o", tmp_path / "c")
    assert source_record(cfg, tmp_path / "c" / "v") == {"source_model": str(tmp_path / "c" / "v")}


def test_pool_over_counts_two_vanilla_models_at_one_seed_as_two_samples(tmp_path):
    """Two vanilla models of the user's own unlearned at the same seed are two samples once pooled (the pooled key's
    value is part of the sample), not one counted twice; without a recorded config the key is read from the
    overrides, `+` and all. Mutation audit: the sample without the pooled value, and pooled_value matching
    `+model.path=` only without its `+`, a pooled section (`model`) reading no key under it, and the note naming the first key only, passed every test."""
    from unlearn.report import check_pooled, pooled_value

    root = tmp_path / "sw"
    for name, forget in (("a", 0.2), ("b", 0.4)):
        _own_vanilla_runs(root / name, forgets=(forget,))  # both seed 0, teach_seed 0, model.path the same...
        config = root / name / "grad_diff_0" / "config.json"  # ...until each names its own model
        config.write_text(config.read_text().replace("vanilla_s0", f"vanilla_{name}"))
    groups = group_by_seed(load_runs([root / "a", root / "b"]), ["model.path"])
    assert [len(g.runs) for g in groups] == [2]
    assert parse_table(seed_table(groups, ["model.path"]))["grad_diff"]["MM forget MC ↓"] == "0.300 ± 0.141"

    bare = tmp_path / "bare"  # runs of older code: no config recorded, the overrides alone
    for seed, forget in enumerate((0.2, 0.4)):
        write_run(bare / f"ga_{seed}", "ga", metrics_for({**GA_AFTER, "forget/multimodal/mc_acc": forget}, 1.0),
                  ["method=ga", f"+model.path=/mine/v{seed}", f"seed={seed}"])
    runs = load_runs([bare])
    assert [pooled_value(r, "model.path") for r in runs] == ["/mine/v0", "/mine/v1"]
    check_pooled(runs, ["model.path"])
    assert [len(g.runs) for g in group_by_seed(runs, ["model.path"])] == [2]
    # a section pools every key under it
    mine = load_runs([root / "a", root / "b"])
    assert pooled_value(mine[0], "model") == {"model.path": "/mine/vanilla_a/model"}
    assert [len(g.runs) for g in group_by_seed(mine, ["model"])] == [2]
    # the note names every key pooled
    assert "`seed`, `teach_seed` and `model.path`, `model.tokenizer`, pooled as seeds" in \
        seed_table(groups, ["model.path", "model.tokenizer"])
