"""A teaching resumed from its last.ckpt (+finetune.ckpt_path) gives the weights of an uninterrupted one, and a
checkpoint of another teaching is refused by name (unlearn/teaching_resume.py)."""

import copy
import logging

import lightning as L
import pytest
import torch
from omegaconf import open_dict

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
    # method=finetune only; a teaching's checkpoint is no unlearning run's
    cfg = _cfg(tmp_path / "check", "method=ga")
    with open_dict(cfg):
        cfg.finetune.ckpt_path = str(last)
    with pytest.raises(ValueError, match="resumes a teaching run \\(method=finetune\\) only"):
        check_teaching_resume_path(cfg)
    from unlearn.methods.gradient import check_resume_file

    with pytest.raises(ValueError, match="a teaching's checkpoint \\(method=finetune\\), which resumes with "
                                         "\\+finetune.ckpt_path"):
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
    from unlearn.config import compose_config

    def run(name, *extra, kill_at=None):
        cfg = compose_config(["logger=none", "debug=fast", "method=finetune", "finetune.batch_size=16",
                              "eval.tasks=[mc]", "eval.max_people=2", "eval.cache_before=false", *extra],
                             tmp_path / name, tmp_path / f"cache_{name}")
        with pytest.MonkeyPatch.context() as mp:
            if kill_at is not None:
                mp.setattr(FinetuneModule, "on_train_epoch_start",
                           lambda self: (_ for _ in ()).throw(RuntimeError("killed")) if self.current_epoch == kill_at
                           else None, raising=False)
            pipeline.run(cfg)
        return cfg

    straight = run("straight")
    with pytest.raises(RuntimeError, match="killed"):
        run("killed", kill_at=1)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    resumed = run("killed", f"+finetune.ckpt_path={last}")
    want = load_file(pipeline.vanilla_path(straight) / "model.safetensors")
    got = load_file(pipeline.vanilla_path(resumed) / "model.safetensors")
    assert pipeline.vanilla_path(straight).name == pipeline.vanilla_path(resumed).name
    assert sorted(want) == sorted(got) and [k for k in want if not torch.equal(want[k], got[k])] == []


@pytest.mark.slow
def test_a_resume_on_two_processes_is_the_uninterrupted_teaching(launches):
    """trainer=ddp_sim (two CPU processes, gloo): killed after the first of 3 epochs, resumed on two processes."""
    from pathlib import Path

    got = launches(2, Path(__file__).parent / "scripts" / "teaching_resume.py", "--global-batch", "16")
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
