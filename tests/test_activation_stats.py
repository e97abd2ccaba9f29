import pytest
import torch
from torch import nn

from callbacks.activation_stats import ActivationStatistics, ModuleMatchError, match_modules
from unlearn.manu.prune import prune_neurons, producers_of


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.up_proj = nn.Linear(3, 3, bias=False)
        self.mlp.down_proj = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.mlp.up_proj.weight.copy_(torch.eye(3))  # activations = inputs: known by construction

    def forward(self, x):
        return self.mlp.down_proj(self.mlp.up_proj(x))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block()])

    def forward(self, x):
        return self.layers[0](x)


PATTERNS = {"language": r"layers\.\d+\.mlp\.down_proj"}


def _run(stats, model, x, mask, key="forget/text"):
    stats.begin_batch(key, mask)
    with torch.no_grad():
        model(x)
    stats.end_batch()


def test_hand_computed_statistics_skip_padding():
    model = Toy()
    stats = ActivationStatistics(PATTERNS, tau=0.5)
    stats.attach(model)
    x = torch.tensor([[[1.0, -2.0, 0.0], [0.2, 0.4, -0.6], [99.0, 99.0, 99.0]]])  # last position is padding
    _run(stats, model, x, torch.tensor([[1, 1, 0]]))
    x2 = torch.tensor([[[-1.0, 0.0, 3.0]]])
    _run(stats, model, x2, torch.tensor([[1]]))
    m = stats.moments["forget/text"]["layers.0.mlp.down_proj"]
    # tokens: (1,-2,0), (0.2,0.4,-0.6), (-1,0,3)
    assert m.count.item() == 3
    torch.testing.assert_close(m.sum, torch.tensor([0.2, -1.6, 2.4], dtype=torch.float64))
    torch.testing.assert_close(m.sum_abs, torch.tensor([2.2, 2.4, 3.6], dtype=torch.float64))
    torch.testing.assert_close(m.sum_sq, torch.tensor([2.04, 4.16, 9.36], dtype=torch.float64))
    torch.testing.assert_close(m.above, torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64))  # |a| > 0.5
    stats.detach()
    assert not model.layers[0].mlp.down_proj._forward_pre_hooks


def test_grad_mode_forward_is_not_counted():
    model = Toy()
    stats = ActivationStatistics(PATTERNS)
    stats.attach(model)
    stats.begin_batch("forget/text", None)
    model(torch.ones(1, 2, 3))  # grad enabled: a checkpoint recompute would look like this
    assert stats.moments == {} and stats.skipped_grad_calls == 1
    stats.detach()


def test_output_neurons():
    model = Toy()
    stats = ActivationStatistics({"language": r"layers\.\d+\.mlp\.up_proj"}, tau=0.5, neuron="output")
    stats.attach(model)
    _run(stats, model, torch.tensor([[[1.0, -2.0, 0.0]]]), torch.tensor([[1]]))
    m = stats.moments["forget/text"]["layers.0.mlp.up_proj"]
    torch.testing.assert_close(m.sum, torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64))


def test_a_module_no_batch_reached_counts_zeros_of_its_neuron_width():
    """The vision tower under text-only keys sees no token: its zeros must have the width its neurons have
    (input features for neuron=input, output features for neuron=output), as the other ranks' sums do."""
    from types import SimpleNamespace

    model = Toy()  # down_proj: 3 inputs, 2 outputs
    keys = ["forget/text", "forget/multimodal"]
    for neuron, width in (("input", 3), ("output", 2)):
        stats = ActivationStatistics(PATTERNS, neuron=neuron)
        stats.attach(model)
        module = SimpleNamespace(model=model, loader_keys=keys, device=torch.device("cpu"))
        out = stats._all_reduce(SimpleNamespace(world_size=1), module)
        stats.detach()
        for key in keys:
            m = out[key]["layers.0.mlp.down_proj"]
            assert m.count.item() == 0 and all(getattr(m, f).shape == (width,) for f in ("sum", "sum_sq", "above"))


def test_all_reduce_sums_every_field_once():
    """Two ranks' statistics are added: one SUM all-reduce of every field (count, sum, sum_abs, sum_sq, above), and
    a key this rank never saw comes back as zeros (the other ranks' sums for it are added in). A MEAN reduction and
    no reduction at 2 ranks (`world_size > 2`) survived the fast tests until 2026-12-05 (tests/test_ddp.py is slow).
    The fake strategy is two ranks with equal statistics: SUM doubles them, MEAN leaves them as they are."""
    from types import SimpleNamespace

    from unlearn.manu.moments import FIELDS

    calls = []

    def is_sum(op) -> bool:  # Lightning takes "sum" (any case) or ReduceOp.SUM
        return op == torch.distributed.ReduceOp.SUM or (isinstance(op, str) and op.lower() == "sum")

    def reduce(tensor, group=None, reduce_op="mean"):  # Lightning's Strategy.reduce
        calls.append(reduce_op)
        return tensor * 2 if is_sum(reduce_op) else tensor.clone()

    model = Toy()
    stats = ActivationStatistics(PATTERNS, tau=0.5)
    stats.attach(model)
    _run(stats, model, torch.tensor([[[1.0, -2.0, 0.0], [0.2, 0.4, -0.6]]]), torch.tensor([[1, 1]]))
    stats.detach()
    seen = {f: getattr(stats.moments["forget/text"]["layers.0.mlp.down_proj"], f).clone() for f in FIELDS}
    keys = ["forget/text", "forget/multimodal"]  # this rank saw no multimodal batch
    module = SimpleNamespace(model=model, loader_keys=keys, device=torch.device("cpu"))
    out = stats._all_reduce(SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=reduce)), module)
    assert len(calls) == 1 and is_sum(calls[0])
    assert seen["count"].item() == 2 and all(seen[f].any() for f in FIELDS)
    for f in FIELDS:
        torch.testing.assert_close(getattr(out["forget/text"]["layers.0.mlp.down_proj"], f), 2 * seen[f])
        unseen = getattr(out["forget/multimodal"]["layers.0.mlp.down_proj"], f)
        assert unseen.shape == seen[f].shape and not unseen.any()


def test_no_match_lists_module_names():
    with pytest.raises(ModuleMatchError, match=r"model.mlp_modules.vision=.*matches no module.*down_proj"):
        match_modules(Toy(), {"vision": r"vision_tower\..*fc2"})


def test_tiny_llava_patterns_match_both_towers(tiny_model, tmp_path):
    from unlearn.config import compose_config

    cfg = compose_config([], tmp_path, tmp_path)
    towers = match_modules(tiny_model[0], dict(cfg.model.mlp_modules))
    assert sorted(set(towers.values())) == ["language", "vision"] and len(towers) == 4


def _pruned_and_read(model, proc, small_splits, name: str, mask: torch.Tensor) -> torch.Tensor:
    """Prune `mask` of `name`'s input neurons, then forward one image row: the activations `name` reads."""
    from unlearn.data.collate import collate, qa_example

    prune_neurons(model, {name: mask})
    seen = {}
    h = model.get_submodule(name).register_forward_pre_hook(lambda m, a: seen.setdefault("a", a[0]))
    px = proc.pixel_values([small_splits["forget_10"][0]["image"]])[0]
    with torch.no_grad():
        model(**{k: v for k, v in collate([qa_example(proc, [("what is this person 's job ?", "nurse")], px)],
                                          0).items() if k != "labels"})
    h.remove()
    return seen["a"]


def test_pruned_neuron_contributes_exactly_zero(tiny_model, small_splits):
    model, proc = tiny_model
    model.eval()
    name = "model.language_model.layers.0.mlp.down_proj"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = torch.zeros(256, dtype=torch.bool)
    mask[[3, 100]] = True
    assert [n for n, _ in producers_of(model, name)] == [
        "model.language_model.layers.0.mlp.gate_proj", "model.language_model.layers.0.mlp.up_proj"]
    read = _pruned_and_read(model, proc, small_splits, name, mask)
    assert torch.all(read[..., [3, 100]] == 0)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {name + ".weight", "model.language_model.layers.0.mlp.gate_proj.weight",
                       "model.language_model.layers.0.mlp.up_proj.weight"}
    w = model.get_submodule(name).weight
    assert torch.all(w[:, [3, 100]] == 0)
    keep = [i for i in range(256) if i not in (3, 100)]
    assert torch.equal(w[:, keep], before[name + ".weight"][:, keep])


def test_a_pruned_vision_neuron_loses_its_producers_bias_too(tiny_model, small_splits):
    """CLIP's fc1 has a bias: left in place, a pruned neuron would still output act(b_j), which relearning could
    route again through the zeroed fc2 column. Its weight row, bias entry and consumer column are zeroed, and the
    activation fc2 reads is exactly 0 on an image; nothing else moves."""
    model, proc = tiny_model
    model.eval()
    name = "model.vision_tower.encoder.layers.0.mlp.fc2"
    fc1 = "model.vision_tower.encoder.layers.0.mlp.fc1"
    assert [n for n, _ in producers_of(model, name)] == [fc1]
    with torch.no_grad():  # CLIP initialises biases at 0; a trained one's are not
        model.get_submodule(fc1).bias.fill_(0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = torch.zeros(128, dtype=torch.bool)
    mask[[2, 77]] = True
    read = _pruned_and_read(model, proc, small_splits, name, mask)
    assert torch.all(read[..., [2, 77]] == 0) and read.abs().sum() > 0
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {name + ".weight", fc1 + ".weight", fc1 + ".bias"}
    assert torch.all(model.get_submodule(fc1).bias[[2, 77]] == 0)
    assert torch.all(model.get_submodule(fc1).weight[[2, 77]] == 0)
    assert torch.all(model.get_submodule(name).weight[:, [2, 77]] == 0)


def test_scale_mode_scales_only_the_consumer_column():
    model = Toy()
    w0 = model.layers[0].mlp.down_proj.weight.detach().clone()
    prune_neurons(model, {"layers.0.mlp.down_proj": torch.tensor([False, True, False])}, mode="scale", factor=0.5)
    w = model.layers[0].mlp.down_proj.weight
    torch.testing.assert_close(w[:, 1], w0[:, 1] * 0.5)
    torch.testing.assert_close(w[:, [0, 2]], w0[:, [0, 2]])
    assert torch.equal(model.layers[0].mlp.up_proj.weight, torch.eye(3))
    with pytest.raises(ValueError, match="manu.prune.mode"):
        prune_neurons(model, {}, mode="soft")


def test_threshold_is_strict_and_leaves_the_activations_alone():
    from unlearn.manu.moments import Moments

    acts = torch.tensor([[0.5, -0.5, 0.6], [-0.7, 0.0, 0.5000001]])
    kept = acts.clone()
    m = Moments.of(acts, 0.5)
    assert m.above.tolist() == [1.0, 0.0, 2.0]  # |a| == tau is not above it
    assert torch.equal(acts, kept)  # the in-place counting works on a copy
    torch.testing.assert_close(m.sum_abs, torch.tensor([1.2, 0.5, 1.1000001], dtype=torch.float64))


def test_idefics2_padding_patches_are_not_tokens():
    """Idefics2 pads a batch's images to one size: two images of other aspect ratios, batched, give the
    statistics they give one at a time (until 2026-12-05 the batch's padding patches counted as vision tokens);
    with `manu.mask_padding=false`, the authors' counting, the padding counts again."""
    import numpy as np
    import yaml
    from PIL import Image

    from unlearn.data.collate import collate, qa_example
    from unlearn.manu.moments import FIELDS
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_real import build_tiny_real

    model, tok, images = build_tiny_real("idefics2")
    model.eval()
    images.size = {"shortest_edge": 28, "longest_edge": 56}
    config = yaml.safe_load(open("configs/model/idefics2_8b.yaml"))
    proc = ChatProcessor(tok, images, model.config, ChatTemplate(**config["template"]))
    pictures = [Image.fromarray(np.random.default_rng(s).integers(0, 255, (h, w, 3), dtype="uint8"))
                for s, (w, h) in enumerate([(112, 56), (56, 112)])]
    rows = [qa_example(proc, [("who is this ?", "nurse")], pv) for pv in proc.pixel_values(pictures)]

    def statistics(batches, mask_padding=True):
        stats = ActivationStatistics(config["mlp_modules"], mask_padding=mask_padding)
        stats.attach(model)
        for b in batches:
            stats.begin_batch("k", b["attention_mask"])
            with torch.no_grad():
                model(**{k: v for k, v in b.items() if k != "labels"})
            stats.end_batch()
        stats.detach()
        return stats.moments["k"]

    pad = tok.pad_token_id
    together, alone = statistics([collate(rows, pad)]), statistics([collate([r], pad) for r in rows])
    vision = [n for n in together if "vision" in n]
    assert vision and together.keys() == alone.keys()
    for n in together:
        for f in FIELDS:
            torch.testing.assert_close(getattr(together[n], f), getattr(alone[n], f), rtol=1e-5, atol=1e-6,
                                       msg=f"{n} {f}")  # float32 activations, batched or not
    counted = statistics([collate(rows, pad)], mask_padding=False)
    assert all(counted[n].count.max() > together[n].count.max() for n in vision)


def test_llavas_unread_last_vision_layer_is_not_a_candidate():
    """LLaVA-1.5 reads its vision tower at vision_feature_layer=-2: the last layer's neurons change nothing when
    pruned (the logits are equal to the digit), so they are not hooked; the embedded model reads its last layer."""
    import yaml

    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.models.tiny_real import build_tiny_real
    from callbacks.activation_stats import unread_vision_layers

    model, _, _ = build_tiny_real("llava")
    layers = model.config.vision_config.num_hidden_layers
    assert model.config.vision_feature_layer == -2 and unread_vision_layers(model) == {layers - 1}
    patterns = yaml.safe_load(open("configs/model/llava_1_5_7b.yaml"))["mlp_modules"]
    stats = ActivationStatistics(patterns)
    stats.attach(model)
    vision = sorted(n for n, t in stats.towers.items() if t == "vision")
    stats.detach()
    assert len(vision) == layers - 1 and not any(f".layers.{layers - 1}." in n for n in vision)
    assert len(match_modules(model, patterns)) == len(stats.towers) + 1
    # by hand: zeroing that layer's MLP leaves the logits as they were
    pixels = torch.rand(1, 3, model.config.vision_config.image_size, model.config.vision_config.image_size)
    image_id = model.config.image_token_id
    n_image = (model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2
    ids = torch.tensor([[1] + [image_id] * n_image + [2, 3]])
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids, pixel_values=pixels).logits
        last = model.model.vision_tower.encoder.layers[layers - 1].mlp.fc2
        last.weight.zero_()
        last.bias.zero_()
        after = model(input_ids=ids, pixel_values=pixels).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert unread_vision_layers(build_tiny_llava(TinyLlavaSpec())[0]) == set()
    assert unread_vision_layers(torch.nn.Linear(2, 2)) == set()
