"""manu.prune.mode=scale multiplies by the factor, not by its complement (a mutation review: the one scale test used
factor 0.5, for which the two agree), on the input side and on the output side."""

from __future__ import annotations

import torch

from unlearn.manu.prune import prune_neurons
from tests.test_activation_stats import Toy


def test_scale_mode_uses_the_factor_not_its_complement():
    model = Toy()
    w0 = model.layers[0].mlp.down_proj.weight.detach().clone()
    prune_neurons(model, {"layers.0.mlp.down_proj": torch.tensor([False, True, False])}, mode="scale", factor=0.25)
    w = model.layers[0].mlp.down_proj.weight
    torch.testing.assert_close(w[:, 1], 0.25 * w0[:, 1])
    torch.testing.assert_close(w[:, [0, 2]], w0[:, [0, 2]])


def test_scale_mode_on_output_neurons_scales_their_rows_and_biases():
    lin = torch.nn.Linear(3, 4)
    model = torch.nn.Sequential(lin)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    prune_neurons(model, {"0": torch.tensor([False, True, False, True])}, neuron="output", mode="scale", factor=0.25)
    torch.testing.assert_close(lin.weight[[1, 3]], 0.25 * w0[[1, 3]])
    torch.testing.assert_close(lin.bias[[1, 3]], 0.25 * b0[[1, 3]])
    torch.testing.assert_close(lin.weight[[0, 2]], w0[[0, 2]])
    torch.testing.assert_close(lin.bias[[0, 2]], b0[[0, 2]])
