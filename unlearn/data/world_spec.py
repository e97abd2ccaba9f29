"""The background world's spec (`model.base.world`), apart from its generator (which imports torch): the checks
before a run build it from the config to refuse a bad value by its key (unlearn/before_run.py). Until 2026-12-08
nothing checked it: a wrong value stopped in the generator with a traceback (`num_people=-1` in random.sample) once
the base model was to be pretrained."""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.spec_fields import check_whole_fields

KEY = "model.base.world"


@dataclass(frozen=True)
class WorldSpec:
    """`benchmark_people + benchmark_untouched`, `benchmark_seed`: the embedded benchmark's `make_people`
    arguments (`data.spec.num_people`, `num_untouched`, `seed`), whose names the world leaves out."""

    num_people: int = 100
    seed: int = 0
    image_size: int = 32
    variants: int = 4
    benchmark_people: int = 100
    benchmark_untouched: int = 20
    benchmark_seed: int = 0

    def __post_init__(self) -> None:
        check_whole_fields(self, KEY, {"seed": 0, "benchmark_seed": 0, "image_size": 8})  # data.spec's bounds
