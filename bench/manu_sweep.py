"""MANU hyper-parameter sweep on the embedded default (issue #3): forget vs retain MC accuracy per modality.

Runs a grid of `method=manu` settings in one process through `unlearn.pipeline.run` (the cached vanilla
model is reused; it is taught first if missing), appends one JSON line per run to `<out>/runs.jsonl`
(a rerun skips settings already there) and prints a table: one row per setting, one column per metric.

    .venv/bin/python -m bench.manu_sweep                         # the main grid (48 runs, MC only)
    .venv/bin/python -m bench.manu_sweep --grid towers           # prune one tower only
    .venv/bin/python -m bench.manu_sweep --grid best --tasks mc,gen,cloze   # chosen settings, every metric
    .venv/bin/python -m bench.manu_sweep --base 'finetune.frozen=[...]' --out /tmp/manu/frozen  # other vanilla

The criterion (issue #3): forget MC drops by >= 0.05 under BOTH modalities while retain MC drops by
<= 0.03 under both (`ok` column: yes; `<=0.05` where it passes only with retain drops up to 0.05).
`min fgt drop` = the smaller of the two forget drops; `max ret drop` = the larger of the two retain
drops. Drops are before - after, so a negative retain drop is an improvement.
Results and analysis: docs/manu_sweep.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

from bench.run_log import RunLog, quiet_sweep

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("forget", "retain", "untouched", "test")
MODS = ("multimodal", "text")
SHORT = {"multimodal": "mm", "text": "txt"}
LANG_ONLY = "~model.mlp_modules.vision"
VISION_ONLY = "~model.mlp_modules.language"


GRIDS = ("main", "high", "mid", "controls", "towers", "weights", "best")


def grid(name: str) -> list[list[str]]:
    """Each entry is a list of Hydra overrides on top of `method=manu`."""
    if name == "main":
        return [[f"manu.alpha={a}", f"manu.score={s}", f"manu.scope={sc}", f"manu.neuron={n}"]
                for n, s, sc, a in itertools.product(("input", "output"), ("paper", "reference"), ("tower", "layer"),
                                                     (1, 2, 5, 10, 20, 30))]
    if name == "high":  # between and beyond the main grid's alphas (input neurons)
        return [[f"manu.alpha={a}", f"manu.score={s}", f"manu.scope={sc}"]
                for s, sc, a in itertools.product(("paper", "reference"), ("tower", "layer"),
                                                  (15, 25, 40, 50, 70, 100))]
    if name == "mid":  # between alpha 5 and 20 (where the MLP-taught vanilla of docs/manu_sweep.md changes most)
        return [[f"manu.alpha={a}", f"manu.score={s}", f"manu.scope={sc}"]
                for s, sc, a in itertools.product(("paper", "reference"), ("tower", "layer"), (7, 10, 12, 15))]
    if name == "controls":  # untargeted pruning at the same counts: are the forget drops targeted?
        inverted = "manu.weights={abs:-2,freq:0,var:-2,rms:-2}"  # reference score negated: retain-specific first
        zero = "manu.weights={abs:0,freq:0,var:0,rms:0}"  # every score 0: the first k neurons by index
        return [["manu.score=reference", f"manu.scope={sc}", w, f"manu.alpha={a}"]
                for w, sc, a in itertools.product((inverted, zero), ("tower", "layer"), (10, 20, 30))]
    if name == "towers":  # one tower's MLPs only (the other tower's modules are not hooked, not pruned)
        return [[tower, f"manu.alpha={a}", f"manu.score={s}", f"manu.scope={sc}"]
                for tower, s, sc, a in itertools.product((LANG_ONLY, VISION_ONLY), ("paper", "reference"),
                                                         ("tower", "layer"), (10, 20, 30, 50, 100))]
    if name == "weights":  # the paper score with one importance at a time
        return [[f"manu.alpha={a}", "manu.score=paper", f"manu.scope={sc}",
                 "manu.weights={" + ",".join(f"{k}:{int(k == only)}" for k in ("abs", "freq", "var", "rms")) + "}"]
                for only, sc, a in itertools.product(("abs", "freq", "var", "rms"), ("tower", "layer"), (10, 20, 30))]
    if name == "best":  # the candidates docs/manu_sweep.md reports with every metric and on other forget splits
        var_only = "manu.weights={abs:0,freq:0,var:1,rms:0}"
        return [["manu.score=paper", "manu.alpha=5"],  # the default before this sweep (paper, tower, input)
                *[["manu.score=reference", f"manu.scope={sc}", f"manu.alpha={a}"]
                  for sc, a in (("tower", 20), ("tower", 25), ("tower", 30), ("tower", 40), ("tower", 50),
                                ("layer", 20), ("layer", 30), ("layer", 40))],
                ["manu.score=paper", "manu.scope=tower", var_only, "manu.alpha=30"],
                ["manu.score=paper", "manu.scope=layer", var_only, "manu.alpha=30"],
                [LANG_ONLY, "manu.score=reference", "manu.scope=tower", "manu.alpha=20"],
                [LANG_ONLY, "manu.score=reference", "manu.scope=layer", "manu.alpha=20"]]
    raise SystemExit(f"unknown grid {name!r}")


def key(overrides: list[str]) -> str:
    return " ".join(overrides) or "(default)"


def run_one(overrides: list[str], out: Path, cache: Path, tasks: str, before: bool) -> dict:
    from unlearn.config import compose_config
    from unlearn.pipeline import run

    cfg = compose_config(["method=manu", "logger=none", "save_model=false", f"eval.before={str(before).lower()}",
                          f"eval.tasks=[{tasks}]", *overrides], out, cache)
    start = time.perf_counter()
    metrics = run(cfg)
    summary = json.loads((out / "metrics.json").read_text())
    return {"metrics": metrics, "pruned": summary["artifacts"]["manu"]["pruned"],
            "wall_s": time.perf_counter() - start}


def drops(before: dict, after: dict) -> dict:
    d = {f"{s}_{SHORT[m]}": before[f"before/{s}/{m}/mc_acc"] - after[f"after/{s}/{m}/mc_acc"]
         for s in SPLITS for m in MODS}
    d["min_fdrop"] = min(d["forget_mm"], d["forget_txt"])
    d["max_rdrop"] = max(d["retain_mm"], d["retain_txt"])
    d["ok"] = d["min_fdrop"] >= 0.05 - 1e-9 and d["max_rdrop"] <= 0.03 + 1e-9
    d["ok5"] = d["min_fdrop"] >= 0.05 - 1e-9 and d["max_rdrop"] <= 0.05 + 1e-9
    return d


def table(rows: list[dict], before: dict, extra: tuple[str, ...] = (), base: str = "") -> str:
    cols = [f"{s}/{m}/mc_acc" for s in SPLITS for m in MODS] + list(extra)
    head = ["setting", "pruned"] + [f"{s} {SHORT[m]}" for s in SPLITS for m in MODS] + \
           [c.replace("/", " ").replace("_acc", "") for c in extra] + ["min fgt drop", "max ret drop", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| vanilla (before) | 0 | " + " | ".join(f"{before['before/' + c]:.3f}" for c in cols)
                 + " | - | - | - |")
    for r in rows:
        d = drops(before, r["metrics"])
        ok = "yes" if d["ok"] else ("<=0.05" if d["ok5"] else "")
        label = r["key"][len(base):].strip() if base and r["key"].startswith(base) else r["key"]
        lines.append(f"| {label.replace('|', '&#124;')} | {r['pruned']['total']['pruned']} | "
                     + " | ".join(f"{r['metrics']['after/' + c]:.3f}" for c in cols)
                     + f" | {d['min_fdrop']:+.3f} | {d['max_rdrop']:+.3f} | {ok} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="main", choices=GRIDS)
    p.add_argument("--out", default="/tmp/manu/sweep", help="runs.jsonl and per-run directories go here")
    p.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", str(ROOT / ".cache")))
    p.add_argument("--tasks", default="mc", help="evaluation tasks, e.g. mc or mc,gen,cloze")
    p.add_argument("--base", action="append", default=[], help="override added to every run (repeatable)")
    p.add_argument("--table-only", action="store_true", help="print the table of runs.jsonl, run nothing")
    args = p.parse_args()
    quiet_sweep()
    out = Path(args.out)
    log = RunLog(out)
    done = {(r["key"], r["tasks"]): r for r in log.read()}
    settings = [[*args.base, *o] for o in grid(args.grid)]

    # before-unlearning numbers: one run with eval.before=true (all tasks asked for), shared by all rows
    before_key = ("(before)", args.tasks + "|" + key(args.base))
    if before_key not in done and not args.table_only:
        # its own dir per (tasks, base): a later grid with other --tasks runs another before-run (a run never
        # starts in a finished run's dir, unlearn/run_dir.py)
        r = run_one([*args.base, "manu.alpha=0"], log.run_dir(out / f"before_{len(done):03d}"), Path(args.cache), args.tasks,
                    before=True)
        r.update(key=before_key[0], tasks=before_key[1])
        log.append(r)
        done[before_key] = r
    before = {k: v for k, v in done[before_key]["metrics"].items() if k.startswith("before/")}

    rows = []
    for i, o in enumerate(settings):
        k = key(o)
        if (k, args.tasks) not in done and not args.table_only:
            r = run_one(o, log.run_dir(out / f"run_{len(done):03d}"), Path(args.cache), args.tasks, before=False)
            r.update(key=k, tasks=args.tasks)
            log.append(r)
            done[(k, args.tasks)] = r
            d = drops(before, r["metrics"])
            print(f"[{i + 1}/{len(settings)}] {k}: forget drop mm {d['forget_mm']:+.3f} txt {d['forget_txt']:+.3f}, "
                  f"retain drop mm {d['retain_mm']:+.3f} txt {d['retain_txt']:+.3f} ({r['wall_s']:.1f} s)", flush=True)
        if (k, args.tasks) in done:
            rows.append(done[(k, args.tasks)])
    extra = ()
    if "gen" in args.tasks:
        extra += tuple(f"{s}/{m}/rougeL" for s in ("forget", "retain") for m in MODS)
    if "cloze" in args.tasks:
        extra += tuple(f"{s}/{m}/cloze_acc" for s in ("forget", "retain") for m in MODS)
    base = [b for b in args.base]
    print(f"\nAfter MANU ({args.grid} grid{', base: ' + ' '.join(base) if base else ''}; "
          f"{len(rows)} runs)\n")
    print(table(rows, before, extra, key(base) if base else ""))


if __name__ == "__main__":
    main()
