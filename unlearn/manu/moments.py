"""Per-neuron sufficient statistics of activations, streamed over tokens.

Memory is proportional to the number of neurons, never to the number of tokens. Every field is a sum,
so batches, dataloaders and ranks combine by addition (`+`, or an all-reduce with SUM).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

FIELDS = ("count", "sum", "sum_abs", "sum_sq", "above")


@dataclass
class Moments:
    count: torch.Tensor  # () float64: tokens seen
    sum: torch.Tensor  # (n,) float64: sum of a
    sum_abs: torch.Tensor  # (n,) float64: sum of |a|
    sum_sq: torch.Tensor  # (n,) float64: sum of a^2
    above: torch.Tensor  # (n,) float64: number of tokens with |a| > tau

    @classmethod
    def zeros(cls, n: int, device=None) -> "Moments":
        z = lambda *s: torch.zeros(*s, dtype=torch.float64, device=device)  # noqa: E731
        return cls(z(()), z(n), z(n), z(n), z(n))

    @classmethod
    def of(cls, acts: torch.Tensor, tau: float) -> "Moments":
        """Moments of a (tokens, n) block of activations (already stripped of padding)."""
        a = acts.float()  # reduce in float32 per batch; totals accumulate in float64
        magnitude = a.abs()
        sum_abs = magnitude.sum(0).double()
        # |a| > tau counted as sign(max(|a| - tau, 0)), in place: half the time of a boolean compare + sum
        above = magnitude.sub_(tau).clamp_(min=0.0).sign_().sum(0).double()
        return cls(torch.tensor(float(a.shape[0]), dtype=torch.float64, device=a.device),
                   a.sum(0).double(), sum_abs, (a * a).sum(0).double(), above)

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(*(getattr(self, f) + getattr(other, f) for f in FIELDS))

    def add_(self, other: "Moments") -> "Moments":
        for f in FIELDS:
            getattr(self, f).add_(getattr(other, f))
        return self

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # Derived per-neuron quantities. A neuron that saw no token (count 0) gets 0 for every one of them:
    # the vision tower under text-only input is silent, not undefined.
    def _per_token(self, total: torch.Tensor) -> torch.Tensor:
        return total / self.count if self.count > 0 else torch.zeros_like(total)

    @property
    def mean(self) -> torch.Tensor:
        return self._per_token(self.sum)

    @property
    def mean_abs(self) -> torch.Tensor:
        return self._per_token(self.sum_abs)

    @property
    def mean_sq(self) -> torch.Tensor:
        return self._per_token(self.sum_sq)

    @property
    def frac_above(self) -> torch.Tensor:
        return self._per_token(self.above)

    @property
    def var(self) -> torch.Tensor:
        """Population variance E[a^2] - E[a]^2, clamped at 0 against rounding. The per-batch sums are float32, so it
        loses precision where |mean| / std reaches about 1e3 (relative error 0.3 at mean 3, std 1e-3 over 8192
        tokens), activations that fp16 / bf16 can barely hold; the official selection sums in float64."""
        return (self.mean_sq - self.mean.square()).clamp(min=0.0)
