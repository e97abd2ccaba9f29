"""A vanilla model's key names the thread count and trainer it was taught with; teaching.json records the rest."""

import json
import logging

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn.config import compose_config
from unlearn.io import config_hash
from unlearn.pipeline import ensure_vanilla, teaching_record, vanilla_key
from unlearn.provenance import TEACHING_FILE, differences, machine_part
from unlearn.runtime import torch_threads as threads


def _cfg(tmp_path, *overrides):
    return compose_config(["logger=none", *overrides], tmp_path / "out", tmp_path / "cache")


def _key_before_this_change(cfg):
    """vanilla_key as it was until the thirteenth session (no trainer, no thread count)."""
    finetune = OmegaConf.to_container(cfg.finetune, resolve=True)
    if not finetune.get("image_processor"):
        finetune.pop("image_processor", None)
    parts = {"model": cfg.model.name, "build": OmegaConf.to_container(cfg.model.build, resolve=True),
             "finetune": finetune, "data": OmegaConf.to_container(cfg.data.spec, resolve=True),
             "seed": cfg.teach_seed, "forget_split": cfg.data.forget_split}
    return config_hash(parts)


def test_one_thread_keys_are_the_old_keys_and_other_counts_have_their_own(tmp_path):
    cfg = _cfg(tmp_path)
    with threads(1):
        one = vanilla_key(cfg)
        assert one == _key_before_this_change(cfg)  # one-thread models kept their keys at this change
    with threads(2):
        two = vanilla_key(cfg)
    with threads(3):
        three = vanilla_key(cfg)
    assert len({one, two, three}) == 3


def test_the_trainer_keys_the_vanilla_model_where_it_is_not_plain_cpu(tmp_path):
    with threads(1):
        plain = vanilla_key(_cfg(tmp_path))
        assert vanilla_key(_cfg(tmp_path, "trainer.log_every_n_steps=3")) == plain  # moves no weight
        changed = {o: vanilla_key(_cfg(tmp_path, o)) for o in
                   ("trainer=ddp_sim", "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=0.5",
                    "+trainer.accumulate_grad_batches=2", "trainer=gpu")}
    assert plain not in changed.values() and len(set(changed.values())) == len(changed), changed
    # off CPU the thread count is not part of the key
    with threads(2):
        assert vanilla_key(_cfg(tmp_path, "trainer=gpu")) == changed["trainer=gpu"]


def test_differences_name_the_entries_that_moved():
    old = {"cpu": "A", "cpu_capability": "AVX512", "libraries": {"torch": "2.13.0", "peft": None},
           "torch_threads": 1}
    new = {"cpu": "A", "cpu_capability": "AVX2", "libraries": {"torch": "2.13.0", "peft": "0.21"},
           "torch_threads": 2, "gpu": "H200"}
    assert differences(old, new) == ["cpu_capability: AVX512 -> AVX2", "gpu: None -> H200",
                                     "libraries.peft: None -> 0.21", "torch_threads: 1 -> 2"]
    assert differences(old, old) == []
    # the thread count is in the key, so a reused model is compared on the machine part only
    assert differences(machine_part(old), machine_part({**old, "torch_threads": 4})) == []


@pytest.mark.slow  # teaches: 20-40 s
def test_teaching_is_recorded_beside_the_weights_and_another_machine_is_warned_of(tmp_path, caplog):
    cfg = _cfg(tmp_path, "debug=fast", "finetune.epochs=2", "finetune.target_mc_acc=1.0")  # probed, not reached
    benchmark = instantiate(cfg.data.benchmark)
    with threads(2):  # a two-thread model, whatever this process started with (its key differs from one thread's)
        path = ensure_vanilla(cfg, benchmark)
    record = teaching_record(path)
    assert record["key"] == path.name and record["teach_seed"] == 0 and record["seconds"] > 0
    assert [h["epoch"] for h in record["probe"]] == [1, 2]  # the probe's history, one entry per check
    env = record["environment"]
    assert env["torch_threads"] == 2 and env["accelerator"] == "cpu"
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["libraries"]["torch"] == torch.__version__

    with threads(2), caplog.at_level(logging.WARNING, logger="unlearn.pipeline"):
        ensure_vanilla(cfg, benchmark)
    assert not [r for r in caplog.records if "float environment" in r.message]
    other = "AVX2" if env["cpu_capability"] == "AVX512" else "AVX512"  # another processor than this one
    doctored = {**record, "environment": {**env, "cpu_capability": other, "torch_threads": 99}}
    (path / TEACHING_FILE).write_text(json.dumps(doctored))
    with threads(2), caplog.at_level(logging.WARNING, logger="unlearn.pipeline"):
        assert ensure_vanilla(cfg, benchmark) == path  # still reused: a warning, not a refusal
    (warning,) = [r.message for r in caplog.records if "float environment" in r.message]
    assert f"cpu_capability: {other} -> {env['cpu_capability']}" in warning and "torch_threads" not in warning
    assert teaching_record(tmp_path / "nowhere") == {}

    # a model cached before teaching.json existed, read by a one-thread process: it may be a two-thread model
    # under the one-thread key, and the run says so
    caplog.clear()
    with threads(1), caplog.at_level(logging.WARNING, logger="unlearn.pipeline"):
        one = _cfg(tmp_path, "debug=fast", "finetune.epochs=2", "finetune.target_mc_acc=1.0")
        (path.parent / f"{path.name.split('-')[0]}-{vanilla_key(one)}").mkdir()
        ensure_vanilla(one, benchmark)
    assert any("may have been taught on more than one thread" in r.message for r in caplog.records)


@pytest.mark.slow  # teaches: 20-40 s
def test_finetune_publishes_under_the_key_it_had_before_teaching(tmp_path, monkeypatch):
    """On CPU under DDP Lightning sets each rank's thread count at its first launch; method=finetune must
    publish its model under the key the run started with, where the next run (which starts the same way)
    looks for it."""
    from unlearn import pipeline
    from unlearn.methods import finetune

    taught = finetune.teach

    def teach_then_change_threads(ctx, fcfg, **where):  # what Lightning's DDP launcher does to the rank's threads
        taught(ctx, fcfg, **where)
        torch.set_num_threads(1)

    monkeypatch.setattr(finetune, "teach", teach_then_change_threads)
    with threads(2):
        cfg = _cfg(tmp_path, "debug=fast", "method=finetune", "save_model=false")
        expected = pipeline.vanilla_path(cfg)
        pipeline.run(cfg)
        assert torch.get_num_threads() == 1  # the thread count did change during the run
    assert list(expected.parent.iterdir()) == [expected]  # not under the one-thread key it ended with
    assert teaching_record(expected)["key"] == expected.name


def test_same_weights_counts_bit_identical_tensors(tmp_path, tiny_model):
    from bench.same_weights import same_tensors
    from unlearn.models.loading import save_model

    model, proc = tiny_model
    save_model(model, proc, tmp_path / "a")
    save_model(model, proc, tmp_path / "b")
    same, total = same_tensors(tmp_path / "a", tmp_path / "b")
    assert same == total > 10
    with torch.no_grad():
        next(model.parameters()).add_(1e-6)
    save_model(model, proc, tmp_path / "c")
    assert same_tensors(tmp_path / "a", tmp_path / "c") == (total - 1, total)


def test_devices_enter_the_keys_as_the_count_this_machine_gives_them(tmp_path, monkeypatch):
    """trainer=ddp and trainer=fsdp say devices=auto: a teaching on four GPUs and one on eight (twice the
    effective batch) must not share a vanilla model, nor their evaluations a cached before-stage."""
    from unlearn.pipeline import before_cache_path
    from unlearn.trainer_keys import device_count

    assert device_count({"accelerator": "cpu", "devices": "auto"}) == 1
    assert device_count({"devices": [0, 3]}) == 2 == device_count({"devices": "0,3"}) == device_count({"devices": "2"})
    assert device_count({"devices": 3}) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # Lightning's gpu without CUDA: Apple's, one
    assert device_count({"accelerator": "gpu", "devices": "auto"}) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    keys, before = {}, {}
    for gpus in (4, 8):
        monkeypatch.setattr(torch.cuda, "device_count", lambda gpus=gpus: gpus)
        assert device_count({"accelerator": "gpu", "devices": -1}) == gpus
        assert device_count({"accelerator": "auto", "devices": "auto"}) == gpus
        cfg = _cfg(tmp_path, "trainer=ddp")
        keys[gpus], before[gpus] = vanilla_key(cfg), before_cache_path(cfg, tmp_path / "vanilla")
        if gpus == 8:  # the count, not the word: devices=4 on an eight-GPU machine is the four-GPU teaching
            assert vanilla_key(_cfg(tmp_path, "trainer=ddp", "trainer.devices=4")) == keys[4]
    assert keys[4] != keys[8] and before[4] != before[8]
    with pytest.raises(ValueError, match="trainer.devices='many'"):
        device_count({"devices": "many"})


def test_code_version_names_the_commit_and_an_edit(tmp_path):
    """metrics.json's `code`: two runs of different code read alike without it (a reviewer's finding)."""
    import subprocess

    from unlearn.provenance import code_version

    assert code_version(tmp_path) is None  # not a git checkout: an installed copy
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = code_version(tmp_path)
    assert clean == {"commit": git("rev-parse", "HEAD"), "dirty": False, "digest": clean["digest"]}
    (tmp_path / "new.py").write_text("")  # untracked: not an edit of the code that ran
    assert code_version(tmp_path)["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    first = code_version(tmp_path)
    assert first["dirty"] is True and first == code_version(tmp_path)
    (tmp_path / "a.py").write_text("x = 3\n")  # another edit of the same commit: another code (until 2026-12-06 alike)
    second = code_version(tmp_path)
    assert second["dirty"] is True and second["edits"] != first["edits"]
    from unlearn.report import code_label

    labels = {code_label({"code": c}) for c in (first, second)}
    assert len(labels) == 2 and all(label.startswith(f"{first['commit'][:7]}+edits ") for label in labels)
    assert code_label({"code": {"commit": first["commit"], "dirty": True}}) == f"{first['commit'][:7]}+edits"  # older



def test_code_version_writes_nothing_into_the_checkout(tmp_path):
    """`git status` refreshes a stale .git/index and writes it back under .git/index.lock: a run's git killed
    meanwhile (code_version's timeout, a SIGTERM to the run's process group, as the test suite sends) left the lock,
    and the user's next git command failed (a stale lock after a test run, 2026-12-07). Made stale here by a touch that leaves
    the content as it is; a plain `git status` rewrites the index then (the control)."""
    import os
    import subprocess

    from unlearn.provenance import code_version

    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    index = tmp_path / ".git" / "index"
    written = index.stat().st_mtime_ns
    os.utime(index, ns=(written - 10**10, written - 10**10))  # the index 10 s older than a.py's new stamp below
    os.utime(tmp_path / "a.py", ns=(written + 10**9, written + 10**9))
    stale = index.stat().st_mtime_ns
    assert code_version(tmp_path)["dirty"] is False
    assert index.stat().st_mtime_ns == stale and not (tmp_path / ".git" / "index.lock").exists()
    git("status", "--porcelain")
    assert index.stat().st_mtime_ns != stale  # what code_version's git would have done without --no-optional-locks


def test_commits_apart_in_docs_or_tests_alone_ran_the_same_code(tmp_path):
    """A commit that changed the README between seed 1 and seed 2 read as other code on the report's page (a
    researcher's finding, fifty-first session): the digest hashes the files a run executes as they are on disk
    (outside docs/, tests/ and Markdown files), committed or not; the commit and "+edits" stay as they were."""
    import subprocess

    from unlearn.provenance import code_version
    from unlearn.report import code_key, code_label, mixed_code

    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    commit = lambda: git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "c")  # noqa: E731
    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    for name, text in (("a.py", "x = 1\n"), ("README.md", "one\n"), ("docs/page.txt", "one\n"),
                       ("tests/t.py", "one\n"), ("conf.yaml", "lr: 1\n")):
        (tmp_path / name).write_text(text)
    git("add", ".")
    commit()
    first = code_version(tmp_path)
    (tmp_path / "README.md").write_text("two\n")
    (tmp_path / "docs" / "page.txt").write_text("two\n")
    (tmp_path / "tests" / "t.py").write_text("two\n")
    edited = code_version(tmp_path)  # docs edited, not committed: dirty, the same code
    assert edited["dirty"] is True and edited["digest"] == first["digest"]
    commit()
    docs_commit = code_version(tmp_path)
    assert docs_commit["commit"] != first["commit"] and docs_commit["digest"] == first["digest"]
    (tmp_path / "conf.yaml").write_text("lr: 2\n")  # a config is code: an edit of it is other code
    config_edit = code_version(tmp_path)
    assert config_edit["digest"] != first["digest"]
    commit()
    config_commit = code_version(tmp_path)
    assert config_commit["digest"] == config_edit["digest"]  # the edit, committed: the code its run executed
    summaries = [{"code": c} for c in (first, docs_commit, config_commit)]
    assert mixed_code([code_label(s) for s in summaries[:2]], [code_key(s) for s in summaries[:2]]) is None
    said = mixed_code([code_label(s) for s in summaries], [code_key(s) for s in summaries])
    assert said == (f"runs made by different code: {first['commit'][:7]} / {docs_commit['commit'][:7]} (2 runs), "
                    f"{config_commit['commit'][:7]} (1 run)")
    # runs recorded before the digest are told apart by their commits, as before
    assert mixed_code([code_label(s) for s in summaries[:2]]) is not None
    assert code_key({"code": {"commit": first["commit"], "dirty": False}}) == first["commit"][:7]


def test_code_version_hashes_an_edit_of_a_file_that_is_not_utf8_and_ignores_the_users_diff_tools(tmp_path):
    """The edits hash reads git's bytes: an edited latin-1 file raised UnicodeDecodeError (at the run's end, before
    metrics.json), and an external diff tool or colour set in the user's git config replaced the patch hashed."""
    import subprocess

    from unlearn.provenance import code_version

    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "notes.txt").write_bytes(b"caf\xe9\n")
    git("add", "notes.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "notes.txt").write_bytes(b"caf\xe9 2\n")
    plain = code_version(tmp_path)
    assert plain["dirty"] is True and len(plain["edits"]) == 8
    git("config", "diff.external", "false")
    git("config", "color.ui", "always")
    assert code_version(tmp_path) == plain

def test_code_version_of_a_copy_inside_another_repository_is_none(tmp_path):
    """A non-editable install inside a user's own git project: git -C site-packages answers for the project."""
    import subprocess

    from unlearn.provenance import code_version

    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    (tmp_path / "venv" / "unlearn").mkdir(parents=True)
    assert code_version(tmp_path / "venv") is None


def test_the_code_digest_tells_a_renamed_file_apart_and_reads_only_whole_directory_names_as_not_run(tmp_path):
    """code_digest hashes each executed file's path with its bytes: a file moved to another name is other code
    (a config renamed is another config), and `tests`/`docs` are directories, not prefixes (`tests_util.py` is
    executed). Mutation audit: hashing the bytes alone, and `startswith(p)` for `startswith(p + "/")`, survived."""
    from unlearn.provenance import code_digest, executed

    assert not executed("tests/t.py") and not executed("docs/a/b.txt") and not executed("README.md")
    assert executed("tests_util.py") and executed("docsgen/run.py") and executed("configs/a.yaml")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    assert code_digest(tmp_path, ["a.py"]) != code_digest(tmp_path, ["b.py"])
    assert code_digest(tmp_path, ["a.py", "tests/x.py"]) == code_digest(tmp_path, ["a.py"])
    assert code_digest(tmp_path, ["a.py", "gone.py"]) != code_digest(tmp_path, ["a.py"])  # deleted from the disk
