"""Lightning's W&B logger, minus the one argument W&B 0.31 warns about on every run.

Lightning passes `anonymous=None` to `wandb.init` whenever the user does not ask for anonymous logging; W&B
0.31 deprecated the setting and warns whenever it is passed at all, so every `python train.py` printed a
warning about a setting nobody set. Passed explicitly (`logger.anonymous=true`), it is kept and W&B's own
warning stands.
"""

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
