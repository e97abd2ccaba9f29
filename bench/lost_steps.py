"""How many of each seed's vanilla model weights an Adam step of lr leaves unchanged once they are stored in
bfloat16 (what trainer.precision=bf16-true does to them; callbacks/lost_updates.py counts the same in every run),
as mean ± std over seeds. `python -m bench.lost_steps [OVERRIDE ...] --cache .cache --seeds 0 1 2 [--lrs 2e-5 5e-5]`
(the overrides first: --seeds and --lrs take every word after them): each seed's vanilla model is read from the
cache, or taught into it first (one torch thread, as the frontier's workers teach, so their cached models are the
ones read)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", required=True, help="cache dir: vanilla models are read from it or taught into it")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-5, 5e-5, 1e-4])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the config whose vanilla models are read")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from hydra.utils import instantiate

    from unlearn.config import compose_config
    from unlearn.models.precision import steps_rounded_away
    from unlearn.pipeline import ensure_vanilla, load_configured
    from unlearn.report import mean_std
    from unlearn.runtime import quiet_libraries

    quiet_libraries()
    cache = Path(args.cache).resolve()
    fractions: dict[float, list[float]] = {lr: [] for lr in args.lrs}
    for seed in args.seeds:
        cfg = compose_config(["logger=none", f"seed={seed}", *args.overrides], cache / "lost_steps_run", cache)
        source = ensure_vanilla(cfg, instantiate(cfg.data.benchmark))
        model, _ = load_configured(cfg, source)
        weights = [p.detach().to(torch.bfloat16) for p in model.parameters() if p.is_floating_point()]
        total = sum(w.numel() for w in weights)
        median = torch.cat([w.float().abs().reshape(-1) for w in weights]).median().item()
        row = []
        for lr in args.lrs:
            fractions[lr].append(sum(int(steps_rounded_away(w, lr)) for w in weights) / total)
            row.append(f"lr {lr:g}: {fractions[lr][-1]:.3f}")
        print(f"seed {seed} ({Path(source).name}, {total:,} weights, median |w| {median:.3f}): " + ", ".join(row))
    for lr, values in fractions.items():
        mean, std = mean_std(values)
        spread = "" if std is None else f" ± {std:.3f}"
        print(f"lr {lr:g}: {mean:.3f}{spread} of the weights unchanged in bfloat16 ({len(values)} seeds)")


if __name__ == "__main__":
    main()
