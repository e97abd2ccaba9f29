"""Process-wide settings for runs: fewer progress bars and warnings from libraries we drive, a faster exit, a
command's refusals as messages."""

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path


def quiet_libraries() -> None:
    import datasets

    datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    import lightning  # noqa: F401  (the package gives its logger a console handler of its own on import)

    if logging.getLogger().handlers:  # Hydra's handlers print and file Lightning's records already: its own
        package = logging.getLogger("lightning")  # console handler printed each a second time ("Seed set to 0")
        for handler in [h for h in package.handlers if type(h) is logging.StreamHandler]:
            package.removeHandler(handler)


@contextmanager
def torch_threads(n: int):
    """This process on `n` torch threads for a while, then back: on CPU the thread count moves taught weights
    (unlearn/pipeline.py `teaches_on_cpu`), so a sweep in process runs on its workers' one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


FULL_EXIT_ENV = "UNLEARN_FULL_EXIT"


def exit_without_teardown(code: int = 0) -> None:
    """End a finished run without the interpreter's teardown of its modules.

    Why: freeing the modules of torch, transformers and Lightning at exit takes 1-2 s of a cached run's
    10-15 s (`python -m bench.cached_run`), and nothing a run writes needs it: its files are written
    atomically and closed before this point. What a normal exit does that matters still happens, in
    CPython's order: threading's exit hooks run and non-daemon threads are joined, the atexit handlers run
    (W&B's run finish, logging's flush and close, multiprocessing's children), stdout and stderr are flushed.
    Set UNLEARN_FULL_EXIT=1 to keep the interpreter's own exit (for tools that inspect the process as it
    shuts down).
    """
    import atexit
    import sys
    import threading

    if os.environ.get(FULL_EXIT_ENV, "") not in ("", "0"):
        sys.exit(code)
    # CPython's exit calls threading._shutdown: the hooks of threading._register_atexit first (concurrent.futures
    # tells its idle workers to stop there; joining them without it waits forever), then every non-daemon thread
    # joined (until 2026-12-05 the join alone: a live ThreadPoolExecutor hung the exit)
    threading._shutdown()  # private, but what the interpreter itself calls at exit (present since Python 3.0)
    atexit._run_exitfuncs()  # CPython's hook that its own exit calls (private, but present since Python 2)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to deliver
            pass
    os._exit(code)


TRACEBACK_ENV = "UNLEARN_TRACEBACK"
# what the commands raise when they refuse their input, each naming what it refuses
REFUSALS = (FileNotFoundError, FileExistsError, ValueError)


SIGTERM_STATUS = 128 + 15  # 128 + SIGTERM: the status a shell reports for a process SIGTERM ended


def _interrupted_outside_a_fit(how: str) -> None:
    logging.getLogger(__name__).warning(
        "interrupted (%s) outside a training loop: what the run was writing is removed, not left half written; run it "
        "again", how)


def sigterm_as_exit(said: bool = True) -> None:
    """SIGTERM (a scheduler's time limit, `timeout`, `kill`) raises Lightning's SIGTERMException, status 143, where no
    Trainer catches it first. Why: Python's default action ends the process at once, running no `except` or
    `finally`, so until 2026-12-07 a SIGTERM while a run wrote its model, a cached vanilla model or last.ckpt left
    their scratch behind (a 7B model's 14 GB), as a `kill -9` does, and said nothing. Inside a Trainer's fit
    Lightning's handler is the process's, and calls this one after its own: there it returns, and Lightning
    raises its SIGTERMException at the next step (callbacks/interrupt_notice.py names the checkpoint). One rank of
    several ends at once, as without this handler (`several_processes`). `said`: with the line that a run in this
    process was stopped (false in a `--jobs` frontier sweep's process, whose workers run: it says what they did)."""
    import signal

    def raise_exit(signum, frame) -> None:
        if signal.getsignal(signal.SIGTERM) is not raise_exit:  # called by a Trainer's handler: Lightning's stop
            return
        if several_processes():
            # unwinding one rank while the others wait in a collective hangs them all (Lightning's own handler does,
            # broadcasting from one rank: a SIGTERM to one rank of a trainer=ddp_sim fit or evaluation, 2026-12-07):
            # the default action ends this rank at once, as before this handler, and the others stop on the broken
            # connection; a killed writer's scratch goes at the next run (unlearn/io.py, unlearn/run_dir.py)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if said:
            _interrupted_outside_a_fit("SIGTERM")
        raise _sigterm_exit()

    signal.signal(signal.SIGTERM, raise_exit)


def _sigterm_exit() -> SystemExit:
    """Lightning's SIGTERMException (a SystemExit that its Trainer, callbacks/interrupt_notice.py and a frontier sweep
    tell apart) where Lightning is loaded; before it is, no Trainer or sweep runs to tell it apart, and a SystemExit of
    the same status ends the process alike. Not imported when the handler is installed: Lightning's import is 5-6 s
    on 2 cores, which a command refusing its input before any run paid for nothing (until the fifty-fifth session
    `python -m unlearn.frontier --report-only --out <missing>` took 8 s to say so)."""
    loaded = sys.modules.get("lightning.pytorch.utilities.exceptions")
    return getattr(loaded, "SIGTERMException", SystemExit)(SIGTERM_STATUS)


def several_processes() -> bool:
    """Whether this process is one rank of several (an initialized process group of two or more)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


CTRL_C_STATUS = 128 + 2  # 128 + SIGINT, as a shell reports a process Ctrl-C ended


@contextmanager
def ctrl_c_as_exit():
    """Ctrl-C outside a Trainer's fit ends the block with a word and status 130, not a traceback of whatever library
    frame it landed in (until 2026-12-07 a Ctrl-C while a run wrote the cached vanilla model printed 25 lines of
    transformers' and accelerate's frames and nothing else). Inside a fit Lightning stops the run itself and
    callbacks/interrupt_notice.py says so; its exit, status 1, becomes 130 here too (`stopped_fit`)."""
    try:
        yield
    except KeyboardInterrupt:
        _interrupted_outside_a_fit("Ctrl-C")
        raise SystemExit(CTRL_C_STATUS) from None
    except SystemExit as e:
        if not stopped_fit(e):
            raise
        # Lightning stopped the fit gracefully (teardown, callbacks/interrupt_notice.py named the checkpoint), then
        # exited with status 1 (trainer/call.py: `sys.exit(1)` in its `except KeyboardInterrupt`): until 2026-12-07
        # a Ctrl-C inside a fit ended with 1, one outside it with 130. The same status for the same key.
        raise SystemExit(CTRL_C_STATUS) from None


def stopped_fit(e: SystemExit) -> bool:
    """Whether `e` is Lightning's exit after a Ctrl-C in a fit: status 1, raised while handling the KeyboardInterrupt
    (a SystemExit(1) of anything else, or a Lightning that re-raised the KeyboardInterrupt, is left as it is)."""
    return e.code == 1 and isinstance(e.__context__, KeyboardInterrupt)


# set where the process started with Ctrl-C ignored (a shell's background job, `nohup`): its children inherit it
CTRL_C_IGNORED = "UNLEARN_CTRL_C_IGNORED"


def ctrl_c_ignored() -> bool:
    """Whether this command was started with Ctrl-C ignored, which it then keeps ignoring, as Python does: a script's
    `python train.py &` goes on when the script's terminal sends Ctrl-C to its process group."""
    return os.environ.get(CTRL_C_IGNORED) == "1"


def ctrl_c_while_starting() -> None:
    """Until `started()`, Ctrl-C ends the process with a line and status 130, not a traceback of whichever import it
    landed in (a command's first seconds import torch, transformers and Lightning). A signal handler, not a `try`:
    the imports are module-level statements of the command's own module. Costs one `signal.signal` call. A process
    started with Ctrl-C ignored keeps it ignored (`ctrl_c_ignored`)."""
    import signal
    import sys

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        os.environ[CTRL_C_IGNORED] = "1"  # read by started() and the frontier's workers, here and in children
        return

    def stop(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while this one unwinds
        sys.stderr.write("interrupted (Ctrl-C) while starting: nothing was run\n")
        raise SystemExit(CTRL_C_STATUS)

    signal.signal(signal.SIGINT, stop)


def started() -> None:
    """Ctrl-C raises KeyboardInterrupt again (Python's own handler), for Lightning's graceful stop of a fit and
    `ctrl_c_as_exit`: the end of `ctrl_c_while_starting`. Ignored where the command started with it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN if ctrl_c_ignored() else signal.default_int_handler)


def refusals_as_messages(main) -> None:
    """Run a command's `main()`: a refusal of its input (a missing directory, a malformed file, an argument it
    cannot read) ends it with its message and status 1, as train.py's refused settings do, not a traceback
    (until 2026-12-05 `python -m unlearn.report` on a missing directory printed one). UNLEARN_TRACEBACK=1 keeps
    the traceback: a bug's ValueError reads as a refusal too."""
    try:
        main()
    except REFUSALS as e:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        raise SystemExit(f"Error: {e}\n({raised_at(e)}; {TRACEBACK_ENV}=1 prints the traceback)") from e


def raised_at(error: BaseException) -> str:
    """Where `error` was raised ("FileNotFoundError at unlearn/report.py:412"): a refusal printed without its
    traceback still says which check made it, so a bug's ValueError that reads as a refusal can be found."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(error).__name__
    path = Path(tb.tb_frame.f_code.co_filename)
    root = Path(__file__).resolve().parents[1]
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return f"{type(error).__name__} at {shown}:{tb.tb_lineno}"
