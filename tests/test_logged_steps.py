"""What the CSV logger (and W&B's step axis) gets from a whole run: every row at a step no earlier than the rows
before it, the end's metrics after the training's, and the early rows kept when the run fails."""

import csv

import pytest
from omegaconf import OmegaConf

from unlearn import pipeline
from unlearn.config import compose_config

CSV = {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "${paths.output_dir}", "name": "logs"}


def _compose(tmp_path, name, *extra):
    cfg = compose_config(["logger=none", "debug=fast", "eval.tasks=[mc]", "eval.max_people=2",
                          "eval.cache_before=false", "save_model=false", *extra], tmp_path / name, tmp_path / "cache")
    cfg.logger = OmegaConf.create(CSV)
    return cfg


def _rows(run_dir):
    (path,) = run_dir.glob("logs/version_*/metrics.csv")
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_the_final_metrics_come_after_the_training_steps(tmp_path):
    """Lightning's CSVLogger numbers a row logged without a step by the rows it holds unsaved, none once a Trainer
    has saved them: until the 42nd session the after-evaluation was at step 0 in metrics.csv, before the training
    losses (a plot over `step` drew it at the start)."""
    pipeline.run(_compose(tmp_path, "ga", "method=ga", "trainer.log_every_n_steps=1"))
    rows = _rows(tmp_path / "ga")
    steps = [int(r["step"]) for r in rows]
    training = [int(r["step"]) for r in rows if "unlearn/loss" in r]
    after = [int(r["step"]) for r in rows if any(k.startswith("after/") for k in r)]
    assert training and after and steps == sorted(steps)
    assert min(after) > max(training)


def test_a_failed_run_keeps_its_before_evaluation(tmp_path, monkeypatch):
    """A method failing outside a Trainer: the before-evaluation, logged as soon as it was known, reached
    metrics.csv only when a Trainer or the run's end saved it (until the 42nd session it was lost)."""
    from unlearn.methods import finetune

    def fails(ctx, fcfg, **where):
        raise RuntimeError("diverged")

    monkeypatch.setattr(finetune, "teach", fails)
    with pytest.raises(RuntimeError, match="diverged"):
        pipeline.run(_compose(tmp_path, "failed", "method=finetune"))
    rows = _rows(tmp_path / "failed")
    assert any("before/forget/text/mc_acc" in r for r in rows)


def test_the_results_table_has_each_score_once_with_its_count_beside_it():
    """The W&B results table had each `n_<metric>` count as a row of its own among the scores (until the 42nd
    session); now a score's row carries its count."""
    from unlearn.pipeline import _log_table

    class Table:
        def log_table(self, key, columns, data):
            self.columns, self.data = columns, data

    metrics = {"after/forget/text/mc_acc": 0.8, "after/forget/text/n_mc_acc": 5,
               "after/forget/text/truth_ratio": 0.7, "time/method_s": 1.5}
    table = Table()
    _log_table(table, metrics)
    assert table.columns == ["stage", "split", "modality", "metric", "value", "n"]
    assert table.data == [["after", "forget", "text", "mc_acc", 0.8, 5], ["after", "forget", "text", "truth_ratio", 0.7, None]]


def test_the_methods_module_is_not_kept_alive_through_the_evaluation(tmp_path, monkeypatch):
    """logged_step needs each logging Trainer's last step, not the Trainer: held in the run's context, a Trainer
    kept its module (KL's and NPO's frozen reference copy of the model, the Fisher pass's sums) and its optimiser
    state alive through the after-evaluation and the relearning attack, where without a logger they were freed."""
    import gc
    import weakref

    from unlearn.methods import gradient

    made = []
    init = gradient.GradientUnlearning.__init__

    def recorded(self, *a, **k):
        init(self, *a, **k)
        made.append(weakref.ref(self))

    monkeypatch.setattr(gradient.GradientUnlearning, "__init__", recorded)
    alive_at_after = []
    evaluate = pipeline.evaluate

    def evaluate_after(ctx, stage, *a, **k):
        if stage == "after":
            gc.collect()
            alive_at_after.append(sum(r() is not None for r in made))
        return evaluate(ctx, stage, *a, **k)

    monkeypatch.setattr(pipeline, "evaluate", evaluate_after)
    pipeline.run(_compose(tmp_path, "kl", "method=kl", "eval.before=false", "trainer.log_every_n_steps=1"))
    assert made and alive_at_after == [0]
    rows = _rows(tmp_path / "kl")  # the end's rows still follow the training's
    training = [int(r["step"]) for r in rows if "unlearn/loss" in r]
    after = [int(r["step"]) for r in rows if any(k.startswith("after/") for k in r)]
    assert training and after and min(after) > max(training)
