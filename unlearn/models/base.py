"""Stage 1 of the model organism: a base model pretrained on the background world, built once and cached.

The papers' models are pretrained on broad data and only then fine-tuned on the fictitious people (the
MLLMU-Bench vanilla models); a model taught nothing but the benchmark from random weights is a different
object. With `model.base` set (configs/model/tiny_llava_base.yaml) the vanilla model starts from this base
instead of from random weights; without it nothing here runs.

The base depends on the architecture (`model.build`) and on `model.base` (world, recipe, seed) only: not
on the run's seed, the benchmark's teaching recipe or the method, so every vanilla model of every seed
starts from the same base, as every MLLMU-Bench vanilla model starts from the same released checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn.agreed import agreed
from unlearn.io import atomic_dir, build_cached_dir, config_hash, reuse_cached, write_json
from unlearn.rng import seeded

log = logging.getLogger(__name__)
KEY_FILE = "base_key.txt"  # written beside the weights: which config a directory of base weights answers
NOT_IN_KEY = ("shipped",)  # where to find the weights, not what they are


def base_key(cfg: DictConfig) -> str:
    """What determines the base weights: architecture, world, pretraining recipe and base seed, and the trainer
    it is pretrained under where that is not trainer=cpu's (processes, precision, clipping: the vanilla key's
    rule, so the keys of bases pretrained on one CPU process, the shipped one among them, are unchanged; until
    2026-12-03 a base pretrained under DDP or bf16 was reused as the one-process base)."""
    from unlearn.pipeline import PLAIN_CPU_TRAINER, teaching_processes, teaching_trainer

    base = {k: v for k, v in OmegaConf.to_container(cfg.model.base, resolve=True).items() if k not in NOT_IN_KEY}
    parts = {"build": OmegaConf.to_container(cfg.model.build, resolve=True), "base": base}
    trainer = teaching_trainer(cfg)
    if trainer != PLAIN_CPU_TRAINER:
        parts["trainer"] = trainer
    if teaching_processes(cfg) > 1:  # since the thirtieth session, the one-process steps (FinetuneModule)
        parts["token_mean"] = "global"
    from unlearn import later_keys
    from unlearn.data.world import WORLD_VERSION

    if WORLD_VERSION != later_keys.WORLD_VERSION:  # a changed world generator pretrains anew (and re-ships)
        parts["world_version"] = WORLD_VERSION
    return config_hash(parts)


def shipped_dir(cfg: DictConfig) -> Path | None:
    shipped = cfg.model.base.get("shipped")
    if not shipped:
        return None
    path = Path(str(shipped))
    return path if path.is_absolute() else Path(__file__).resolve().parents[2] / path


def shipped_key(cfg: DictConfig) -> str | None:
    """The base key `model.base.shipped`'s key file names; None where nothing is shipped there."""
    path = shipped_dir(cfg)
    return (path / KEY_FILE).read_text().strip() if path is not None and (path / KEY_FILE).is_file() else None


def repository_shipped_keys() -> set[str]:
    """The base keys the repository ships weights for (assets/*/KEY_FILE)."""
    assets = Path(__file__).resolve().parents[2] / "assets"
    return {f.read_text().strip() for f in assets.glob(f"*/{KEY_FILE}")} if assets.is_dir() else set()


def base_identity(cfg: DictConfig) -> str:
    """Which base weights a run of `cfg` starts from: the shipped ones (base_key: the same on every machine), or
    the cache's, which a process on N != 1 CPU threads pretrains and keys apart, as the vanilla key does (the
    thread count moves the weights; until the thirty-first session a base pretrained on 4 threads was reused by
    one-thread runs of the same config, or the other way round, whichever ran first). A base pretrained here on
    one thread (or off CPU) whose key the repository ships weights for is keyed apart from them too: the shipped
    ones were pretrained in another float environment, and until 2026-12-05 `model.base.shipped=null` taught a
    vanilla model from this machine's base under the key of the one taught from the shipped base."""
    from unlearn.pipeline import keyed_threads

    key = base_key(cfg)
    if shipped_key(cfg) == key:
        return key
    threads = keyed_threads(cfg)
    if threads not in (None, 1):
        return config_hash({"base": key, "threads": threads})
    if key in repository_shipped_keys():
        return config_hash({"base": key, "threads": threads, "pretrained": "here"})
    return key


def base_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir) / "base" / f"{cfg.model.name}-{base_identity(cfg)}"


def ensure_base(cfg: DictConfig) -> Path:
    """The base model's directory: shipped weights (`model.base.shipped`) when their key matches, else the
    cache, pretraining first if it is missing."""
    key = base_key(cfg)
    shipped = cfg.model.base.get("shipped")
    if shipped:
        found = shipped_key(cfg)
        if found == key:
            path = shipped_dir(cfg)
            log.info("base model: shipped %s", path)
            return path
        log.warning("model.base.shipped=%s holds base %s, this config's base is %s: pretraining instead "
                    "(python -m unlearn.models.base --ship %s rebuilds the shipped copy)", shipped, found, key, shipped)
    path = base_path(cfg)
    if agreed(f"base model cached {path}", path.exists):  # every rank pretrains, or none
        log.info("base model: reusing %s", reuse_cached(path))
        return path
    log.info("base model missing: pretraining on the background world (cached at %s)", path)
    build_cached_dir(path, lambda tmp: _build(cfg, tmp))
    return path


def _build(cfg: DictConfig, out: Path) -> None:
    from unlearn.models.loading import save_model

    start = time.perf_counter()
    model, processor = instantiate(cfg.model.build)
    lost_steps: list[dict] = []
    history = pretrain(model, processor, cfg, lost_steps)
    seconds = time.perf_counter() - start
    world = world_mc_accuracy(model, processor, cfg)
    save_model(model, processor, out)
    (out / KEY_FILE).write_text(base_key(cfg) + "\n")
    write_json(out / "base_history.json", {"key": base_key(cfg), "seconds": seconds, "loss_per_epoch": history,
                                           "world_mc_acc": world, "threads": torch.get_num_threads(),
                                           "lost_steps": lost_steps})
    log.info("base model pretrained in %.0f s (loss per epoch %s; world MC accuracy %s)", seconds,
             [round(x, 3) for x in history], world)


PROBE_PEOPLE = 20


def world_items(processor, cfg: DictConfig):
    """Evaluation items for the first PROBE_PEOPLE world people (taught templates, clean portraits)."""
    from unlearn.data.world import eval_rows
    from unlearn.eval.items import flatten

    return flatten("world", eval_rows(instantiate(cfg.model.base.world), PROBE_PEOPLE), processor.pixel_values)


def world_mc_accuracy(model, processor, cfg: DictConfig) -> dict[str, float]:
    """MC accuracy on the probe world people, per form: how much of its world the base knows."""
    from callbacks.memorisation import MemorisationCheck

    return MemorisationCheck(world_items(processor, cfg), processor, target=1.0).accuracy(model)


class _EpochLoss(L.Callback):
    def __init__(self):
        self.history: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module):
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            self.history.append(float(loss))
            log.info("base epoch %d/%d: loss %.3f", trainer.current_epoch + 1, trainer.max_epochs, float(loss))


def pretrain(model: torch.nn.Module, processor, cfg: DictConfig, lost_steps: list | None = None) -> list[float]:
    """Fit `model` on the world's sequences for `model.base.epochs` epochs; returns the last loss per epoch.
    `lost_steps`: receives callbacks/lost_updates.py's record of the steps its weights' dtype rounds away, as every
    other training stage's goes to metrics.json.

    Runs under its own seed inside a forked RNG, so whether the base was just built or read from disk,
    the caller's random state afterwards is the same.
    """
    from unlearn.data.collate import collate
    from unlearn.data.world import WorldSequences
    from unlearn.methods.finetune import FinetuneModule, shuffled_loader

    b = cfg.model.base
    with seeded(int(b.seed)):
        data = WorldSequences(instantiate(b.world), processor, seed=int(b.seed))
        pad = processor.tokenizer.pad_token_id
        loader = shuffled_loader(data, int(b.batch_size), lambda x: collate(x, pad),
                                 generator=torch.Generator().manual_seed(int(b.seed)))
        module = FinetuneModule(model, instantiate(b.optimizer), instantiate(b.scheduler) if b.scheduler else None,
                                 config_key="model.base")
        from callbacks.interrupt_notice import InterruptNotice  # SIGTERM ends with a failure, not status 0
        from callbacks.lost_updates import LostUpdateCheck

        losses = _EpochLoss()
        callbacks = [losses, LostUpdateCheck(lost_steps if lost_steps is not None else []), InterruptNotice()]
        if b.get("target_mc_acc") is not None:  # stop once the base knows its world, as stage 2 stops
            from callbacks.memorisation import MemorisationCheck

            callbacks.append(MemorisationCheck(world_items(processor, cfg), processor, b.target_mc_acc,
                                               b.check_every, section="model.base"))
        trainer = instantiate(cfg.trainer, max_epochs=int(b.epochs), logger=False, enable_checkpointing=False,
                              callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                              use_distributed_sampler=False)  # RandomShuffle shards itself
        trainer.fit(module, loader)
    model.eval()
    return losses.history


def main() -> None:
    """`python -m unlearn.models.base [--ship DIR] [overrides...]`: pretrain (or reuse) the base model."""
    import argparse

    from unlearn.config import compose_config

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--ship", help="copy the base into this directory (relative to the repository root)")
    p.add_argument("overrides", nargs="*", default=["model=tiny_llava_base"])
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.ship:  # the shipped base is every machine's one-thread base (its key file names base_key, which
        # base_identity reads as one thread); until 2026-12-05 a --ship on N threads shipped the N-thread weights
        torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[2]
    cfg = compose_config(["logger=none", *args.overrides], root / "outputs" / "base", root / ".cache")
    with_shipped = OmegaConf.to_container(cfg.model.base)
    cfg.model.base.shipped = None  # build or reuse the cached copy, never read the shipped one
    path = ensure_base(cfg)
    print(f"base {base_key(cfg)}: {path}")
    if args.ship:
        dest = ship(path, root / args.ship)
        print(f"shipped to {dest} (model.base.shipped was {with_shipped.get('shipped')})")


def ship(built: Path, dest: Path) -> Path:
    """Copy the base in `built` to `dest`, replacing only a shipped base (a directory holding KEY_FILE), and whole:
    the copy is made beside `dest` and swapped in, so an interrupted copy never leaves a `dest` whose key file
    matches weights it lacks (ensure_base trusts the key). Until the thirty-first session `--ship` deleted any
    directory it was given (`--ship .` the repository) and copied in place."""
    import shutil

    dest = Path(dest).resolve()
    if dest.exists() and not (dest / KEY_FILE).is_file():
        raise FileExistsError(f"--ship {dest}: exists and holds no shipped base ({KEY_FILE}); nothing was written: "
                              "give a new directory or a shipped base's")
    new, old = dest.parent / f".{dest.name}.new", dest.parent / f".{dest.name}.old"
    with atomic_dir(new) as tmp:
        shutil.copytree(built, tmp, dirs_exist_ok=True)
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
    os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


if __name__ == "__main__":
    main()
