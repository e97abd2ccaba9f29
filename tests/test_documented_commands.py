"""The commands the pages give still run as far as can be told without running them: each `python train.py ...`
(and `make run ARGS=...`) composes with Hydra and passes the checks train.py makes before any data or model is read
(unlearn.before_run.check_settings_before_run); each `python -m unlearn.X` / `python -m bench.X` is accepted by that
module's own argument parser (the frontier's also by the checks it makes before its first run); a method a command
runs is importable with the command's PYTHONPATH; each `python -c` snippet's imports resolve; each `make X` is a
Makefile target. Why: a renamed config key, module or flag breaks a documented command silently, and nothing else
reads these lines. The lines are read from the files, so an edited page is checked as edited.

Where: README.md, every page under docs/ (the guide, the research pages, their subfolders' pages), and the module
docstrings of bench/*.py and examples/**/*.py (their usage lines: inline `code`, or indented lines).

Records. docs/reproduce/**, docs/*/reproduce/** and the generated results pages (results.md, frontier.md: the
commands that made them are printed at their top) record past runs. Their commands are checked like every other,
since they are what a reader reruns to reproduce the page: a flag or key that has changed since must still be
accepted (keep the code backward compatible), or, where the printed command was itself wrong as printed, the page
gets the corrected command and a note saying what was changed and why. Their numbers are never rewritten. A record
that ran in a set-up the page describes (an example's method config copied into configs/method/) is checked in
that set-up (COPIED_CONFIGS). Paths of machines long gone (/work/fr7/...) are strings here, as everywhere."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import runpy
import shlex
import sys
from importlib.machinery import PathFinder
from pathlib import Path

import pytest

from unlearn.config import compose_config  # the frontier's own, which its checks below are given cached

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
# modules whose docstrings give usage lines
SOURCES = sorted(str(p.relative_to(ROOT)) for p in [*(ROOT / "bench").glob("*.py"), *(ROOT / "examples").rglob("*.py")])

# A command starts with optional VAR=value assignments, then python (any spelling), make, torchrun or srun.
START = re.compile(r"^(?:[A-Z_]+=\S*\s+)*(?:\S*python3?\b|make\b|torchrun\b|srun\b)")

# Commands that cannot be checked here, by the page and its text as written (after joining `\` continuations), and why.
SKIP = {
    # placeholders, not commands: M (<yours>, <name>) stands for any method (its section), X for a bench module,
    # [method=...] [seed=...] for any of them
    ("docs/guide/gradient_baselines.md", "python train.py method=M"),
    ("docs/guide/adding_a_method.md", "python train.py method=<yours> debug=fast trainer=ddp_sim <name>.batch_size=1"),
    ("docs/organism.md", "python train.py experiment=organism [method=...] [seed=...]"),
    ("bench/child_json.py", "python -m bench.X --child ..."),
    # placeholders for a value its parser checks: NAME a scorer's name (the choices are listed beside it); the flag's
    # synopsis METHOD=KEY:V1,V2,... (its whole commands, on adding_a_method.md and docs/rmu, are checked)
    ("README.md", "python -m unlearn.rescore RUN_DIR --scorer NAME"),
    ("README.md", "python -m unlearn.frontier --knob METHOD=KEY:V1,V2,..."),
    # a grid grown one value at a time (the `...`): each invocation it took is on docs/rmu/results.md, checked there
    ("docs/guide/adding_a_method.md", "PYTHONPATH=examples/rmu python -m unlearn.frontier --out OUT --jobs 2 --methods "
                                      "rmu --knob rmu=rmu.optimizer.lr:5e-5,1e-4,2e-4,5e-4,1e-3,..."),
    # no argument parser: its arguments are Hydra overrides it composes itself, then it reads the whole benchmark
    ("README.md", "python -m bench.answer_letters"),
    ("docs/guide/limitations.md", "python -m bench.answer_letters"),
    ("bench/answer_letters.py", "python -m bench.answer_letters [hydra overrides, e.g. data.forget_split=forget_15]"),
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
# $g: docs/manu_sweep.md's `for g in main mid controls best`, one of the grids its parser accepts.
PLACEHOLDERS = {"$R": "R", "$NODE_RANK": "0", "$HEAD": "localhost", "OVERRIDE": "eval.share_prompt=true", "$g": "main"}
# N, a word of its own, stands for a count (`--threads N`, `--people N`): 1 stands in for it.
COUNT = re.compile(r"\bN\b")

# Pages whose commands ran with an example's method config copied into configs/method/, as each page says (the
# example's own page, and the guide's section that made it): its configs join Hydra's search path for them, as the
# copy would. The method's code still comes from the command's PYTHONPATH.
COPIED_CONFIGS = {
    "docs/simnpo/results.md": "examples/simnpo/configs",
    "docs/rmu/results.md": "examples/rmu/configs",
    "docs/guide/adding_a_method.md": "examples/simnpo/configs:examples/rmu/configs",
}


def block_commands(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(line, command) of the command lines among code lines, `\\` continuations joined."""
    found, held = [], None
    for num, line in lines:
        text = line.strip()
        if held is not None:
            held = (held[0], f"{held[1]} {text}")
        elif START.match(text):
            held = (num, text)
        if held is not None and not text.endswith("\\"):
            found.append(held)
            held = None
    return found


def span_commands(lines: list[tuple[int, str | None]]) -> list[tuple[int, str]]:
    """(line, command) of the inline `code` spans that are commands; a span may run on over the lines of its
    paragraph (a None line ends a paragraph, as a blank line does), its line breaks read as spaces."""
    found, para = [], []
    for num, line in [*lines, (0, None)]:
        if line is not None and line.strip():
            para.append((num, line))
            continue
        text, starts = "", []
        for n, part in para:
            starts.append((len(text), n))
            text += part + "\n"
        for m in re.finditer(r"`([^`]+)`", text):
            code = " ".join(m.group(1).split())
            if START.match(code):
                found.append((max(n for at, n in starts if at <= m.start()), code))
        para = []
    return found


def page_commands(page: str) -> list[tuple[int, str]]:
    """(line, command) of every command line in `page`: fenced blocks (continuations joined) and inline code."""
    fenced, code, prose = False, [], []
    for num, line in enumerate((ROOT / page).read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            code.append((num, ""))  # a fence ends a block's command and a paragraph
            prose.append((num, None))
        elif fenced:
            code.append((num, line))
        else:
            prose.append((num, line))
    return [(num, cmd.replace("\\ ", " ")) for num, cmd in block_commands(code) + span_commands(prose)]


def docstring_commands(source: str) -> list[tuple[int, str]]:
    """(line, command) of every command line in the module docstring of `source`: indented lines (continuations
    joined) and inline code, with the file's line numbers (its raw lines, a `\\\\` read as the `\\` it writes)."""
    text = (ROOT / source).read_text()
    tree = ast.parse(text)
    if not (tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)):
        return []
    node = tree.body[0]
    raw = "\n".join(text.splitlines()[node.lineno - 1:node.end_lineno]).split('"""', 1)[1].rsplit('"""', 1)[0]
    lines = [(num, line.replace("\\\\", "\\")) for num, line in enumerate(raw.splitlines(), node.lineno)]
    found = block_commands([(n, line if line.startswith(" ") else "") for n, line in lines]) + span_commands(lines)
    return sorted({(num, cmd.replace("\\ ", " ")) for num, cmd in found})


COMMANDS = ([(page, num, cmd) for page in PAGES for num, cmd in page_commands(page)]
            + [(source, num, cmd) for source in SOURCES for num, cmd in docstring_commands(source)])


def words(cmd: str) -> list[str]:
    for name, value in PLACEHOLDERS.items():  # as words of their own: OVERRIDE, not the OVERRIDES of a sentence
        cmd = re.sub(rf"{re.escape(name)}(?!\w)", value, cmd)
    cmd = COUNT.sub("1", re.sub(r"<[^>]*>", "X", cmd))  # `<sweep dir>`, `multirun/<date>`
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
    if len(toks) == 3 and toks[1] == "-c":
        return "code"
    return "other"


def ids(cases):
    return [f"{page}:{num}" for page, num, _ in cases]


def cases(of_kind: str, unique: bool = False):
    """The commands of one kind, less SKIP's; `unique`: each text once, at its first place (`python train.py` is
    on many lines of measured.md; a record's command on each page that prints its sweep)."""
    found = [c for c in COMMANDS if (c[0], c[2]) not in SKIP and kind(c[2]) == of_kind]
    if unique:  # once per set-up: a page of COPIED_CONFIGS checks its commands in its own
        first = {}
        for c in found:
            first.setdefault((COPIED_CONFIGS.get(c[0]), c[2]), c)
        found = list(first.values())
    return found


def test_the_pages_hold_commands_and_the_skip_list_is_current():
    """Every entry of SKIP is still on its page (a stale entry would hide nothing and mislead), every page of
    COPIED_CONFIGS still holds commands and its configs exist, and each kind is found, in the pages and in the
    docstrings (an extraction broken by a change of format would pass every check below vacuously)."""
    listed = {(page, cmd) for page, _, cmd in COMMANDS}
    assert not SKIP - listed, f"SKIP entries no longer on their pages: {sorted(SKIP - listed)}"
    for page, dirs in COPIED_CONFIGS.items():
        assert any(p == page for p, _, _ in COMMANDS), f"COPIED_CONFIGS: {page} holds no command"
        assert all((ROOT / d / "method").is_dir() for d in dirs.split(":")), f"COPIED_CONFIGS: {dirs} has no method/"
    assert len(cases("train", unique=True)) >= 40 and len(cases("module", unique=True)) >= 200 and cases("make")
    assert cases("code") and len([c for c in COMMANDS if c[0] in SOURCES]) >= 30
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


def check_method_importable(cfg, cmd: str) -> None:
    """The code of the method a run starts (`method.run._target_`) is on the command's path: sys.path with its
    PYTHONPATH (a method of one's own lives outside the package: examples/simnpo/simnpo.py is `simnpo`). Found on
    the path, not imported: an imported module would stay in sys.modules and answer for a later command without."""
    from omegaconf import OmegaConf

    target = OmegaConf.select(cfg, "method.run._target_", default=None)
    assert target, f"`{cmd}`: method={cfg.method.name}'s config names no method.run._target_"
    top = target.split(".")[0]
    assert top in sys.builtin_module_names or PathFinder.find_spec(top, sys.path), (
        f"`{cmd}`: method={cfg.method.name} runs {target}, and no {top} is on the command's path (its PYTHONPATH?)")


def check_train_command(cmd: str, tmp_path, monkeypatch) -> None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import open_dict

    from unlearn.config import CONFIG_DIR
    from unlearn.before_run import check_settings_before_run

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
                check_method_importable(cfg, cmd)
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
        if tok.startswith("["):  # [--opt X] in a synopsis: given (not a value's own brackets: hydra.searchpath=[...])
            tok = tok[1:]
        if tok.endswith("]") and "[" not in tok:
            tok = tok[:-1]
        if tok == "...":  # one more of what comes before it (`[OVERRIDE ...]`, `--runs ...`)
            tok = "X"
        if "|" in tok and not tok.startswith("-"):  # llava|idefics2|qwen2_vl: one of them
            tok = tok.split("|")[0]
        argv.append(tok)
    return env, toks[2], [a for a in argv if a]


# The configs the module checks compose, by their overrides (a search path first): a record's sweep is printed on
# several pages, and most sweeps share the empty or the organism's --base.
COMPOSED: dict[tuple, object] = {}


def composed(overrides) -> object:
    key = tuple(overrides)
    if key not in COMPOSED:
        COMPOSED[key] = compose_config(list(key), ".", ".")
    return COMPOSED[key]


def check_overrides_compose(parsed: argparse.Namespace) -> None:
    """The Hydra overrides a bench module takes (its --base, its positional overrides) compose onto config.yaml, as
    the module composes them (a misspelt key is refused there). A shell variable (`--base "$F"`, the value of the
    page's own script) and a placeholder word (no `=`) are the reader's own: not composed."""
    given = [*(getattr(parsed, "base", None) or []), *(getattr(parsed, "overrides", None) or [])]
    given = [o for o in given if isinstance(o, str) and "$" not in o and ("=" in o or o.startswith("~"))]
    if given:
        composed(given)


def check_module_command(cmd: str, monkeypatch, capsys, copied: str | None = None) -> None:
    env, module, argv = module_argv(cmd)
    for entry in filter(None, env.get("PYTHONPATH", "").split(":")):
        monkeypatch.syspath_prepend(str(ROOT / entry))
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is not installed: `python -m bench.X` runs from the root
    monkeypatch.chdir(ROOT)
    # a module mentioned alone names it (its arguments follow in the text): its --help is checked
    argv = argv or ["--help"]
    frontier_checks = module == "unlearn.frontier"

    def parse_in_full(parse):
        def parse_then_stop(self, args=None, namespace=None):
            # Flags as spelt on the page, not as prefixes argparse would complete (`--words` for `--words-from`): a
            # prefix breaks once another flag shares it. Then stop where the module would go on to run.
            self.allow_abbrev = False
            parsed = parse(self, args, namespace)
            if frontier_checks:
                return parsed
            raise Parsed(parsed)
        return parse_then_stop

    for parse in ("parse_args", "parse_intermixed_args"):  # bench/same_weights: positionals after the options
        monkeypatch.setattr(argparse.ArgumentParser, parse, parse_in_full(getattr(argparse.ArgumentParser, parse)))
    if frontier_checks:  # parsed, then the frontier's own checks before its first run (its main: no logging set-up)
        import unlearn.config
        import unlearn.frontier as frontier

        paths = [f"file://{ROOT / d}" for d in copied.split(":")] if copied else []
        searchpath = [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []
        monkeypatch.setattr(unlearn.config, "compose_config", lambda overrides, *_: composed([*searchpath, *overrides]))

        def sweep(out, grid, seeds, base, cache, jobs=1, methods=None, knobs=()):  # its checks, then stop
            swept = frontier.grid_with(grid, knobs)
            frontier.check_base_keys(base, swept, methods or list(swept))
            tasks = frontier.plan(Path("/nonexistent/sweep"), grid, seeds, methods, knobs)  # empty: every run
            runs = sorted({t.method for t in tasks})
            frontier.check_knob_keys(swept, runs, base)
            for method in runs:  # each run's worker imports its method's code
                check_method_importable(unlearn.config.compose_config([f"method={method}", *base]), cmd)
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
    except Parsed as stop:
        if stop.args:  # a module's own parser: the overrides it takes
            check_overrides_compose(stop.args[0])
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
    check_module_command(cmd, monkeypatch, capsys, COPIED_CONFIGS.get(page))


@pytest.mark.parametrize("page,num,cmd", cases("code"), ids=ids(cases("code")))
def test_code_command_imports_resolve(page, num, cmd):
    """A `python -c` snippet compiles, and each name it imports is there (a renamed function breaks it)."""
    _, toks = split_env(words(cmd))
    for node in ast.walk(ast.parse(toks[2])):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)]
            assert not missing, f"{page}:{num}: {node.module} has no {missing}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


def test_make_targets_exist():
    targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))
    for page, num, cmd in cases("make"):
        _, toks = split_env(words(cmd))
        named = [t for t in toks[1:] if "=" not in t]
        missing = sorted(set(named) - targets)
        assert named and not missing, f"{page}:{num}: `{cmd}` names {missing}, not in the Makefile"


def test_no_tracked_file_holds_a_merge_conflicts_markers():
    """A conflict resolved by hand in a `git am -3` left `<<<<<<< HEAD` ... `>>>>>>>` around two rows of the README's
    config table (fifty-first session), and every page test above passed: they read commands, not the page's text."""
    import subprocess

    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    marker = re.compile(rb"^(<{7} |={7}$|>{7} )", re.MULTILINE)
    found = []
    for name in filter(None, tracked.decode().split("\0")):
        path = ROOT / name
        if path.suffix in (".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".sh", ".json") and path.is_file():
            found += [f"{name}: {m.group().decode().strip()}" for m in marker.finditer(path.read_bytes())]
    assert not found, found
