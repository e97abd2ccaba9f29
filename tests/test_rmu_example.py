"""The second method from outside the package (docs/guide/adding_a_method.md, "A second example: RMU"): the
example's RMU loss against a port of open-unlearning's, by hand on a small case, its forward hook against
output_hidden_states, its frozen reference and trainable subset in a few steps, its config composed and checked
like a built-in method's; (slow) `python train.py method=rmu` end to end at debug=fast size."""

from __future__ import annotations

import json
import logging
import re
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import seed_cache

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rmu"
SEARCHPATH = f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]"
LAYER = "model.language_model.layers.0"
TRAINED = "model.language_model.layers.0.mlp.down_proj.weight"


@pytest.fixture
def rmu(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import rmu

    return rmu


# a port of open-unlearning's computation (src/trainer/unlearn/rmu.py at d3d7cf9: get_control_vector,
# compute_activation_loss, compute_loss with retain_loss_type EMBED_DIFF), on tensors instead of models

def open_unlearning_control_vector(dim, steering_coeff, generator):
    random_vector = torch.rand(1, 1, dim, generator=generator)
    return random_vector / torch.norm(random_vector) * steering_coeff


def open_unlearning_activation_loss(activation1, activation2, mask):
    squared_diff = torch.nn.functional.mse_loss(activation1, activation2, reduction="none")
    expanded_mask = mask.unsqueeze(-1).expand_as(squared_diff)
    squared_diff_sum = (squared_diff * expanded_mask).mean(dim=2).sum(dim=(1))
    num_tokens = mask.sum(dim=-1, keepdim=True)
    return (squared_diff_sum / num_tokens).mean()


def open_unlearning_rmu(forget_acts, forget_labels, control_vec, retain_acts, ref_acts, retain_labels, gamma, alpha):
    control_vec = control_vec.to(dtype=forget_acts.dtype).expand_as(forget_acts)
    forget_loss = open_unlearning_activation_loss(forget_acts, control_vec, forget_labels != -100)
    retain_loss = open_unlearning_activation_loss(retain_acts, ref_acts, retain_labels != -100)
    return gamma * forget_loss + alpha * retain_loss


def _case(seed=0, rows=3, positions=7, hidden=11, equal_lengths=True):
    g = torch.Generator().manual_seed(seed)
    acts = [torch.randn(rows, positions, hidden, generator=g, dtype=torch.float64) for _ in range(3)]
    labels = [torch.randint(0, 50, (rows, positions), generator=g) for _ in range(2)]
    for lab in labels:
        lab[:, :3] = -100  # the prompt (an image's positions among them)
        lab[:, -1] = -100  # padding
        if not equal_lengths:
            lab[1, 5:] = -100  # rows of different answer lengths
    return acts, labels


def test_control_vector_is_open_unlearnings(rmu):
    for dim, coeff in ((11, 2.0), (128, 20.0)):
        ours = rmu.control_vector(dim, coeff, torch.Generator().manual_seed(3))
        theirs = open_unlearning_control_vector(dim, coeff, torch.Generator().manual_seed(3))
        assert torch.allclose(ours, theirs.flatten()) and ours.norm().item() == pytest.approx(coeff)
        assert (ours > 0).all()  # a direction in the positive orthant: torch.rand, not randn
    with pytest.raises(ValueError, match="rmu.steering_coeff"):
        rmu.control_vector(4, 0.0)


def test_rmu_loss_is_open_unlearnings(rmu):
    """Rows of equal label counts (or one row per batch, as open-unlearning's WMDP runs take): the same loss."""
    (forget, retain, reference), (forget_labels, retain_labels) = _case()
    control = open_unlearning_control_vector(11, 2.0, torch.Generator().manual_seed(0)).double()
    for gamma, alpha in ((1.0, 1.0), (0.5, 100.0)):
        for rows in (slice(None), slice(1, 2)):
            f_acts, f_labels, r_acts, ref, r_labels = (t[rows] for t in (forget, forget_labels, retain, reference,
                                                                          retain_labels))
            ours, f, r = rmu.rmu_loss(f_acts, f_labels, control.flatten(), r_acts, ref, r_labels, gamma, alpha)
            theirs = open_unlearning_rmu(f_acts, f_labels, control, r_acts, ref, r_labels, gamma, alpha)
            assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)  # ours in float32
            assert f.item() == pytest.approx(open_unlearning_activation_loss(
                f_acts, control.expand_as(f_acts), f_labels != -100).item(), rel=1e-6)
            assert r.item() == pytest.approx(open_unlearning_activation_loss(
                r_acts, ref, r_labels != -100).item(), rel=1e-6)


def test_rows_of_different_lengths_depart_from_open_unlearnings_broadcast(rmu):
    """open-unlearning divides the rows' sums, shape [b], by their counts, shape [b, 1] (its comment says [b, 1]
    for both): a [b, b] table whose mean is mean(sums) * mean(1 / counts). The example takes the per-row mean the
    comments describe, mean(sums / counts); the two agree where every row has as many label tokens."""
    (acts, _, _), (labels, _) = _case(2, equal_lengths=False)
    target = torch.zeros(11, dtype=torch.float64)
    mask = labels != -100
    sums = (acts.pow(2).mean(-1) * mask).sum(-1)
    counts = mask.sum(-1).double()
    assert counts.unique().numel() > 1
    theirs = open_unlearning_activation_loss(acts, target.expand_as(acts), mask)
    assert theirs.item() == pytest.approx((sums.mean() * (1 / counts).mean()).item(), rel=1e-12)
    ours = rmu.activation_distance(acts, target, labels)
    assert ours.item() == pytest.approx((sums / counts).mean().item(), rel=1e-6)
    assert abs(ours.item() - theirs.item()) > 0.01


def test_activation_distance_by_hand(rmu):
    # row 0: positions 1 and 2 labelled; position 1 (3, 5) against the target (1, 1): ((2)^2 + (4)^2) / 2 = 10,
    # position 2 (1, 1): 0; the row's mean over its 2 labelled positions: 5. Row 1: position 2 alone, (0, 3):
    # (1 + 4) / 2 = 2.5; position 0, unlabelled, is not read whatever it holds. Mean over rows: 3.75
    acts = torch.tensor([[[9.0, 9.0], [3.0, 5.0], [1.0, 1.0]],
                         [[9.0, 9.0], [9.0, 9.0], [0.0, 3.0]]])
    labels = torch.tensor([[-100, 7, 8], [-100, -100, 4]])
    assert rmu.activation_distance(acts, torch.tensor([1.0, 1.0]), labels).item() == pytest.approx(3.75)
    # gamma and alpha weigh the two terms: the retain term against a reference equal to the activations is 0
    loss, f, r = rmu.rmu_loss(acts, labels, torch.tensor([1.0, 1.0]), acts, acts.clone(), labels, 2.0, 7.0)
    assert (loss.item(), f.item(), r.item()) == pytest.approx((7.5, 3.75, 0.0))


def test_activation_distance_leaves_out_rows_without_labels(rmu):
    (acts, _, _), (labels, _) = _case(1)
    padded = labels.clone()
    padded[2] = -100  # a data-parallel shard's padding repeat, read without labels
    target = torch.zeros(11, dtype=torch.float64)
    alone = rmu.activation_distance(acts[:2], target, labels[:2])
    assert rmu.activation_distance(acts, target, padded).item() == pytest.approx(alone.item())
    with pytest.raises(ValueError, match="no label tokens"):
        rmu.activation_distance(acts[2:], target, padded[2:])
    acts.requires_grad_(True)
    nothing = rmu.activation_distance(acts[2:], target, padded[2:], shard=True)  # one process's padding alone
    assert nothing.item() == 0.0 and nothing.requires_grad
    with pytest.raises(ValueError, match="do not cover"):
        rmu.activation_distance(acts, target, labels[:, 1:])


def _batch(proc, bench, split, form="multimodal", n=4):
    from unlearn.data.collate import collate
    from unlearn.data.sequences import QASequences

    data = QASequences(bench.train_rows(split), proc, form)
    return collate([data[i] for i in range(n)], proc.tokenizer.pad_token_id)


def test_the_hook_reads_what_output_hidden_states_reads_and_leaves_nothing_behind(rmu, tiny_model, small_benchmark):
    from unlearn.eval.scoring import model_inputs

    model, proc = tiny_model
    model.eval()
    for form in ("multimodal", "text"):
        inputs = model_inputs(_batch(proc, small_benchmark, "forget", form), "cpu")
        with torch.no_grad():
            every = model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
        for k in (0, 1):
            layer = model.get_submodule(f"model.language_model.layers.{k}")
            hooks = dict(layer._forward_hooks)  # transformers' own, installed by output_hidden_states, stay
            with torch.no_grad():
                held = rmu.layer_output(model, layer, inputs)
            if k == 0:  # the last layer's entry in hidden_states is after the final norm: layer 0 alone compares
                assert torch.equal(held, every[k + 1])
            assert held.shape == every[0].shape
            assert dict(layer._forward_hooks) == hooks  # ours removed, the forward stopped there
    # the forward stops at the layer: the later layers and the output layer get no gradient
    held = rmu.layer_output(model, model.get_submodule(LAYER), inputs)
    held.pow(2).mean().backward()
    assert model.get_parameter(TRAINED).grad is not None
    assert model.get_parameter("model.language_model.layers.1.mlp.down_proj.weight").grad is None
    assert model.get_parameter("lm_head.weight").grad is None


def test_module_and_parameter_patterns_are_checked(rmu, tiny_model):
    model, _ = tiny_model
    assert rmu.matching_module(model, r"model\.language_model\.layers\.0")[0] == LAYER
    with pytest.raises(ValueError, match=r"matches 2 modules .* must name one.*model.language_model.layers.0"):
        rmu.matching_module(model, r"model\.language_model\.layers\.\d")
    with pytest.raises(ValueError, match=r"matches no module.*decoder layers: \['model.vision_tower"):
        rmu.matching_module(model, r"model\.layers\.7")  # open-unlearning's name, for a text-only Llama
    assert rmu.trainable_names(model, [r"model\.language_model\.layers\.(0|1)\.mlp\.down_proj\.weight"]) == [
        TRAINED, "model.language_model.layers.1.mlp.down_proj.weight"]
    with pytest.raises(ValueError, match="matches no parameter"):
        rmu.trainable_names(model, [r"model\.layers\.7\.mlp\.down_proj\.weight"])
    with pytest.raises(ValueError, match="a list of patterns"):
        rmu.trainable_names(model, r".*")


def test_a_few_steps_move_the_forget_activations_and_only_the_chosen_parameters(rmu, tiny_model, small_benchmark):
    import lightning as L

    from unlearn.eval.scoring import model_inputs
    from unlearn.methods.gradient import frozen_reference_expected, paired_loader

    model, proc = tiny_model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.requires_grad_(n == TRAINED)
    module = rmu.RMU(model, lambda ps: torch.optim.Adam(ps, lr=1e-2), LAYER, [TRAINED], steering_coeff=2.0,
                     gamma=1.0, alpha=1.0, seed=0)
    forget = model_inputs(_batch(proc, small_benchmark, "forget"), "cpu")
    labels = _batch(proc, small_benchmark, "forget")["labels"]
    control = rmu.control_vector(128, 2.0, torch.Generator().manual_seed(0))

    def distance():
        with torch.no_grad():
            return rmu.activation_distance(rmu.layer_output(model.eval(), model.get_submodule(LAYER), forget),
                                           control, labels).item()

    start = distance()
    ctx = SimpleNamespace(benchmark=small_benchmark, processor=proc)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=4,
                        enable_model_summary=False, enable_checkpointing=False)
    with frozen_reference_expected(module):
        trainer.fit(module, paired_loader(ctx, "multimodal", 8))
    assert torch.equal(module.control, control)  # the run's seed draws the vector: the same on every process
    assert distance() < start - 0.01, (start, distance())
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert moved == [TRAINED]
    assert all(torch.equal(p, before[n]) for n, p in module.reference.named_parameters())
    assert not any(p.requires_grad for p in module.reference.parameters())


def test_a_trainable_parameter_the_loss_never_reaches_is_named(rmu, tiny_model, small_benchmark, caplog):
    """open-unlearning's RMU.yaml trains every parameter ('.*'): those after the steered layer get no gradient."""
    import lightning as L

    from unlearn.methods.gradient import frozen_reference_expected, paired_loader

    model, proc = tiny_model
    later = "model.language_model.layers.1.mlp.down_proj.weight"
    for n, p in model.named_parameters():
        p.requires_grad_(n in (TRAINED, later))
    module = rmu.RMU(model, lambda ps: torch.optim.SGD(ps, lr=0.1), LAYER, [TRAINED, later], 2.0, 1.0, 1.0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=1,
                        enable_model_summary=False, enable_checkpointing=False)
    with frozen_reference_expected(module), caplog.at_level(logging.WARNING):
        trainer.fit(module, paired_loader(SimpleNamespace(benchmark=small_benchmark, processor=proc), "text", 8))
    assert "1 of the 2 trainable parameters receive no gradient" in caplog.text and later in caplog.text


def test_the_example_config_composes_and_its_patterns_fit_the_embedded_model(rmu, caplog, tmp_path, tiny_model):
    from unlearn.config import compose_config
    from unlearn.settings import check_run_settings

    cfg = compose_config(["method=rmu", SEARCHPATH], tmp_path, tmp_path)
    assert cfg.method.name == "rmu" and cfg.rmu.steering_coeff == 2 and cfg.rmu.alpha == 1.0
    with caplog.at_level(logging.WARNING):
        check_run_settings(cfg)
    assert "top-level keys" not in caplog.text and "gradient baselines' settings" not in caplog.text
    ctx = SimpleNamespace(cfg=cfg, model=tiny_model[0])
    rmu.check_before_evaluation(ctx, 1)  # the module and parameter names LLaVA's adapters give
    assert rmu.matching_module(ctx.model, cfg.rmu.module_regex)[0] == LAYER
    assert rmu.trainable_names(ctx.model, cfg.rmu.trainable_params_regex) == [TRAINED]
    bad = compose_config(["method=rmu", SEARCHPATH, r"rmu.module_regex=model\.layers\.7"], tmp_path, tmp_path)
    with pytest.raises(ValueError, match="rmu.module_regex"):
        rmu.check_before_evaluation(SimpleNamespace(cfg=bad, model=ctx.model), 1)
    sharded = compose_config(["method=rmu", SEARCHPATH, "trainer=fsdp_sim"], tmp_path, tmp_path)
    with pytest.raises(ValueError, match="method=rmu does not run under trainer=fsdp.*trainer=ddp_sim"):
        rmu.check_before_evaluation(SimpleNamespace(cfg=sharded, model=ctx.model), 1)


@pytest.mark.slow
def test_the_example_end_to_end_at_fast_size(tmp_path, taught_fast):
    """The guide's command at debug=fast size: only the chosen parameters differ from the vanilla model, and the
    run records which layer it steered."""
    from unlearn.models.loading import load_model

    vanilla = seed_cache(taught_fast, tmp_path / "cache")
    env = {**os.environ, "WANDB_MODE": "disabled", "UNLEARN_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "train.py", "debug=fast", "method=rmu", SEARCHPATH,
                           f"hydra.run.dir={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reusing" in done.stdout + done.stderr  # the session's taught model, not a second teaching
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["method"] == "rmu" and summary["artifacts"]["rmu_layer"] == LAYER
    assert summary["artifacts"]["rmu_trainable_parameters"] == 128 * 256
    assert "| forget | multimodal |" in done.stdout
    # read back as models: the files name the weights in transformers' saved layout, not by parameter name
    start, end = (dict(load_model(path)[0].named_parameters()) for path in (vanilla, out / "model"))
    assert start.keys() == end.keys()
    assert [n for n in start if not torch.equal(start[n], end[n])] == [TRAINED]


# ------------------------------------------------------------------ the frozen reference holds what runs, no more

CONFIG_OF = {"llava": "llava_1_5_7b", "qwen2_vl": "qwen2_vl_7b", "idefics2": "idefics2_8b"}


def _stand_in(family):
    """(model, processor) of a tiny stand-in of a supported family (unlearn.models.tiny_real), prompted by its
    shipped config's template; "embedded": the embedded default's tiny LLaVA."""
    import yaml

    from unlearn.models.chat_processor import ChatProcessor

    from unlearn.models.chat_template import ChatTemplate
    from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava
    from unlearn.models.tiny_real import build_tiny_real

    if family == "embedded":
        return build_tiny_llava(TinyLlavaSpec())
    model, tok, images = build_tiny_real(family)
    template = yaml.safe_load((ROOT / "configs" / "model" / f"{CONFIG_OF[family]}.yaml").read_text())["template"]
    return model, ChatProcessor(tok, images, model.config, ChatTemplate(**template))


@pytest.mark.parametrize("family", ["embedded", "llava", "qwen2_vl", "idefics2"])
def test_the_reference_up_to_layer_k_reads_what_a_whole_copy_reads(rmu, family, small_benchmark):
    """The reference copies the decoder layers up to the steered one and no output layer; at that layer it reads
    what a whole copy reads, bit for bit, with images and without."""
    import copy

    from unlearn.eval.scoring import model_inputs

    model, proc = _stand_in(family)
    prefix, layers = rmu.decoder_layers(model)
    whole = copy.deepcopy(model).eval()
    batches = [model_inputs(_batch(proc, small_benchmark, "forget", form), "cpu") for form in ("multimodal", "text")]
    for k in range(len(layers)):
        name = f"{prefix}.{k}"
        reference = rmu.reference_copy(model, name)
        assert not reference.training and not any(p.requires_grad for p in reference.parameters())
        assert len(reference.get_submodule(prefix)) == k + 1 and reference.get_output_embeddings() is None
        kept = {n for n, _ in reference.named_parameters()}
        left = {n for n, _ in model.named_parameters()} - kept
        assert left == {n for n, _ in model.named_parameters() if n.startswith("lm_head.")
                        or any(n.startswith(f"{prefix}.{i}.") for i in range(k + 1, len(layers)))}
        assert all(torch.equal(p, model.get_parameter(n)) for n, p in reference.named_parameters())
        for inputs in batches:
            with torch.no_grad():
                ours = rmu.layer_output(reference, reference.get_submodule(name), inputs)
                theirs = rmu.layer_output(whole, whole.get_submodule(name), inputs)
            assert torch.equal(ours, theirs), (family, k)
    assert "pixel_values" in batches[0] and "pixel_values" not in batches[1]


def test_the_reference_never_copies_what_it_leaves_out(rmu, monkeypatch):
    """The layers after k and the output layer are not copied and then dropped (a peak of two whole models): no
    tensor of theirs is ever copied. Sizes: the embedded model's reference at layer 0 holds 336,768 of its 531,840
    parameters (63 %); at LLaVA-1.5-7B's shape 0.66 G of 7.06 G at layer 0, 2.07 G at open-unlearning's layer 7."""
    model, _ = _stand_in("embedded")
    copied = []
    deepcopy = torch.nn.Parameter.__deepcopy__

    def recording(self, memo):
        copied.append(self)
        return deepcopy(self, memo)

    monkeypatch.setattr(torch.nn.Parameter, "__deepcopy__", recording)
    reference = rmu.reference_copy(model, LAYER)
    assert {id(p) for p in copied} == {id(model.get_parameter(n)) for n, _ in reference.named_parameters()}
    assert (sum(p.numel() for p in reference.parameters()), sum(p.numel() for p in model.parameters())) == (
        336_768, 531_840)
    assert len(rmu.RMU(model, None, LAYER, [TRAINED], 2.0, 1.0, 1.0).reference.get_submodule(
        "model.language_model.layers")) == 1  # the method's reference is this one
    # a module outside the decoder layers: the whole model, as open-unlearning copies it
    whole = rmu.reference_copy(model, "model.vision_tower.encoder.layers.0")
    assert [n for n, _ in whole.named_parameters()] == [n for n, _ in model.named_parameters()]


# ------------------------------------------------------------- decoder layer k named alike in every model family

@pytest.mark.parametrize("family", ["embedded", "llava", "qwen2_vl", "idefics2"])
def test_the_configs_layer_names_decoder_layer_k_in_every_family(rmu, family, tmp_path):
    """{layers} in rmu.module_regex and rmu.trainable_params_regex is the language model's decoder layer list, found
    by transformers' get_decoder(): the same list each family's shipped config names for MANU's language tower
    (model.mlp_modules.language). Until the forty-seventh session the example's config named LLaVA's list, and
    Idefics2 (model.text_model.layers) was refused, once per key, listing the vision tower's layers."""
    import yaml

    from unlearn.config import compose_config

    model, _ = _stand_in(family)
    prefix, layers = rmu.decoder_layers(model)
    config = CONFIG_OF.get(family, "tiny_llava")
    tower = yaml.safe_load((ROOT / "configs" / "model" / f"{config}.yaml").read_text())["mlp_modules"]["language"]
    assert tower == re.escape(prefix) + r"\.\d+\.mlp\.down_proj"
    cfg = compose_config(["method=rmu", SEARCHPATH], tmp_path, tmp_path)
    rmu.check_before_evaluation(SimpleNamespace(cfg=cfg, model=model), 1)
    assert rmu.matching_module(model, cfg.rmu.module_regex)[0] == f"{prefix}.0"
    assert rmu.trainable_names(model, cfg.rmu.trainable_params_regex) == [f"{prefix}.0.mlp.down_proj.weight"]
    assert rmu.matching_module(model, r"{layers}\.1")[0] == f"{prefix}.1"
    # a layer past the last: refused, naming the key and the layers there are
    past = compose_config(["method=rmu", SEARCHPATH, r'rmu.module_regex="{layers}\.7"'], tmp_path, tmp_path)
    with pytest.raises(ValueError, match=r"rmu.module_regex='\{layers\}\\\\.7' .* matches no module.*"
                                         rf"{re.escape(prefix)} here, the language model's 2 decoder layers"):
        rmu.check_before_evaluation(SimpleNamespace(cfg=past, model=model), 1)
    with pytest.raises(ValueError, match=r"rmu.trainable_params_regex: .* matches no parameter.*2 decoder layers"):
        rmu.trainable_names(model, [r"{layers}\.7\.mlp\.down_proj\.weight"])


def test_a_model_without_a_decoder_layer_list_is_named_without_layers(rmu):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert rmu.matching_module(model, "0")[0] == "0"  # a name without {layers} is taken as it is
    with pytest.raises(ValueError, match=r"Sequential: no decoder layer list found .* name the modules"):
        rmu.matching_module(model, r"{layers}\.0")
    assert len(list(rmu.reference_copy(model, "0").parameters())) == 2  # the whole model


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics2"])
def test_a_step_on_each_family_moves_only_the_chosen_tensor(rmu, family, small_benchmark):
    """The example's default names, one step on a stand-in: the steered layer's MLP output weights move, nothing
    else, and the reference (layers 0 and the rest of the stack before it) stays as it was."""
    import lightning as L

    from unlearn.methods.gradient import frozen_reference_expected, paired_loader

    model, proc = _stand_in(family)
    name, _ = rmu.matching_module(model, r"{layers}\.0")
    (trained,) = rmu.trainable_names(model, [r"{layers}\.0\.mlp\.down_proj\.weight"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.requires_grad_(n == trained)
    module = rmu.RMU(model, lambda ps: torch.optim.SGD(ps, lr=1.0), name, [trained], 2.0, 1.0, 1.0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=1,
                        enable_model_summary=False, enable_checkpointing=False)
    with frozen_reference_expected(module):
        trainer.fit(module, paired_loader(SimpleNamespace(benchmark=small_benchmark, processor=proc), "multimodal", 4))
    assert [n for n, p in model.named_parameters() if not torch.equal(p, before[n])] == [trained]
    assert all(torch.equal(p, before[n]) for n, p in module.reference.named_parameters())
