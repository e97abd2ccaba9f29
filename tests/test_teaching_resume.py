"""A teaching resumed from its last.ckpt (+finetune.ckpt_path) gives the weights of an uninterrupted one, and a
checkpoint of another teaching is refused by name (unlearn/teaching_resume.py)."""

import copy
import logging

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from tests.conftest import in_one_launch
from unlearn.methods.finetune import FinetuneModule, teach
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
from unlearn.pipeline import RunContext

from .test_finetune import _cfg

# the probe answered at its first check (epoch 2), then 2 annealing epochs: 4 of the 6 epochs run; portraits
# drawn from each person's augmented variants (debug=fast: train_variants 2) in the multimodal form
PROBED = ("finetune.epochs=6", "finetune.check_every=2", "finetune.target_mc_acc=0.0",
          "finetune.target_split_mc_acc=null", "finetune.probe_people=1", "finetune.batch_size=16",
          "+finetune.anneal_epochs=2")


def _teach(tmp_path, small_benchmark, start, proc, name, *overrides, ckpt=None, kill_at=None):
    """teach() as method=finetune runs it into <tmp_path>/<name>; `kill_at`: raise as that epoch (0-based)
    starts, after the previous epoch's checkpoint."""
    cfg = _cfg(tmp_path / name, *overrides)
    with open_dict(cfg):
        cfg.finetune.ckpt_path = str(ckpt) if ckpt else None
    ctx = RunContext(cfg, small_benchmark, copy.deepcopy(start), proc, tmp_path / name)
    L.seed_everything(0)
    with pytest.MonkeyPatch.context() as mp:
        if kill_at is not None:
            def interrupt(self):
                if self.current_epoch == kill_at:
                    raise RuntimeError("killed")

            mp.setattr(FinetuneModule, "on_train_epoch_start", interrupt, raising=False)
        teach(ctx, cfg.finetune, checkpoints=tmp_path / name / "checkpoints", resume=cfg.finetune.get("ckpt_path"))
    return ctx


def _weights(ctx) -> dict:
    return {n: p.detach().clone() for n, p in ctx.model.named_parameters()}


@pytest.mark.slow
def test_a_resumed_teaching_is_the_uninterrupted_one(tmp_path, small_benchmark, caplog):
    start, proc = build_tiny_llava(TinyLlavaSpec())
    go = lambda *a, **k: _teach(tmp_path, small_benchmark, start, proc, *a, **k)  # noqa: E731
    straight = go("straight", *PROBED)
    history = straight.artifacts["finetune_probe"]
    assert [h["epoch"] for h in history] == [2, 4] and history[1]["annealed"]
    # killed as epoch 4 starts, in the anneal: the checkpoint of epoch 3 holds the anneal under way
    with pytest.raises(RuntimeError, match="killed"):
        go("killed", *PROBED, kill_at=3)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        resumed = go("killed", *PROBED, ckpt=last)  # into its own directory, as the interrupt notice says
    assert "finetune.ckpt_path: resuming teaching after epoch 3 of 6" in caplog.text
    want, got = _weights(straight), _weights(resumed)
    assert [n for n in want if not torch.equal(want[n], start.get_parameter(n))], "teaching changed nothing"
    assert [n for n in want if not torch.equal(want[n], got[n])] == []
    assert resumed.artifacts["finetune_probe"] == history
    # the checkpoint of a teaching the probe stopped (killed in its evaluation or writing): restored, not taught on
    caplog.clear()
    stopped = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        restored = go("restored", *PROBED, ckpt=stopped)
    assert "stopped by the probe after epoch 4; its weights are restored, nothing is taught" in caplog.text
    assert restored.artifacts["trained"][-1]["batches"] == 0
    assert [n for n, w in _weights(restored).items() if not torch.equal(w, want[n])] == []


@pytest.mark.slow
def test_a_resume_without_the_probe_and_from_every_epoch(tmp_path, small_benchmark, caplog):
    """No probe: killed after the first of 3 epochs, and a checkpoint of every epoch restored as it is."""
    start, proc = build_tiny_llava(TinyLlavaSpec())
    plain = ("finetune.epochs=3", "finetune.batch_size=16")
    go = lambda *a, **k: _teach(tmp_path, small_benchmark, start, proc, *a, **k)  # noqa: E731
    want = _weights(go("straight", *plain))
    with pytest.raises(RuntimeError, match="killed"):
        go("killed", *plain, kill_at=1)
    got = _weights(go("resumed", *plain, ckpt=tmp_path / "killed" / "checkpoints" / "last.ckpt"))
    assert [n for n in want if not torch.equal(want[n], got[n])] == []
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        again = _weights(go("again", *plain, ckpt=tmp_path / "straight" / "checkpoints" / "last.ckpt"))
    assert "the checkpoint has run all 3 epochs; its weights are restored, nothing is taught" in caplog.text
    assert [n for n in want if not torch.equal(want[n], again[n])] == []


def test_a_checkpoint_of_another_teaching_is_refused_by_its_keys(tmp_path, small_benchmark):
    from unlearn.settings import check_teaching_resume_path

    start, proc = build_tiny_llava(TinyLlavaSpec())
    one = ("method=finetune", "finetune.epochs=1", "finetune.batch_size=16")
    _teach(tmp_path, small_benchmark, start, proc, "made", *one)
    last = tmp_path / "made" / "checkpoints" / "last.ckpt"

    def check(*overrides, path=last):
        cfg = _cfg(tmp_path / "check", *one, *overrides)
        with open_dict(cfg):
            cfg.finetune.ckpt_path = str(path)
        check_teaching_resume_path(cfg)

    check()  # its own settings
    with pytest.raises(ValueError, match=r"saved under other settings \(finetune.optimizer.lr: saved 0.003, now "
                                         r"0.001; finetune.scheduler.max_lr: saved 0.003, now 0.001\)"):
        check("finetune.optimizer.lr=1e-3")
    with pytest.raises(ValueError, match=r"other settings \(.*teach_seed: saved 0, now 1"):
        check("teach_seed=1")
    with pytest.raises(ValueError, match=r"other settings \(data.num_people: saved 12, now 10\)"):
        check("data.spec.num_people=10")
    with pytest.raises(ValueError, match=r"processes: saved 1, now 2[;)]"):
        check("trainer=ddp_sim")
    # the seed of the unlearning that would follow is no teaching setting (teach_seed follows it unless set)
    check("seed=5", "teach_seed=0")
    # an unlearning method teaching its vanilla model into the cache reads it too: one teaching, whatever the method
    # (until the fifty-fourth session refused under any method but finetune)
    cfg = _cfg(tmp_path / "check", "method=ga", *one[1:])
    with open_dict(cfg):
        cfg.finetune.ckpt_path = str(last)
    check_teaching_resume_path(cfg)
    with open_dict(cfg):
        cfg.finetune.epochs = 2
    with pytest.raises(ValueError, match=r"other settings \(finetune.epochs: saved 1, now 2\)"):
        check_teaching_resume_path(cfg)
    from unlearn.methods.gradient import check_resume_file

    with pytest.raises(ValueError, match="a teaching's checkpoint \\(method=finetune's, or an unlearning run's "
                                         "teaching of its vanilla model: checkpoints/teaching/last.ckpt\\), which "
                                         "resumes with \\+finetune.ckpt_path"):
        check_resume_file(last, _cfg(tmp_path / "check", "method=ga"))
    with pytest.raises(FileNotFoundError, match="finetune.ckpt_path=.*: no such file"):
        check(path=tmp_path / "none.ckpt")


def test_the_resume_key_leaves_the_cache_key_alone(tmp_path):
    from unlearn.pipeline import vanilla_key

    cfg = _cfg(tmp_path, "method=finetune")
    with_resume = _cfg(tmp_path, "method=finetune", "+finetune.ckpt_path=/somewhere/last.ckpt")
    assert vanilla_key(cfg) == vanilla_key(with_resume)


def test_sigterm_in_a_teaching_names_its_resume(tmp_path, small_benchmark, caplog):
    """SIGTERM (a scheduler's time limit) in the second epoch: the first epoch's last.ckpt is there, and the notice
    names the key that resumes a teaching (until the fifty-third session a teaching wrote no checkpoint)."""
    import os
    import signal

    from callbacks.interrupt_notice import SIGTERM_STATUS
    from unlearn.methods.gradient import epochs_run

    class Terminate(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.current_epoch == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    start, proc = build_tiny_llava(TinyLlavaSpec())
    cfg = _cfg(tmp_path, "method=finetune", "finetune.epochs=2", "finetune.batch_size=16")
    ctx = RunContext(cfg, small_benchmark, start, proc, tmp_path)
    real_trainer = ctx.trainer
    ctx.trainer = lambda **kw: real_trainer(**{**kw, "callbacks": [*kw.get("callbacks", []), Terminate()]})
    from unlearn.methods.finetune import run

    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised:
        run(ctx)
    assert raised.value.code == SIGTERM_STATUS
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"resume with +finetune.ckpt_path={last} (the same command with it added)" in caplog.text
    assert epochs_run(torch.load(last, map_location="cpu", weights_only=False)) == 1


@pytest.mark.slow
def test_train_py_resumes_a_killed_teaching_to_the_published_model(tmp_path):
    """The whole run (`python train.py method=finetune ...`, its before-evaluation drawing in between): killed in its
    second epoch, resumed into its own directory with +finetune.ckpt_path, it publishes the uninterrupted run's
    model under the same cache key."""
    from safetensors.torch import load_file

    from unlearn import pipeline

    def run(name, *extra, kill_at=None):
        return _pipeline_run(tmp_path, name, f"cache_{name}", "method=finetune", *extra, kill_at=kill_at)

    straight = run("straight")
    with pytest.raises(RuntimeError, match="killed"):
        run("killed", kill_at=1)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    resumed = run("killed", f"+finetune.ckpt_path={last}")
    want = load_file(pipeline.vanilla_path(straight) / "model.safetensors")
    got = load_file(pipeline.vanilla_path(resumed) / "model.safetensors")
    assert pipeline.vanilla_path(straight).name == pipeline.vanilla_path(resumed).name
    assert sorted(want) == sorted(got) and [k for k in want if not torch.equal(want[k], got[k])] == []


def _resumes_on_two(launches) -> dict:
    """teaching_resume.py's and cache_teaching_resume.py's results on two processes: one launch for both tests
    (tests/scripts/in_one_launch.py; a two-process launch costs 10-12 s of imports before any work)."""
    return in_one_launch(launches, 2, ("teaching_resume", "--global-batch", "16"),
                         ("cache_teaching_resume", "--global-batch", "16"))


@pytest.mark.slow
def test_a_resume_on_two_processes_is_the_uninterrupted_teaching(launches):
    """trainer=ddp_sim (two CPU processes, gloo): killed after the first of 3 epochs, resumed on two processes."""
    got = _resumes_on_two(launches)["teaching_resume"]
    want, resumed, start = got["straight"], got["resumed"], got["start"]
    assert [n for n in want if not torch.equal(want[n], start[n])], "teaching changed nothing"
    assert [n for n in want if not torch.equal(want[n], resumed[n])] == []


def test_method_ckpt_path_under_a_teaching_is_refused_naming_its_key(tmp_path):
    """`+method.ckpt_path=` is a defined method key (ga.yaml), so it passed the unknown-key check under method=finetune,
    which never reads it: the run taught from scratch without a word, the checkpoint it named left unread."""
    from unlearn.settings import check_input_paths

    cfg = _cfg(tmp_path, "method=finetune", "+method.ckpt_path=/somewhere/last.ckpt")
    with pytest.raises(ValueError, match=r"method.ckpt_path=/somewhere/last.ckpt: read by the gradient methods .* "
                                         r"method=finetune would ignore it; a teaching resumes with "
                                         r"\+finetune.ckpt_path="):
        check_input_paths(cfg)
    cfg = _cfg(tmp_path, "method=manu", "+method.ckpt_path=/somewhere/last.ckpt")
    with pytest.raises(ValueError, match=r"method=manu would ignore it$"):
        check_input_paths(cfg)



def test_a_thread_count_left_out_of_the_key_is_shown_as_its_count():
    """The thread count enters the identity only where it is not 1: a 2-thread checkpoint resumed on 1 thread
    was refused with "threads: saved 2, now 'absent'" (until 2026-12-07)."""
    from unlearn.teaching_resume import check_teaching_resume

    with pytest.raises(ValueError, match=r"other settings \(torch threads \(OMP_NUM_THREADS\): saved 2, now 1 "
                                         r"\(or off CPU\)\)"):
        check_teaching_resume({"threads": 2, "teach_seed": 0}, {"teach_seed": 0}, 3, 30)


# ---------------------------------------------------------------- the resume's parts, by hand (fast)


def _probe_check(monkeypatch, **kwargs):
    """A MemorisationCheck over two probe items whose scoring answers everything, and a trainer and module of
    SimpleNamespaces (as tests/test_finetune.py drives it)."""
    from types import SimpleNamespace

    import callbacks.memorisation as memorisation
    from unlearn.eval.items import EvalItem

    probe = [EvalItem(uid=f"probe/{m}", split="forget", modality=m, task="mc", person=0, attribute="a",
                      question="q", answer="x") for m in ("multimodal", "text")]
    monkeypatch.setattr(memorisation, "score_mc", lambda model, proc, items: [
        {"split": it.split, "modality": it.modality, "score": 1.0} for it in items])
    check = memorisation.MemorisationCheck(probe, None, 0.5, every=1, **kwargs)
    group = {"lr": 0.4}
    trainer = SimpleNamespace(current_epoch=0, max_epochs=6, should_stop=False, global_step=10,
                              num_training_batches=5, optimizers=[SimpleNamespace(param_groups=[group])],
                              strategy=SimpleNamespace(reduce_boolean_decision=lambda done, all: done))
    module = SimpleNamespace(model=torch.nn.Linear(1, 1), log_dict=lambda *a, **k: None)
    return check, trainer, module, group


def test_the_probes_state_carries_its_anneal_history_and_stop_into_a_resume(monkeypatch):
    """MemorisationCheck.state_dict/load_state_dict by hand: a check restored mid-anneal sets the anneal's learning
    rates and ends it at the epoch the saved one would; restored from the stop, it stops the resumed fit at its
    start. Mutation audit: state_dict without the anneal, load_state_dict dropping `stopped` or the history,
    on_train_start not stopping, and the anneal's end not recording `stopped` all passed every fast test."""
    import pickle

    check, trainer, module, group = _probe_check(monkeypatch, anneal_epochs=2)
    check.on_train_epoch_end(trainer, module)  # epoch 1: answered, anneal for 2 epochs (10 steps) from lr 0.4
    assert not trainer.should_stop and not check.stopped
    saved = pickle.loads(pickle.dumps(check.state_dict()))
    assert saved == {"history": [{"epoch": 1, "multimodal": 1.0, "text": 1.0}],
                     "anneal": {"lrs": [0.4], "start": 10, "steps": 10, "last_epoch": 3}, "stopped": False}

    resumed, trainer2, module2, group2 = _probe_check(monkeypatch, anneal_epochs=2)
    resumed.load_state_dict(saved)
    resumed.on_train_start(trainer2, module2)
    assert not trainer2.should_stop  # mid-anneal: epochs to come
    trainer2.global_step, trainer2.current_epoch = 14, 1  # 4 of the anneal's 10 steps done
    resumed.on_train_batch_start(trainer2, module2, None, 0)
    assert group2["lr"] == pytest.approx(0.4 * 0.6)
    trainer2.current_epoch = 2  # epoch 3: the anneal's last
    resumed.on_train_epoch_end(trainer2, module2)
    assert trainer2.should_stop and resumed.stopped
    assert [h["epoch"] for h in resumed.history] == [1, 3] and resumed.history[1]["annealed"]
    assert resumed.state_dict()["stopped"] is True

    # the checkpoint of the stopping epoch: a resume from it stops before any batch
    again, trainer3, module3, _ = _probe_check(monkeypatch, anneal_epochs=2)
    again.load_state_dict(pickle.loads(pickle.dumps(resumed.state_dict())))
    again.on_train_start(trainer3, module3)
    assert trainer3.should_stop and again.stopped and again.history == resumed.history
    # a fresh check stops nothing at its start
    fresh, trainer4, module4, _ = _probe_check(monkeypatch)
    fresh.on_train_start(trainer4, module4)
    assert not trainer4.should_stop


def test_a_stop_without_anneal_is_saved_as_stopped(monkeypatch):
    check, trainer, module, _ = _probe_check(monkeypatch)
    check.on_train_epoch_end(trainer, module)
    assert trainer.should_stop and check.state_dict()["stopped"] is True and check.state_dict()["anneal"] is None


def _draws(data) -> list:
    import random

    import numpy as np

    return [torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist(), data.rng.random()]


def test_resumable_draws_put_back_every_generator_through_a_weights_only_load(tmp_path):
    """ResumableDraws.state_dict, saved and read back as Lightning reads a checkpoint (weights_only), then
    load_state_dict: torch, python, numpy and the data's own rng draw again what they drew after the save.
    Mutation audit: portable_rng_state keeping numpy's key array (refused by the weights_only load), a numpy
    position of 0, and load_state_dict skipping the global or the data's generators all passed every fast test."""
    import random
    from types import SimpleNamespace

    from callbacks.resumable_draws import ResumableDraws

    data = SimpleNamespace(rng=random.Random(7))
    L.seed_everything(3)
    for _ in range(5):  # numpy's position away from 624, python's away from its seed
        _draws(data)
    draws = ResumableDraws(data)
    torch.save(draws.state_dict(), tmp_path / "state.pt")
    after = _draws(data)
    _draws(data)
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    draws.load_state_dict(saved)
    assert _draws(data) == after
    # a data without its own rng: the global generators alone
    bare = ResumableDraws(SimpleNamespace())
    state = bare.state_dict()
    assert state["processes"][0]["data_rng"] is None
    first = torch.rand(2)
    bare.load_state_dict(state)
    assert torch.equal(torch.rand(2), first)


def test_resumable_draws_take_lists_for_tuples_and_refuse_another_process_count():
    import random
    from types import SimpleNamespace

    from callbacks.resumable_draws import ResumableDraws, _tuples

    assert _tuples([1, [2, [3, 4]], None]) == (1, (2, (3, 4)), None)
    rng = random.Random(1)
    listed = [list(x) if isinstance(x, tuple) else x for x in rng.getstate()]
    want = [rng.random() for _ in range(3)]
    data = SimpleNamespace(rng=random.Random(99))
    draws = ResumableDraws(data)
    state = draws.state_dict()
    state["processes"][0]["data_rng"] = listed  # as a checkpoint may hand it back: lists
    draws.load_state_dict(state)
    assert [data.rng.random() for _ in range(3)] == want
    with pytest.raises(ValueError, match="saved by 2 processes, this teaching runs on 1"):
        draws.load_state_dict({"processes": state["processes"] * 2})


def test_check_teaching_resume_compares_every_key_and_the_epochs(caplog):
    """check_teaching_resume by hand: a key one side lacks is a difference (`absent`), five differences are shown
    and more are cut with ' ...'; a checkpoint that ran finetune.epochs is resumed (nothing left), one that ran
    more is refused. say_where_it_resumes's three lines. Mutation audit: one-sided keys ignored, `>=` for `>`,
    the cut at 5 dropped, and `>` for `>=` in the log line all passed every fast test."""
    from unlearn.teaching_resume import check_teaching_resume, say_where_it_resumes

    now = {"finetune": {"epochs": 3, "lr": 1e-3}, "teach_seed": 0, "processes": 1}
    check_teaching_resume(now, now, 3, 3)  # all epochs run: restored, nothing taught
    check_teaching_resume(now, now, None, 3)  # no loop progress recorded
    with pytest.raises(ValueError, match="has run 4 epochs, more than this run's finetune.epochs=3"):
        check_teaching_resume(now, now, 4, 3)
    with pytest.raises(ValueError, match=r"other settings \(source_model: saved '/m', now 'absent'\)"):
        check_teaching_resume({**now, "source_model": "/m"}, now, 1, 3)
    with pytest.raises(ValueError, match=r"other settings \(data_path: saved 'absent', now '/d'\)"):
        check_teaching_resume(now, {**now, "data_path": "/d"}, 1, 3)
    many = {f"k{i}": i for i in range(6)}
    with pytest.raises(ValueError, match=r"k4: saved 'absent', now 4 \.\.\.\)") as raised:
        check_teaching_resume(now, {**now, **many}, 1, 3)
    assert "k5" not in str(raised.value)
    with pytest.raises(ValueError, match=r"k4: saved 'absent', now 4\)"):
        check_teaching_resume(now, {**now, **{k: v for k, v in many.items() if k != "k5"}}, 1, 3)
    with pytest.raises(ValueError, match="not a teaching's"):
        check_teaching_resume(None, now, 1, 3)
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        say_where_it_resumes(None, 3, False)
        assert caplog.text == ""
        say_where_it_resumes(3, 3, False)
        assert "has run all 3 epochs" in caplog.text and "resuming" not in caplog.text
        caplog.clear()
        say_where_it_resumes(2, 3, False)
        assert "resuming teaching after epoch 2 of 3" in caplog.text
        caplog.clear()
        say_where_it_resumes(2, 3, True)
        assert "stopped by the probe after epoch 2" in caplog.text and "resuming" not in caplog.text


def test_the_modules_hooks_write_the_identity_and_refuse_another_on_load(caplog):
    """FinetuneModule.on_save_checkpoint/on_load_checkpoint by hand: the identity goes into the checkpoint, a
    checkpoint of another identity is refused as Lightning restores it, the probe's `stopped` is read from the
    callbacks' states for the log line; a module without an identity (relearn, the organism's base) reads nothing.
    Mutation audit: on_load_checkpoint skipping the comparison and reading the probe under another name passed
    every fast test."""
    from unlearn.teaching_resume import IDENTITY_KEY

    identity = {"finetune": {"epochs": 4}, "teach_seed": 0, "processes": 1}
    module = FinetuneModule(torch.nn.Linear(1, 1), None, identity=identity, epochs=4)
    checkpoint = {"loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 2, "completed": 1}}}}}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint[IDENTITY_KEY] == identity
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        module.on_load_checkpoint(checkpoint)
        assert "resuming teaching after epoch 2 of 4" in caplog.text
        caplog.clear()
        stopped = {**checkpoint, "callbacks": {"ResumableDraws": {}, "MemorisationCheck{'every': 2}": {"stopped": True}}}
        module.on_load_checkpoint(stopped)
        assert "stopped by the probe after epoch 2" in caplog.text
    with pytest.raises(ValueError, match=r"other settings \(teach_seed: saved 0, now 1\)"):
        FinetuneModule(torch.nn.Linear(1, 1), None, identity={**identity, "teach_seed": 1}, epochs=4) \
            .on_load_checkpoint(checkpoint)
    plain = FinetuneModule(torch.nn.Linear(1, 1), None)
    saved = {}
    plain.on_save_checkpoint(saved)
    assert saved == {}
    plain.on_load_checkpoint(checkpoint)  # no identity: nothing compared


def test_teach_checkpoints_each_epoch_atomically_and_carries_the_draws(tmp_path, small_benchmark, monkeypatch):
    """What `teach` hands its Trainer with and without `checkpoints` (the fit itself is stopped at once), and a
    resume without checkpoints refused. Mutation audit: dropping ResumableDraws or AtomicCheckpointIO, and
    accepting a resume with no checkpoints, passed every fast test."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from callbacks.resumable_draws import ResumableDraws
    from unlearn.checkpoint_io import AtomicCheckpointIO

    start, proc = build_tiny_llava(TinyLlavaSpec())
    seen = []

    class Stop(Exception):
        pass

    def trainer(**kwargs):
        seen.append(kwargs)
        raise Stop

    cfg = _cfg(tmp_path, "finetune.epochs=2", "finetune.batch_size=16")
    ctx = RunContext(cfg, small_benchmark, start, proc, tmp_path)
    monkeypatch.setattr(ctx, "trainer", trainer)
    with pytest.raises(Stop):
        teach(ctx, cfg.finetune, checkpoints=tmp_path / "checkpoints")
    kw = seen.pop()
    assert kw["enable_checkpointing"] and [type(p) for p in kw["plugins"]] == [AtomicCheckpointIO]
    draws = [c for c in kw["callbacks"] if isinstance(c, ResumableDraws)]
    saving, = [c for c in kw["callbacks"] if isinstance(c, ModelCheckpoint)]
    assert len(draws) == 1 and draws[0].data.rng is not None  # the portraits' own generator travels too
    assert (saving.dirpath, saving.filename, saving.save_top_k, saving._every_n_epochs) == \
        (str(tmp_path / "checkpoints"), "last", 1, 1)
    with pytest.raises(Stop):
        teach(ctx, cfg.finetune)
    kw = seen.pop()
    assert not kw["enable_checkpointing"] and "plugins" not in kw
    assert not [c for c in kw["callbacks"] if isinstance(c, (ResumableDraws, ModelCheckpoint))]
    with pytest.raises(ValueError, match="this teaching writes no checkpoint to resume into"):
        teach(ctx, cfg.finetune, resume=tmp_path / "last.ckpt")
    assert seen == []


def test_a_resume_file_that_is_no_lightning_checkpoint_is_refused_by_name(tmp_path):
    """check_teaching_resume_path on files no teaching wrote: a directory, a truncated or foreign file, a model's
    weights (a torch zip without the loops). Mutation audit: the zip check, the Lightning-keys check and the
    directory's own message all passed every fast test."""
    from unlearn.settings import check_teaching_resume_path

    cfg = _cfg(tmp_path / "run", "method=finetune")

    def check(path):
        with open_dict(cfg):
            cfg.finetune.ckpt_path = str(path)
        check_teaching_resume_path(cfg)

    with pytest.raises(FileNotFoundError, match="finetune.ckpt_path=.*: a directory, not a checkpoint file"):
        check(tmp_path)
    (tmp_path / "cut.ckpt").write_bytes(b"PK\x03\x04 not all of it")
    with pytest.raises(ValueError, match=r"finetune.ckpt_path=.*cut.ckpt: not a checkpoint torch.save writes"):
        check(tmp_path / "cut.ckpt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"weights.pt: not a Lightning training checkpoint \(no state_dict, loops\)"):
        check(tmp_path / "weights.pt")
    torch.save({"state_dict": {}}, tmp_path / "no_loops.pt")
    with pytest.raises(ValueError, match=r"not a Lightning training checkpoint \(no loops\)"):
        check(tmp_path / "no_loops.pt")
    torch.save({"state_dict": {}, "loops": {}}, tmp_path / "bare.pt")  # Lightning's, no teaching identity
    with pytest.raises(ValueError, match="the checkpoint is not a teaching's"):
        check(tmp_path / "bare.pt")


def test_the_identity_names_the_model_and_data_files_a_teaching_reads(tmp_path, monkeypatch):
    """teaching_identity: the model a teaching starts from (model.path) and the data files it reads (data.path),
    however they are written (./x and its absolute form are one); the rest is the vanilla key's parts with its
    seed named teach_seed. Mutation audit: dropping source_model or data_path passed every fast test."""
    from unlearn.pipeline import vanilla_parts
    from unlearn.teaching_resume import teaching_identity

    cfg = _cfg(tmp_path, "method=finetune", "teach_seed=3")
    plain = teaching_identity(cfg)
    assert plain["source_model"] is None and plain["data_path"] is None and plain["processes"] == 1
    parts = vanilla_parts(cfg)
    assert plain["teach_seed"] == parts.pop("seed") == 3
    assert {k: plain[k] for k in parts} == parts
    monkeypatch.chdir(tmp_path)
    with open_dict(cfg):
        cfg.model.path, cfg.data.path = "./vanilla", str(tmp_path / "files")
    named = teaching_identity(cfg)
    assert (named["source_model"], named["data_path"]) == (str(tmp_path / "vanilla"), str(tmp_path / "files"))


# ---------------------------------------------------------------- the cache's own teaching (an unlearning run's)


def _pipeline_run(tmp_path, name, cache, *extra, kill_at=None):
    """`python train.py debug=fast ...` as pipeline.run runs it, into <tmp_path>/<name> with the cache
    <tmp_path>/<cache>; `kill_at`: raise as that teaching epoch (0-based) starts, after the previous one's
    checkpoint."""
    from unlearn import pipeline
    from unlearn.config import compose_config

    cfg = compose_config(["logger=none", "debug=fast", "finetune.batch_size=16", "eval.tasks=[mc]",
                          "eval.max_people=2", "eval.cache_before=false", *extra], tmp_path / name, tmp_path / cache)
    with pytest.MonkeyPatch.context() as mp:
        if kill_at is not None:
            mp.setattr(FinetuneModule, "on_train_epoch_start",
                       lambda self: (_ for _ in ()).throw(RuntimeError("killed")) if self.current_epoch == kill_at
                       else None, raising=False)
        pipeline.run(cfg)
    return cfg


def _published(cfg) -> dict:
    from safetensors.torch import load_file

    from unlearn.pipeline import vanilla_path

    return load_file(vanilla_path(cfg) / "model.safetensors")


def _differing(want: dict, got: dict) -> list:
    assert sorted(want) == sorted(got)
    return [k for k in want if not torch.equal(want[k], got[k])]


@pytest.mark.slow
def test_an_unlearning_run_resumes_its_cache_teaching_to_the_uninterrupted_model(tmp_path, caplog):
    """`python train.py method=ga` with no cached vanilla model, killed in its teaching's second epoch, leaves
    <run dir>/checkpoints/teaching/last.ckpt; the same command with +finetune.ckpt_path=<it>, into its own directory,
    publishes the model an uninterrupted teaching (method=finetune, another cache) publishes, goes on with GA, and
    deletes its teaching checkpoints. That checkpoint resumes a method=finetune run to the same model too (the
    identities agree: both are the cache key's parts)."""
    import shutil

    from unlearn.pipeline import vanilla_path

    straight = _pipeline_run(tmp_path, "straight", "cache_straight", "method=finetune")
    want = _published(straight)
    with pytest.raises(RuntimeError, match="killed"):
        _pipeline_run(tmp_path, "killed", "cache", "method=ga", "eval.before=false", kill_at=1)
    last = tmp_path / "killed" / "checkpoints" / "teaching" / "last.ckpt"
    assert last.is_file() and not (tmp_path / "killed" / "checkpoints" / "last.ckpt").exists()
    kept = tmp_path / "kept.ckpt"
    shutil.copy(last, kept)
    with caplog.at_level(logging.INFO):
        resumed = _pipeline_run(tmp_path, "killed", "cache", "method=ga", "eval.before=false",
                                f"+finetune.ckpt_path={last}")
    assert "finetune.ckpt_path: resuming teaching after epoch 1 of 2" in caplog.text
    assert f"vanilla model missing: teaching the benchmark first (cached at {vanilla_path(resumed)}), resuming " \
           f"from {last}" in caplog.text
    assert vanilla_path(resumed).name == vanilla_path(straight).name
    assert _differing(want, _published(resumed)) == []
    assert not (tmp_path / "killed" / "checkpoints" / "teaching").exists()
    assert f"this run's teaching checkpoints ({last.parent}) deleted" in caplog.text
    assert (tmp_path / "killed" / "metrics.json").is_file()  # and the unlearning went on
    # the cache teaching's checkpoint, in a method=finetune run: the same model
    again = _pipeline_run(tmp_path, "finetune", "cache_finetune", "method=finetune", "eval.before=false",
                          f"+finetune.ckpt_path={kept}")
    assert _differing(want, _published(again)) == []
    assert kept.is_file()  # a method=finetune run deletes nothing


@pytest.mark.slow
def test_a_finetune_runs_checkpoint_resumes_an_unlearning_runs_cache_teaching(tmp_path, caplog):
    """The other way round: method=finetune's <run dir>/checkpoints/last.ckpt, killed after its first epoch,
    resumes the cache's teaching inside method=ga (a new run directory) to the uninterrupted model; the checkpoint,
    another run's, is left where it is."""
    straight = _pipeline_run(tmp_path, "straight", "cache_straight", "method=finetune", "eval.before=false")
    with pytest.raises(RuntimeError, match="killed"):
        _pipeline_run(tmp_path, "killed", "cache_killed", "method=finetune", "eval.before=false", kill_at=1)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.INFO):
        resumed = _pipeline_run(tmp_path, "ga", "cache", "method=ga", "eval.before=false",
                                f"+finetune.ckpt_path={last}")
    assert "finetune.ckpt_path: resuming teaching after epoch 1 of 2" in caplog.text
    assert _differing(_published(straight), _published(resumed)) == []
    assert last.is_file() and "another run's teaching checkpoint, is left as it is" in caplog.text
    assert not (tmp_path / "ga" / "checkpoints" / "teaching").exists()


def test_sigterm_in_the_cache_teaching_names_its_resume(tmp_path, small_benchmark, caplog):
    """SIGTERM in the second epoch of the teaching an unlearning run does into the cache (ensure_vanilla with the
    run's directory): the notice names +finetune.ckpt_path and the teaching folder's last.ckpt, and nothing is
    published."""
    import os
    import signal

    from callbacks.interrupt_notice import SIGTERM_STATUS
    from unlearn.pipeline import ensure_vanilla, vanilla_path

    def terminate(self, *args):
        if self.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = _cfg(tmp_path, "method=manu", "finetune.epochs=2", "finetune.batch_size=16")
    with pytest.MonkeyPatch.context() as mp, caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised:
        mp.setattr(FinetuneModule, "on_train_batch_end", terminate, raising=False)
        ensure_vanilla(cfg, small_benchmark, run_dir=tmp_path / "run")
    assert raised.value.code == SIGTERM_STATUS
    last = tmp_path / "run" / "checkpoints" / "teaching" / "last.ckpt"
    assert f"resume with +finetune.ckpt_path={last} (the same command with it added)" in caplog.text
    assert last.is_file() and not vanilla_path(cfg).exists()


def test_the_resume_under_an_unlearning_method_is_read_only_where_it_teaches(tmp_path, small_benchmark, caplog):
    """check_teaching_resume_path under method=manu: refused by name with model.path (nothing is taught), read and
    refused where the file is not there, and left unread where the vanilla model is cached already; ensure_vanilla
    then says so in one line, and makes no checkpoint folder. Mutation audit: see the report."""
    from unlearn.pipeline import ensure_vanilla, vanilla_path
    from unlearn.settings import check_teaching_resume_path

    missing = tmp_path / "gone" / "last.ckpt"
    loaded = _cfg(tmp_path, "method=manu", f"+finetune.ckpt_path={missing}", f"model.path={tmp_path}")
    with pytest.raises(ValueError, match=r"finetune.ckpt_path=.*last.ckpt: resumes the teaching of the cache's vanilla "
                                         r"model, and method=manu with model.path=.* starts from that model, teaching "
                                         r"nothing"):
        check_teaching_resume_path(loaded)
    cfg = _cfg(tmp_path, "method=manu", f"+finetune.ckpt_path={missing}")
    with pytest.raises(FileNotFoundError, match=r"finetune.ckpt_path=.*: no such file \(an interrupted teaching's "
                                                r".*checkpoints/teaching/last.ckpt"):
        check_teaching_resume_path(cfg)
    vanilla_path(cfg).mkdir(parents=True)  # published meanwhile (by another run)
    check_teaching_resume_path(cfg)  # not read
    with caplog.at_level(logging.INFO, "unlearn.pipeline"):
        assert ensure_vanilla(cfg, small_benchmark, run_dir=tmp_path / "run") == vanilla_path(cfg)
    assert [r.message for r in caplog.records if "not read" in r.message] == [
        f"finetune.ckpt_path={missing} not read: the vanilla model it would finish teaching is cached already "
        "(published by another run meanwhile), and this run starts from it"]
    assert not (tmp_path / "run").exists()


def test_the_cache_teachings_checkpoints_go_once_published(tmp_path, caplog):
    """remove_cache_teaching by hand: the folder goes, and checkpoints/ with it where nothing else is in it; a
    checkpoint resumed from another run's directory is left, and said so."""
    from unlearn.teaching_resume import cache_teaching_dir, remove_cache_teaching

    folder = cache_teaching_dir(tmp_path / "run")
    assert folder == tmp_path / "run" / "checkpoints" / "teaching"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"x")
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        remove_cache_teaching(folder, folder / "last.ckpt")
    assert not (tmp_path / "run" / "checkpoints").exists() and (tmp_path / "run").is_dir()
    assert "teaching checkpoints" in caplog.text and "left as it is" not in caplog.text
    folder.mkdir(parents=True)
    (folder.parent / "last.ckpt").write_bytes(b"x")  # a gradient method's own: kept, and its folder
    caplog.clear()
    with caplog.at_level(logging.INFO, "unlearn.teaching_resume"):
        remove_cache_teaching(folder, tmp_path / "other" / "last.ckpt")
    assert not folder.exists() and (folder.parent / "last.ckpt").is_file()
    assert f"finetune.ckpt_path={tmp_path / 'other' / 'last.ckpt'}, another run's teaching checkpoint" in caplog.text


@pytest.mark.slow
def test_the_cache_teaching_resumed_on_two_processes_publishes_the_uninterrupted_model(launches):
    """trainer=ddp_sim (two CPU processes, gloo): ensure_vanilla with the run's directory, killed after the first of
    2 epochs and resumed from its checkpoints/teaching/last.ckpt, publishes the uninterrupted teaching's model and
    deletes its checkpoints (rank 0, the other rank waiting at the barrier)."""
    got = _resumes_on_two(launches)["cache_teaching_resume"]
    assert got["resumed_after"] == [1]
    assert _differing(got["straight"], got["resumed"]) == [] and not got["left"]
