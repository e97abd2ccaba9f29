"""Does a small set of MLP neurons carry the forget people's facts? MANU against a gradient-attribution oracle.

For each vanilla model (the embedded default, or the model `--base` composes; one per `seed`), on the neurons MANU
prunes (the input of every hooked `down_proj` / `fc2`, the vision layers the language model never reads left out,
as MANU leaves them):

- MANU's statistics pass (`unlearn.methods.manu`: `statistics_datasets`, `ActivationPass`, its
  `ActivationStatistics`), scored by `neuron_scores` (`reference`, the default; `paper`; `random`, the control);
- the oracle: a first-order (Taylor) estimate of what zeroing each neuron alone does to the mean answer-token
  loss on each of MANU's four statistics sets (forget / retain x image+text / text-only, the same sequences the
  pass reads, not the evaluation questions): effect(i) = -sum over positions of a_i * dL/da_i
  (`taylor_effects`). `oracle` = mean of the two forget effects - mean of the two retain effects (raise the forget
  loss, spare retain; a difference, not a ratio, since retain effects near or below 0 make a ratio meaningless);
  `oracle_forget` = the forget effects alone (no retain term); `oracle_iter` = `oracle` re-estimated on the pruned
  model in 5 rounds (`iterative_oracle`), since the one-shot estimate understates what a whole set does.

Every selector's scores go through the package's own `select_neurons` (top alpha % per tower) and `prune_neurons`
(zeroing) on the same vanilla weights, then `pipeline.evaluate` (MC, forget and retain). Also recorded: the actual
answer-token loss on the four statistics sets after each pruning (against the oracle's first-order sum), the
overlap of MANU's and the oracle's selections, and (`--single`) the actual effect of zeroing single neurons.
Results and reading: docs/manu_oracle.md.

    .venv/bin/python -m bench.manu_oracle --seeds 0 1 2 --alphas 1 2 5 10 20 \
        --selectors reference paper random oracle oracle_forget --out /tmp/manu_oracle/full --cache /tmp/manu_oracle/cache
    .venv/bin/python -m bench.manu_oracle --seeds 0 1 2 --out /tmp/manu_oracle/full --table-only
    # the tables of several runs on the same models, merged (the rows and overlaps the first --out lacks, added)
    .venv/bin/python -m bench.manu_oracle --seeds 0 1 2 --out /tmp/manu_oracle/full /tmp/manu_oracle/iter --table-only
    # another model: --base adds Hydra overrides to its config (the vanilla cache key follows them); own --out
    .venv/bin/python -m bench.manu_oracle --base experiment=organism --base finetune.lora.enabled=true \
        --seeds 0 1 2 --alphas 5 10 20 1 2 --selectors reference random oracle oracle_iter \
        --out /tmp/manu_oracle/organism_lora --cache /tmp/manu_oracle/cache

(every command of docs/manu_oracle.md is there).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("forget/multimodal", "forget/text", "retain/multimodal", "retain/text")
SPLITS = ("forget", "retain")
MODS = ("multimodal", "text")
SHORT = {"multimodal": "mm", "text": "txt"}
SELECTORS = ("reference", "paper", "random", "oracle", "oracle_forget", "oracle_iter")
ALPHAS = (1, 2, 5, 10, 20)


def answer_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Sum of the answer tokens' cross-entropy in `batch` (labels != IGNORE), and how many there are: the
    training losses' own token log-probabilities (unlearn/losses.py `token_logprobs`)."""
    from unlearn.eval.scoring import model_inputs
    from unlearn.losses import token_logprobs

    device = next(model.parameters()).device
    logits = model(**model_inputs(batch, device), use_cache=False).logits
    logp, mask = token_logprobs(logits, batch["labels"].to(device))
    return -logp.sum(), int(mask.sum())


def taylor_effects(model, batches, modules: list[str]) -> dict[str, torch.Tensor]:
    """module -> per-input-neuron first-order change of the mean answer-token loss over `batches` when the neuron
    is zeroed at every position: -sum_t a_t * dL/da_t, L = (sum of answer-token losses) / (answer tokens).

    Positions that cannot reach an answer token (padding, later positions) have zero gradient, so summing over
    every position is the effect of zeroing the neuron everywhere. Accumulated in float64."""
    table = dict(model.named_modules())
    held: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args):
            args[0].retain_grad()
            held[name] = args[0]
        return hook

    handles = [table[n].register_forward_pre_hook(keep(n)) for n in modules]
    sums = {n: torch.zeros(table[n].weight.shape[1], dtype=torch.float64) for n in modules}
    tokens = 0
    try:
        with torch.enable_grad():
            for batch in batches:
                model.zero_grad(set_to_none=True)
                held.clear()
                loss, n = answer_loss_sum(model, batch)
                loss.backward()
                tokens += n
                for name, a in held.items():
                    if a.grad is None:  # a module whose output never reached the loss in this batch
                        continue
                    sums[name] -= (a.detach() * a.grad).reshape(-1, a.shape[-1]).sum(0).double().cpu()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return {n: s / max(tokens, 1) for n, s in sums.items()}


def oracle_scores(effects: dict[str, dict[str, torch.Tensor]], variant: str = "oracle") -> dict[str, torch.Tensor]:
    """Per-neuron scores from the four sets' Taylor effects (larger = prune first)."""
    modules = list(effects[KEYS[0]])
    forget = {n: (effects["forget/multimodal"][n] + effects["forget/text"][n]) / 2 for n in modules}
    if variant == "oracle_forget":
        return forget
    if variant != "oracle":
        raise ValueError(f"unknown oracle variant {variant!r}")
    return {n: forget[n] - (effects["retain/multimodal"][n] + effects["retain/text"][n]) / 2 for n in modules}


def jaccard(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names: list[str]) -> dict:
    """|A & B| / |A | B| and |A & B| / |B| over the neurons of `names` (B: the reference set, e.g. the oracle's)."""
    inter = sum(int((a[n] & b[n]).sum()) for n in names)
    union = sum(int((a[n] | b[n]).sum()) for n in names)
    size_b = sum(int(b[n].sum()) for n in names)
    return {"jaccard": inter / union if union else float("nan"), "share_of_b": inter / size_b if size_b else float("nan"),
            "both": inter, "b": size_b}


def _loaders(datasets: dict, pad: int, batch_size: int) -> dict[str, list]:
    from unlearn.data.collate import collate

    return {k: list(DataLoader(ds, batch_size=batch_size, collate_fn=lambda b: collate(b, pad)))
            for k, ds in datasets.items()}


@torch.no_grad()
def pass_losses(model, loaders: dict[str, list]) -> dict[str, float]:
    """Mean answer-token loss on each statistics set."""
    out = {}
    for k, batches in loaders.items():
        total, n = 0.0, 0
        for b in batches:
            loss, m = answer_loss_sum(model, b)
            total, n = total + float(loss), n + m
        out[k] = total / n
    return out


def bench_config(seed: int, run_dir: Path, cache: Path, base=()):
    """The composed config of one seed's model: MANU's, MC only, `base` (Hydra overrides, e.g.
    `experiment=organism`) first."""
    from unlearn.config import compose_config

    return compose_config([*base, "method=manu", "logger=none", "save_model=false", "eval.tasks=[mc]",
                           "eval.mc_also=null", f"seed={seed}"], run_dir, cache)


def measure_seed(seed: int, cache: Path, out: Path, alphas, selectors, single: int, path: Path, base=()) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    from unlearn.manu.neuron_scores import neuron_scores
    from unlearn.manu.prune import prune_neurons
    from unlearn.manu.selection import select_neurons
    from unlearn.methods.manu import ActivationPass, pass_callbacks, statistics_datasets
    from unlearn.pipeline import RunContext, ensure_vanilla, evaluate, load_configured

    run_dir = out / f"seed{seed}"
    cfg = bench_config(seed, run_dir, cache, base)
    m = cfg.manu
    L.seed_everything(cfg.seed)
    bench = instantiate(cfg.data.benchmark)
    source = ensure_vanilla(cfg, bench)
    model, proc = load_configured(cfg, source)
    model.eval()
    ctx = RunContext(cfg, bench, model, proc, run_dir)
    pad = proc.tokenizer.pad_token_id
    datasets = statistics_datasets(ctx, m.max_retain_people, m.get("sequences", "template"))
    rec = {"seed": seed, "base": list(base), "source": str(source), "scope": m.scope, "neuron": m.neuron, "mode": m.prune.mode}

    t = time.perf_counter()  # MANU's statistics: its own pass and callback, no pruning callback
    stats, _ = pass_callbacks(ctx, "project")
    ctx.trainer(callbacks=[stats], use_distributed_sampler=False, enable_model_summary=False).validate(
        ActivationPass(model, datasets, m.batch_size, pad), verbose=False)
    towers = dict(stats.towers)
    names = list(towers)
    rec["stats_s"] = time.perf_counter() - t

    t = time.perf_counter()
    loaders = _loaders(datasets, pad, m.batch_size)
    effects = {k: taylor_effects(model, loaders[k], names) for k in KEYS}
    rec["taylor_s"] = time.perf_counter() - t
    scores = {s: (oracle_scores(effects, s) if s in ("oracle", "oracle_forget")
                  else neuron_scores(stats.moments, towers, s, dict(m.weights) if m.weights else None, cfg.seed))
              for s in selectors if s != "oracle_iter"}
    base_loss = pass_losses(model, loaders)
    rec["pass_loss_before"] = base_loss

    before, _ = evaluate(ctx, "before", list(SPLITS))
    rec["before"] = {f"{s}/{mo}": before[f"before/{s}/{mo}/mc_acc"] for s in SPLITS for mo in MODS}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rec["runs"], rec["overlap"] = [], {}
    for alpha in alphas:
        masks = {}
        for sel in selectors:
            t = time.perf_counter()
            model.load_state_dict(state)
            if sel == "oracle_iter":  # prunes the model as it goes
                masks[sel] = iterative_oracle(model, loaders, towers, alpha, m, steps=5)
            else:
                masks[sel] = select_neurons(scores[sel], towers, alpha, m.scope)
                prune_neurons(model, masks[sel], m.neuron, m.prune.mode, m.prune.factor)
            metrics, _ = evaluate(ctx, "after", list(SPLITS))
            after = {f"{s}/{mo}": metrics[f"after/{s}/{mo}/mc_acc"] for s in SPLITS for mo in MODS}
            losses = pass_losses(model, loaders)
            predicted = {k: sum(float(effects[k][n][masks[sel][n]].sum()) for n in names) for k in KEYS}
            rec["runs"].append({"alpha": alpha, "selector": sel, "after": after,
                                "pruned": sum(int(v.sum()) for v in masks[sel].values()),
                                "pass_loss_change": {k: losses[k] - base_loss[k] for k in KEYS},
                                "taylor_sum": predicted, "wall_s": time.perf_counter() - t})
            d = {k: rec["before"][k] - after[k] for k in after}
            print(f"seed {seed} alpha {alpha:>4} {sel:14s} forget drop mm {d['forget/multimodal']:+.3f} txt "
                  f"{d['forget/text']:+.3f}, retain drop mm {d['retain/multimodal']:+.3f} txt {d['retain/text']:+.3f}"
                  f" ({time.perf_counter() - t:.1f} s)", flush=True)
        ov = {}
        for a, b in (("reference", "oracle"), ("paper", "oracle"), ("random", "oracle"), ("reference", "random"),
                     ("oracle_forget", "oracle"), ("reference", "oracle_iter"), ("oracle", "oracle_iter")):
            if a in masks and b in masks:
                for tower in sorted(set(towers.values())):
                    ov[f"{a}|{b}|{tower}"] = jaccard(masks[a], masks[b], [n for n in names if towers[n] == tower])
                ov[f"{a}|{b}|all"] = jaccard(masks[a], masks[b], names)
        rec["overlap"][str(alpha)] = ov
    model.load_state_dict(state)
    if single:  # the selection runs are written first: a stopped ablation loses only itself
        path.write_text(json.dumps(rec, indent=1))
        rec["single"] = single_ablations(model, loaders, effects, scores["oracle"], towers, single, seed)
    return rec


def iterative_oracle(model, loaders, towers: dict, alpha: float, m, steps: int = 5) -> dict[str, torch.Tensor]:
    """The oracle re-estimated on the pruned model: `steps` rounds, each adding the top neurons (the `oracle`
    score, forget - retain effect) up to alpha * round / steps %, through `select_neurons` and `prune_neurons`.
    The pruned neurons are kept (scored +inf: zeroed, their effect is 0), so later rounds see what earlier ones
    did; with steps=1 it is `oracle`."""
    from unlearn.manu.prune import prune_neurons
    from unlearn.manu.selection import select_neurons

    names = list(towers)
    masks = {n: torch.zeros(model.get_submodule(n).weight.shape[1], dtype=torch.bool) for n in names}
    for r in range(1, steps + 1):
        effects = {k: taylor_effects(model, loaders[k], names) for k in KEYS}
        score = oracle_scores(effects)
        score = {n: torch.where(masks[n], torch.tensor(float("inf"), dtype=score[n].dtype), score[n]) for n in names}
        new = select_neurons(score, towers, alpha * r / steps, m.scope)
        if any(bool((masks[n] & ~new[n]).any()) for n in names):
            raise AssertionError("a later round dropped a pruned neuron")
        prune_neurons(model, {n: new[n] & ~masks[n] for n in names}, m.neuron, m.prune.mode, m.prune.factor)
        masks = new
    return masks


@torch.no_grad()
def single_ablations(model, loaders, effects, score, towers, count: int, seed: int) -> list[dict]:
    """Zero one neuron at a time (its consumer column; the producers' rows are then irrelevant) and read the
    actual change of each set's loss beside the Taylor estimate: the oracle's top `count` per tower and as many
    drawn at random."""
    base = pass_losses(model, loaders)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for tower in sorted(set(towers.values())):
        names = [n for n in towers if towers[n] == tower]
        flat = torch.cat([score[n] for n in names])
        where = [(n, i) for n in names for i in range(score[n].numel())]
        top = torch.sort(flat, descending=True, stable=True).indices[:count].tolist()
        rand = torch.randperm(len(where), generator=gen)[:count].tolist()
        for kind, picks in (("oracle_top", top), ("random", rand)):
            for j in picks:
                n, i = where[j]
                w = model.get_submodule(n).weight
                col = w[:, i].clone()
                w[:, i] = 0
                losses = pass_losses(model, loaders)
                w[:, i] = col
                out.append({"tower": tower, "kind": kind, "module": n, "neuron": i,
                            "actual": {k: losses[k] - base[k] for k in KEYS},
                            "taylor": {k: float(effects[k][n][i]) for k in KEYS}})
    return out


# --- report ----------------------------------------------------------------------------------------------------

def merge_records(records: list[dict]) -> tuple[dict, int]:
    """One seed's records from several runs on the same model as one: the first record, then the (alpha, selector)
    runs, overlap pairs and single-neuron rows it lacks, from each later one in turn. Returns it and how many runs
    both held with a different MC after (the first's are kept). Records of another base, or another MC before (not
    the same model), are refused."""
    merged = copy.deepcopy(records[0])
    have = {(r["alpha"], r["selector"]): r for r in merged["runs"]}
    differ = 0
    for rec in records[1:]:
        if rec.get("base", []) != merged.get("base", []) or rec["before"] != merged["before"]:
            raise ValueError(f"seed {rec['seed']}: the records are not of one model (base or MC before differ)")
        for run in rec["runs"]:
            key = (run["alpha"], run["selector"])
            if key in have:
                differ += have[key]["after"] != run["after"]
            else:
                merged["runs"].append(run)
                have[key] = run
        for alpha, pairs in rec.get("overlap", {}).items():
            for pair, value in pairs.items():
                merged.setdefault("overlap", {}).setdefault(alpha, {}).setdefault(pair, value)
        if rec.get("single") and not merged.get("single"):
            merged["single"] = rec["single"]
    return merged, differ


def _ms(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:+.3f} ± {sd:.3f}"


def table(records: list[dict]) -> str:
    rows: dict[tuple, list[dict]] = {}
    for r in records:
        for run in r["runs"]:
            d = {k: r["before"][k] - run["after"][k] for k in run["after"]}
            rows.setdefault((run["alpha"], run["selector"]), []).append(d)
    head = ["alpha %", "selector", "seeds"] + [f"{s} drop {SHORT[m]}" for s in SPLITS for m in MODS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {s: i for i, s in enumerate(SELECTORS)}
    for (alpha, sel), ds in sorted(rows.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        lines.append(f"| {alpha} | {sel} | {len(ds)} | "
                     + " | ".join(_ms([d[f"{s}/{m}"] for d in ds]) for s in SPLITS for m in MODS) + " |")
    return "\n".join(lines)


def loss_table(records: list[dict]) -> str:
    """Actual change of the statistics sets' answer loss after pruning, beside the oracle's first-order sum."""
    rows: dict[tuple, list[dict]] = {}
    for r in records:
        for run in r["runs"]:
            rows.setdefault((run["alpha"], run["selector"]), []).append(run)
    head = ["alpha %", "selector"] + [f"{k} actual (Taylor sum)" for k in KEYS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {s: i for i, s in enumerate(SELECTORS)}
    for (alpha, sel), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        cells = [f"{statistics.fmean(x['pass_loss_change'][k] for x in runs):+.3f} "
                 f"({statistics.fmean(x['taylor_sum'][k] for x in runs):+.3f})" for k in KEYS]
        lines.append(f"| {alpha} | {sel} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overlap_table(records: list[dict], alpha: str = "5") -> str:
    pairs: dict[str, list[dict]] = {}
    for r in records:
        for k, v in r["overlap"].get(alpha, {}).items():
            pairs.setdefault(k, []).append(v)
    lines = ["| A vs B | tower | seeds | |B| | Jaccard | share of B also in A |", "|---|---|---|---|---|---|"]
    for k, vs in pairs.items():
        a, b, tower = k.split("|")
        lines.append(f"| {a} vs {b} | {tower} | {len(vs)} | {vs[0]['b']} | "
                     f"{statistics.fmean(v['jaccard'] for v in vs):.3f} ± "
                     f"{statistics.stdev(v['jaccard'] for v in vs) if len(vs) > 1 else 0:.3f} | "
                     f"{statistics.fmean(v['share_of_b'] for v in vs):.3f} |")
    return "\n".join(lines)


def single_table(records: list[dict]) -> str:
    lines = ["| seed | tower | neurons | key | mean actual | mean Taylor | Pearson r (actual, Taylor) |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        if not r.get("single"):
            continue
        for tower in sorted({x["tower"] for x in r["single"]}):
            for kind in ("oracle_top", "random"):
                xs = [x for x in r["single"] if x["tower"] == tower and x["kind"] == kind]
                for k in KEYS:
                    act, tay = [x["actual"][k] for x in xs], [x["taylor"][k] for x in xs]
                    corr = statistics.correlation(act, tay) if len(xs) > 2 and statistics.pstdev(tay) > 0 \
                        and statistics.pstdev(act) > 0 else float("nan")
                    lines.append(f"| {r['seed']} | {tower} | {kind} ({len(xs)}) | {k} | "
                                 f"{statistics.fmean(act):+.5f} | {statistics.fmean(tay):+.5f} | {corr:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--alphas", type=float, nargs="+", default=list(ALPHAS))
    # choices: a misspelt selector is refused here, not as a KeyError after the teaching and the statistics pass
    p.add_argument("--selectors", nargs="+", default=list(SELECTORS), choices=SELECTORS)
    p.add_argument("--single", type=int, default=0, help="per tower, single-neuron ablations of this many oracle-top "
                                                         "and random neurons (last seed only)")
    p.add_argument("--out", nargs="+", default=["/tmp/manu_oracle"], help="where the seed files go; with "
                   "--table-only, several: their tables merged (merge_records)")
    p.add_argument("--cache", default=os.environ.get("UNLEARN_CACHE", str(ROOT / ".cache")))
    p.add_argument("--base", action="append", default=[], help="Hydra override of the model's config, e.g. "
                   "experiment=organism (repeatable; default: the embedded default); use its own --out")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    from bench.run_log import quiet_sweep

    quiet_sweep()
    outs = [Path(o) for o in args.out]
    if len(outs) > 1 and not args.table_only:
        p.error("several --out only with --table-only (a run writes to one)")
    out = outs[0]
    out.mkdir(parents=True, exist_ok=True)
    alphas = [int(a) if float(a).is_integer() else a for a in args.alphas]
    for path in (o / f"seed{s}.json" for o in outs for s in args.seeds):
        measured = json.loads(path.read_text()).get("base", []) if path.exists() else args.base
        if measured != args.base:
            raise SystemExit(f"{path} was measured with --base {measured}, not {args.base}: use another --out")
    for i, seed in enumerate(args.seeds):
        path = out / f"seed{seed}.json"
        if args.table_only or (path.exists() and ("single" in json.loads(path.read_text())
                                                  or not args.single or i < len(args.seeds) - 1)):
            continue
        rec = measure_seed(seed, Path(args.cache), out, alphas, args.selectors,
                           args.single if i == len(args.seeds) - 1 else 0, path, args.base)
        path.write_text(json.dumps(rec, indent=1))
    records, differ = [], 0
    for s in args.seeds:
        found = [json.loads((o / f"seed{s}.json").read_text()) for o in outs if (o / f"seed{s}.json").exists()]
        if found:
            rec, d = merge_records(found)
            records.append(rec)
            differ += d
    if differ:
        print(f"\n{differ} runs held by more than one --out differ in MC after; the first --out's are shown")
    print("\nMC accuracy drop (before - after), mean ± sample std over seeds\n")
    print(table(records))
    print("\nAnswer-token loss change on MANU's statistics sets, actual (oracle's first-order sum), mean over seeds\n")
    print(loss_table(records))
    print("\nOverlap of selections at alpha 5 %\n")
    print(overlap_table(records))
    if any(r.get("single") for r in records):
        print("\nSingle-neuron ablations on the statistics sets (loss change)\n")
        print(single_table(records))


if __name__ == "__main__":
    main()
