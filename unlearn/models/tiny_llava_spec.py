"""The embedded model's sizes, apart from its build (which imports torch and transformers): the checks before a run
build this spec from `model.build.spec` to refuse a bad size by its key (unlearn/before_run.py). Until 2026-12-08
transformers refused one as the model was built, about 8 s in, naming its own field (`hidden_size`) and
`full_key: model.build`; a negative size stopped in torch ("negative dimension"), and an image smaller than a
patch built a model that sees no image token."""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.spec_fields import check_whole_fields

KEY = "model.build.spec"


@dataclass(frozen=True)
class TinyLlavaSpec:
    image_size: int = 32
    patch_size: int = 16
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_positions: int = 512
    init_seed: int = 0

    def __post_init__(self) -> None:
        check_whole_fields(self, KEY, {"init_seed": 0})
        if self.patch_size > self.image_size:
            raise ValueError(f"{KEY}.patch_size={self.patch_size} is larger than {KEY}.image_size={self.image_size}: "
                             "the image would give no image token")
        for tower in ("vision", "text"):  # the attention splits the width into heads (transformers refuses the rest)
            hidden, heads = getattr(self, f"{tower}_hidden"), getattr(self, f"{tower}_heads")
            if hidden % heads:
                raise ValueError(f"{KEY}.{tower}_hidden={hidden} is not a multiple of {KEY}.{tower}_heads={heads}")

    @property
    def num_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2
