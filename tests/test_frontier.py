"""unlearn.frontier: the interpolation rule on hand-computed curves, the table from a fake sweep dir, and
(slow) a whole frontier at debug=fast size."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_report import parse_table
from unlearn.frontier import (GRIDS, Reading, Task, across_seeds, checks, curves, default_groups, default_strengths,
                              forget_drop_at, load_points, main, nearest_125, plan, results_markdown, strength_at)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ROOT = Path(__file__).resolve().parents[1]


def test_interpolates_on_the_crossing_segment():
    # segment (0.02, 0.1) -> (0.08, 0.4): 0.1 + 0.3 * (0.05 - 0.02) / 0.06 = 0.25
    r = forget_drop_at([(0.02, 0.1), (0.08, 0.4)], 0.05)
    assert r.reached and r.value == pytest.approx(0.25)


def test_first_point_past_the_budget_interpolates_from_the_vanilla_origin():
    assert forget_drop_at([(0.1, 0.6)], 0.05).value == pytest.approx(0.3)  # 0.6 * 0.05 / 0.1


def test_point_exactly_at_the_budget():
    assert forget_drop_at([(0.05, 0.2), (0.09, 0.7)], 0.05) == Reading(pytest.approx(0.2), True)


def test_curve_that_never_reaches_the_budget_reports_its_strongest_point():
    assert forget_drop_at([(0.01, 0.2), (0.03, 0.5)], 0.05) == Reading(0.5, False)
    # the strongest setting's, not the largest drop (a mutation reading the maximum survived until 2026-12-05)
    assert forget_drop_at([(0.01, 0.6), (0.03, 0.4)], 0.05) == Reading(0.4, False)


def test_non_monotone_curve_uses_the_first_crossing():
    # the weakest crossing is origin -> (0.06, 0.3): 0.3 * 0.05 / 0.06 = 0.25; the later dip to 0.02 is ignored
    r = forget_drop_at([(0.06, 0.3), (0.02, 0.5), (0.1, 0.9)], 0.05)
    assert r.reached and r.value == pytest.approx(0.25)


def test_retain_that_improves_first():
    # origin -> (-0.01, 0.1) does not cross; (-0.01, 0.1) -> (0.09, 0.5): 0.1 + 0.4 * 0.06 / 0.1 = 0.34
    assert forget_drop_at([(-0.01, 0.1), (0.09, 0.5)], 0.05).value == pytest.approx(0.34)


def test_bad_input():
    with pytest.raises(ValueError, match="empty curve"):
        forget_drop_at([], 0.05)
    with pytest.raises(ValueError, match="budget"):
        forget_drop_at([(0.1, 0.1)], 0.0)


def test_across_seeds_mean_std_and_misses():
    mean, std, missed = across_seeds([Reading(0.2, True), Reading(0.4, True), Reading(0.3, False)])
    assert mean == pytest.approx(0.3) and std == pytest.approx(0.1) and missed == 1


def _fake_run(root, method, knob, value, seed, retain_drop, forget_drop):
    """One metrics.json with the same drops in both modalities (vanilla 1.0 everywhere)."""
    d = root / method / f"{knob}={value}" / f"seed{seed}"
    d.mkdir(parents=True)
    m = {}
    for mod in ("multimodal", "text"):
        m |= {f"before/forget/{mod}/mc_acc": 1.0, f"before/retain/{mod}/mc_acc": 1.0,
              f"after/forget/{mod}/mc_acc": 1.0 - forget_drop, f"after/retain/{mod}/mc_acc": 1.0 - retain_drop}
    (d / "metrics.json").write_text(json.dumps({"method": method, "metrics": m}))


def test_report_only_table_and_plots(tmp_path):
    root = tmp_path / "sweep"
    # ga: seeds 0 and 1 read 0.25 and 0.35 at 0.05 -> 0.300 ± 0.071; manu never reaches the budget in seed 1
    _fake_run(root, "ga", "lr", 1e-4, 0, 0.02, 0.1)
    _fake_run(root, "ga", "lr", 1e-3, 0, 0.08, 0.4)   # seed 0: 0.25
    _fake_run(root, "ga", "lr", 1e-4, 1, 0.10, 0.7)   # seed 1: 0.35 (origin segment)
    _fake_run(root, "ga", "lr", 1e-3, 1, 0.20, 0.9)
    _fake_run(root, "manu", "alpha", 5, 0, 0.10, 0.4)  # seed 0: 0.2
    _fake_run(root, "manu", "alpha", 5, 1, 0.01, 0.6)  # seed 1: not reached, 0.6
    assert len(load_points(root)) == 6
    md = main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")])
    table = parse_table(md.read_text())
    col = "MM forget drop @ retain drop 0.05"
    assert table["ga"][col] == "0.300 ± 0.071" and table["ga"]["seeds"] == "2"
    assert table["manu"][col] == "0.400 ± 0.283 † (1/2)"
    for mod in ("multimodal", "text"):
        assert (tmp_path / "docs" / f"frontier_{mod}.png").read_bytes().startswith(PNG_MAGIC)


def test_a_curve_runs_in_strength_order_not_the_directories_order(tmp_path):
    """alpha=30 lists before alpha=5 (and lr=2e-05 after lr=0.0001): the curve is read by strength. Here the
    origin, (0.02, 0.3), (0.10, 0.5) cross 0.05 at 0.3 + 0.2 * 0.03 / 0.08 = 0.375; in listing order the
    segment from the origin to (0.10, 0.5) would read 0.25."""
    root = tmp_path / "sweep"
    _fake_run(root, "manu", "alpha", 5, 0, 0.02, 0.3)
    _fake_run(root, "manu", "alpha", 30, 0, 0.10, 0.5)
    assert sorted(p.name for p in (root / "manu").iterdir()) == ["alpha=30", "alpha=5"]
    md = main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")])
    assert parse_table(md.read_text())["manu"]["MM forget drop @ retain drop 0.05"].startswith("0.375")
    assert [s for s, *_ in curves(load_points(root), "multimodal")["manu"][0]] == [5, 30]


def test_report_without_runs_names_the_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs under"):
        main(["--out", str(tmp_path), "--report-only"])


def _run_with(root, method, knob, value, seed, before, after, extra=None):
    """metrics.json with explicit before/after MC per (split, modality); `before` None: no before/* (borrowed)."""
    d = root / method / f"{knob}={value}" / f"seed{seed}"
    d.mkdir(parents=True)
    m = dict(extra or {})
    for (split, mod), v in after.items():
        m[f"after/{split}/{mod}/mc_acc"] = v
    for (split, mod), v in (before or {}).items():
        m[f"before/{split}/{mod}/mc_acc"] = v
    (d / "metrics.json").write_text(json.dumps({"method": method, "seed": seed, "metrics": m}))


CELLS = [(s, m) for s in ("forget", "retain") for m in ("multimodal", "text")]


def _tables(md: str, title: str) -> list[dict[str, dict[str, str]]]:
    """The markdown tables of section `## title`, each parsed as {row: {column: cell}}."""
    section = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks, cur = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(parse_table("\n".join(cur)))
            cur = []
    return blocks


def test_results_md_gives_each_default_over_seeds_and_the_checks(tmp_path):
    root = tmp_path / "sweep"
    lr = default_strengths()["ga"]  # what `python train.py method=ga` runs (model.unlearn_lr.ga)
    # vanilla: seed 0 knows everything, seed 1 is at 0.94 on retain text -> the 0.95 floor is not met
    van = {0: dict.fromkeys(CELLS, 1.0), 1: {**dict.fromkeys(CELLS, 1.0), ("retain", "text"): 0.94}}
    # ga at its default lr: forget MM after 0.1 and 0.3 -> 0.200 ± 0.141 (std > 0.05: flagged)
    for seed, f in ((0, 0.1), (1, 0.3)):
        _run_with(root, "ga", "lr", lr, seed, van[seed], {**dict.fromkeys(CELLS, 0.9), ("forget", "multimodal"): f})
        # a weaker ga strength is on the frontier but not in the defaults table
        _run_with(root, "ga", "lr", lr / 2, seed, None, dict.fromkeys(CELLS, 0.99))
    # manu at alpha 20 (the default): identical seeds, std 0
    for seed in (0, 1):
        _run_with(root, "manu", "alpha", 20, seed, None, dict.fromkeys(CELLS, 0.8))
    md = (main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")]).parent / "results.md").read_text()
    headline = _tables(md, "Each method at its default strength")[0]
    ga = f"ga (lr {lr:g})"
    assert set(headline) == {"vanilla", ga, "manu (alpha 20)"}
    assert headline[ga]["MM forget MC ↓"] == "0.200 ± 0.141"
    assert headline[ga]["text forget MC ↓"] == "0.900 ± 0.000"
    assert headline["manu (alpha 20)"]["seeds"] == "2" and headline["manu (alpha 20)"]["MM retain MC ↑"] == "0.800 ± 0.000"
    assert headline["vanilla"]["text retain MC ↑"] == "0.970 ± 0.042"  # (1.0, 0.94): mean 0.97, std 0.0424
    assert "**not met** (text retain 0.940)" in md  # the vanilla floor, naming the cell
    assert "**not met** (ga MM forget ± 0.141)" in md
    assert "## At equal cost: the frontier" in md and "frontier_multimodal.png" in md
    assert "## At equal untouched cost" not in md  # these runs have no untouched metrics
    every = _tables(md, "Every swept setting")[0]
    # rows keyed by method; the last ga row (the default lr): MM forget drop 1 - (0.1, 0.3) = 0.800 ± 0.141
    assert every["ga"]["strength"] == f"lr {lr:g}" and every["ga"]["MM forget drop"] == "+0.800 ± 0.141"
    assert every["manu"]["MM retain drop"] == "+0.200 ± 0.000"
    # mean retain drop, the larger modality: lr/2 -> max(0.01, (0.01 - 0.05) / 2) = 0.01; lr -> max(0.1, 0.07) = 0.1;
    # 0.05 is reached 0.04 / 0.09 of the way in log lr: lr * 2 ** (4/9 - 1)
    cost = _tables(md, "Where each method costs 0.05 of retain")[0]
    assert cost["ga"]["mean retain drop reaches 0.05 at"] == f"{lr * 2 ** (4 / 9 - 1):.2g}"
    assert cost["ga"]["nearest 1-2-5"] == f"{nearest_125(lr * 2 ** (4 / 9 - 1)):g}"
    assert cost["ga"]["default"] == f"{lr:g}"
    assert cost["manu"]["mean retain drop reaches 0.05 at"] == "<= 20"  # its only alpha already costs 0.2
    assert cost["manu"]["nearest 1-2-5"] == "n/a"


def test_strength_at_interpolates_in_log_strength():
    # cost 0.01 at 1e-4, 0.09 at 4e-4: 0.05 is halfway, in log lr: 2e-4
    assert strength_at([(1e-4, 0.01), (4e-4, 0.09)]) == (pytest.approx(2e-4), "inside")
    # the first crossing counts: a later dip under the budget is ignored
    assert strength_at([(1.0, 0.0), (10.0, 0.05), (100.0, 0.01), (1000.0, 0.2)]) == (pytest.approx(10.0), "inside")
    assert strength_at([(5.0, 0.06), (10.0, 0.2)]) == (5.0, "below")
    assert strength_at([(5.0, 0.0), (10.0, 0.049)]) == (10.0, "above")
    assert strength_at([(2.0, 0.0), (8.0, 0.2)], budget=0.1) == (pytest.approx(4.0), "inside")
    with pytest.raises(ValueError, match="empty curve"):
        strength_at([])
    with pytest.raises(ValueError, match="positive"):
        strength_at([(0.0, 0.0), (1.0, 0.1)])


def test_nearest_125():
    assert nearest_125(9.2e-5) == 1e-4
    assert nearest_125(1.5e-4) == 2e-4  # log(2/1.5) = 0.29 < log(1.5/1) = 0.41
    assert nearest_125(1.4e-4) == 1e-4  # log(1.4) = 0.34 < log(2/1.4) = 0.36
    assert nearest_125(3.3e-4) == 5e-4 and nearest_125(3.1e-4) == 2e-4  # the boundary sqrt(10) * 1e-4 = 3.16e-4
    assert nearest_125(7.5e-4) == 1e-3 and nearest_125(30) == 20 and nearest_125(1.0) == 1.0
    with pytest.raises(ValueError, match="positive"):
        nearest_125(0.0)


def test_results_md_sums_resumed_sweeps(tmp_path):
    root = tmp_path / "sweep"
    _run_with(root, "manu", "alpha", 20, 0, dict.fromkeys(CELLS, 1.0), dict.fromkeys(CELLS, 0.9))
    # an older single-record file, then a resumed invocation appended as a list
    (root / "sweep_time.json").write_text(json.dumps([
        {"wall_s": 100.0, "jobs": 2, "runs": 84, "seeds": [0], "command": "python -m unlearn.frontier --out A"},
        {"wall_s": 20.4, "jobs": 2, "runs": 12, "seeds": [0], "command": "python -m unlearn.frontier --out A --grid wide"}]))
    md = (main(["--out", str(root), "--report-only"]).parent / "results.md").read_text()
    assert "96 runs in 120 s of wall time over 2 invocations" in md
    assert "--out A --grid wide  # 12 runs, 2 worker(s), 20 s" in md
    (root / "sweep_time.json").write_text(json.dumps({"wall_s": 5.0, "jobs": 1, "runs": 3, "seeds": [0],
                                                       "command": "python -m unlearn.frontier --out B"}))
    md = (main(["--out", str(root), "--report-only"]).parent / "results.md").read_text()
    assert "3 runs in 5 s of wall time:" in md


def test_checks_met():
    from unlearn.frontier import Point

    pts = [Point("manu", 20.0, s, {**{f"before/{a}/{b}/mc_acc": 0.96 for a, b in CELLS},
                                   **{f"after/{a}/{b}/mc_acc": 0.5 + 0.01 * s for a, b in CELLS}}) for s in (0, 1, 2)]
    groups = default_groups(pts, {"manu": 20.0})
    assert [len(g.runs) for g in groups] == [3]
    assert [c.endswith("**met**") for c in checks(groups)] == [True, True]
    assert default_groups(pts, {"manu": 5.0}) == []  # no run at the default strength: no row


def test_plan_orders_first_runs_and_skips_finished(tmp_path):
    out = tmp_path / "sweep"
    tasks = plan(out, "fast", [0, 1])
    assert len(tasks) == 8 and [t for t in tasks if t.before] == [
        Task("ga", "method.optimizer.lr", 1e-4, 0, True), Task("ga", "method.optimizer.lr", 1e-4, 1, True)]
    # seed 0's first run finished with its before/*: seed 0 no longer evaluates the vanilla model
    _run_with(out, "ga", "lr", 1e-4, 0, dict.fromkeys(CELLS, 1.0), dict.fromkeys(CELLS, 1.0))
    tasks = plan(out, "fast", [0, 1])
    assert len(tasks) == 7 and Task("ga", "method.optimizer.lr", 1e-4, 0, True) not in tasks
    assert [t.seed for t in tasks if t.before] == [1]
    assert GRIDS["fast"]["ga"][0] == "method.optimizer.lr"
    # one method extended in an existing sweep: only its runs; the seed's vanilla is evaluated by its first run
    manu_only = plan(out, "fast", [0, 1], methods=["manu"])
    assert [(t.method, t.value, t.seed, t.before) for t in manu_only] == [
        ("manu", 5, 0, False), ("manu", 30, 0, False), ("manu", 5, 1, True), ("manu", 30, 1, False)]
    with pytest.raises(ValueError, match="--methods npo: not in grid 'fast'"):
        plan(out, "fast", [0], methods=["npo"])


def test_a_resumed_sweep_refuses_runs_of_another_base(tmp_path, monkeypatch):
    """New runs take their seed's before-evaluation from any finished run and the report reads every run in --out:
    a sweep with another --base (another vanilla model) into the same --out is refused, naming both."""
    from unlearn import frontier

    out = tmp_path / "sweep"
    made = []
    import unlearn.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run", lambda cfg: made.append(cfg))
    task = Task("ga", "method.optimizer.lr", 1e-4, 0, True)
    frontier.run_task(task, out, ["experiment=organism"], tmp_path / "cache")
    assert made and json.loads((frontier.run_dir(out, "ga", "method.optimizer.lr", 1e-4, 0) /
                                "overrides.json").read_text())[-1] == "experiment=organism"
    frontier.check_same_base(out, ["experiment=organism"])
    for other in ([], ["experiment=organism", "finetune.lora.enabled=true"]):
        with pytest.raises(ValueError, match=r"made with --base \['experiment=organism'\], and this sweep's --base"):
            frontier.check_same_base(out, other)
    with pytest.raises(ValueError, match="sweep into another --out"):
        frontier.sweep(out, "fast", [0], [], tmp_path / "cache", jobs=1)


def test_a_sweep_in_process_runs_on_one_thread_as_the_workers_do(tmp_path, monkeypatch):
    """--jobs 1 and --jobs 2 make the same runs: a vanilla model taught on two threads differs from one taught
    on one (unlearn/pipeline.py teaches_on_cpu)."""
    import torch

    from unlearn import frontier

    from unlearn.runtime import torch_threads

    seen = []
    monkeypatch.setattr(frontier, "run_task", lambda task, *a: seen.append(torch.get_num_threads()))
    with torch_threads(2):
        assert frontier.sweep(tmp_path / "sweep", "fast", [0], [], tmp_path / "cache", jobs=1) == 4
        assert seen == [1, 1, 1, 1] and torch.get_num_threads() == 2  # restored after the sweep


def test_an_interrupted_sweep_says_to_run_it_again_not_to_resume_the_run(tmp_path, monkeypatch, caplog):
    """The run's own notice says `resume with method.ckpt_path=...`, which the sweep's rerun does not do (it
    removes that checkpoint and runs the point again): until 2026-12-07 that was the last word of a Ctrl-C'd sweep."""
    import logging

    from unlearn import frontier

    def interrupted(task, *a):
        raise SystemExit(1)  # Lightning's exit after a Ctrl-C in a fit

    monkeypatch.setattr(frontier, "run_task", interrupted)
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit):
        frontier.sweep(tmp_path / "sweep", "fast", [0], [], tmp_path / "cache", jobs=1)
    assert "frontier sweep interrupted at " in caplog.text and "run the same command again" in caplog.text


def test_an_interrupted_jobs_sweep_says_which_runs_finished_and_exits_as_one_in_process(tmp_path, monkeypatch, caplog):
    """Until 2026-12-07 a Ctrl-C of a `--jobs 2` sweep printed a KeyboardInterrupt traceback of the pool's wait, and
    its SIGTERM the in-process run's "what the run was writing is removed": each now names what its runs did and
    exits 130 or 143, as the sweep in process does. The pool is a thread pool here: the interrupt is the parent's."""
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from unlearn import frontier

    def one_run(task, out, base, cache):
        d = frontier.run_dir(out, task.method, task.knob, task.value, task.seed)
        d.mkdir(parents=True)
        if task.seed == 0:
            (d / "metrics.json").write_text("{}")
        return 1.0

    for stop, status in ((KeyboardInterrupt, 130), (SIGTERMException, 143)):
        out = tmp_path / str(status)

        signalled = []

        def wait(pending, return_when=None):  # the signal arrives while the sweep waits on its workers
            for fut in pending:
                fut.result()
            if not signalled:
                signalled.append(stop)
                raise stop()
            return set(pending), set()
        monkeypatch.setattr(frontier, "worker_pool", lambda jobs, *a: ThreadPoolExecutor(jobs))
        monkeypatch.setattr(frontier, "_run_in_worker", one_run)
        monkeypatch.setattr("concurrent.futures.wait", wait)
        caplog.clear()
        with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as raised:
            frontier.sweep(out, "fast", [0, 1], [], tmp_path / "cache", jobs=2)
        assert raised.value.code == status and raised.value.__suppress_context__
        how = "Ctrl-C" if status == 130 else "SIGTERM"
        assert (f"frontier sweep interrupted ({how}): 6 of its 8 runs not started; finished and kept: {out}/ga/"
                f"lr=0.0001/seed0; stopped, to run again from the start") in caplog.text
        assert "run the same command again" in caplog.text.lower() and "outside a training loop" not in caplog.text


@pytest.mark.slow
def test_frontier_end_to_end_at_fast_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "sweep"
    argv = ["--out", str(out), "--grid", "fast", "--seeds", "0", "1", "--base", "debug=fast",
            "--cache", str(tmp_path / "cache")]
    md = main([*argv, "--jobs", "2"])  # two single-thread workers, one seed each
    points = load_points(out)
    assert sorted({(p.method, p.seed) for p in points}) == [("ga", 0), ("ga", 1), ("manu", 0), ("manu", 1)]
    assert len(points) == 8
    for seed in (0, 1):  # one vanilla model per seed, evaluated once; every point gets its before/*
        summaries = [json.loads(f.read_text()) for f in out.glob(f"*/*=*/seed{seed}/metrics.json")]
        assert len({s["source_model"] for s in summaries}) == 1
        # every run, and the teaching of its vanilla model, on one torch thread (teaching.json)
        assert {s["environment"]["torch_threads"] for s in summaries} == {1}
        assert {s["source_teaching"]["environment"]["torch_threads"] for s in summaries} == {1}
        assert sum(any(k.startswith("before/") for k in s["metrics"]) for s in summaries) == 1
        assert all("before/forget/text/mc_acc" in p.metrics for p in points if p.seed == seed)
    for seed in (0, 1):  # the strength knob reaches the method: more neurons pruned at alpha 30 than at 5
        pruned = {a: json.loads((out / "manu" / f"alpha={a}" / f"seed{seed}" / "metrics.json").read_text())
                  ["artifacts"]["manu"]["pruned"]["total"]["pruned"] for a in (5, 30)}
        assert pruned[30] > pruned[5] > 0
    table = parse_table(md.read_text())
    assert set(table) >= {"ga", "manu"} and table["ga"]["seeds"] == "2"
    timing = json.loads((out / "sweep_time.json").read_text())
    assert [(t["runs"], t["jobs"], t["threads"]) for t in timing] == [(8, 2, 1)]
    # a user's `python train.py` of one swept setting, on one thread as the workers ran, is that frontier run: it
    # reads the same cached vanilla model and ends at the same after/* values, so the page's rows are what
    # train.py gives (a GA gap between the two, suspected on 2026-12-04, was another machine's page)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARN_CACHE": str(tmp_path / "cache")}
    cli = subprocess.run([sys.executable, "train.py", "debug=fast", "method=ga", "method.optimizer.lr=0.0001", "seed=1",
                          "logger=none", "save_model=false", f"hydra.run.dir={tmp_path / 'cli'}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    swept = json.loads((out / "ga" / "lr=0.0001" / "seed1" / "metrics.json").read_text())
    by_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert by_cli["source_model"] == swept["source_model"]
    after = {k: v for k, v in swept["metrics"].items() if k.startswith("after/")}
    assert len(after) > 20 and after == {k: v for k, v in by_cli["metrics"].items() if k.startswith("after/")}
    mtime = os.path.getmtime(out / "ga" / "lr=0.0001" / "seed0" / "metrics.json")
    main(argv)  # resumable: finished runs are not run again (in process this time)
    assert os.path.getmtime(out / "ga" / "lr=0.0001" / "seed0" / "metrics.json") == mtime
    assert len(json.loads((out / "sweep_time.json").read_text())) == 1  # a sweep that ran nothing is not logged


def test_checks_hold_five_seeds_of_a_large_split():
    from unlearn.frontier import Point

    pts = [Point("ga", 1e-4, s, {**{f"before/{a}/{b}/mc_acc": 1.0 for a, b in CELLS},
                                 **{f"after/{a}/{b}/mc_acc": 0.5 + 0.04 * s for a, b in CELLS},
                                 **{f"after/{a}/{b}/n_mc_acc": 450 for a, b in CELLS}}) for s in range(5)]
    lines = checks(default_groups(pts, {"ga": 1e-4}))
    assert "of the 4 method cells would be expected wider than 0.05" in lines[3]
    assert "4 or more wider with probability" in lines[3]


def test_checks_name_what_independent_questions_would_spread():
    from unlearn.frontier import Point

    # forget MM after 0.4 and 0.6 over 50 questions: std 0.141 > 0.05; independent answers at p 0.5: 0.0707
    pts = [Point("ga", 1e-4, s, {**{f"before/{a}/{b}/mc_acc": 1.0 for a, b in CELLS},
                                 **{f"after/{a}/{b}/mc_acc": 0.9 for a, b in CELLS},
                                 "after/forget/multimodal/mc_acc": f, "after/forget/multimodal/n_mc_acc": 50})
           for s, f in ((0, 0.4), (1, 0.6))]
    lines = checks(default_groups(pts, {"ga": 1e-4}))
    # two seeds spread by more than 0.05 when their counts of right answers differ by 4 or more (|d| / 50 /
    # sqrt(2) > 0.05): P(|X1 - X2| >= 4), X1, X2 ~ Binomial(50, 0.5), summed here by hand
    pmf = [math.comb(50, k) / 2 ** 50 for k in range(51)]
    chance = sum(pmf[i] * pmf[j] for i in range(51) for j in range(51) if abs(i - j) >= 4)
    assert f"**not met** (ga MM forget ± 0.141 (independent questions: ± 0.071, wider than 0.05 with probability " \
           f"{chance:.2f}))" in lines[1]
    assert lines[2].startswith("independent questions: sqrt(p (1 - p) / n)")
    # the one cell that records its question count: 0.6 cells expected wide, all within with 1 - that
    assert f"{chance:.1f} of the 1 method cells would be expected wider than 0.05" in lines[3]
    assert f"with probability {1 - chance:.2g}, and 1 or more wider with probability {chance:.2g}" in lines[3]


def test_at_least_by_hand():
    from unlearn.report import at_least

    assert at_least([0.5, 0.5], 1) == pytest.approx(0.75)
    assert at_least([0.5, 0.5], 2) == pytest.approx(0.25)
    assert at_least([0.2, 0.5, 0.9], 2) == pytest.approx(0.2 * 0.5 + 0.2 * 0.9 + 0.5 * 0.9 - 2 * 0.2 * 0.5 * 0.9)
    assert at_least([0.3, 0.4], 0) == pytest.approx(1.0) and at_least([0.3], 2) == 0.0 and at_least([], 0) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        at_least([1.5], 1)


def test_chance_std_above_by_hand():
    from unlearn.report import chance_std_above

    assert chance_std_above(0.5, 1, 2, 0.5) == pytest.approx(0.5)  # (0, 1) spreads by 0.707; equal pairs by 0
    assert chance_std_above(0.5, 2, 2, 0.3) == pytest.approx(0.625)  # pairs differing by 0.5 or 1 (0.354, 0.707)
    assert chance_std_above(0.5, 1, 3, 0.5) == pytest.approx(0.75)  # any 2-1 split spreads by 0.577
    assert chance_std_above(0.3, 4, 3, 0.0) == pytest.approx(
        1 - sum((math.comb(4, k) * 0.3 ** k * 0.7 ** (4 - k)) ** 3 for k in range(5)))  # all three equal: 0
    assert chance_std_above(1.0, 50, 3, 0.05) == 0.0 and chance_std_above(0.0, 50, 3, 0.05) == 0.0
    # against a simulation: 3 seeds of 50 questions at p 0.65 exceed 0.05 about 61 % of the time
    rng = np.random.default_rng(0)
    draws = rng.binomial(50, 0.65, size=(200_000, 3)) / 50
    assert chance_std_above(0.65, 50, 3, 0.05) == pytest.approx((draws.std(axis=1, ddof=1) > 0.05).mean(), abs=0.005)
    with pytest.raises(ValueError, match="seeds >= 2"):
        chance_std_above(0.5, 50, 1, 0.05)
    # many seeds of a large split: past the grid limit a seeded simulation, close to the enumeration
    assert chance_std_above(0.7, 100, 4, 0.05, max_grid=1000) == pytest.approx(chance_std_above(0.7, 100, 4, 0.05),
                                                                              abs=0.003)
    assert 0.0 <= chance_std_above(0.5, 450, 5, 0.05) <= 1.0  # 451^4 outcomes: no error, the simulation
    # ten seeds: 165^9 outcomes overflow int64 (until 2026-12-05 the size test wrapped negative and the grid
    # was built); the simulation: a std of 0.05 is over twice the 0.024 that 450 questions give, so never
    assert chance_std_above(0.5, 450, 10, 0.05) == pytest.approx(0.0, abs=1e-4)


def test_default_strengths_of_a_one_method_sweep_with_that_methods_override():
    # a control sweep of MANU alone (--methods manu --base manu.score=random): other methods' configs lack
    # manu.*, so the report reads only the sweep's own methods
    assert default_strengths(["manu.score=random"], ["manu"]) == {"manu": 20.0}
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        default_strengths(["manu.score=random"])


def test_frontier_at_equal_untouched_cost_by_hand():
    from unlearn.frontier import Point, frontier_table

    def point(strength, seed, forget, retain, untouched):
        m = {}
        for split, after in (("forget", forget), ("retain", retain), ("untouched", untouched)):
            for mod in ("multimodal", "text"):
                m[f"before/{split}/{mod}/mc_acc"], m[f"after/{split}/{mod}/mc_acc"] = 1.0, 1.0 - after
        return Point("mmunlearner", strength, seed, m)

    # retain never moves (a method that trains on retain); untouched drops 0.02 then 0.10
    pts = [point(s, seed, f, 0.0, u) for seed in (0, 1) for s, f, u in ((1, 0.2, 0.02), (2, 0.6, 0.10))]
    # on the untouched axis the first crossing of 0.05 lies between (0.02, 0.2) and (0.10, 0.6): 0.2 + 0.4 * 3/8
    table = frontier_table(pts, 0.05, cost="untouched")
    assert "| mmunlearner | 2 | 0.350 ± 0.000 | 0.350 ± 0.000 |" in table
    assert "forget drop @ untouched drop 0.05" in table
    # on the retain axis it never crosses: the strongest setting's forget drop, flagged
    assert "| mmunlearner | 2 | 0.600 ± 0.000 † (2/2) |" in frontier_table(pts, 0.05)
    with pytest.raises(ValueError, match="--cost 'test'"):
        frontier_table(pts, 0.05, cost="test")
    # results.md carries the untouched-cost table beside the retain one when the runs have untouched metrics
    from unlearn.frontier import results_markdown

    md = results_markdown(pts, frontier_table(pts), "", "cmd", {}, [])
    untouched = md.split("## At equal untouched cost")[1].split("\n## ")[0]
    assert "| mmunlearner | 2 | 0.350 ± 0.000 | 0.350 ± 0.000 |" in untouched


def test_worker_pool_composes_with_the_swept_method_so_its_keys_can_be_overridden(tmp_path):
    # `--methods mmunlearner --base mmunlearner.mask_fraction=0.2 --jobs 2` failed before any run: the data was
    # prepared with the default method (manu), whose config has no mmunlearner.*
    from unlearn.frontier import worker_pool

    with worker_pool(1, tmp_path, ["debug=fast", "mmunlearner.mask_fraction=0.2"], tmp_path / "cache",
                     "mmunlearner"):
        pass
    assert any((tmp_path / "cache" / "data").iterdir())


def _mc_and_rouge_point(method, strength, seed, forget_mc, retain_mc, retain_rouge):
    """A Point with the given drops (vanilla 1.0) in both modalities: forget and retain MC, retain ROUGE-L."""
    from unlearn.frontier import Point

    m = {}
    for mod in ("multimodal", "text"):
        for key, drop in ((f"forget/{mod}/mc_acc", forget_mc), (f"retain/{mod}/mc_acc", retain_mc),
                          (f"retain/{mod}/rougeL", retain_rouge)):
            m[f"before/{key}"], m[f"after/{key}"] = 1.0, 1.0 - drop
    return Point(method, strength, seed, m)


def test_frontier_at_equal_generation_cost_by_hand(tmp_path):
    from unlearn.frontier import equal_cost_table, frontier_table, results_markdown

    # MC barely moves (0.01, 0.03) while the answers fall apart (ROUGE-L 0.02, then 0.50): a pruning cliff
    pts = [_mc_and_rouge_point("manu", a, seed, f, r, g) for seed in (0, 1)
           for a, f, r, g in ((10, 0.04, 0.01, 0.02), (40, 0.10, 0.03, 0.50))]
    # ROUGE-L axis: 0.05 is 0.03/0.48 of the way from (0.02, 0.04) to (0.50, 0.10): 0.04 + 0.06 * 0.0625
    table = frontier_table(pts, 0.05, "retain", "rougeL")
    assert "| manu | 2 | 0.044 ± 0.000 | 0.044 ± 0.000 |" in table
    assert "forget drop @ retain ROUGE-L drop 0.05" in table and "interpolated at retain ROUGE-L drop" in table
    # MC axis: never reached, the strongest setting's 0.10, flagged
    assert "| manu | 2 | 0.100 ± 0.000 † (2/2) | 0.100 ± 0.000 † (2/2) |" in frontier_table(pts, 0.05)
    with pytest.raises(ValueError, match="--cost-metric 'bleu'"):
        frontier_table(pts, 0.05, "retain", "bleu")
    # where the ROUGE-L drop reaches 0.05 in log alpha: 10 * 4 ** (0.03 / 0.48) = 10.905...; MC never does
    rows = parse_table(equal_cost_table(pts, {"manu": 20.0}))
    assert rows["manu"]["mean retain drop reaches 0.05 at"] == "> 40 (never)"
    assert rows["manu"]["mean retain ROUGE-L drop reaches 0.05 at"] == f"{10 * 4 ** (0.03 / 0.48):.2g}" == "11"
    # the default rule reads the earlier of the two: ROUGE-L's 10.9, nearest 1-2-5 value 10
    assert rows["manu"]["nearest 1-2-5"] == "10" and rows["manu"]["default"] == "20"
    md = results_markdown(pts, frontier_table(pts), "", "cmd", {}, [])
    assert "| manu | 2 | 0.044 ± 0.000 | 0.044 ± 0.000 |" in md.split("## At equal generation cost")[1]


def test_equal_cost_table_shows_cloze_but_the_rule_reads_mc_and_rouge():
    from unlearn.frontier import Point, equal_cost_table

    def point(alpha, mc, rouge, cloze):
        m = {}
        for mod in ("multimodal", "text"):
            for name, drop in (("mc_acc", mc), ("rougeL", rouge), ("cloze_acc", cloze)):
                m[f"before/retain/{mod}/{name}"], m[f"after/retain/{mod}/{name}"] = 1.0, 1.0 - drop
        return Point("manu", alpha, 0, m)

    # cloze reaches 0.05 at alpha 2 (halfway in log alpha from 1 to 4), ROUGE-L at 4, MC never
    rows = parse_table(equal_cost_table([point(1, 0.0, 0.0, 0.0), point(4, 0.01, 0.05, 0.1)], {"manu": 5.0}))
    assert rows["manu"]["mean retain cloze drop reaches 0.05 at"] == "2"
    assert rows["manu"]["mean retain ROUGE-L drop reaches 0.05 at"] == "4"
    assert rows["manu"]["mean retain drop reaches 0.05 at"] == "> 4 (never)"
    assert rows["manu"]["nearest 1-2-5"] == "5"  # the ROUGE-L crossing's, not cloze's (2)


def test_equal_cost_table_without_rouge_keeps_its_columns():
    from unlearn.frontier import Point, equal_cost_table

    m = {f"{s}/{split}/{mod}/mc_acc": v for mod in ("multimodal", "text")
         for split in ("forget", "retain") for s, v in (("before", 1.0), ("after", 0.9))}
    text = equal_cost_table([Point("ga", 1e-4, 0, m)], {"ga": 1e-4})
    assert "ROUGE-L" not in text and parse_table(text)["ga"]["mean retain drop reaches 0.05 at"] == "<= 0.0001"


def test_first_crossing_takes_the_cost_that_reaches_the_budget_first():
    from unlearn.frontier import first_crossing

    assert first_crossing([(2e-4, "inside"), (6e-5, "inside")]) == (6e-5, "inside")
    assert first_crossing([(5e-5, "below"), (3e-5, "inside")]) == (5e-5, "below")  # below the grid comes first
    assert first_crossing([(12.0, "above"), (28.0, "inside")]) == (28.0, "inside")  # never reached comes last
    assert first_crossing([None, (54.0, "inside")]) == (54.0, "inside")  # a metric the runs lack
    assert first_crossing([None]) is None


def test_report_on_the_generation_cost_axis_writes_the_frontier_only(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        for lr, (f, r, g) in ((1e-4, (0.2, 0.0, 0.02)), (1e-3, (0.6, 0.01, 0.10))):
            _run_with(root, "ga", "lr", lr, seed, None, {}, extra={
                f"{stage}/{split}/{mod}/{name}": (1.0 if stage == "before" else 1.0 - d)
                for stage in ("before", "after") for mod in ("multimodal", "text")
                for split, name, d in (("forget", "mc_acc", f), ("retain", "mc_acc", r), ("retain", "rougeL", g))})
    docs = tmp_path / "docs"
    md = main(["--out", str(root), "--report-only", "--docs", str(docs), "--cost-metric", "rougeL"])
    text = md.read_text()
    assert text.startswith("# Frontier: forgetting at equal retain ROUGE-L cost")
    # 0.2 + 0.4 * (0.05 - 0.02) / 0.08 = 0.35 in both seeds
    assert parse_table(text)["ga"]["MM forget drop @ retain ROUGE-L drop 0.05"] == "0.350 ± 0.000"
    assert not (docs / "results.md").exists()  # results.md is the retain-MC page
    assert (docs / "frontier_text.png").read_bytes().startswith(PNG_MAGIC)
    # beside a retain-MC page its frontier.md and plots are that page's: not replaced by another axis's
    main(["--out", str(root), "--report-only", "--docs", str(docs)])
    page = (docs / "frontier.md").read_text()
    with pytest.raises(FileExistsError, match=r"--docs .*docs holds the retain-MC page \(results.md\)"):
        main(["--out", str(root), "--report-only", "--docs", str(docs), "--cost", "untouched"])
    assert (docs / "frontier.md").read_text() == page


@pytest.mark.parametrize("grid,base", [("full", []), ("wide", ["experiment=organism"])])
def test_every_default_is_a_swept_point(grid, base):
    # results.md reads each method's default row off the sweep: a default between grid points has no row
    for method, value in default_strengths(base).items():
        assert any(math.isclose(value, v, rel_tol=1e-9) for v in GRIDS[grid][method][1]), (method, value)


def test_every_swept_setting_lists_retain_rouge_drops_when_measured():
    from unlearn.frontier import points_table

    # seeds 0 and 1: retain ROUGE-L drops 0.2 and 0.4 -> +0.300 ± 0.141; MC columns as before
    pts = [_mc_and_rouge_point("manu", 40, seed, 0.1, 0.03, g) for seed, g in ((0, 0.2), (1, 0.4))]
    row = parse_table(points_table(pts))["manu"]
    assert row["MM retain ROUGE-L drop"] == row["text retain ROUGE-L drop"] == "+0.300 ± 0.141"
    assert row["MM retain drop"] == "+0.030 ± 0.000" and row["MM forget drop"] == "+0.100 ± 0.000"
    mc_only = [_mc_and_rouge_point("manu", 40, 0, 0.1, 0.03, 0.2)]
    for p in mc_only:
        p.metrics = {k: v for k, v in p.metrics.items() if "rougeL" not in k}
    assert not any("ROUGE-L" in col for col in parse_table(points_table(mc_only))["manu"])


def mc_point(method, strength, seed, forget, retain):
    """A run whose MC drops by `forget` on the forget split and `retain` on retain, in both modalities."""
    from unlearn.frontier import Point

    m = {}
    for split, drop in (("forget", forget), ("retain", retain)):
        for mod in ("multimodal", "text"):
            m[f"before/{split}/{mod}/mc_acc"], m[f"after/{split}/{mod}/mc_acc"] = 1.0, 1.0 - drop
    return Point(method, strength, seed, m)


def test_an_incomplete_sweep_is_marked_not_read_silently():
    """A seed without one of a method's strengths (a failed or unfinished run) reads from fewer points; the
    table marks it rather than printing a cell that looks like the full sweep's."""
    from unlearn.frontier import frontier_table, incomplete_seeds

    point = mc_point

    grid = ((1e-4, 0.2, 0.02), (2e-4, 0.5, 0.04), (4e-4, 0.8, 0.10))
    full = [point("ga", s, seed, f, r) for seed in (0, 1, 2) for s, f, r in grid]
    full += [point("npo", s, seed, f, r) for seed in (0, 1, 2) for s, f, r in grid]
    assert "‡" not in frontier_table(full, 0.05)
    partial = [p for p in full if not (p.method == "ga" and p.seed == 2 and p.strength == 2e-4)]
    partial = [p for p in partial if not (p.method == "npo" and p.seed == 1)]  # npo lacks a whole seed
    table = frontier_table(partial, 0.05)
    assert "| ga | 3 | " in table and table.count("‡ (1/3)") == 4  # ga and npo, both modalities
    assert "lack a setting of this method that another seed ran" in table
    assert incomplete_seeds({0: [(1, 0, 0), (2, 0, 0)], 1: [(1, 0, 0)]}, {0, 1, 2}) == 2


def test_runs_that_failed_on_every_seed_or_lack_a_before_evaluation_are_marked(tmp_path):
    """A strength whose runs failed on every seed left no point, and the method read as never reaching the budget
    (†) without a word; a seed none of whose runs had a before-evaluation vanished from the table (until
    2026-12-06)."""
    import json

    from unlearn.frontier import Point, frontier_table, points_table, unfinished_runs

    def point(strength, seed, forget, retain, before=True):
        m = {}
        for split, drop in (("forget", forget), ("retain", retain)):
            for mod in ("multimodal", "text"):
                if before:
                    m[f"before/{split}/{mod}/mc_acc"] = 1.0
                m[f"after/{split}/{mod}/mc_acc"] = 1.0 - drop
        return Point("ga", strength, seed, m)

    grid = ((1e-4, 0.2, 0.01), (2e-4, 0.5, 0.03))
    pts = [point(s, seed, f, r) for seed in (0, 1) for s, f, r in grid]
    for seed in (0, 1):  # the strongest setting's runs failed: a directory, no metrics.json
        (tmp_path / "ga" / "lr=1000" / f"seed{seed}").mkdir(parents=True)
    (tmp_path / "ga" / "lr=0.0001" / "seed0").mkdir(parents=True)
    (tmp_path / "ga" / "lr=0.0001" / "seed0" / "metrics.json").write_text(json.dumps({"metrics": {}}))
    unfinished = unfinished_runs(tmp_path)
    assert set(unfinished) == {("ga", 1000.0, 0), ("ga", 1000.0, 1)}
    assert "‡" not in frontier_table(pts, 0.05)  # what the page said: † alone, "never reached"
    table = frontier_table(pts, 0.05, unfinished=unfinished)
    assert table.count("‡ (2/2)") == 2
    assert "runs that left no metrics.json (failed, or unfinished" in table.lower() and "ga 1000 (seed 0, 1)" in table
    # seed 2 has runs, none with a before-evaluation (its drops cannot be read): counted, marked
    lost = pts + [point(s, 2, f, r, before=False) for s, f, r in grid]
    assert frontier_table(lost, 0.05).count("‡ (1/3)") == 2
    # the every-setting table counts the seeds it reads, not the runs it holds
    assert "| ga | lr 0.0001 | 2 |" in points_table(lost)


def test_the_plot_shows_each_points_spread_where_the_band_has_no_width(tmp_path, monkeypatch):
    """A curve at a flat retain cost (MMUnlearner's) runs vertically, where a band over x has no width: each
    point's ±std over seeds, in both drops, is drawn as error bars."""
    import unlearn.frontier as frontier
    from unlearn.frontier import Point, plot_frontier

    def point(strength, seed, forget):
        m = {}
        for split, drop in (("forget", forget), ("retain", 0.0)):
            for mod in ("multimodal", "text"):
                m[f"before/{split}/{mod}/mc_acc"], m[f"after/{split}/{mod}/mc_acc"] = 1.0, 1.0 - drop
        return Point("mmunlearner", strength, seed, m)

    figures = []
    monkeypatch.setattr(frontier, "_save", lambda fig, path: figures.append(fig) or path)
    pts = [point(s, seed, f) for s in (3, 6) for seed, f in ((0, 0.1 * s / 3), (1, 0.3 * s / 3))]
    plot_frontier(pts, tmp_path)
    from matplotlib.container import ErrorbarContainer

    bars = [c for c in figures[0].axes[0].containers  # the points' bars; the table's reading has a marker
            if isinstance(c, ErrorbarContainer) and c.lines[0] is None]
    assert len(bars) == 1
    segments = bars[0].lines[2][1].get_segments()  # the y error bars, one per swept strength
    # forget drops 0.1, 0.3 (then 0.2, 0.6): sample std 0.1 sqrt 2 (0.2 sqrt 2), each bar 2 std long
    assert [round(float(seg[1][1] - seg[0][1]), 6) for seg in segments] == [round(0.2 * 2 ** 0.5, 6),
                                                                            round(0.4 * 2 ** 0.5, 6)]


def test_the_plot_marks_the_tables_reading_at_the_budget(tmp_path, monkeypatch):
    """The table reads each seed's curve at the budget and averages; the curve of the means meets the budget
    elsewhere (here 0.271 against the table's 0.300), so a reader could not find the table's value on the plot.
    A diamond at the budget marks it, ± its std over seeds, hollow where a seed never cost the budget."""
    import unlearn.frontier as frontier
    from unlearn.frontier import frontier_table, plot_frontier

    def point(method, strength, seed, retain, forget):
        return mc_point(method, strength, seed, forget, retain)

    # seed 0 reads 0.1 at retain drop 0.05, seed 1 reads 0.5: the table's 0.300 ± 0.283; the curve of the
    # means, (0.03, 0.25) then (0.125, 0.35), meets 0.05 at 0.271
    pts = [point("ga", 1e-4, 0, 0.01, 0.0), point("ga", 2e-4, 0, 0.05, 0.1),
           point("ga", 1e-4, 1, 0.05, 0.5), point("ga", 2e-4, 1, 0.2, 0.6),
           point("npo", 1e-4, 0, 0.01, 0.2), point("npo", 1e-4, 1, 0.02, 0.6)]  # never costs 0.05
    assert "| ga | 2 | 0.300 ± 0.283 |" in frontier_table(pts, 0.05)
    figures = []
    monkeypatch.setattr(frontier, "_save", lambda fig, path: figures.append(fig) or path)
    plot_frontier(pts, tmp_path)
    ax = figures[0].axes[0]
    ga, npo = (line for line in ax.lines if line.get_marker() == "D" and len(line.get_xdata()) == 1)
    # ga's at its reading; npo's at its strongest setting's mean over seeds, as the table counts it (†)
    assert [round(float(m.get_ydata()[0]), 6) for m in (ga, npo)] == [0.3, 0.4]
    assert [float(ga.get_xdata()[0]), float(npo.get_xdata()[0])] == [0.05, 0.05]
    assert ga.get_markerfacecolor() != "none" and npo.get_markerfacecolor() == "none"
    from matplotlib.container import ErrorbarContainer

    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.lines[0] is ga]
    (low, high), = [seg[:, 1] for seg in bars[0].lines[2][0].get_segments()]
    assert round(float(high - low), 6) == round(2 * 0.4 / 2 ** 0.5, 6)  # 2 std, std of (0.1, 0.5) = 0.4 / sqrt 2


def test_a_cost_a_rounding_short_of_the_budget_reaches_it():
    """Drops are float differences of k/n accuracies: 0.98 - 0.93 = 0.04999999999999993 costs the budget as
    0.99 - 0.94 does, and a std a rounding above the ceiling is within it."""
    from unlearn.frontier import Reading, forget_drop_at, strength_at

    short, over = 0.98 - 0.93, 0.99 - 0.94
    assert short < 0.05 < over
    assert forget_drop_at([(short, 0.3)]) == Reading(0.3, True)
    assert forget_drop_at([(0.02, 0.1), (short, 0.3)]).reached
    assert forget_drop_at([(0.02, 0.1), (0.049, 0.3)]) == Reading(0.3, False)  # a real shortfall still is one
    assert strength_at([(1.0, short), (2.0, 0.2)]) == (1.0, "below")
    assert strength_at([(1.0, 0.01), (2.0, short)]) == (2.0, "inside")


def test_the_std_check_reads_an_exact_ceiling_as_within_and_one_seed_as_not_measured():
    """6/20, 7/20, 8/20 have a sample std of exactly 0.05 (0.05000000000000002 in floats): within the ceiling.
    With one seed per method no cell has a std: the check says so, not "met"."""
    from unlearn.frontier import checks
    from unlearn.report import Run, SeedGroup

    def run(seed, value):
        m = {f"{stage}/{a}/{b}/mc_acc": 1.0 for stage in ("before", "after") for a, b in CELLS}
        m["after/forget/text/mc_acc"] = value
        return Run("ga", "ga", [f"seed={seed}"], m, Path("."), seed=seed, teach_seed=seed)

    exact = checks([SeedGroup("ga", "ga", [run(s, v) for s, v in enumerate((6 / 20, 7 / 20, 8 / 20))])])
    assert "has std <= 0.05 over seeds: **met**" in exact[1]
    wider = checks([SeedGroup("ga", "ga", [run(s, v) for s, v in enumerate((6 / 20, 7 / 20, 9 / 20))])])
    assert "**not met** (ga text forget ± 0.076" in wider[1]
    one = checks([SeedGroup("ga", "ga", [run(0, 0.5)])])
    assert "**not measured** (no cell has two seeds)" in one[1]
    # a std just over the ceiling is printed with the digit that shows it (0.0503 read "± 0.050" until 2026-12-05)
    just = checks([SeedGroup("ga", "ga", [run(s, v) for s, v in enumerate((0.90, 1.00, 0.96))])])
    assert "**not met** (ga text forget ± 0.0503" in just[1]
    # a method at one seed beside methods at three: "met" names it as not measured
    mixed = checks([SeedGroup("ga", "ga", [run(s, v) for s, v in enumerate((6 / 20, 7 / 20, 8 / 20))]),
                    SeedGroup("npo", "npo", [run(0, 0.5)])])
    assert mixed[1].endswith("**met** (one seed, not measured: npo)")


def test_report_only_reads_the_runs_base_and_names_methods_without_their_default(tmp_path):
    """--report-only took any --base it was given: the organism's defaults over an embedded sweep showed KL at
    another lr and dropped GradDiff without a word. The runs' own base is read, another refused, and a swept
    method with no run at its default is named."""
    from unlearn import frontier

    root = tmp_path / "sweep"
    lr = default_strengths()["ga"]
    for seed in (0, 1):
        _run_with(root, "ga", "lr", lr, seed, dict.fromkeys(CELLS, 1.0), dict.fromkeys(CELLS, 0.9))
        _run_with(root, "npo", "lr", 1e-9, seed, None, dict.fromkeys(CELLS, 0.95))  # never its default lr
        for method in ("ga", "npo"):
            d = frontier.run_dir(root, method, "method.optimizer.lr", lr if method == "ga" else 1e-9, seed)
            d.mkdir(parents=True, exist_ok=True)
            task = frontier.Task(method, "method.optimizer.lr", 0, seed, False)
            (d / "overrides.json").write_text(json.dumps(frontier.task_overrides(task)))
    with pytest.raises(ValueError, match=r"--base \['experiment=organism'\]: the runs in .* were made with --base \[\]"):
        main(["--out", str(root), "--report-only", "--base", "experiment=organism", "--docs", str(tmp_path / "d")])
    md = (main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")]).parent / "results.md").read_text()
    npo = default_strengths()["npo"]
    assert f"not run at their default strength in this sweep, so not in the table or the checks above: npo (lr {npo:g})" in md
    task = frontier.Task("npo", "method.optimizer.lr", 0, 1, False)
    (frontier.run_dir(root, "npo", "method.optimizer.lr", 1e-9, 1) / "overrides.json").write_text(
        json.dumps([*frontier.task_overrides(task), "experiment=organism"]))
    with pytest.raises(ValueError, match="mixes runs of two --base"):
        main(["--out", str(root), "--report-only", "--docs", str(tmp_path / "docs")])


def test_a_run_borrows_before_numbers_only_from_its_own_vanilla_model(tmp_path):
    """Runs of a seed without before/* read those of a run of the same seed and source model; a run from another
    vanilla model (a resumed sweep whose cache taught anew) is refused, naming both, not read against the old."""
    from unlearn.frontier import load_points

    out = tmp_path / "sweep"
    _run_with(out, "ga", "lr", 2e-5, 0, dict.fromkeys(CELLS, 1.0), dict.fromkeys(CELLS, 0.99),
              extra=None)
    for f in out.glob("*/*/seed0/metrics.json"):
        summary = json.loads(f.read_text())
        f.write_text(json.dumps({**summary, "source_model": "/c/vanilla/tiny_llava-AAAA"}))
    same = out / "kl" / "lr=5e-05" / "seed0"
    same.mkdir(parents=True)
    (same / "metrics.json").write_text(json.dumps({"metrics": {"after/retain/text/mc_acc": 0.8},
                                                   "source_model": "/c/vanilla/tiny_llava-AAAA"}))
    points = {p.method: p for p in load_points(out)}
    assert points["kl"].drop("retain", "text") == pytest.approx(0.2)
    (same / "metrics.json").write_text(json.dumps({"metrics": {"after/retain/text/mc_acc": 0.8},
                                                   "source_model": "/c/vanilla/tiny_llava-BBBB"}))
    with pytest.raises(ValueError, match=r"started from /c/vanilla/tiny_llava-BBBB \(teaching None\), and the "
                                         r"before-evaluations of seed 0 .* are of tiny_llava-AAAA"):
        load_points(out)
    # the same path, taught again (another teaching record): refused too, not read against the old model's
    for f in out.glob("*/*/seed0/metrics.json"):
        summary = json.loads(f.read_text())
        f.write_text(json.dumps({**summary, "source_model": "/c/vanilla/tiny_llava-AAAA",
                                 "source_teaching": {"seconds": 61.2}}))
    (same / "metrics.json").write_text(json.dumps({"metrics": {"after/retain/text/mc_acc": 0.8},
                                                   "source_model": "/c/vanilla/tiny_llava-AAAA",
                                                   "source_teaching": {"seconds": 58.7}}))
    with pytest.raises(ValueError, match=r"started from /c/vanilla/tiny_llava-AAAA \(teaching [0-9a-f]{12}\)"):
        load_points(out)
    (same / "metrics.json").write_text(json.dumps({"metrics": {"after/retain/text/mc_acc": 0.8},
                                                   "source_model": "/c/vanilla/tiny_llava-AAAA",
                                                   "source_teaching": {"seconds": 61.2}}))
    assert {p.method: p for p in load_points(out)}["kl"].drop("retain", "text") == pytest.approx(0.2)
    bad = out / "kl" / "lr=5e-05" / "seed0_old"
    bad.mkdir()
    (bad / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="seed0_old/metrics.json: not a sweep run"):
        load_points(out)


def _retain_mc_point(method, strength, seed, drop):
    from unlearn.frontier import Point

    m = {}
    for mod in ("multimodal", "text"):
        m[f"before/retain/{mod}/mc_acc"], m[f"after/retain/{mod}/mc_acc"] = 1.0, 1.0 - drop
    return Point(method, strength, seed, m)


def test_median_crossing_orders_below_inside_above():
    from unlearn.frontier import median_crossing

    assert median_crossing([(9.0, "above"), (3.0, "inside"), (1.0, "below")]) == (3.0, "inside")
    assert median_crossing([(5.0, "inside"), (1.0, "inside"), (3.0, "inside")]) == (3.0, "inside")
    assert median_crossing([(1.0, "below"), (1.0, "below"), (7.0, "inside")]) == (1.0, "below")
    assert median_crossing([(2.0, "inside"), (8.0, "inside")]) == (4.0, "inside")  # geometric: log strengths
    assert median_crossing([(12.0, "above"), (12.0, "above")]) == (12.0, "above")
    assert median_crossing([(1.0, "below"), (2.0, "inside")]) is None  # the middle straddles the grid's edge
    assert median_crossing([]) is None


def test_each_seeds_crossing_is_read_on_its_own_runs_and_one_fragile_model_moves_the_mean_not_the_median():
    from unlearn.frontier import equal_cost_table, seed_crossings

    # retain MC drops at lr 1e-5, 2e-5, 4e-5: seed 0 crosses 0.05 at 0.2 of the way in log lr from 1e-5 to 2e-5,
    # seed 1 (fragile) already at 1e-5, seed 2 never
    drops = {0: (0.0, 0.25, 0.3), 1: (0.2, 0.3, 0.4), 2: (0.0, 0.0, 0.025)}
    pts = [_retain_mc_point("ga", lr, seed, d) for seed, ds in drops.items() for lr, d in zip((1e-5, 2e-5, 4e-5), ds)]
    by = {}
    for p in pts:
        by.setdefault(p.strength, []).append(p)
    own = seed_crossings(by, 0.05)
    assert own[1] == (1e-5, "below") and own[2] == (4e-5, "above")
    assert own[0][1] == "inside" and math.isclose(own[0][0], 1e-5 * 2 ** 0.2)
    # the mean curve starts at (0 + 0.2 + 0) / 3 = 0.067, already past the budget: no 1-2-5 value; the median
    # seed's (seed 0's 1.15e-5) is 1e-5
    text = equal_cost_table(pts, {"ga": 5e-5})
    row = parse_table(text)["ga"]
    assert row["mean retain drop reaches 0.05 at"] == "<= 1e-05" and row["nearest 1-2-5"] == "n/a"
    assert row["each seed's crossing: median (range)"] == "1.1e-05 (<= 1e-05 to > 4e-05 (never))"
    assert row["its 1-2-5"] == "1e-05" and row["default"] == "5e-05"
    assert "differ for ga (1e-05 against n/a)" in text
    # two seeds, one crossing inside and one never: the middle straddles the grid's end, no median; the mean
    # curve (0, 0.125, ...) crosses at 1e-5 * 2 ** 0.4
    row = parse_table(equal_cost_table([p for p in pts if p.seed != 1], {"ga": 5e-5}))["ga"]
    assert row["each seed's crossing: median (range)"] == "split (1.1e-05 to > 4e-05 (never))"
    assert row["its 1-2-5"] == "n/a" and row["nearest 1-2-5"] == "1e-05"
    # one seed: its own crossing is the mean curve's, and the page says the two agree
    text = equal_cost_table([p for p in pts if p.seed == 0], {"ga": 5e-5})
    row = parse_table(text)["ga"]
    assert row["each seed's crossing: median (range)"] == "1.1e-05" and row["nearest 1-2-5"] == row["its 1-2-5"]
    assert "agree for every method" in text


def test_a_resumed_sweep_whose_cache_gives_another_model_is_refused_before_it_runs(tmp_path):
    """New runs of a seed borrow its before-evaluation, so they must start from the model its runs did: the same
    key (a copied cache keeps the directory's name) and the same teaching. Until 2026-12-05 a cache that taught
    anew ran the whole sweep and only the report refused it."""
    from unlearn.config import compose_config
    from unlearn.frontier import Task, check_same_models
    from unlearn.pipeline import vanilla_path
    from unlearn.runtime import torch_threads

    out, cache = tmp_path / "sweep", tmp_path / "cache"
    with torch_threads(1):
        key = vanilla_path(compose_config(["method=npo", "seed=0"], out, cache)).name  # any method: one key
    done = out / "ga" / "lr=5e-05" / "seed0"
    done.mkdir(parents=True)

    def made(source, record=None):
        (done / "metrics.json").write_text(json.dumps({"metrics": {"before/forget/text/mc_acc": 1.0},
                                                       "source_model": source, "source_teaching": record}))

    todo = [Task("ga", "lr", 1e-4, 0, False)]
    made(f"/elsewhere/cache/vanilla/{key}", {"seconds": 61.2})  # a copied sweep and cache: the same key
    check_same_models(out, todo, [], cache)
    made("/elsewhere/cache/vanilla/tiny_llava-000000000000")
    with pytest.raises(ValueError, match=rf"seed 0 started from .*tiny_llava-000000000000, and --cache .* gives "
                                         rf".*{key}: their before-evaluation"):
        check_same_models(out, todo, [], cache)
    made(f"/elsewhere/cache/vanilla/{key}", {"seconds": 61.2})
    (cache / "vanilla" / key).mkdir(parents=True)
    (cache / "vanilla" / key / "teaching.json").write_text(json.dumps({"seconds": 58.7}))  # taught again
    with pytest.raises(ValueError, match=r"taught again since"):
        check_same_models(out, todo, [], cache)
    check_same_models(out, [Task("ga", "lr", 1e-4, 0, True)], [], cache)  # a run that evaluates its own: fine
    # a --base of the swept method's own keys (the control sweeps': --methods manu --base manu.score=random) is
    # composed with that method (until 2026-12-05 with method=ga, which has no manu section: refused)
    made(f"/elsewhere/cache/vanilla/{key}")
    check_same_models(out, [Task("manu", "alpha", 5, 0, False)], ["manu.score=random"], cache)


def test_a_control_sweeps_method_keys_in_base_compose_before_it_runs(tmp_path, monkeypatch):
    import unlearn.frontier as frontier

    ran = []
    monkeypatch.setattr(frontier, "run_task", lambda task, *a: ran.append(task))
    frontier.sweep(tmp_path / "sweep", "fast", [0], ["manu.score=random"], tmp_path / "cache", 1, ["manu"])
    assert ran and {t.method for t in ran} == {"manu"}


@pytest.mark.parametrize("args,message", [
    (["--seeds", "0", "0"], "--seeds 0 0: a seed given twice"),
    (["--budget", "0"], "--budget 0.0: expected a finite cost drop > 0"),
    (["--budget", "nan"], "--budget nan: expected a finite cost drop > 0"),
    (["--jobs", "0"], "--jobs 0: expected >= 1"),
    (["--methods", "ga", "ga"], "--methods ga ga: a method given twice"),
])
def test_bad_arguments_are_refused_before_any_run(tmp_path, capsys, args, message):
    from unlearn.frontier import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "sweep"), *args])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("base", [["seed=5"], ["method=npo"], ["debug=fast", "method.optimizer.lr=1e-3"],
                                  ["+teach_seed=0"]])
def test_a_base_that_sets_what_each_run_sets_is_refused_before_any_run(tmp_path, base, monkeypatch):
    """A --base wins over a run's own overrides: `--base seed=5` ran seed 0's and 1's runs on seed 5, one run read
    as two seeds; `--base method=npo` drew NPO's runs as GA's curve (until 2026-12-05)."""
    from unlearn import frontier

    ran = []
    monkeypatch.setattr(frontier, "run_task", lambda task, *a: ran.append(task))
    with pytest.raises(ValueError, match="the frontier sets"):
        frontier.sweep(tmp_path / "out", "fast", [0, 1], base, tmp_path / "cache", methods=["ga"])
    assert ran == [] and not (tmp_path / "out").exists()


def test_a_run_whose_directory_names_another_seed_is_refused(tmp_path):
    run = tmp_path / "ga" / "lr=0.0001" / "seed1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"method": "ga", "seed": 5, "metrics": {}}))
    with pytest.raises(ValueError, match="ran seed 5, and its directory says seed1"):
        load_points(tmp_path)


def test_a_misspelt_base_is_refused_by_name(tmp_path):
    """A --base Hydra cannot compose stopped the sweep with Hydra's traceback (until 2026-12-05)."""
    from unlearn.frontier import check_one_process

    with pytest.raises(ValueError, match=r"--base method.optimzer.lr=1: .*optimzer"):
        check_one_process(["method.optimzer.lr=1"], tmp_path / "cache", tmp_path)


def test_seeds_with_report_only_is_refused(tmp_path, capsys):
    """The page reads every seed under --out: `--report-only --seeds 0` printed that command above a table of
    every seed (until 2026-12-05)."""
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--report-only", "--seeds", "0"])
    assert "--seeds with --report-only" in capsys.readouterr().err


def test_a_page_of_runs_made_by_different_code_says_so(tmp_path):
    """A sweep resumed across commits drew one page from two codes without a word (until 2026-12-05); the report
    said it, the frontier did not."""
    root = tmp_path / "sweep"
    _fake_run(root, "ga", "lr", 1e-4, 0, 0.02, 0.1)
    _fake_run(root, "ga", "lr", 1e-3, 0, 0.08, 0.4)
    docs = tmp_path / "docs"
    main(["--out", str(root), "--report-only", "--docs", str(docs)])
    assert "different code" not in (docs / "frontier.md").read_text()  # none recorded: one (unrecorded) code
    for value, code in ((1e-4, {"commit": "abcdef0123", "dirty": False}), (1e-3, {"commit": "1234567890",
                                                                                  "dirty": True})):
        f = root / "ga" / f"lr={value}" / "seed0" / "metrics.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "code": code}))
    main(["--out", str(root), "--report-only", "--docs", str(docs)])
    for page in ("frontier.md", "results.md"):
        assert "runs made by different code: abcdef0 (1 run), 1234567+edits (1 run)" in (docs / page).read_text()


def test_a_page_at_another_budget_says_the_defaults_rule_reads_its_own():
    """`--budget 0.1` compares the methods at 0.1 while the defaults' rule stays at 0.05 (its table's title said
    0.05 with no word on why, under tables at 0.1)."""
    points = [_retain_mc_point("ga", s, 0, d) for s, d in ((1e-5, 0.02), (1e-4, 0.2))]
    assert "whatever budget" not in results_markdown(points, "", "", "cmd", {"ga": 1e-5}, [])
    assert "The rule reads 0.05 whatever budget the tables above compare at (--budget 0.1)" in results_markdown(
        points, "", "", "cmd", {"ga": 1e-5}, [], budget=0.1)


def test_a_sweep_without_any_default_strength_says_so():
    """`--grid fast` runs no method at its default: results.md left its defaults section out without a word
    (until 2026-12-06)."""
    points = [_retain_mc_point("ga", s, 0, d) for s, d in ((1e-5, 0.02), (1e-4, 0.2))]
    md = results_markdown(points, "", "", "cmd", {"ga": 5e-5}, [])
    assert "No method was swept at its default strength" in md and "so not in the table or the checks above: " \
        "ga (lr 5e-05)" in md
    assert "No method was swept" not in results_markdown(points, "", "", "cmd", {"ga": 1e-5}, [])


def test_runs_of_different_settings_pooled_in_one_curve_are_named(tmp_path):
    """Runs copied into one --out by hand, ga at lr 1e-3 with method.epochs=99 beside the sweep's: the frontier read
    no config.json and pooled them without a word (until 2026-12-06). Seeds and the knob itself are not
    differences."""
    from unlearn.frontier import load_points, made_by, mixed_settings

    root = tmp_path / "sweep"
    for lr, epochs, seed in ((1e-4, 5, 0), (1e-3, 5, 1), (1e-3, 99, 0)):
        _run_with(root, "ga", "lr", lr, seed, dict.fromkeys(CELLS, 1.0), dict.fromkeys(CELLS, 0.9))
        config = {"method": {"name": "ga", "epochs": epochs, "optimizer": {"lr": lr}}, "seed": seed}
        (root / "ga" / f"lr={lr}" / f"seed{seed}" / "config.json").write_text(json.dumps(config))
    points = load_points(root)  # the directories name the knob's leaf, lr; the grid's key is method.optimizer.lr
    assert mixed_settings(points) == "runs of different settings are pooled in one curve: ga (method.epochs)"
    assert "**Note**: runs of different settings are pooled in one curve: ga (method.epochs)." in made_by(points)
    same = [p for p in points if not (p.strength == 1e-3 and p.seed == 0)]
    assert mixed_settings(same) is None and made_by(same) == ""


def test_the_printed_command_carries_the_pythonpath_a_method_of_ones_own_needs(tmp_path, monkeypatch):
    """Until 2026-12-06 the page printed the command without `PYTHONPATH=examples/simnpo`, which rerunning it needs;
    the working directory itself (a checkout run from its root) is left out, as is an empty one."""
    import os

    from unlearn.frontier import command_line

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples" / "simnpo").mkdir(parents=True)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "examples" / "simnpo"), str(tmp_path), "/opt/x y"]))
    assert command_line(["--out", "a b"]) == "PYTHONPATH='examples/simnpo:/opt/x y' python -m unlearn.frontier --out 'a b'"
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert command_line(["--out", "d"]) == "python -m unlearn.frontier --out d"
    monkeypatch.delenv("PYTHONPATH")
    assert command_line([]) == "python -m unlearn.frontier "


def test_a_curves_legend_names_its_thinnest_point():
    """A seed whose run at one strength failed leaves that point the mean of fewer seeds: the legend says so
    (until 2026-12-06 it counted the curve's seeds alone)."""
    from unlearn.frontier import curve_label

    full = {0: [(1.0, 0.1, 0.2), (2.0, 0.2, 0.4)], 1: [(1.0, 0.1, 0.3), (2.0, 0.3, 0.5)]}
    assert curve_label("ga", full) == "ga (2 seeds)"
    assert curve_label("ga", {**full, 2: [(1.0, 0.1, 0.2)]}) == "ga (3 seeds; 2 at its thinnest point)"


def test_a_base_key_a_method_never_reads_is_named_on_the_pages(tmp_path):
    """`--base data.forget_modality=text` swept MANU at its default, and its curve stood on the page as a text-trained
    one: the runs are composed without Hydra's command line, so none warned (train.py does), until the fifty-first
    session."""
    from unlearn import frontier

    root = tmp_path / "sweep"
    base = ["data.forget_modality=text"]
    for method, knob, key, value in (("ga", "lr", "method.optimizer.lr", 1e-4), ("manu", "alpha", "manu.alpha", 5)):
        for seed in (0, 1):
            _fake_run(root, method, knob, value, seed, 0.02, 0.1)
            task = frontier.Task(method, key, value, seed, False)
            (frontier.run_dir(root, method, key, value, seed) / "overrides.json").write_text(
                json.dumps([*frontier.task_overrides(task), *base]))
    docs = tmp_path / "docs"
    main(["--out", str(root), "--report-only", "--docs", str(docs)])
    for page in ("frontier.md", "results.md"):
        text = (docs / page).read_text()
        assert ("**Note**: --base data.forget_modality=text: manu never reads data.forget_modality (read by the gradient "
                "methods only; manu reads the forget people in the forms its recipe names): their curves are the "
                "methods without it.") in text
        assert "ga never reads" not in text
    assert frontier.unread_base([], ["manu"]) == {}
    assert frontier.unread_base(["manu.alpha=5"], ["manu"]) == {}  # read: only what a method never reads is named


def test_a_sweep_worker_stops_when_the_sweep_process_is_killed(tmp_path):
    """`kill -9` of a `--jobs 2` sweep left its workers running as orphans (2026-12-07): each now watches its parent."""
    import os
    import subprocess
    import sys
    import time

    # the child survives SIGTERM, as a pool worker does (its loop catches the run's SIGTERMException)
    child = ("import os, signal, time\nfrom unlearn.frontier import _stop_with_parent\n"
             "signal.signal(signal.SIGTERM, lambda *a: None)\n"
             "_stop_with_parent(os.getppid(), every_s=0.1, grace_s=0.5)\nopen(os.environ['READY'], 'w').write('1')\ntime.sleep(60)\n")
    parent = ("import os, signal, subprocess, sys\n"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              "print(p.pid, flush=True)\n"
              "import time\nwhile not os.path.exists(os.environ['READY']): time.sleep(0.05)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "READY": str(tmp_path / "ready")}
    run = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, env=env, timeout=60)
    pid = int(run.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    raise AssertionError(f"worker {pid} still running 10 s after its parent was killed")


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited: no such process, or a zombie (reaped by init soon). Its /proc entry may go
    between the two looks (reaped after os.kill found it): until 2026-12-07 that raised FileNotFoundError (or
    ProcessLookupError from the read), failing the test at the moment the worker did stop."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except (ProcessLookupError, FileNotFoundError):
        return True


@pytest.mark.slow
def test_a_jobs_sweep_sigtermed_as_a_group_stops_exits_143_and_its_rerun_keeps_the_finished_points(tmp_path):
    """`kill -TERM -PGID` (as `timeout` or a scheduler sends) of a `--jobs 2` sweep hung it for ever (2026-12-07: a
    worker that died between runs broke the pool, whose manager then waited on a worker Lightning had stopped)."""
    import hashlib
    import time

    out, log = tmp_path / "sweep", tmp_path / "log"
    # GA alone (4 runs), two workers each teaching a seed; the rerun in the sweep's own process (--jobs 1: no
    # workers to start, each paying a launch's imports)
    cmd = [sys.executable, "-m", "unlearn.frontier", "--out", str(out), "--grid", "fast", "--seeds", "0", "1",
           "--methods", "ga", "--base", "debug=fast", "--cache", str(tmp_path / "cache"), "--jobs", "2"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    with open(log, "w") as f:
        sweep = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 400
    while "metrics: " not in log.read_text() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.2)
    os.killpg(sweep.pid, signal.SIGTERM)
    assert sweep.wait(timeout=120) == 143, log.read_text()[-3000:]
    text = log.read_text()
    assert "frontier sweep interrupted (SIGTERM): " in text and "Run the same command again" in text
    assert "Traceback" not in text
    deadline = time.monotonic() + 15  # no worker left behind (multiprocessing's resource tracker ends on its own)
    left = "?"
    while time.monotonic() < deadline:
        left = subprocess.run(["ps", "-o", "pid,stat,args", "-g", str(sweep.pid)], capture_output=True, text=True).stdout
        if len(left.splitlines()) <= 1 or all(" Z" in line for line in left.splitlines()[1:]):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"left running:\n{left}")
    digest = lambda f: hashlib.sha256(f.read_bytes()).hexdigest()  # noqa: E731
    kept = {f: digest(f) for f in out.glob("*/*/seed*/metrics.json")}
    assert kept
    assert len(kept) < 4  # stopped before the end
    subprocess.run([*cmd[:-1], "1"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    assert {f: digest(f) for f in kept} == kept and len(list(out.glob("*/*/seed*/metrics.json"))) == 4


def test_a_sweep_worker_whose_parent_is_gone_is_sent_sigterm_before_it_exits(tmp_path, monkeypatch):
    """The worker's run stops through its cleanups (SIGTERM, runtime.sigterm_as_exit) before the hard exit, and
    each pool worker starts the watch. Mutation audit: dropping the os.kill(SIGTERM) (the test above's child
    ignores it, so the hard exit alone passed) and dropping the call in _one_thread_worker both survived."""
    import logging
    import time

    import torch

    from unlearn import frontier

    child = ("import os, signal, time\nfrom unlearn.frontier import _stop_with_parent\n"
             "signal.signal(signal.SIGTERM, lambda *a: open(os.environ['TERMED'], 'w').write('1'))\n"
             "_stop_with_parent(os.getppid(), every_s=0.05, grace_s=5)\nopen(os.environ['READY'], 'w').write('1')\n"
             "time.sleep(60)\n")
    parent = ("import os, signal, subprocess, sys, time\n"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              "print(p.pid, flush=True)\n"
              "while not os.path.exists(os.environ['READY']): time.sleep(0.05)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    termed = tmp_path / "termed"
    env = {**os.environ, "READY": str(tmp_path / "ready"), "TERMED": str(termed)}
    run = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, env=env, timeout=60)
    pid = int(run.stdout.split()[0])
    try:
        deadline = time.monotonic() + 4  # well inside the grace: the SIGTERM, not the hard exit
        while not termed.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert termed.exists(), "the orphaned worker was not sent SIGTERM"
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    watched = []
    monkeypatch.setattr(frontier, "_stop_with_parent", watched.append)
    monkeypatch.setattr("unlearn.runtime.quiet_libraries", lambda: None)
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored after the test, as are torch's threads
    threads, ctrl_c = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    try:
        frontier._one_thread_worker()
    finally:  # the worker ignores Ctrl-C between runs: this process's later children would inherit it
        torch.set_num_threads(threads)
        signal.signal(signal.SIGINT, ctrl_c)
    assert watched == [os.getppid()]


def test_a_page_of_runs_whose_commits_differ_outside_the_executed_code_does_not_say_different_code(tmp_path):
    """Points keep metrics.json's code digest (report.code_key): two commits apart in docs alone ran the same code,
    on the frontier's pages as in the report. Mutation audit: Point.code_key read as code_label, and made_by or the
    report's mixed_code called without the keys, survived every test."""
    from unlearn.frontier import load_points, made_by

    root = tmp_path / "sweep"
    _fake_run(root, "ga", "lr", 1e-4, 0, 0.02, 0.1)
    _fake_run(root, "ga", "lr", 1e-3, 0, 0.08, 0.4)
    for value, commit in ((1e-4, "abcdef0123"), (1e-3, "1234567890")):
        f = root / "ga" / f"lr={value}" / "seed0" / "metrics.json"
        f.write_text(json.dumps({**json.loads(f.read_text()),
                                 "code": {"commit": commit, "dirty": False, "digest": "d1g3st00"}}))
    points = load_points(root)
    assert sorted(p.code for p in points) == ["1234567", "abcdef0"]
    assert {p.code_key for p in points} == {"digest d1g3st00"} and made_by(points) == ""
    docs = tmp_path / "docs"
    main(["--out", str(root), "--report-only", "--docs", str(docs)])
    for page in ("frontier.md", "results.md"):
        assert "different code" not in (docs / page).read_text()


def test_the_plots_reading_is_at_the_plots_own_budget(tmp_path, monkeypatch):
    """plot_frontier(budget=0.1) marks the table's reading at 0.1, not at the default 0.05. Mutation audit:
    seeds_reading called without the budget passed every test (they plot at the default)."""
    import unlearn.frontier as frontier
    from unlearn.frontier import Point, plot_frontier

    def point(strength, seed, retain, forget):
        m = {}
        for split, drop in (("forget", forget), ("retain", retain)):
            for mod in ("multimodal", "text"):
                m[f"before/{split}/{mod}/mc_acc"], m[f"after/{split}/{mod}/mc_acc"] = 1.0, 1.0 - drop
        return Point("ga", strength, seed, m)

    # each curve from (0, 0): seed 0 crosses 0.1 halfway from (0.05, 0.2) to (0.15, 0.4), 0.3; seed 1 halfway from
    # (0, 0) to (0.2, 0.6), 0.3: mean 0.3 (at 0.05 they read 0.2 and 0.15, mean 0.175)
    pts = [point(1e-4, 0, 0.05, 0.2), point(2e-4, 0, 0.15, 0.4), point(1e-4, 1, 0.2, 0.6)]
    figures = []
    monkeypatch.setattr(frontier, "_save", lambda fig, path: figures.append(fig) or path)
    plot_frontier(pts, tmp_path, budget=0.1)
    diamond, = (line for line in figures[0].axes[0].lines if line.get_marker() == "D" and len(line.get_xdata()) == 1)
    assert float(diamond.get_xdata()[0]) == 0.1 and round(float(diamond.get_ydata()[0]), 6) == 0.3
