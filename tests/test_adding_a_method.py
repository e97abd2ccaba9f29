"""A method from outside the package (docs/guide/adding_a_method.md): the example's SimNPO loss against a port of
open-unlearning's, its config composed and checked like a built-in method's, and the frontier's --knob, which
puts such a method on the frontier; (slow) the example swept end to end at debug=fast size."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from unlearn.frontier import (KNOBS_FILE, Task, default_strengths, grid_with, knob_keys, knob_name, load_points, main,
                              method_order, parse_knob, plan, record_knobs, run_dir)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "simnpo"
SEARCHPATH = f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]"


@pytest.fixture
def simnpo(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import simnpo

    return simnpo


def open_unlearning_simnpo(logits, labels, beta, delta):
    """A port of open-unlearning's SimNPO forget loss (src/trainer/unlearn/simnpo.py with compute_batch_nll of
    src/trainer/utils.py): cross-entropy summed per row over the shifted labels, over the row's label count."""
    loss_mask = labels != -100
    shifted_labels = labels[..., 1:].contiguous()
    shifted_logits = logits[..., :-1, :].contiguous()
    nll = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="none")(shifted_logits.transpose(-1, -2),
                                                                          shifted_labels).sum(dim=-1)
    forget_loss = nll / loss_mask.sum(-1) - delta
    return -F.logsigmoid(beta * forget_loss).mean() * 2 / beta


def test_simnpo_loss_is_open_unlearnings(simnpo):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[:, :2] = -100  # the prompt
    labels[1, 5:] = -100  # rows of different answer lengths
    labels[2, 0] = 3  # a labelled first position (every token labelled): counted in the length, predicted by none
    for beta, delta in ((4.5, 0.0), (0.5, 1.0)):
        ours = simnpo.simnpo_forget_loss(logits, labels, beta, delta)
        assert ours.item() == pytest.approx(open_unlearning_simnpo(logits, labels, beta, delta).item(), rel=1e-12)


def test_simnpo_loss_by_hand(simnpo):
    # one row, one label token at position 1 predicted from position 0 with uniform logits over 4 words:
    # NLL = ln 4 per token; loss = -(2/beta) ln sigmoid(beta (ln 4 - delta)), beta 1, delta 0: 2 ln(1 + 1/4)
    logits, labels = torch.zeros(1, 2, 4), torch.tensor([[-100, 3]])
    assert simnpo.simnpo_forget_loss(logits, labels, 1.0).item() == pytest.approx(2 * torch.log(torch.tensor(1.25)).item())


def test_simnpo_loss_leaves_out_rows_without_labels(simnpo):
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(2, 5, 6, generator=g), torch.randint(0, 6, (2, 5), generator=g)
    labels[:, 0] = -100
    padded = labels.clone()
    padded[1] = -100  # a data-parallel shard's padding repeat, read without labels
    alone = simnpo.simnpo_forget_loss(logits[:1], labels[:1], 2.0)
    assert simnpo.simnpo_forget_loss(logits, padded, 2.0).item() == pytest.approx(alone.item())
    with pytest.raises(ValueError, match="no label tokens"):
        simnpo.simnpo_forget_loss(logits[1:], padded[1:], 2.0)
    # one process's batch of padding repeats alone, under DDP: nothing added, still in the graph (until 2026-12-06
    # it stopped the run)
    logits.requires_grad_(True)
    nothing = simnpo.simnpo_forget_loss(logits[1:], padded[1:], 2.0, shard=True)
    assert nothing.item() == 0.0 and nothing.requires_grad
    with pytest.raises(ValueError, match="simnpo.beta"):
        simnpo.simnpo_forget_loss(logits, labels, 0.0)


def test_the_example_config_composes_and_passes_the_run_checks(caplog, tmp_path):
    """Its own section (simnpo.*) is read as the method's, as manu.* is: not warned as a stray top-level key."""
    from hydra.utils import instantiate

    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    cfg = compose_config(["method=simnpo", SEARCHPATH], tmp_path, tmp_path)
    assert cfg.method.name == "simnpo" and cfg.simnpo.beta == 4.5 and cfg.simnpo.gamma == 0.125
    with caplog.at_level(logging.WARNING):
        check_run_settings(cfg)
    assert "top-level keys" not in caplog.text
    optimizer = instantiate(cfg.simnpo.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == 5e-5
    # a stray top-level key is still warned beside it
    cfg = compose_config(["method=simnpo", SEARCHPATH, "+simnop.beta=1"], tmp_path, tmp_path)
    with caplog.at_level(logging.WARNING):
        check_run_settings(cfg)
    assert "['simnop']" in caplog.text
    # a gradient baseline keeps its settings under method.*: a section named after it is a stray key, warned
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_run_settings(compose_config(["method=ga", "+ga.lr=1e-3"], tmp_path, tmp_path))
    assert "top-level keys that no config defines and nothing reads: ['ga']" in caplog.text


def test_a_gradient_baselines_key_under_your_methods_method_section_is_named(caplog, tmp_path, monkeypatch):
    """`+method.epochs=50` beside method=simnpo: the baselines define the key, so it passed the unknown-key check
    and ran with simnpo.epochs, silently (until 2026-12-06). Typed: refused; carried by a config: warned."""
    import unlearn.settings as settings
    from unlearn.config import compose_config

    cfg = compose_config(["method=simnpo", SEARCHPATH, "+method.epochs=50"], tmp_path, tmp_path)
    with caplog.at_level(logging.WARNING):
        settings.check_known_keys(cfg)
    assert "method.epochs: gradient baselines' settings, which method=simnpo reads only if its run(ctx) does" in \
        caplog.text
    monkeypatch.setattr(settings, "typed_override_keys", lambda: {"method.epochs", "method"})
    with pytest.raises(ValueError, match=r"method.epochs: method=simnpo is not a gradient baseline, whose settings "
                                         r"these are; its run\(ctx\) reads its own under simnpo.\* "
                                         r"\(e.g. \+simnpo.epochs=...\)"):
        settings.check_known_keys(cfg)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the example's own config: name and run only
        settings.check_known_keys(compose_config(["method=simnpo", SEARCHPATH], tmp_path, tmp_path))
    assert "gradient baselines' settings" not in caplog.text


def test_parse_knob():
    assert parse_knob("simnpo=simnpo.optimizer.lr:1e-4,2e-5") == ("simnpo", "simnpo.optimizer.lr", (2e-5, 1e-4))
    assert parse_knob("manu=manu.alpha:5,1,2") == ("manu", "manu.alpha", (1, 2, 5))
    # a method named with a dash keeps its settings in a section of that name (until 2026-12-06 refused)
    assert parse_knob("random-label=random-label.optimizer.lr:1e-4") == ("random-label", "random-label.optimizer.lr",
                                                                         (1e-4,))
    # whole numbers as ints, however written: one run directory (alpha=5) for 5 and 5.0
    assert [(v, type(v)) for v in parse_knob("manu=manu.alpha:5.0,1e1,2.5")[2]] == [(2.5, float), (5, int), (10, int)]
    for bad, says in (("simnpo", "expected METHOD=KEY"), ("simnpo=simnpo.lr", "expected METHOD=KEY"),
                      ("=simnpo.lr:1", "expected METHOD=KEY"), ("a/b=k:1", "method 'a/b'"),
                      ("no ise=k:1", "method 'no ise'"), ("noise=+noise.sigma:1", "key '\\+noise.sigma'"),
                      ("noise=noise.sigma=2:1", "key 'noise.sigma=2'"),
                      ("simnpo=simnpo.lr:1e-4,x", "'x' is not a number"), ("simnpo=simnpo.lr:0,1", "> 0"),
                      ("simnpo=simnpo.lr:nan", "> 0"), ("simnpo=simnpo.lr:1,1.0", "given twice")):
        with pytest.raises(ValueError, match=says):
            parse_knob(bad)


def test_a_knob_adds_a_method_or_replaces_a_grids_entry(tmp_path):
    grid = grid_with("fast", ["simnpo=simnpo.optimizer.lr:1e-4,1e-3", "ga=method.epochs:1,3"])
    assert grid["simnpo"] == ("simnpo.optimizer.lr", (1e-4, 1e-3)) and grid["ga"] == ("method.epochs", (1, 3))
    assert grid["manu"] == ("manu.alpha", (5, 30))
    tasks = plan(tmp_path, "fast", [0], ["simnpo"], ["simnpo=simnpo.optimizer.lr:1e-4,1e-3"])
    assert tasks == [Task("simnpo", "simnpo.optimizer.lr", 1e-4, 0, True), Task("simnpo", "simnpo.optimizer.lr", 1e-3, 0, False)]
    with pytest.raises(ValueError, match="needs --knob"):
        plan(tmp_path, "fast", [0], ["simnpo"])
    assert method_order(["simnpo", "manu", "abc", "ga"]) == ["ga", "manu", "abc", "simnpo"]


def test_the_sweep_records_each_methods_knob_and_refuses_a_second(tmp_path):
    grid = grid_with("fast", ["simnpo=simnpo.optimizer.lr:1e-4"])
    record_knobs(tmp_path, grid, ["simnpo", "ga"])
    assert json.loads((tmp_path / KNOBS_FILE).read_text()) == {"ga": "method.optimizer.lr", "simnpo": "simnpo.optimizer.lr"}
    assert knob_keys(tmp_path)["simnpo"] == "simnpo.optimizer.lr" and knob_keys(tmp_path)["manu"] == "manu.alpha"
    record_knobs(tmp_path, grid_with("fast", ["simnpo=simnpo.epochs:1,2"]), ["simnpo"])  # no run of it yet
    assert knob_keys(tmp_path)["simnpo"] == "simnpo.epochs"
    _finished(tmp_path, "simnpo", "simnpo.epochs", 1)
    for other in ("simnpo=simnpo.lr:1e-4", "simnpo=simnpo.optimizer.lr:1e-4"):
        with pytest.raises(ValueError, match="along simnpo.epochs, and this sweep's knob is simnpo"):
            record_knobs(tmp_path, grid_with("fast", [other]), ["simnpo"])
    # the same last key under another section: the directories alike, the record tells them apart
    _finished(tmp_path, "manu", "manu.alpha", 5)
    record_knobs(tmp_path, grid_with("fast"), ["manu"])
    with pytest.raises(ValueError, match="along manu.alpha, and this sweep's knob is other.alpha"):
        record_knobs(tmp_path, grid_with("fast", ["manu=other.alpha:5"]), ["manu"])
    # a sweep of no record (before knobs.json) is read from its runs' directories
    _finished(tmp_path / "old", "ga", "method.optimizer.lr", 1e-4)
    with pytest.raises(ValueError, match="along method.optimizer.lr, and this sweep.s knob is method.epochs"):
        record_knobs(tmp_path / "old", grid_with("fast", ["ga=method.epochs:1,2"]), ["ga"])


def test_a_knob_its_method_does_not_set_is_refused_before_anything_is_recorded(tmp_path):
    from unlearn.frontier import check_knob_keys

    check_knob_keys(grid_with("fast", ["simnpo=simnpo.optimizer.lr:1e-4"]), ["simnpo", "manu"], [SEARCHPATH])
    with pytest.raises(ValueError, match="method=simnpo's config \\(with --base\\) sets no simnpo.lr"):
        check_knob_keys(grid_with("fast", ["simnpo=simnpo.lr:1e-4"]), ["simnpo"], [SEARCHPATH])
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match="sets no simnpo.lr"):
        main(["--out", str(out), "--methods", "simnpo", "--knob", "simnpo=simnpo.lr:1e-4", "--base", SEARCHPATH,
              "--cache", str(tmp_path / "cache")])
    assert not (out / KNOBS_FILE).exists() and not (out / "simnpo").exists()


def test_a_run_that_failed_to_start_does_not_hold_its_knob(tmp_path):
    """A run directory without metrics.json (a run refused at its start) is no run along its knob."""
    (tmp_path / "simnpo" / "lr=0.0001" / "seed0").mkdir(parents=True)
    (tmp_path / "simnpo" / "lr=0.0001" / "seed0" / "overrides.json").write_text("[]")
    record_knobs(tmp_path, grid_with("fast", ["simnpo=simnpo.epochs:1,2"]), ["simnpo"])
    assert knob_keys(tmp_path)["simnpo"] == "simnpo.epochs"


def _finished(out: Path, method: str, knob: str, value, seed: int = 0) -> None:
    d = run_dir(out, method, knob, value, seed)
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"metrics": {"before/forget/text/mc_acc": 1.0,
                                                            "after/forget/text/mc_acc": 0.5}}))


def test_points_name_their_knob_and_one_method_reads_one_knob(tmp_path):
    _finished(tmp_path, "simnpo", "simnpo.optimizer.lr", 1e-4)
    points = load_points(tmp_path)
    assert [p.knob for p in points] == ["lr"] and knob_name("simnpo", points) == "lr"
    assert knob_name("simnpo") == "strength" and knob_name("manu") == "alpha"
    _finished(tmp_path, "simnpo", "simnpo.epochs", 2)
    with pytest.raises(ValueError, match="runs along epochs and lr"):
        load_points(tmp_path)


def test_two_knobs_at_one_strength_are_named_as_two_knobs(tmp_path):
    _finished(tmp_path, "simnpo", "simnpo.epochs", 1)
    _finished(tmp_path, "simnpo", "simnpo.lr", 1)
    with pytest.raises(ValueError, match="runs along epochs and lr"):
        load_points(tmp_path)


def test_a_sweep_made_before_knobs_json_holds_the_grids_knob(tmp_path):
    """A built-in method's runs in a sweep without knobs.json were made along the full grid's knob: another key of
    the same last part (the teaching lr) is refused there, at the sweep and at the report."""
    from unlearn.frontier import report

    _finished(tmp_path, "ga", "method.optimizer.lr", 5e-5)
    other = "ga=finetune.optimizer.lr:1e-3"
    with pytest.raises(ValueError, match="along method.optimizer.lr, and this sweep's knob is finetune.optimizer.lr"):
        record_knobs(tmp_path, grid_with("full", [other]), ["ga"])
    with pytest.raises(ValueError, match="records ga's runs along method.optimizer.lr"):
        report(tmp_path, None, "cmd", knobs=[other])
    record_knobs(tmp_path, grid_with("full"), ["ga"])  # the same knob: recorded now
    assert json.loads((tmp_path / KNOBS_FILE).read_text()) == {"ga": "method.optimizer.lr"}


def test_a_runs_failure_in_a_sweep_keeps_its_traceback(tmp_path, monkeypatch):
    """A ValueError inside a run is a failure, not a refusal of the sweep's input: raised as RuntimeError (as from a
    worker), so that `python -m unlearn.frontier` prints its traceback (runtime.refusals_as_messages)."""
    import unlearn.frontier as frontier

    def failing(task, out, base, cache):
        raise ValueError("Image features and image tokens do not match")

    monkeypatch.setattr(frontier, "run_task", failing)
    monkeypatch.setattr(frontier, "check_one_process", lambda *a, **k: None)
    monkeypatch.setattr(frontier, "check_knob_keys", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="frontier run") as failed:
        frontier.sweep(tmp_path, "fast", [0], [], tmp_path / "cache", methods=["ga"])
    assert isinstance(failed.value.__cause__, ValueError)


def test_a_knob_that_never_reaches_its_method_is_named_under_the_table(tmp_path):
    from unlearn.frontier import frontier_table, unmoved_methods

    for lr in (1e-4, 1e-3):  # simnpo: the same results at both strengths; ga: a drop that grows with the lr
        for seed in (0, 1):
            _finished(tmp_path, "simnpo", "simnpo.optimizer.lr", lr, seed)
            d = run_dir(tmp_path, "ga", "method.optimizer.lr", lr, seed)
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"metrics": {"before/forget/text/mc_acc": 1.0,
                                                                    "after/forget/text/mc_acc": 1.0 - lr * 100}}))
    points = load_points(tmp_path)
    assert unmoved_methods(points) == ["simnpo"]
    assert "- simnpo: every strength swept ended alike on every seed" in frontier_table(points)
    one_strength = [p for p in points if p.strength == 1e-4]  # one strength says nothing
    assert unmoved_methods(one_strength) == []


def test_one_strength_written_two_ways_is_refused(tmp_path):
    _finished(tmp_path, "manu", "manu.alpha", 5)
    _finished(tmp_path, "manu", "manu.alpha", 5.0)  # alpha=5.0 beside alpha=5 (made before parse_knob's ints)
    with pytest.raises(ValueError, match="two runs of manu at strength 5, seed 0"):
        load_points(tmp_path)


def test_report_only_refuses_a_knob_other_than_the_recorded_one_before_writing(tmp_path):
    from unlearn.frontier import report

    _finished(tmp_path, "simnpo", "simnpo.optimizer.lr", 1e-4)
    record_knobs(tmp_path, grid_with("fast", ["simnpo=simnpo.optimizer.lr:1e-4"]), ["simnpo"])
    for other in ("simnpo=simnpo.lr:1e-4", "simnpo=simnpo.epochs:1"):  # the same last key, and another
        with pytest.raises(ValueError, match="records simnpo's runs along simnpo.optimizer.lr"):
            report(tmp_path, None, "cmd", knobs=[other])
    assert not (tmp_path / "frontier.md").exists()


def test_default_strength_of_a_method_of_your_own(caplog):
    keys = {"simnpo": "simnpo.optimizer.lr", "ga": "method.optimizer.lr"}
    assert default_strengths([SEARCHPATH], ["simnpo", "ga"], keys) == {"ga": 5e-5, "simnpo": 5e-5}
    with caplog.at_level(logging.WARNING):  # a knob its config does not set: no default, said so
        assert default_strengths([SEARCHPATH], ["simnpo"], {"simnpo": "simnpo.lr"}) == {}
    assert "sets no simnpo.lr" in caplog.text


@pytest.mark.slow
def test_the_example_on_the_frontier_at_fast_size(tmp_path, monkeypatch):
    """The guide's command, at debug=fast size: the method's runs, its row in every table, its default read from
    the sweep's knobs.json again by --report-only."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    # the workers are spawned: they import the method from PYTHONPATH, as the guide's command gives it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLE), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "sweep"
    argv = ["--out", str(out), "--grid", "fast", "--seeds", "0", "--methods", "simnpo", "--knob",
            "simnpo=simnpo.optimizer.lr:5e-5,1e-3", "--base", "debug=fast", "--base", SEARCHPATH,
            "--cache", str(tmp_path / "cache"), "--jobs", "2"]
    main(argv)
    assert [t["jobs"] for t in json.loads((out / "sweep_time.json").read_text())] == [2]  # in the workers
    points = load_points(out)
    assert sorted((p.method, p.strength) for p in points) == [("simnpo", 5e-5), ("simnpo", 1e-3)]
    weak, strong = (next(p for p in points if p.strength == lr) for lr in (5e-5, 1e-3))
    # the knob reaches the method: on the tiny model lr 1e-3 forgets more than 5e-5
    assert strong.drop("forget", "text") > max(weak.drop("forget", "text"), 0.0)
    summary = json.loads((out / "simnpo" / "lr=5e-05" / "seed0" / "metrics.json").read_text())
    assert summary["method"] == "simnpo"
    main(["--out", str(out), "--report-only"])  # no --knob: read from the sweep
    results = (out / "results.md").read_text()
    assert "| simnpo (lr 5e-05) |" in results and "| simnpo | lr |" in results
    assert "| simnpo | 1 |" in (out / "frontier.md").read_text()


class _OwnStep(__import__("lightning").LightningModule):
    """A method of one's own that checks nothing: step 0 finite, then `bad` (a NaN loss, or a finite loss whose
    gradient is NaN)."""

    def __init__(self, bad: str):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.bad = bad

    def training_step(self, batch, i):
        loss = (self.w * batch[0]).sum()
        if self.global_step == 0:
            return loss
        if self.bad == "loss":
            return loss * float("nan")
        return loss + torch.sqrt(self.w * 0).sum()  # 0 forward, a NaN gradient (inf * 0)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("bad,error", [("loss", "NonFiniteLossError"), ("gradient", "NonFiniteGradientError")])
def test_your_methods_nan_step_is_refused_before_it_reaches_the_weights(tmp_path, bad, error):
    """Every Trainer ctx.trainer makes refuses a NaN loss (before backward) or gradient (before the step) of a
    method that checks neither itself; until 2026-12-06 the NaN went into the weights without a word."""
    from types import SimpleNamespace

    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from unlearn.config import compose_config
    from unlearn.pipeline import RunContext

    cfg = compose_config(["logger=none"], tmp_path / "run", tmp_path / "cache")
    ctx = RunContext(cfg=cfg, benchmark=SimpleNamespace(), model=None, processor=None, out_dir=tmp_path)
    module = _OwnStep(bad)
    trainer = ctx.trainer(max_epochs=1, enable_progress_bar=False, enable_model_summary=False,
                          enable_checkpointing=False, default_root_dir=tmp_path)
    assert isinstance(trainer, L.Trainer)
    with pytest.raises(Exception) as raised:
        trainer.fit(module, DataLoader(TensorDataset(torch.ones(4, 3)), batch_size=1))
    assert type(raised.value).__name__ == error and "global step 1" in str(raised.value)
    assert torch.isfinite(module.w).all() and not torch.equal(module.w.detach(), torch.ones(3))  # step 0's, kept


def test_a_loader_that_shards_itself_sharded_again_by_lightning_is_refused():
    """`ctx.trainer()` without use_distributed_sampler=False around paired_loader: under DDP Lightning wraps its
    EpochShuffle in a DistributedSampler and each process read half its share (until 2026-12-06, silently); a
    loader of one's own that Lightning shards, and the self-sharding one read as it is, are left alone."""
    from types import SimpleNamespace

    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from torch.utils.data import DataLoader, RandomSampler

    from callbacks.self_sharding import SelfShardingCheck, sharded_twice
    from unlearn.data.sampling import EpochDraws, EpochShuffle

    data = list(range(8))
    own = EpochShuffle(8, 0, rank=0, world_size=2)
    twice = DataLoader(data, sampler=DistributedSamplerWrapper(own, num_replicas=2, rank=0))
    assert len(list(twice)) == 2  # a quarter of the rows: half of rank 0's half
    loaders = {"forget": twice, "retain": DataLoader(data, sampler=own),
               "lightnings": DataLoader(data, sampler=DistributedSamplerWrapper(RandomSampler(data), num_replicas=2,
                                                                                 rank=0)),
               "draws": [DataLoader(data, sampler=DistributedSamplerWrapper(EpochDraws(8, 4, 0, rank=0, world_size=2),
                                                                             num_replicas=2, rank=0))]}
    assert sharded_twice(loaders) == ["EpochShuffle", "EpochDraws"]
    check = SelfShardingCheck()
    with pytest.raises(ValueError, match=r"\(EpochDraws, EpochShuffle\) hands each process its share itself.*"
                                         r"each of the 2 processes would read 1/2 .*use_distributed_sampler=False"):
        check.on_train_start(SimpleNamespace(world_size=2, train_dataloader=loaders), None)
    check.on_train_start(SimpleNamespace(world_size=1, train_dataloader=loaders), None)  # one process: as it is
    check.on_train_start(SimpleNamespace(world_size=2, train_dataloader={k: loaders[k] for k in ("retain",
                                                                                                    "lightnings")}), None)


def test_a_self_sharding_sampler_wrapped_again_is_found_past_a_lists_first_loader_and_inside_a_batch_sampler():
    """A loader given `batch_sampler=BatchSampler(wrapped)` holds the wrapped sampler in its batch sampler only (its
    own `.sampler` is the default SequentialSampler); a list's later loaders are read too."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from callbacks.self_sharding import sharded_twice
    from unlearn.data.sampling import EpochShuffle

    data = list(range(8))
    wrapped = DistributedSamplerWrapper(EpochShuffle(8, 0, rank=0, world_size=2), num_replicas=2, rank=0)
    in_batches = DataLoader(data, batch_sampler=BatchSampler(wrapped, batch_size=2, drop_last=False))
    assert sharded_twice(in_batches) == ["EpochShuffle"]
    plain = DataLoader(data, sampler=RandomSampler(data))
    assert sharded_twice([plain, DataLoader(data, sampler=wrapped)]) == ["EpochShuffle"]
