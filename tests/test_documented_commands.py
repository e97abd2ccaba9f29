"""The commands the README and docs/guide/*.md give still run as far as can be told without running them: each
`python train.py ...` (and `make run ARGS=...`) composes with Hydra and passes the checks train.py makes before any
data or model is read (unlearn.pipeline.check_settings_before_run); each `python -m unlearn.X` / `python -m bench.X`
is accepted by that module's own argument parser (the frontier's also by the checks it makes before its first run);
each `make X` is a Makefile target. Why: a renamed config key, module or flag breaks a documented command silently,
and nothing else reads these lines. The lines are read from the files, so an edited page is checked as edited."""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "guide").glob("*.md"))]

# A command starts with optional VAR=value assignments, then python (any spelling), make, torchrun or srun.
START = re.compile(r"^(?:[A-Z_]+=\S*\s+)*(?:\S*python3?\b|make\b|torchrun\b|srun\b)")

# Commands that cannot be checked here, by the page and its text as written (after joining `\` continuations), and why.
SKIP = {
    # a placeholder, not a command: M stands for any method name
    ("docs/guide/gradient_baselines.md", "python train.py method=M"),
    # placeholders for a value its parser checks: NAME a scorer's name (the choices are listed beside it), N a count
    ("README.md", "python -m unlearn.rescore RUN_DIR --scorer NAME"),
    ("docs/guide/real_models.md", "python -m unlearn.data.fixtures mllmu_bench|clear DIR [--people N]"),
    # no argument parser: its arguments are Hydra overrides it composes itself, then it reads the whole benchmark
    ("README.md", "python -m bench.answer_letters"),
    ("docs/guide/limitations.md", "python -m bench.answer_letters"),
    # -X importtime: the interpreter's own option, not a module's
    ("docs/guide/measured.md", 'python -X importtime -c "import unlearn.pipeline"'),
    ("docs/guide/measured.md", "python -X importtime"),
    # pytest's own command line (the `slow` marker it deselects is declared in pyproject.toml)
    ("README.md", '.venv/bin/python -m pytest -m "not slow"'),
    # `python -m` as words in a sentence
    ("docs/guide/configuration.md", "python -m"),
    # `srun` as a word in a sentence (its command, a few lines below, is checked)
    ("docs/guide/real_models.md", "srun"),
}

# Words the pages use for a path of the reader's own; their values only need to be strings here.
# OVERRIDE (a synopsis' --base OVERRIDE) stands for one of the reader's own: a default setting stands in for it.
PLACEHOLDERS = {"$R": "R", "$NODE_RANK": "0", "$HEAD": "localhost", "OVERRIDE": "eval.share_prompt=true"}


def page_commands(page: str) -> list[tuple[int, str]]:
    """(line, command) of every command line in `page`: fenced blocks (continuations joined) and inline code."""
    found, fenced, held = [], False, None
    for num, line in enumerate((ROOT / page).read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced, held = not fenced, None
            continue
        if fenced:
            text = line.strip()
            if held is not None:
                held = (held[0], f"{held[1]} {text}")
            elif START.match(text):
                held = (num, text)
            if held is not None and not text.endswith("\\"):
                found.append(held)
                held = None
            continue
        found += [(num, code) for code in re.findall(r"`([^`]+)`", line) if START.match(code)]
    return [(num, cmd.replace("\\ ", " ")) for num, cmd in found]


COMMANDS = [(page, num, cmd) for page in PAGES for num, cmd in page_commands(page)]


def words(cmd: str) -> list[str]:
    for name, value in PLACEHOLDERS.items():
        cmd = cmd.replace(name, value)
    cmd = re.sub(r"<[^>]*>", "X", cmd)  # `<sweep dir>`, `multirun/<date>`
    return shlex.split(cmd, comments=True)


def split_env(toks: list[str]) -> tuple[dict, list[str]]:
    env = {}
    while toks and re.fullmatch(r"[A-Z_]+=.*", toks[0]):
        key, _, value = toks.pop(0).partition("=")
        env[key] = value
    return env, toks


def kind(cmd: str) -> str:
    toks = words(cmd)
    if "train.py" in toks:
        return "train"
    _, toks = split_env(toks)
    if toks and toks[0] == "make":
        return "make"
    if len(toks) > 2 and toks[1] == "-m" and re.match(r"(unlearn|bench)\.", toks[2]):
        return "module"
    return "other"


def ids(cases):
    return [f"{page}:{num}" for page, num, _ in cases]


def cases(of_kind: str, unique: bool = False):
    """The commands of one kind, less SKIP's; `unique`: each text once, at its first place (`python train.py` is
    on many lines of measured.md)."""
    found = [c for c in COMMANDS if (c[0], c[2]) not in SKIP and kind(c[2]) == of_kind]
    if unique:
        first = {}
        for c in found:
            first.setdefault(c[2], c)
        found = list(first.values())
    return found


def test_the_pages_hold_commands_and_the_skip_list_is_current():
    """Every entry of SKIP is still on its page (a stale entry would hide nothing and mislead), and each kind is
    found (an extraction broken by a change of format would pass every check below vacuously)."""
    listed = {(page, cmd) for page, _, cmd in COMMANDS}
    assert not SKIP - listed, f"SKIP entries no longer on their pages: {sorted(SKIP - listed)}"
    assert len(cases("train", unique=True)) >= 25 and len(cases("module", unique=True)) >= 25 and cases("make")
    assert not [c for c in COMMANDS if (c[0], c[2]) not in SKIP and kind(c[2]) == "other"]


def train_overrides(cmd: str) -> tuple[dict, list[str], bool]:
    """(environment, overrides, multirun) of a `python train.py ...` or `make run ARGS="..."` line."""
    env, toks = split_env(words(cmd))
    if toks[0] == "make":
        args = next((t.split("=", 1)[1] for t in toks if t.startswith("ARGS=")), "")
        return env, shlex.split(args), False
    toks = toks[toks.index("train.py") + 1:]
    multirun = bool({"-m", "--multirun"} & set(toks))
    overrides = [t for t in toks if t not in ("-m", "--multirun", "...")]
    # seed=S in a loop over seeds; DIR, RUN_DIR and R/... stand for the reader's own directories (strings as given)
    return env, [re.sub(r"=S$", "=0", o) for o in overrides], multirun


def check_train_command(cmd: str, tmp_path, monkeypatch) -> None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import open_dict

    from unlearn.config import CONFIG_DIR
    from unlearn.pipeline import check_settings_before_run

    env, overrides, multirun = train_overrides(cmd)
    for entry in filter(None, env.get("PYTHONPATH", "").split(":")):  # a method of one's own (examples/...)
        monkeypatch.syspath_prepend(str(ROOT / entry))
    monkeypatch.chdir(ROOT)  # hydra.searchpath=[file://examples/...] is relative to where the command runs
    # The accelerator and launcher checks read this machine (a GPU, torchrun's variables): a command naming GPUs or
    # nodes is checked without them, as a `-m` sweep checks its jobs (here=False); every other check is made.
    here = not any(re.fullmatch(r"trainer=(gpu|ddp|fsdp)", o) or "num_nodes" in o for o in overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            jobs = [overrides]
            if multirun:  # each job of the sweep, as Hydra's basic sweeper splits it (unlearn.run_dir.sweep_jobs)
                loader = GlobalHydra.instance().config_loader()
                parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
                jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
            for job in jobs:
                cfg = compose("config", overrides=job, return_hydra_config=True)
                with open_dict(cfg):
                    cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
                HydraConfig.instance().set_config(cfg)  # the typed overrides, as train.py's checks read them
                with open_dict(cfg):
                    del cfg["hydra"]
                    cfg.paths.output_dir = str(tmp_path / "run")
                    cfg.paths.cache_dir = str(tmp_path / "cache")
                check_settings_before_run(cfg, here=here)
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


TRAIN = cases("train", unique=True) + [c for c in cases("make", unique=True) if "ARGS=" in c[2]]


@pytest.mark.parametrize("page,num,cmd", TRAIN, ids=ids(TRAIN))
def test_train_command_composes_and_passes_the_checks_before_any_data(page, num, cmd, tmp_path, monkeypatch):
    check_train_command(cmd, tmp_path, monkeypatch)


class Parsed(Exception):
    """Raised where the module would go on to run: its command line was accepted."""


def module_argv(cmd: str) -> tuple[dict, str, list[str]]:
    env, toks = split_env(words(cmd))
    argv = []
    for tok in toks[3:]:
        if tok == "...":  # one more of what comes before it
            tok = "X"
        if tok.startswith("["):  # [--opt X] in a synopsis: given (not a value's own brackets: hydra.searchpath=[...])
            tok = tok[1:]
        if tok.endswith("]") and "[" not in tok:
            tok = tok[:-1]
        if "|" in tok and not tok.startswith("-"):  # llava|idefics2|qwen2_vl: one of them
            tok = tok.split("|")[0]
        argv.append(tok)
    return env, toks[2], [a for a in argv if a]


def check_module_command(cmd: str, monkeypatch, capsys) -> None:
    env, module, argv = module_argv(cmd)
    for entry in filter(None, env.get("PYTHONPATH", "").split(":")):
        monkeypatch.syspath_prepend(str(ROOT / entry))
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is not installed: `python -m bench.X` runs from the root
    monkeypatch.chdir(ROOT)
    # a module mentioned alone names it (its arguments follow in the text): its --help is checked
    argv = argv or ["--help"]
    parse = argparse.ArgumentParser.parse_args
    frontier_checks = module == "unlearn.frontier"

    def parse_in_full(self, args=None, namespace=None):
        # Flags as spelt on the page, not as prefixes argparse would complete (`--words` for `--words-from`): a
        # prefix breaks once another flag shares it. Then stop where the module would go on to run.
        self.allow_abbrev = False
        parsed = parse(self, args, namespace)
        if frontier_checks:
            return parsed
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_in_full)
    if frontier_checks:  # parsed, then the frontier's own checks before its first run (its main: no logging set-up)
        import unlearn.frontier as frontier

        def sweep(out, grid, seeds, base, cache, jobs=1, methods=None, knobs=()):  # its checks, then stop
            swept = frontier.grid_with(grid, knobs)
            frontier.check_base_keys(base, swept, methods or list(swept))
            tasks = frontier.plan(Path("/nonexistent/sweep"), grid, seeds, methods, knobs)  # empty: every run
            frontier.check_knob_keys(swept, sorted({t.method for t in tasks}), base)
            raise Parsed

        def report(*args, **kwargs):
            raise Parsed

        monkeypatch.setattr(frontier, "sweep", sweep)
        monkeypatch.setattr(frontier, "report", report)
        run = lambda: frontier.main(argv)  # noqa: E731
    else:
        monkeypatch.setattr("sys.argv", [module, *argv])
        run = lambda: runpy.run_module(module, run_name="__main__", alter_sys=False)  # noqa: E731
    try:
        run()
    except Parsed:
        return
    except SystemExit as e:
        if argv == ["--help"] and e.code in (0, None):
            return
        pytest.fail(f"{module} {' '.join(argv)}: refused by its parser (exit {e.code}): "
                    f"{capsys.readouterr().err.strip()[-600:]}")
    pytest.fail(f"{module} {' '.join(argv)}: ran without parsing a command line")


# runpy's note on a module already imported (unlearn.report, by another page's command): its globals, unread here
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package")
@pytest.mark.parametrize("page,num,cmd", cases("module", unique=True), ids=ids(cases("module", unique=True)))
def test_module_command_is_accepted_by_its_parser(page, num, cmd, monkeypatch, capsys):
    check_module_command(cmd, monkeypatch, capsys)


def test_make_targets_exist():
    targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))
    for page, num, cmd in cases("make"):
        _, toks = split_env(words(cmd))
        named = [t for t in toks[1:] if "=" not in t]
        missing = sorted(set(named) - targets)
        assert named and not missing, f"{page}:{num}: `{cmd}` names {missing}, not in the Makefile"
