"""The MANU authors' neuron selection, reproduced exactly (`manu.selection=official`).

Source: github.com/franciscoliu/MANU, prune/prune_utility.py (`register_feedforward_hooks`,
`collect_feedforward_activations`, `compute_combined_scores_incremental`, `compute_top_k_pruning_mask`,
`apply_structural_pruning`) and prune/prune_incremental.py (`iterative_pruning`). What they do, and what
this module does under `manu.selection=official`:

* Units: the OUTPUT rows of every hooked Linear (`model.manu_official_modules`: fc1 and fc2 on the
  vision tower, gate_proj, up_proj and down_proj on the language model for LLaVA). Pruning zeroes the
  selected rows (and bias entries) of that Linear.
* Modality per tower: vision units are scored from the multimodal passes only, language units from the
  text-only passes only (their hooks fix the modality at registration).
* Batches: a shuffled DataLoader read in chunks of 10 batches, the loader re-iterated (so re-shuffled)
  for every chunk: chunk c holds batches 10c..10c+9 of a fresh permutation (`official_batches`). The
  retain loaders read only as many batches as the forget set has (a random retain subset of the
  forget set's size); the permutations come from `manu.official.seed`.
* Statistics, per batch and per sequence position p, over the rows of the batch (padding counted, the
  language batches right-padded to the longest sequence), activations clamped to [-1e3, 1e3]:
  abs = mean |a|, freq = mean [|a| > 0.1], var = std (unbiased), rms = sqrt(mean a^2). A chunk's
  value is the mean over all (batch, position) pairs of its batches; the final value is the mean of
  the chunk values (a mean of means).
* Pooled layers (`manu.official.pooled_layers=true`, their code): every layer's fc1 is registered under
  the same keys (`vision_fc1_21`, `_22`, `_23`; language `lang_*_29..31`), so a key's rows at a position
  are the batch rows of ALL layers together, the keys of one module type hold identical statistics,
  and their masks reach only the layers with those indices: the last 3 of LLaVA-1.5-7B's 24 vision /
  32 language layers, but 21-23 of Idefics2-8B's 27 vision layers (`manu.official.layers`, set by
  experiment=manu_official; null: the last `manu.official.apply_last`, for models of other depths).
  `pooled_layers=false` is their commented-out per-layer registration (each layer its own key, every layer
  pruned).
* Score: sum_k w_k (stat_k(forget) / (stat_k(retain) + 1e-5) - 1), w = abs 2, freq 0, var 2, rms 2.
* Selection: per tower, k = int(alpha / 100 * N) over all keys' rows (N counts the pooled copies),
  threshold = the k-th largest score, and every row scoring >= threshold is pruned (ties: more than k).
  Their code fails at k = 0 (`topk(...)[-1]` of nothing); here k = 0 prunes nothing.

DDP: a batch is never split across ranks (rank r reads batches r, r + W, ... of the global list), and
every statistic above is a per-chunk sum over (batch, position) pairs divided by the chunk's number of
such pairs, so summing the per-chunk sums and pair counts across ranks gives the single-process
numbers (up to float summation order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from unlearn.manu.choices import check_weights

STATS = ("abs", "freq", "var", "rms")
OFFICIAL_TAU = 0.1  # `(clamped_activations.abs() > 1e-1)`
OFFICIAL_CLAMP = 1e3
OFFICIAL_CHUNK = 10
OFFICIAL_EPS = 1e-5


def official_batches(n_rows: int, batch_size: int, n_batches: int, chunk_size: int = OFFICIAL_CHUNK,
                     seed: int = 0) -> list[tuple[int, list[int]]]:
    """The (chunk, row indices) of every batch their loop reads, in reading order.

    Chunk c re-iterates a shuffled DataLoader: a fresh permutation, of which batches
    c*chunk_size .. (c+1)*chunk_size - 1 are read (fewer when the permutation has fewer batches).
    """
    if n_rows <= 0 or batch_size <= 0 or chunk_size <= 0:
        raise ValueError(f"official batches: n_rows={n_rows}, manu.batch_size={batch_size}, "
                         f"manu.official.chunk_size={chunk_size} must all be > 0")
    gen = torch.Generator().manual_seed(int(seed))
    per_permutation = math.ceil(n_rows / batch_size)
    out = []
    for chunk, start in enumerate(range(0, n_batches, chunk_size)):
        perm = torch.randperm(n_rows, generator=gen).tolist()
        for b in range(start, min(start + chunk_size, n_batches, per_permutation)):
            out.append((chunk, perm[b * batch_size:(b + 1) * batch_size]))
    return out


ONE_ROW = ("official statistics: a batch with one row has no unbiased std (their code gives NaN): a split's last "
           "batch holds one row where its size is 1 more than a multiple of manu.batch_size, or manu.batch_size is 1; "
           "choose a manu.batch_size that leaves no single row, or pool layers (manu.official.pooled_layers=true)")


class BatchPositionSums:
    """One batch of one unit: per-position sums over its rows (pooled layers add more rows)."""

    def __init__(self):
        self.rows = 0
        self.clamped = 0  # activations beyond +-clamp (reported: does the clamp ever bind?)
        self.sums: dict[str, Tensor] | None = None

    def add(self, acts: Tensor, clamp: float = OFFICIAL_CLAMP, tau: float = OFFICIAL_TAU) -> None:
        """acts: (rows, positions, n), e.g. (batch, seq, n) or (images, patches, n)."""
        if acts.dim() != 3:
            raise ValueError(f"official statistics need (rows, positions, neurons) activations, got {tuple(acts.shape)}")
        a = acts.detach().float()
        self.clamped += int((a.abs() > clamp).sum())
        a = a.clamp(-clamp, clamp).double()
        part = {"sum": a.sum(0), "sum_abs": a.abs().sum(0), "sum_sq": (a * a).sum(0),
                "above": (a.abs() > tau).double().sum(0)}
        if self.sums is None:
            self.sums = part
        else:
            if part["sum"].shape != self.sums["sum"].shape:
                raise ValueError(f"pooled activations disagree in shape: {tuple(part['sum'].shape)} vs "
                                 f"{tuple(self.sums['sum'].shape)}")
            for k in part:
                self.sums[k] += part[k]
        self.rows += acts.shape[0]

    def position_totals(self) -> tuple[Tensor, int]:
        """(4, n) sums over positions of the per-position statistics, and the number of positions."""
        r = self.rows
        if r < 2:
            raise ValueError(ONE_ROW)
        s = self.sums
        mean = s["sum"] / r
        var = ((s["sum_sq"] - r * mean * mean) / (r - 1)).clamp(min=0.0)
        per_position = torch.stack([s["sum_abs"] / r, s["above"] / r, var.sqrt(), (s["sum_sq"] / r).sqrt()])
        return per_position.sum(1), per_position.shape[1]


class ChunkedStatistics:
    """Per-chunk sums of per-position statistics, (chunks, 4, n), and (batch, position) pair counts."""

    def __init__(self, n_chunks: int, n: int, device=None):
        self.sums = torch.zeros(n_chunks, len(STATS), n, dtype=torch.float64, device=device)
        self.positions = torch.zeros(n_chunks, dtype=torch.float64, device=device)

    def add_batch(self, chunk: int, batch: BatchPositionSums) -> None:
        totals, positions = batch.position_totals()
        self.sums[chunk] += totals.to(self.sums.device)
        self.positions[chunk] += positions

    def final(self) -> dict[str, Tensor]:
        """Mean over the chunks that saw a batch of each chunk's mean over its (batch, position) pairs."""
        seen = self.positions > 0
        if not seen.any():
            raise ValueError("official statistics: no batch was recorded")
        means = self.sums[seen] / self.positions[seen].view(-1, 1, 1)
        final = means.mean(0)
        return {k: final[i].cpu() for i, k in enumerate(STATS)}


def ratio_score(forget: Mapping[str, Tensor], retain: Mapping[str, Tensor], weights: Mapping[str, float],
                eps: float = OFFICIAL_EPS) -> Tensor:
    """sum_k w_k (forget_k / (retain_k + eps) - 1), a zero weight dropping its term."""
    total = torch.zeros_like(next(iter(forget.values())), dtype=torch.float64)
    for k, w in check_weights(weights, STATS).items():  # the rule settings reads (a nan weight was let through)
        if w != 0:
            total = total + float(w) * (forget[k].double() / (retain[k].double() + eps) - 1.0)
    return total


def official_top_k(scores: Mapping[str, Tensor], towers: Mapping[str, str], alpha: float) -> dict[str, Tensor]:
    """Per tower: k = int(alpha / 100 * N), prune every row scoring >= the k-th largest (ties: more than k)."""
    if isinstance(alpha, bool) or not (0 <= float(alpha) <= 100):
        raise ValueError(f"manu.alpha={alpha!r}: must be a percent in [0, 100]")
    masks: dict[str, Tensor] = {}
    for tower in dict.fromkeys(towers[n] for n in scores):
        names = [n for n in scores if towers[n] == tower]
        flat = torch.cat([scores[n].flatten().double() for n in names])
        if torch.isnan(flat).any():
            raise ValueError(f"official scores of tower {tower!r} have NaN entries")
        k = int((float(alpha) / 100) * flat.numel())  # their float arithmetic, then int()
        if k == 0:
            masks.update({n: torch.zeros(scores[n].numel(), dtype=torch.bool) for n in names})
            continue
        threshold = torch.topk(flat, k, largest=True).values[-1]
        masks.update({n: scores[n].double() >= threshold for n in names})
    return {n: masks[n] for n in scores}


def layer_index(name: str) -> int:
    """The layer number of a module name (its last all-digit component)."""
    digits = [p for p in name.split(".") if p.isdigit()]
    if not digits:
        raise ValueError(f"module {name!r} has no layer index; manu.official.pooled_layers needs one")
    return int(digits[-1])


def pooled_targets(members: Sequence[str], apply_last: int, layers: Sequence[int] | None = None,
                   key: str = "manu.official.layers") -> list[str]:
    """The modules a pooled key's mask reaches: the layers numbered `layers` when given (their keys name layers
    21-23 vision and 29-31 language on every model: the last 3 of LLaVA-1.5-7B's 24 / 32, but 21-23 of
    Idefics2-8B's 27 vision layers), else the last `apply_last` layers."""
    ordered = sorted(members, key=layer_index)
    if layers is None:
        return ordered[-apply_last:] if apply_last > 0 else []
    present = {layer_index(m) for m in ordered}
    if missing := sorted(set(layers) - present):
        raise ValueError(f"{key}={list(layers)}: no layer {missing} among {ordered[0]} ... {ordered[-1]} "
                         f"(layers {min(present)}-{max(present)}); set {key}=null to prune the last "
                         f"manu.official.apply_last layers")
    return [m for m in ordered if layer_index(m) in set(layers)]


def pooled_modules(units: Mapping[str, str], towers: Mapping[str, str], apply_last: int,
                   layers: Mapping[str, Sequence[int]] | None = None) -> dict[str, str]:
    """module -> its pooled unit, for every module a pooled unit's mask reaches (pooled_targets per unit): what
    the model's structure alone decides, so it is also checked before the before-evaluation (unlearn.methods.manu.check_before_evaluation)."""
    members: dict[str, list[str]] = {}
    for module, unit in units.items():
        members.setdefault(unit, []).append(module)
    out: dict[str, str] = {}
    for unit, mods in members.items():
        tower = towers[mods[0]]
        chosen = None if layers is None else layers[tower]
        for m in pooled_targets(mods, apply_last, chosen, f"manu.official.layers.{tower}"):
            out[m] = unit
    return out


def official_scores(stats: Mapping[str, Mapping[str, Mapping[str, Tensor]]], units: Mapping[str, str],
                    towers: Mapping[str, str], pooled: bool, apply_last: int,
                    weights: Mapping[str, float],
                    layers: Mapping[str, Sequence[int]] | None = None) -> dict[str, Tensor]:
    """module -> score of its output rows, for every module that will carry a mask.

    stats[key][unit] with key forget/multimodal, retain/multimodal (vision) and forget/text, retain/text
    (language). Pooled: each unit's score is copied onto its target modules, as their keys _21/_22/_23
    hold copies, so the copies count in N and in the threshold exactly as there.
    """
    unit_score: dict[str, Tensor] = {}
    for module, unit in units.items():
        if unit not in unit_score:
            form = "multimodal" if towers[module] == "vision" else "text"
            try:
                f, r = stats[f"forget/{form}"][unit], stats[f"retain/{form}"][unit]
            except KeyError as e:
                raise ValueError(f"official statistics lack {e} for unit {unit!r}") from None
            unit_score[unit] = ratio_score(f, r, weights)
    if not pooled:
        return {m: unit_score[u] for m, u in units.items()}
    out = {m: unit_score[u] for m, u in pooled_modules(units, towers, apply_last, layers).items()}
    order = sorted(out, key=lambda m: (towers[m] != "vision", layer_index(m), m))
    return {m: out[m] for m in order}
