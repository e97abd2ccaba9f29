"""model.forward_positions=sequential: transformers 4.45.1's Qwen2-VL forward (CLEAR's pinned version), held against a
port of its lines (modeling_qwen2_vl.py:1197-1205 there: with no position ids, the cache positions repeated over the
three rotary sections), on a tiny Qwen2-VL with an image."""

from __future__ import annotations

import copy

import pytest
import torch

from unlearn.models.positions import apply_forward_positions, check_forward_positions


@pytest.fixture(scope="module")
def image_batch():
    """A tiny Qwen2-VL and a right-padded two-row batch, each row an image then text (where M-RoPE and counted
    positions differ: the text after an image's grid)."""
    from PIL import Image

    from unlearn.models import tiny_real
    from unlearn.models.chat_processor import ChatProcessor
    from unlearn.models.chat_template import ChatTemplate
    from unlearn.data.collate import collate
    from unlearn.data.written import written_example

    model, tok, images = tiny_real.build_tiny_real("qwen2_vl")
    template = ChatTemplate(prefix="<|im_start|>user\n", after_image="", question="{question}<|im_end|>\n"
                            "<|im_start|>assistant\n", answer="{answer}", stop="<|im_end|>", bos=False)
    proc = ChatProcessor(tok, images, model.config, template)
    (picture,) = proc.pixel_values([Image.new("RGB", (56, 56), (120, 30, 200))])
    rows = [written_example(proc, q, a, picture, "mmunlearner", "qwen2_vl")
            for q, a in (("who is this", "a name"), ("what is shown here now", "b"))]
    return model.eval(), collate(rows, tok.pad_token_id), collate(rows[:1], tok.pad_token_id)


def _their_positions(batch, past=0):
    """4.45.1: cache_position = arange(past, past + L); position_ids = cache_position.view(1, 1, -1).expand(3, B, -1)."""
    b, length = batch["input_ids"].shape
    return torch.arange(past, past + length).view(1, 1, -1).expand(3, b, -1)


def test_sequential_forward_is_their_counted_positions_and_not_mrope(image_batch):
    model, batch, one = image_batch
    ours = copy.deepcopy(model)
    apply_forward_positions(ours, "sequential")
    with torch.no_grad():
        mrope = model(**batch).loss
        theirs = model(**batch, position_ids=_their_positions(batch)).loss
        counted = ours(**batch).loss
    assert torch.equal(counted, theirs)
    assert not torch.isclose(counted, mrope)  # the image moves the text's 3-D positions: the setting matters here
    with torch.no_grad():  # given position ids are kept
        assert torch.equal(ours(**batch, position_ids=_their_positions(batch)).loss, theirs)


def test_sequential_counts_after_the_cached_tokens(image_batch):
    """The second half of a row after the first half's cache sees the same logits as the whole row: positions
    continue from the cache (4.45.1: cache_position from past_seen_tokens)."""
    model, batch, one = image_batch
    ours = copy.deepcopy(model)
    apply_forward_positions(ours, "sequential")
    row = {k: v for k, v in one.items() if k != "labels"}
    width = row["input_ids"].shape[1]

    def upto(stop, start=0):  # the row's token-wise tensors cut to [start, stop)
        return {k: v[:, start:stop] if v.dim() == 2 and v.shape[1] == width else v for k, v in row.items()}

    length = int(row["attention_mask"].sum())
    cut = length - 3
    with torch.no_grad():
        whole = ours(**upto(length)).logits
        first = ours(**upto(cut), use_cache=True)
        cache = first["cache"] if "cache" in first else first["past_key_values"]
        kwarg = "cache" if "cache" in first else "past_key_values"
        rest = ours(input_ids=row["input_ids"][:, cut:length], attention_mask=row["attention_mask"][:, :length],
                    **{kwarg: cache}).logits
    torch.testing.assert_close(rest, whole[:, cut:length], rtol=1e-4, atol=1e-5)


def test_generation_keeps_its_3d_positions(image_batch):
    """4.45.1's prepare_inputs_for_generation computed the 3-D positions: generation is the same under either."""
    model, batch, one = image_batch
    ours = copy.deepcopy(model)
    apply_forward_positions(ours, "sequential")
    prompt = {k: v for k, v in one.items() if k != "labels"}
    kw = {"max_new_tokens": 4, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}
    with torch.no_grad():
        want, got = model.generate(**prompt, **kw), ours.generate(**prompt, **kw)
    assert torch.equal(got.sequences, want.sequences)
    for a, b in zip(got.logits, want.logits):  # every step's logits: a random tiny model's tokens barely move
        assert torch.equal(a, b)


def test_the_setting_survives_a_copy_and_applies_once(image_batch):
    """The KL reference is a deep copy of the model: it keeps the hook; applying twice adds no second hook."""
    model, batch, one = image_batch
    ours = apply_forward_positions(apply_forward_positions(copy.deepcopy(model), "sequential"), "sequential")
    assert len(ours.model._forward_pre_hooks) == 1
    twin = copy.deepcopy(ours)
    with torch.no_grad():
        assert torch.equal(twin(**batch).loss, model(**batch, position_ids=_their_positions(batch)).loss)


def test_bad_values_and_other_models_are_refused():
    from unlearn.models.tiny_real import build_tiny_real

    with pytest.raises(ValueError, match=r"model.forward_positions='counted'"):
        check_forward_positions("counted")
    llava, _, _ = build_tiny_real("llava")
    assert apply_forward_positions(llava, "mrope") is llava
    with pytest.raises(ValueError, match=r"model.forward_positions=sequential .* 'llava'"):
        apply_forward_positions(llava, "sequential")


def test_clear_baselines_set_it_and_the_run_loads_it(tmp_path):
    """experiment=clear_baselines (CLEAR pins transformers 4.45.1) sets sequential; the run's loader applies it."""
    from unlearn.config import compose_config
    from unlearn.models import tiny_real
    from unlearn.pipeline import load_configured
    from unlearn.settings import check_run_settings

    cfg = compose_config(["experiment=clear_baselines"], tmp_path, tmp_path / "cache")
    assert cfg.model.forward_positions == "sequential"
    assert compose_config(["model=qwen2_vl_7b"], tmp_path, tmp_path / "cache").model.forward_positions == "mrope"
    source = tiny_real.write_tiny_real("qwen2_vl", tmp_path / "qwen2_vl")
    cfg.model.path = str(source)
    model, _ = load_configured(cfg, source)
    assert model.model.counted_positions
    bad = compose_config(["experiment=clear_baselines", "model.forward_positions=3d"], tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"model.forward_positions='3d'"):
        check_run_settings(bad)
