"""Which methods FSDP cannot run (they edit or mask individual weights, which it shards), read from the trainer
config alone: checked before a run imports Lightning (unlearn/before_run.py) and again by each method."""

from __future__ import annotations


def uses_fsdp(trainer_cfg) -> bool:
    strategy = trainer_cfg.get("strategy")
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else strategy
    return "fsdp" in str(target or "").lower()


# the methods that edit or mask individual weights, and what to run them under instead
FSDP_REFUSED = {
    "manu": "its statistics pass is forward-only, so use trainer=ddp (a 7-8B model fits one GPU)",
    "mmunlearner": "use trainer=ddp, with mmunlearner.lora.enabled=true for 7B+ models",
}


def refuse_fsdp(cfg, method: str, instead: str | None = None) -> None:
    """Methods that edit or mask individual weights need whole parameters, which FSDP shards. Checked before the
    run starts (unlearn.pipeline.run, beside the other trainer checks; until 2026-12-05 after the
    before-evaluation, hours on a 7B model) and again by the method."""
    instead = instead or FSDP_REFUSED.get(method)  # a method of your own may refuse with its own advice
    if instead is not None and uses_fsdp(cfg.trainer):
        # under trainer=fsdp_sim the advice's trainer=ddp would be refused in turn (no GPU): name the CPU one
        on_cpu = " (on CPU processes, as trainer=fsdp_sim: trainer=ddp_sim)" \
            if str(cfg.trainer.get("accelerator", "")) == "cpu" else ""
        raise ValueError(f"method={method} does not run under trainer=fsdp (it needs unsharded weights); "
                         f"{instead}{on_cpu}")
