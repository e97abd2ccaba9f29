"""The sweep benches' runs.jsonl: a resumed sweep sees every finished run, and an append cut short reruns."""

import json

import pytest

from bench.run_log import RunLog


def test_appended_records_read_back_in_order(tmp_path):
    log = RunLog(tmp_path / "sweep")
    assert log.read() == []
    log.append({"key": "a", "x": 1.5})
    log.append({"key": "b", "x": [1, 2]})
    assert RunLog(tmp_path / "sweep").read() == [{"key": "a", "x": 1.5}, {"key": "b", "x": [1, 2]}]


def test_an_unfinished_last_line_is_a_run_not_done_and_the_next_append_replaces_it(tmp_path):
    log = RunLog(tmp_path)
    log.append({"key": "a"})
    with log.path.open("a") as f:
        f.write('{"key": "b", "x"')  # killed while writing
    assert log.read() == [{"key": "a"}]
    log.append({"key": "b", "x": 2})
    assert log.read() == [{"key": "a"}, {"key": "b", "x": 2}]
    assert [json.loads(line) for line in log.path.read_text().splitlines()] == log.read()


def test_a_bad_line_before_the_end_names_the_file_and_line(tmp_path):
    log = RunLog(tmp_path)
    log.path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"runs\.jsonl:2: not a JSON record"):
        log.read()


def test_a_run_finished_but_not_logged_keeps_its_directory_and_the_rerun_gets_the_next_free_one(tmp_path):
    log = RunLog(tmp_path)
    first = tmp_path / "run_000"
    assert log.run_dir(first) == first  # nothing there yet
    first.mkdir()
    (first / ".hydra").mkdir()  # a run that failed before finishing may be run into again
    assert log.run_dir(first) == first
    (first / "metrics.json").write_text("{}")  # finished, then the tool stopped before its log line
    (tmp_path / "run_000-2" / "model").mkdir(parents=True)  # and once more
    chosen = log.run_dir(first)
    assert chosen == tmp_path / "run_000-3"
    assert (first / "metrics.json").read_text() == "{}"
    from unlearn.run_dir import check_fresh_run_dir

    check_fresh_run_dir(chosen)  # the run accepts it


def test_ctrl_c_names_the_stage_and_the_checkpoint_to_resume(tmp_path, caplog):
    """Lightning reports a KeyboardInterrupt at info level, which the quiet logging drops: an interrupted run
    ended without a word (until 2026-12-06)."""
    import logging
    from types import SimpleNamespace

    from callbacks.interrupt_notice import InterruptNotice

    (tmp_path / "last.ckpt").write_bytes(b"x")
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=3, global_step=12,
                              checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)))
    with caplog.at_level(logging.WARNING):
        InterruptNotice().on_exception(trainer, object(), KeyboardInterrupt())
        InterruptNotice().on_exception(trainer, object(), ValueError("not an interrupt"))
    assert caplog.text.count("interrupted (Ctrl-C)") == 1
    assert f"resume with method.ckpt_path={tmp_path / 'last.ckpt'}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        InterruptNotice().on_exception(SimpleNamespace(**{**vars(trainer), "checkpoint_callback": None}), object(),
                                       KeyboardInterrupt())
    assert "no checkpoint of this stage was written" in caplog.text


def test_sigterm_in_a_trainer_ends_the_process_with_a_failure(tmp_path, caplog):
    """SIGTERM (`timeout`, a scheduler's time limit) reaching a Trainer: Lightning raises SIGTERMException, a
    SystemExit without a code, so until the forty-eighth session the run exited with status 0 and no word."""
    import logging
    import os
    import signal

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from callbacks.interrupt_notice import SIGTERM_STATUS, InterruptNotice

    class Terminate(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path,
                        callbacks=[Terminate(), InterruptNotice()])
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised:
        trainer.fit(BoringModel())
    assert raised.value.code == SIGTERM_STATUS == 143  # the process's exit status, where nothing catches it
    assert "interrupted (SIGTERM): BoringModel in epoch 1 of 2, step 2; no checkpoint" in caplog.text
