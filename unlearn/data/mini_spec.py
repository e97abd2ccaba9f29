"""The embedded benchmark's spec (`data.spec`), apart from its generator (which imports `datasets`): the checks
before a run build it from the config to refuse a bad value by its key (unlearn/before_run.py); until 2026-12-08
it was refused as the benchmark was generated, after torch's and the loaders' imports (6.4 s here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from unlearn.data.schema import DataError
from unlearn.io import config_hash
from unlearn.spec_fields import check_whole_fields

# 3: generation items carry a paraphrase and perturbed answers; 4: in its form. A later version enters the vanilla
# key too (later_keys.GENERATOR_VERSION), so a change to the rows taught re-teaches
GENERATOR_VERSION = 4


@dataclass(frozen=True)
class MiniSpec:
    num_people: int = 100
    num_untouched: int = 20
    seed: int = 0
    image_size: int = 32
    train_variants: int = 8
    forget_percents: tuple[int, ...] = (5, 10, 15)

    def __post_init__(self) -> None:
        """Each value named by its key (until 2026-12-05 a bad one failed inside the generator: a TypeError, a
        missing image, a KeyError, a datasets "Keys mismatch")."""
        check_whole_fields(self, "data.spec", {"num_people": 1, "num_untouched": 1, "seed": 0, "image_size": 8,
                                               "train_variants": 1}, default=None, error=DataError)
        percents = self.forget_percents
        percents = list(percents) if hasattr(percents, "__iter__") and not isinstance(percents, (str, bytes)) else None
        if not percents or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 100 for p in percents) \
                or len(set(percents)) != len(percents):
            raise DataError(f"data.spec.forget_percents={self.forget_percents!r}: expected distinct integers in "
                            "(0, 100), each a forget split's share of data.spec.num_people")
        for p in percents:
            forget_count(self.num_people, p)

    def key(self) -> str:
        return config_hash({**asdict(self), "version": GENERATOR_VERSION})


def forget_count(num_people: int, percent: int) -> int:
    n = round(num_people * percent / 100)
    if n < 1:
        raise DataError(f"forget_{percent} of data.spec.num_people={num_people} people selects nobody")
    return n
