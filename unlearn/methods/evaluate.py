"""method=evaluate: no unlearning, so a model (a checkpoint, another framework's output, the vanilla model) is
evaluated by the same protocol, splits and metrics as every method's, in one run (configs/method/evaluate.yaml)."""

import logging

log = logging.getLogger(__name__)


def run(ctx) -> None:
    log.info("method=evaluate: the model is evaluated as loaded (%s)", ctx.cfg.model.get("path") or "the vanilla model")
