"""Lightning's W&B logger, minus the one argument W&B 0.31 warns about on every run, and with W&B's own WANDB_MODE
respected.

Lightning passes `anonymous=None` to `wandb.init` whenever the user does not ask for anonymous logging; W&B
0.31 deprecated the setting and warns whenever it is passed at all, so every `python train.py` printed a
warning about a setting nobody set. Passed explicitly (`logger.anonymous=true`), it is kept and W&B's own
warning stands.

With `offline=True` Lightning sets WANDB_MODE=dryrun for the whole process, over a user's WANDB_MODE=disabled
(until 2026-12-05 `WANDB_MODE=disabled python train.py` still wrote an offline run): where WANDB_MODE is set, it is
W&B's setting and `offline` is not passed on.
"""

import os

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    def __init__(self, *args, offline: bool = False, **kwargs):
        super().__init__(*args, offline=offline and not os.environ.get("WANDB_MODE"), **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
