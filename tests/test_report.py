"""unlearn.report on a hand-written fake sweep: the right numbers in the right columns, and honest gaps."""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path

import pytest

from unlearn.report import (
    MODALITIES,
    Run,
    load_runs,
    main,
    mean_drop,
    missing_metrics,
    modality_gap,
    plot_tradeoff,
    tradeoff_points,
    results_table,
    scored_modalities,
    write_plots,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNTOUCHED = [f"{stage}/untouched/{mod}/mc_acc" for stage in ("before", "after") for mod in ("multimodal", "text")]


def metrics_for(after: dict[str, float], time_s: float, drop_untouched: bool = False) -> dict[str, float]:
    """A metrics.json "metrics" dict: one shared vanilla (before) and the given after values (short keys)."""
    before = {
        "forget/multimodal/mc_acc": 1.0, "forget/multimodal/rougeL": 0.95,
        "retain/multimodal/mc_acc": 0.96, "retain/multimodal/rougeL": 0.93,
        "untouched/multimodal/mc_acc": 0.99,
        "forget/text/mc_acc": 1.0, "forget/text/rougeL": 0.98,
        "retain/text/mc_acc": 0.98, "retain/text/rougeL": 0.97,
        "untouched/text/mc_acc": 0.97,
    }
    m = {f"before/{k}": v for k, v in before.items()} | {f"after/{k}": v for k, v in after.items()}
    m |= {f"{stage}/forget/text/n_mc_acc": 50 for stage in ("before", "after")}  # count keys: ignored
    m["time/method_s"] = time_s
    if drop_untouched:
        for k in UNTOUCHED:
            m.pop(k)
    return m


# Every after value is distinct, so a value in the wrong column cannot pass by accident.
GA_AFTER = {
    "forget/multimodal/mc_acc": 0.2, "forget/multimodal/rougeL": 0.31,
    "retain/multimodal/mc_acc": 0.82, "retain/multimodal/rougeL": 0.73,
    "untouched/multimodal/mc_acc": 0.94,
    "forget/text/mc_acc": 0.7, "forget/text/rougeL": 0.61,
    "retain/text/mc_acc": 0.85, "retain/text/rougeL": 0.76,
    "untouched/text/mc_acc": 0.93,
}
NPO_AFTER = {k: round(v - 0.05, 3) for k, v in GA_AFTER.items()}
MANU_AFTER = {**GA_AFTER, "forget/multimodal/mc_acc": 0.4, "forget/text/mc_acc": 0.9, "retain/text/mc_acc": 0.97}


def write_run(run_dir: Path, method: str, metrics: dict | None, overrides: list[str]) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        summary = {"method": method, "source_model": "/cache/vanilla/x", "metrics": metrics, "artifacts": {}}
        (run_dir / "metrics.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """multirun/<time>/ with ga, npo (no untouched keys) and manu alpha=5, as `train.py -m` lays it out."""
    root = tmp_path / "multirun" / "2025-01-01_00-00-00"
    write_run(root / "0_ga", "ga", metrics_for(GA_AFTER, 1.94), ["method=ga"])
    write_run(root / "1_npo", "npo", metrics_for(NPO_AFTER, 12.34, drop_untouched=True), ["method=npo"])
    write_run(root / "2_manu", "manu", metrics_for(MANU_AFTER, 0.5), ["method=manu", "manu.alpha=5"])
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def parse_table(md: str) -> dict[str, dict[str, str]]:
    """{row name: {column header: cell}} from the first markdown table of the output."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    split = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in rows]
    header, body = split[0], split[2:]
    assert all(len(r) == len(header) for r in body), md
    return {r[0]: dict(zip(header, r)) for r in body}


def test_runs_are_named_by_method_and_overrides(sweep):
    runs = load_runs([sweep])
    assert [r.name for r in runs] == ["ga", "npo", "manu alpha=5"]
    assert [r.method for r in runs] == ["ga", "npo", "manu"]
    assert runs[2].overrides == ["method=manu", "manu.alpha=5"]
    assert runs[0].path == sweep / "0_ga"
    assert runs[0].metrics["after/forget/multimodal/mc_acc"] == 0.2


def test_table_puts_each_value_in_its_column(sweep):
    table = parse_table(results_table(load_runs([sweep])))
    assert list(table) == ["vanilla", "ga", "npo", "manu alpha=5"]
    ga = table["ga"]
    assert ga["MM forget MC ↓"] == "0.200"
    assert ga["MM forget ROUGE-L ↓"] == "0.310"
    assert ga["MM retain MC ↑"] == "0.820"
    assert ga["MM retain ROUGE-L ↑"] == "0.730"
    assert ga["MM untouched MC ↑"] == "0.940"
    assert ga["text forget MC ↓"] == "0.700"
    assert ga["text forget ROUGE-L ↓"] == "0.610"
    assert ga["text retain MC ↑"] == "0.850"
    assert ga["text retain ROUGE-L ↑"] == "0.760"
    assert ga["text untouched MC ↑"] == "0.930"
    assert ga["modality gap"] == "+0.500"  # (1.0 - 0.2) - (1.0 - 0.7)
    assert ga["time"] == "1.9 s"
    manu = table["manu alpha=5"]
    assert manu["MM forget MC ↓"] == "0.400" and manu["text forget MC ↓"] == "0.900"
    assert manu["text retain MC ↑"] == "0.970"
    assert manu["modality gap"] == "+0.500"  # (1.0 - 0.4) - (1.0 - 0.9)
    assert table["npo"]["time"] == "12.3 s"
    vanilla = table["vanilla"]  # before/* of the first run, not an after value
    assert (vanilla["MM forget MC ↓"], vanilla["MM retain MC ↑"], vanilla["text untouched MC ↑"]) == \
        ("1.000", "0.960", "0.970")
    assert vanilla["modality gap"] == "-" and vanilla["time"] == "-"


def test_modality_gap_arithmetic():
    m = {"before/forget/multimodal/mc_acc": 1.0, "after/forget/multimodal/mc_acc": 0.2,
         "before/forget/text/mc_acc": 1.0, "after/forget/text/mc_acc": 0.7}
    assert modality_gap(m) == pytest.approx(0.8 - 0.3)
    # text forgotten more than multimodal: negative gap
    assert modality_gap({**m, "before/forget/multimodal/mc_acc": 0.9, "after/forget/multimodal/mc_acc": 0.6,
                         "before/forget/text/mc_acc": 0.8, "after/forget/text/mc_acc": 0.1}) == pytest.approx(-0.4)
    for key in m:
        assert modality_gap({k: v for k, v in m.items() if k != key}) is None, key
    retain = {"before/retain/multimodal/mc_acc": 0.9, "after/retain/multimodal/mc_acc": 0.8,
              "before/retain/text/mc_acc": 1.0, "after/retain/text/mc_acc": 0.7}
    assert mean_drop(m, "forget") == pytest.approx((0.8 + 0.3) / 2)
    assert mean_drop(retain, "retain") == pytest.approx((0.1 + 0.3) / 2)
    assert mean_drop(m, "retain") is None
    assert mean_drop(m, "forget", modalities=("multimodal",)) == pytest.approx(0.8)


def test_the_trade_off_plot_reads_the_modalities_the_runs_scored(tmp_path):
    """A CLEAR run scores no text-only MC: its point is the image+text drop (until the forty-eighth session it had
    none, the mean over both modalities lacking one); beside runs that scored both, a run lacking one has none."""
    mm = {"before/forget/multimodal/mc_acc": 1.0, "after/forget/multimodal/mc_acc": 0.4,
          "before/retain/multimodal/mc_acc": 0.9, "after/retain/multimodal/mc_acc": 0.8}
    text = {"before/forget/text/mc_acc": 1.0, "after/forget/text/mc_acc": 0.8,
            "before/retain/text/mc_acc": 1.0, "after/retain/text/mc_acc": 1.0}
    clear = Run(name="clear", method="ga", overrides=[], metrics=mm, path=tmp_path / "clear")
    both = Run(name="both", method="ga", overrides=[], metrics={**mm, **text}, path=tmp_path / "both")
    assert scored_modalities([clear]) == ("multimodal",) and scored_modalities([clear, both]) == MODALITIES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_tradeoff([clear], tmp_path).is_file()
    with pytest.warns(UserWarning, match="no point for clear"):
        plot_tradeoff([clear, both], tmp_path)


def test_the_trade_off_plot_draws_each_setting_once_with_its_seeds_spread(tmp_path):
    """One point per setting, the mean of its seeds with their sample std, named once (until 2026-12-07 every run
    was a point labelled by its name, and equal points hid each other's labels)."""
    def run(method, seed, forget_after, retain_after):
        m = {f"{stage}/{split}/{mod}/mc_acc": v for mod in MODALITIES
             for stage, split, v in (("before", "forget", 1.0), ("after", "forget", forget_after),
                                     ("before", "retain", 1.0), ("after", "retain", retain_after))}
        return Run(name=f"{method} seed={seed}", method=method, overrides=[f"method={method}", f"seed={seed}"],
                   metrics=m, path=tmp_path / f"{method}{seed}", seed=seed)

    runs = [run("ga", 0, 0.8, 0.9), run("ga", 1, 0.6, 0.95), run("npo", 0, 0.8, 0.9)]
    points, skipped = tradeoff_points(runs)
    assert skipped == [] and [p.name for p in points] == ["ga", "npo"]
    ga, npo = points
    assert ga.seeds == [pytest.approx((0.2, 0.1)), pytest.approx((0.4, 0.05))]
    assert ga.mean == pytest.approx((0.3, 0.075)) and ga.std == pytest.approx((0.2 / 2 ** 0.5, 0.05 / 2 ** 0.5))
    assert npo.mean == pytest.approx((0.2, 0.1)) and npo.std == (0.0, 0.0)  # one seed: no spread drawn
    assert plot_tradeoff(runs, tmp_path).is_file()


def test_missing_metric_is_na_and_named(sweep):
    runs = load_runs([sweep])
    md = results_table(runs)
    npo = parse_table(md)["npo"]
    assert npo["MM untouched MC ↑"] == "n/a" and npo["text untouched MC ↑"] == "n/a"
    assert npo["MM forget MC ↓"] == "0.150"  # the rest of the row is still there
    assert parse_table(md)["ga"]["MM untouched MC ↑"] == "0.940"
    footnote = next(line for line in md.splitlines() if line.startswith("- n/a"))
    assert "npo" in footnote
    assert "after/untouched/multimodal/mc_acc" in footnote and "after/untouched/text/mc_acc" in footnote
    assert set(missing_metrics(runs)) == {("npo", "after/untouched/multimodal/mc_acc"),
                                          ("npo", "after/untouched/text/mc_acc")}


def test_missing_gap_and_time_are_na(sweep):
    m = json.loads((sweep / "0_ga" / "metrics.json").read_text())
    del m["metrics"]["before/forget/text/mc_acc"], m["metrics"]["time/method_s"]
    (sweep / "0_ga" / "metrics.json").write_text(json.dumps(m))
    runs = load_runs([sweep])
    ga = parse_table(results_table(runs))["ga"]
    assert ga["modality gap"] == "n/a" and ga["time"] == "n/a"
    assert ("ga", "time/method_s") in missing_metrics(runs)
    assert ("vanilla", "before/forget/text/mc_acc") in missing_metrics(runs)


def test_the_vanilla_row_reads_the_first_run_with_a_before_stage(tmp_path):
    """`python train.py -m method=evaluate,ga`: the evaluate job (one evaluation, stage `after`) comes first and has
    no before/*; until the forty-eighth session the vanilla row read it, every cell n/a, beside a run that had them."""
    root = tmp_path / "sweep"
    only_after = {k: v for k, v in metrics_for(GA_AFTER, 0.0).items() if not k.startswith("before/")}
    write_run(root / "0_evaluate", "evaluate", only_after, ["method=evaluate"])
    write_run(root / "1_ga", "ga", metrics_for(GA_AFTER, 1.94), ["method=ga"])
    runs = load_runs([root])
    md = results_table(runs)
    vanilla = parse_table(md)["vanilla"]
    assert (vanilla["MM forget MC ↓"], vanilla["MM retain MC ↑"], vanilla["text untouched MC ↑"]) == \
        ("1.000", "0.960", "0.970")
    assert "vanilla = before/* of `ga`" in md
    assert not [key for row, key in missing_metrics(runs) if row == "vanilla"]
    assert write_plots(runs, tmp_path / "plots")  # its vanilla line read from ga's before too


def test_run_without_metrics_is_skipped_with_a_warning(sweep):
    write_run(sweep / "3_kl", "kl", None, ["method=kl"])  # crashed: .hydra but no metrics.json
    with pytest.warns(UserWarning, match=re.escape(str(sweep / "3_kl"))):
        runs = load_runs([sweep])
    assert [r.name for r in runs] == ["ga", "npo", "manu alpha=5"]


def test_single_run_dirs_and_duplicate_names(sweep, tmp_path):
    a = write_run(tmp_path / "a", "ga", metrics_for(GA_AFTER, 1.0), [])
    b = write_run(tmp_path / "b", "ga", metrics_for(NPO_AFTER, 1.0), [])
    runs = load_runs([a, b, sweep])
    assert [r.name for r in runs] == ["ga [a]", "ga [b]", "ga [0_ga]", "npo", "manu alpha=5"]
    assert runs[1].metrics["after/forget/multimodal/mc_acc"] == 0.15


def test_malformed_json_names_the_file(sweep):
    bad = sweep / "1_npo" / "metrics.json"
    bad.write_text('{"method": "npo", "metrics": {')
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_runs([sweep])
    bad.write_text('{"method": "npo"}')  # valid JSON, but no metrics
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_runs([sweep])


def test_plots_are_written_as_png(sweep, tmp_path):
    out = tmp_path / "plots"
    paths = write_plots(load_runs([sweep]), out)
    assert {p.name for p in paths} == {"forget_mc_acc.png", "tradeoff.png"}
    for p in paths:
        assert p.parent == out and p.stat().st_size > 1000
        assert p.read_bytes()[:8] == PNG_MAGIC
    assert sorted(f.name for f in out.iterdir()) == ["forget_mc_acc.png", "tradeoff.png"]  # no temp files left


def test_main_end_to_end(sweep, capsys):
    md_path = main([str(sweep)])
    assert md_path == sweep / "results.md"
    md = md_path.read_text()
    assert f"python -m unlearn.report {sweep}" in md
    table = parse_table(md)
    assert table["ga"]["modality gap"] == "+0.500" and table["npo"]["text untouched MC ↑"] == "n/a"
    for png in ("forget_mc_acc.png", "tradeoff.png"):
        assert f"]({png})" in md
        assert (sweep / png).read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "| manu alpha=5 |" in printed and "| vanilla |" in printed
    # the sweep dir itself is now a reportable input again (the report files are not runs)
    assert [r.name for r in load_runs([sweep])] == ["ga", "npo", "manu alpha=5"]


def test_main_out_dir_and_single_run_default(sweep, tmp_path):
    out = tmp_path / "report_out"
    md = main([str(sweep / "0_ga"), str(sweep / "2_manu"), "--out", str(out)])
    assert md == out / "results.md" and "--out" in md.read_text()
    assert list(parse_table(md.read_text())) == ["vanilla", "ga", "manu alpha=5"]
    (sweep / "0_ga" / "results.md").write_text("the run's own before/after table\n")
    md = main([str(sweep / "0_ga")])
    assert md == sweep / "0_ga" / "report" / "results.md"
    assert (sweep / "0_ga" / "results.md").read_text() == "the run's own before/after table\n"
    with pytest.raises(SystemExit):  # a run's own directory as --out would replace its table
        main([str(sweep / "0_ga"), "--out", str(sweep / "0_ga")])
    assert (sweep / "0_ga" / "results.md").read_text() == "the run's own before/after table\n"


def test_main_without_runs_exits_nonzero(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no runs found"), pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "empty")])
    assert exc.value.code == 2


def test_main_shows_its_warnings_without_a_source_line(tmp_path, monkeypatch):
    """Each warning the report prints is its kind and message (Python's default format adds a line of the module's
    source, `runs = load_runs(...)`, after each: noise to the reader)."""
    import warnings

    shown = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        shown.append(warnings.formatwarning(message, category, filename, lineno, line)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty")])
    assert shown == [f"ReportWarning: no runs found in {tmp_path / 'empty'}: neither metrics.json nor run subdirs "
                     "with one\n"]
    from unlearn.report import said_alone

    assert warnings.formatwarning is not said_alone  # put back after the report's own


def test_names_leave_out_overrides_every_run_shares(tmp_path):
    from unlearn.report import Run, _without_shared_overrides

    runs = [Run(name="", method="manu", overrides=["method=manu", "logger=none", "manu.alpha=5"], metrics={},
                path=tmp_path),
            Run(name="", method="ga", overrides=["method=ga", "logger=none"], metrics={}, path=tmp_path)]
    assert [r.name for r in _without_shared_overrides(runs)] == ["manu alpha=5", "ga"]


def test_relearn_table_over_seeds(tmp_path):
    """after -> relearn per split and modality, mean ± std over the seeds of each setting."""
    from unlearn.report import group_by_seed, has_relearn, relearn_table

    root = tmp_path / "relearn"
    for i, (seed, after, back) in enumerate(((0, 0.1, 0.3), (1, 0.3, 0.5))):
        m = metrics_for(GA_AFTER, 1.0)
        m |= {"after/forget/multimodal/mc_acc": after, "relearn/forget/multimodal/mc_acc": back,
              "relearn/forget/text/mc_acc": 0.8, "after/test/multimodal/mc_acc": 0.5,
              "relearn/test/multimodal/mc_acc": 0.6}
        write_run(root / f"{i}_ga", "ga", m, ["method=ga", f"seed={seed}"])
    write_run(root / "2_manu", "manu", metrics_for(MANU_AFTER, 1.0), ["method=manu"])  # no attack: no row
    runs = load_runs([root])
    assert has_relearn(runs) and not has_relearn(runs[2:])
    table = parse_table(relearn_table(group_by_seed(runs)))
    assert set(table) == {"ga"} and table["ga"]["seeds"] == "2"
    assert table["ga"]["MM forget MC"] == "0.200 ± 0.141 -> 0.400 ± 0.141"
    assert table["ga"]["text forget MC"] == "0.700 ± 0.000 -> 0.800 ± 0.000"
    assert table["ga"]["MM test MC"] == "0.500 ± 0.000 -> 0.600 ± 0.000"
    assert table["ga"]["text test MC"] == "n/a -> n/a"
    md = main([str(root), "--out", str(tmp_path / "out")]).read_text()
    assert "## Relearning attack" in md


def test_question_count_is_the_rounded_mean_of_the_runs_that_record_it():
    """The question count a cell's binomial reference reads: runs may count differently (a dropped question,
    MLLMU-Bench's shot-skipped ones), so their rounded mean; runs without the count are left out."""
    from unlearn.report import question_count

    key = "after/forget/multimodal/mc_acc"
    runs = [{"after/forget/multimodal/n_mc_acc": n} for n in (50, 47, 46)] + [{}]
    assert question_count(runs, key) == 48  # (50 + 47 + 46) / 3 = 47.67; not 50 (max), 46 (min) or 36 (4 runs)
    assert question_count([{}], key) is None


def test_the_forget_plot_draws_each_run_against_its_own_vanilla_model(tmp_path, monkeypatch):
    """Two forget splits (or seeds) start from other taught models: until the fiftieth session the plot's one
    dashed vanilla line was the first run's, drawn over bars of runs that never started from it."""
    import unlearn.report as report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or path)

    def drawn(runs):
        """The heights of the dashed vanilla marks in the forget plot of `runs`."""
        figures.clear()
        report.plot_forget_bars(runs, tmp_path)
        ax = figures[0].axes[0]
        ys = {round(y, 6) for line in ax.lines if line.get_linestyle() == "--" for y in line.get_ydata()}
        return ys | {round(y, 6) for c in ax.collections for seg in c.get_segments() for _, y in seg}

    root = tmp_path / "sw"
    write_run(root / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "data.forget_split=forget_5"])
    other = {**metrics_for(GA_AFTER, 1.0), "before/forget/multimodal/mc_acc": 0.8, "before/forget/text/mc_acc": 0.9}
    write_run(root / "1_ga", "ga", other, ["method=ga", "data.forget_split=forget_10"])
    runs = load_runs([root])
    assert drawn(runs) == {1.0, 0.8, 0.9}
    assert report.vanilla_levels(runs, "multimodal") == [1.0, 0.8]
    assert drawn(runs[:1]) == {1.0}  # one vanilla model: one line


def test_the_page_names_the_overrides_every_run_shares(tmp_path):
    """The row names leave out what every run shares; until the fiftieth session the page then said nowhere that a
    sweep was of forget_5, and its rows read as the default split's."""
    root = tmp_path / "sw"
    write_run(root / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "data.forget_split=forget_5", "logger=none"])
    write_run(root / "1_manu", "manu", metrics_for(MANU_AFTER, 1.0),
              ["method=manu", "logger=none", "data.forget_split=forget_5"])
    runs = load_runs([root])
    assert [r.name for r in runs] == ["ga", "manu"]
    assert "- every run was made with `data.forget_split=forget_5`, `logger=none`" in results_table(runs)
    from unlearn.report import shared_overrides

    assert shared_overrides(runs) == ["data.forget_split=forget_5", "logger=none"]
    assert shared_overrides(runs[:1]) == []  # one run: its name says them all
    assert shared_overrides(load_runs([root / "0_ga", root / "0_ga"])) == ["data.forget_split=forget_5", "logger=none"]
    assert "every run was made with" not in results_table(runs[:1])


def test_an_override_the_method_never_reads_is_said_with_its_rows(tmp_path):
    """`-m method=ga,manu data.forget_modality=multimodal,text`: MANU never reads the key, so its two rows are one
    setting run twice; the runs warned in their logs, and until the fifty-first session the page named the rows by
    the modality and said nothing."""
    root = tmp_path / "sw"
    for i, (method, form) in enumerate([("ga", "multimodal"), ("ga", "text"), ("manu", "multimodal"), ("manu", "text")]):
        run = write_run(root / f"{i}_{method}", method, metrics_for(GA_AFTER, 1.0),
                        [f"method={method}", f"data.forget_modality={form}", "seed=0"])
        (run / "config.json").write_text(json.dumps({"method": {"name": method}, "manu": {"selection": "project"},
                                                     "data": {"forget_modality": form}, "seed": 0}))
    with pytest.warns(UserWarning) as said:
        runs = load_runs([root])
    notes = [str(w.message) for w in said if "never read" in str(w.message)]
    assert notes == ["data.forget_modality is set and never read in `manu data.forget_modality=multimodal`, `manu "
                     "data.forget_modality=text` (read by the gradient methods only; manu reads the forget people in the "
                     "forms its recipe names): those rows are the method without it, and rows that differ by it alone "
                     "are one setting run again"]
    from unlearn.report import unread_overrides

    config = {"method": {"name": "manu"}, "manu": {"selection": "project"}}
    assert unread_overrides(config, ["method=manu", "seed=1"]) == {}  # only what the command line set
    assert unread_overrides(None, ["data.forget_modality=text"]) == {}  # no config recorded: nothing to read
    # a recorded config of older code without the method's own node is read, not a traceback
    assert list(unread_overrides({"method": {"name": "mmunlearner"}}, ["data.forget_modality=text"])) == \
        ["data.forget_modality"]
    assert list(unread_overrides({"method": {"name": "manu"}}, ["data.forget_modality=text"])) == \
        ["data.forget_modality"]


def test_a_run_without_a_before_stage_from_another_taught_model_is_named(tmp_path):
    """A run with no before stage (eval.before=false; a frontier run after its seed's first) sits under the vanilla
    row, which is seed 0's model: one of seed 1 was read against it without a word (only runs whose own before
    values differ were named), while one of seed 0 reads it rightly."""
    after_only = {k: v for k, v in metrics_for(GA_AFTER, 1.0).items() if not k.startswith("before/")}
    write_run(tmp_path / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0"])
    write_run(tmp_path / "1_ga", "ga", after_only, ["method=ga", "seed=1", "eval.before=false"])
    write_run(tmp_path / "2_ga", "ga", after_only, ["method=ga", "seed=0", "eval.before=false", "method.epochs=3"])
    md = results_table(load_runs([tmp_path]))
    named = [line for line in md.splitlines() if "without a before stage of their own" in line]
    assert len(named) == 1, md
    assert named[0].endswith(": `ga seed=1 eval.before=false`"), named[0]
    assert "epochs=3" not in named[0]  # seed 0's model: the vanilla row is its own


def test_runs_that_name_no_taught_model_are_not_read_against_another_vanilla_model(tmp_path):
    """_unevaluated_other_vanilla names a run without a before stage only where both it and the vanilla row's run
    recorded a seed: a run that recorded none names no model to differ from. Mutation audit: dropping either
    `_recorded_seed` condition survived (each such run was named as from another vanilla model)."""
    after_only = {k: v for k, v in metrics_for(GA_AFTER, 1.0).items() if not k.startswith("before/")}
    note = "without a before stage of their own"
    seeded = tmp_path / "seeded"  # the vanilla row's run names seed 0; the other names no seed
    write_run(seeded / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0"])
    write_run(seeded / "1_ga", "ga", after_only, ["method=ga", "eval.before=false"])
    unseeded = tmp_path / "unseeded"  # the vanilla row's run names no seed; the other names seed 1
    write_run(unseeded / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga"])
    write_run(unseeded / "1_ga", "ga", after_only, ["method=ga", "seed=1", "eval.before=false"])
    for root in (seeded, unseeded):
        runs = load_runs([root])
        assert [r.seed for r in runs] in ([0, None], [None, 1])
        assert note not in results_table(runs)


def test_a_run_without_a_before_stage_is_drawn_against_the_vanilla_rows_level(tmp_path):
    """vanilla_levels: a run with no before stage (method=evaluate, eval.before=false) reads the vanilla row's
    run's level, not none. Mutation audit: reading each run's own before value alone survived."""
    from unlearn import report

    after_only = {k: v for k, v in metrics_for(GA_AFTER, 1.0).items() if not k.startswith("before/")}
    write_run(tmp_path / "0_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", "seed=0"])
    write_run(tmp_path / "1_ga", "ga", after_only, ["method=ga", "seed=0", "eval.before=false"])
    runs = load_runs([tmp_path])
    level = report.metric(runs[0].metrics, "before/forget/multimodal/mc_acc")
    assert level is not None and report.vanilla_levels(runs, "multimodal") == [level, level]


def test_load_runs_tells_code_apart_by_its_digest_not_its_commit(tmp_path):
    """load_runs warns of runs made by different code by metrics.json's code digest: two commits apart in the README
    alone ran the same code (test_provenance builds the digests). Mutation audit: Run.code_key read as code_label,
    and load_runs calling mixed_code without the keys, survived every test."""
    import warnings

    for name, seed, commit, digest in (("same", 0, "abcdef0123", "d1"), ("same", 1, "1234567890", "d1"),
                                       ("other", 0, "abcdef0123", "d1"), ("other", 1, "1234567890", "d2")):
        run = write_run(tmp_path / name / f"{seed}_ga", "ga", metrics_for(GA_AFTER, 1.0), ["method=ga", f"seed={seed}"])
        summary = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**summary, "code": {"commit": commit, "dirty": False,
                                                                           "digest": digest}}))
    for name, said in (("same", False), ("other", True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs = load_runs([tmp_path / name])
        assert [r.code_key for r in runs] == ["digest d1", "digest d1" if name == "same" else "digest d2"]
        assert any("runs made by different code" in str(w.message) for w in caught) is said
