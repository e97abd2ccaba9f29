"""A run that ends without the interpreter's teardown still does what a normal exit does for its outputs."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from pathlib import Path
    from unlearn.runtime import exit_without_teardown

    out = Path(sys.argv[1])

    class Module:  # freed only by the interpreter's teardown of this module
        def __del__(self):
            print("teardown", flush=True)

    keep = Module()
    atexit.register(lambda: (out / "atexit").write_text("ran"))

    def late_writer():
        time.sleep(0.3)
        (out / "thread").write_text("joined")

    threading.Thread(target=late_writer).start()
    sys.stdout.write("buffered, no newline")
    exit_without_teardown(int(sys.argv[2]))
""")


def run_script(tmp_path: Path, code: int, **env) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(tmp_path), str(code)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=60)


def test_fast_exit_joins_threads_runs_atexit_flushes_and_skips_teardown(tmp_path):
    proc = run_script(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread").read_text() == "joined"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert proc.stdout == "buffered, no newline"  # flushed, and no module was torn down


def test_fast_exit_keeps_the_exit_code(tmp_path):
    assert run_script(tmp_path, 3).returncode == 3


def test_full_exit_on_request_tears_down(tmp_path):
    proc = run_script(tmp_path, 0, UNLEARN_FULL_EXIT="1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert proc.stdout == "buffered, no newlineteardown\n"


def test_lightning_records_print_once_where_the_root_logger_has_handlers(capfd):
    """Lightning's package logger has a console handler of its own and propagates to the root, where Hydra's
    handlers print every record too: each Lightning message came twice ("Seed set to 0")."""
    import logging
    import sys

    import lightning as L

    from unlearn.runtime import quiet_libraries

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        quiet_libraries()
        capfd.readouterr()
        L.seed_everything(0)
        err = capfd.readouterr().err
    finally:
        root.removeHandler(handler)
    assert err.count("Seed set to 0") == 1, err


def test_fast_exit_ends_an_idle_thread_pool(tmp_path):
    """A live ThreadPoolExecutor's workers stop at threading's exit hooks, which CPython's exit runs before it joins
    threads: until 2026-12-05 the fast exit joined them without the hooks and waited forever."""
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor
        from unlearn.runtime import exit_without_teardown

        pool = ThreadPoolExecutor(2)
        pool.submit(print, "work", flush=True).result()
        exit_without_teardown(0)
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "work\n", proc.stderr


@pytest.mark.parametrize("command", [["unlearn.report", "{missing}"], ["unlearn.frontier", "--out", "{missing}",
                                                                       "--report-only"]])
def test_a_command_refusing_its_input_prints_the_message_alone(tmp_path, command):
    missing = str(tmp_path / "nowhere")
    argv = [sys.executable, "-m", *(a.format(missing=missing) for a in command)]
    env = {k: v for k, v in os.environ.items() if k != "UNLEARN_TRACEBACK"}
    refused = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: ") and missing in refused.stderr
    assert "Traceback" not in refused.stderr
    kept = subprocess.run(argv, cwd=ROOT, env={**env, "UNLEARN_TRACEBACK": "1"}, capture_output=True, text=True,
                          timeout=120)
    assert kept.returncode == 1 and "Traceback" in kept.stderr and "FileNotFoundError" in kept.stderr


def test_a_refusal_names_where_it_was_raised(monkeypatch):
    """Printed without its traceback, a refusal still names the line that raised it (a bug's ValueError reads as
    a refusal too, and its report must say where to look)."""
    from unlearn.runtime import TRACEBACK_ENV, refusals_as_messages

    monkeypatch.delenv(TRACEBACK_ENV, raising=False)

    def refuse():
        raise ValueError("--out nowhere: no such sweep")

    line = refuse.__code__.co_firstlineno + 1
    with pytest.raises(SystemExit) as exit_:
        refusals_as_messages(refuse)
    message = str(exit_.value.code)
    assert message.startswith("Error: --out nowhere: no such sweep\n")
    assert f"ValueError at tests/test_runtime.py:{line}" in message and TRACEBACK_ENV in message


def test_sigterm_while_a_directory_is_written_removes_its_scratch_and_says_so(tmp_path):
    """Python's default SIGTERM ends the process at once, running no `except`: until 2026-12-07 a scheduler's SIGTERM
    while a run wrote its model or the cached vanilla model left the scratch directory, as a `kill -9` does, and
    no word. train.py now turns it into an exit with status 143 that removes the scratch."""
    import os
    import subprocess
    import sys

    script = ("import os, signal, sys, logging\nfrom pathlib import Path\nfrom unlearn.io import atomic_dir\n"
              "from unlearn.runtime import sigterm_as_exit\nlogging.basicConfig()\nsigterm_as_exit()\n"
              "with atomic_dir(Path(sys.argv[1])) as tmp:\n    (tmp / 'weights').write_text('half')\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n    signal.pause()")
    ended = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert ended.returncode == 143, ended.stderr
    assert "interrupted (SIGTERM) outside a training loop" in ended.stderr
    assert list(tmp_path.iterdir()) == []  # neither the model nor its scratch


def test_the_sigterm_handler_loads_no_lightning_and_raises_lightnings_exit_where_it_is_loaded():
    """Installing the handler imported Lightning (5-6 s on 2 cores) until the fifty-fifth session, so a command
    refusing its input before any run (`python -m unlearn.frontier --report-only --out <missing>`) took 8 s to say
    so. Where Lightning is not loaded no Trainer or sweep runs to tell its SIGTERMException apart: a SystemExit of
    the same status; where it is, its SIGTERMException, which a Trainer, InterruptNotice and a sweep catch."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from unlearn.runtime import _sigterm_exit

    script = ("import os, signal, sys\nfrom unlearn.runtime import sigterm_as_exit\nsigterm_as_exit()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'torch')), flush=True)\n"
              "try:\n    os.kill(os.getpid(), signal.SIGTERM)\n    signal.pause()\n"
              "except SystemExit as e:\n    print(type(e).__name__, e.code, flush=True)\n    raise\n")
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert ended.returncode == 143, ended.stderr
    assert ended.stdout.splitlines() == ["[]", "SystemExit 143"]
    exit_ = _sigterm_exit()  # Lightning loaded here, as in a run
    assert type(exit_) is SIGTERMException and exit_.code == 143


def test_sigterm_in_a_trainer_is_still_lightnings_to_stop(tmp_path, caplog):
    """Inside a fit Lightning's handler calls ours after its own: ours leaves the stop to Lightning (at the next
    step, its checkpoint named by InterruptNotice), and is the process's handler again after the fit."""
    import logging
    import os
    import signal

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from callbacks.interrupt_notice import InterruptNotice
    from unlearn.runtime import sigterm_as_exit

    class Terminate(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    try:
        sigterm_as_exit()
        ours = signal.getsignal(signal.SIGTERM)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, default_root_dir=tmp_path,
                            callbacks=[Terminate(), InterruptNotice()])
        with caplog.at_level(logging.WARNING), pytest.raises(SIGTERMException) as raised:
            trainer.fit(BoringModel())
        assert raised.value.code == 143 and "interrupted (SIGTERM): BoringModel in epoch 1 of 2, step 2" in caplog.text
        assert "outside a training loop" not in caplog.text
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)


def test_ctrl_c_outside_a_trainer_says_so_and_ends_with_status_130(tmp_path, caplog):
    """Until 2026-12-07 a Ctrl-C while a run wrote the cached vanilla model printed a traceback of library frames
    and nothing else; what the block was writing is removed (unlearn/io.py), and the message says so."""
    import logging

    from unlearn.io import atomic_dir
    from unlearn.runtime import ctrl_c_as_exit

    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised, ctrl_c_as_exit():
        with atomic_dir(tmp_path / "model") as scratch:
            (scratch / "weights").write_text("half")
            raise KeyboardInterrupt
    assert raised.value.code == 130 and raised.value.__suppress_context__
    assert "interrupted (Ctrl-C) outside a training loop" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_sigterm_on_one_rank_of_several_ends_it_at_once():
    """Unwinding one rank while the others wait in a collective hangs every rank (as Lightning's own handler does
    inside a fit or an evaluation, broadcasting from the signalled rank alone: a helper's finding, 2026-12-07), so
    outside them one rank of several ends at once, as it did before this handler, and its peers stop on the broken
    connection."""
    import os
    import subprocess
    import sys

    script = ("import os, signal\nimport torch.distributed as dist\nfrom unlearn.runtime import sigterm_as_exit\n"
              "dist.is_initialized = lambda: True\ndist.get_world_size = lambda group=None: 2\nsigterm_as_exit()\n"
              "try:\n    os.kill(os.getpid(), signal.SIGTERM)\n    signal.pause()\n"
              "finally:\n    print('unwound')")
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert ended.returncode == -15, (ended.returncode, ended.stderr)
    assert "unwound" not in ended.stdout and "outside a training loop" not in ended.stderr


def test_ctrl_c_inside_a_fit_ends_with_status_130_as_outside_it(tmp_path, caplog):
    """Lightning stops a Ctrl-C'd fit gracefully and then exits with status 1 (until 2026-12-07 a GA run Ctrl-C'd
    mid-training ended with 1, one Ctrl-C'd outside the fit with 130): its stop and the checkpoint notice stay
    Lightning's and InterruptNotice's, the status is 130."""
    import logging
    import signal

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from callbacks.interrupt_notice import InterruptNotice
    from unlearn.runtime import ctrl_c_as_exit

    class CtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT)
    try:
        trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, default_root_dir=tmp_path, callbacks=[CtrlC(), InterruptNotice()])
        with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised, ctrl_c_as_exit():
            trainer.fit(BoringModel())
    finally:
        signal.signal(signal.SIGINT, before)  # Lightning ignores Ctrl-C after catching one
    assert raised.value.code == 130 and "interrupted (Ctrl-C): BoringModel in epoch 1 of 2, step 2" in caplog.text
    assert "outside a training loop" not in caplog.text
    with pytest.raises(SystemExit) as other, ctrl_c_as_exit():
        raise SystemExit(1)  # another exit with status 1 is left as it is
    assert other.value.code == 1


def test_ctrl_c_while_starting_ends_with_a_line_and_status_130():
    """A Ctrl-C in a command's first seconds (its imports) printed a traceback of whichever import it landed in."""
    script = ("import os, signal\nfrom unlearn.runtime import ctrl_c_while_starting\nctrl_c_while_starting()\n"
              "os.kill(os.getpid(), signal.SIGINT)\nimport time\ntime.sleep(30)\n")
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert ended.returncode == 130, ended.stderr
    assert ended.stderr == "interrupted (Ctrl-C) while starting: nothing was run\n"


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it():
    """A shell starts a script's background job (`python train.py &`) with Ctrl-C ignored, so that the terminal's
    Ctrl-C to the script's process group leaves it running; Python keeps that, and so do the start-up handler and
    `started()` (the first version of them made such a job interruptible)."""
    script = ("import os, signal, time\nfrom unlearn.runtime import ctrl_c_while_starting, started\n"
              "signal.signal(signal.SIGINT, signal.SIG_IGN)\nctrl_c_while_starting()\n"
              "os.kill(os.getpid(), signal.SIGINT)\nstarted()\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.2)\n"
              "print(os.environ.get('UNLEARN_CTRL_C_IGNORED'), signal.getsignal(signal.SIGINT) == signal.SIG_IGN)\n")
    env = {k: v for k, v in os.environ.items() if k != "UNLEARN_CTRL_C_IGNORED"}
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={**env, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (ended.returncode, ended.stdout) == (0, "1 True\n"), ended.stderr


def test_one_process_in_a_process_group_of_one_is_not_several(monkeypatch):
    """several_processes decides whether SIGTERM ends a rank at once, skipping every cleanup: a process group of one
    (trainer=ddp on one device) unwinds as a single process does. Mutation audit: `>= 1` for `> 1` survived."""
    import torch.distributed as dist

    from unlearn.runtime import several_processes

    assert several_processes() is False  # no process group
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    for size, several in ((1, False), (2, True)):
        monkeypatch.setattr(dist, "get_world_size", lambda group=None, size=size: size)
        assert several_processes() is several


def test_train_py_runs_under_the_sigterm_handler_and_turns_ctrl_c_into_status_130(tmp_path):
    """train.py's wiring of sigterm_as_exit and ctrl_c_as_exit, whose own tests call them directly. Mutation audit:
    removing either from train.py survived every test."""
    script = ("import runpy, signal, sys\nimport unlearn.pipeline as pipeline\n"
              "def run(cfg, **checked):\n"
              "    print('handler', getattr(signal.getsignal(signal.SIGTERM), '__qualname__', None), flush=True)\n"
              "    raise KeyboardInterrupt\n"
              "pipeline.run = run\nsys.argv = ['train.py', *sys.argv[1:]]\n"
              "runpy.run_path('train.py', run_name='__main__')")
    ended = subprocess.run([sys.executable, "-c", script, "debug=fast", "logger=none",
                            f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
                                             "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(tmp_path / "cache")})
    assert "handler sigterm_as_exit.<locals>.raise_exit" in ended.stdout, (ended.stdout, ended.stderr)
    assert ended.returncode == 130, ended.stderr
    said = ended.stdout + ended.stderr  # Hydra's logging writes to stdout
    assert "interrupted (Ctrl-C) outside a training loop" in said and "Traceback" not in said
