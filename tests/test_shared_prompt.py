"""Answers scored after one pass over their shared prompt equal whole rows, on every family that uses it."""

import pytest
import torch
from PIL import Image

from unlearn.config import compose_config
from unlearn.data.collate import collate, prompt_example, qa_example
from unlearn.eval.items import flatten
from unlearn.eval.scoring import answer_logprobs, answer_set_logprobs, score_mc, score_probabilities
from unlearn.eval.shared_prompt import answers_after_prompts, shares_prompt
from unlearn.models.tiny_real import write_tiny_real
from unlearn.pipeline import load_configured

CONFIGS = {"llava": "llava_1_5_7b", "idefics2": "idefics2_8b", "qwen2_vl": "qwen2_vl_7b"}
# prompts of several lengths, with and without an image, and answers of several lengths and counts
QUESTIONS = ["what is the job of this person ?", "where was this person born ?",
             "what is the favourite food of the person in this story ?", "who is this ?"]
ANSWERS = [["nurse", "pilot", "a nurse from porto", "dentist"], ["riga"],
           ["pho", "ramen", "kimchi and curry", "paella", "gnocchi", "fondue", "crepes"], ["elowen", "a farmer from cork"]]


def whole_rows(model, proc, prompts, answers, per_token):
    exs = [qa_example(proc, [(q, a)], pv) for (q, pv), row in zip(prompts, answers) for a in row]
    return answer_logprobs(model, collate(exs, proc.tokenizer.pad_token_id), per_token=per_token)


def shared(model, proc, prompts, answers, per_token):
    pad = proc.tokenizer.pad_token_id
    batch = collate([prompt_example(proc, q, pv) for q, pv in prompts], pad, padding_side="left")
    return answers_after_prompts(model, batch, [proc.answer_ids(a) for row in answers for a in row],
                                 [len(row) for row in answers], pad, per_token)


def sharpen(model):
    """Random tiny weights answer almost uniformly, whatever the prompt or position, which would let a wrong
    cache or position pass: larger weights make every answer depend on both."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def prompts_of(images):
    return [(q, images[i % len(images)] if i % 2 == 0 else None) for i, q in enumerate(QUESTIONS)]


@pytest.mark.parametrize("per_token", [False, True])
def test_embedded_model_shared_prompt_equals_whole_rows(tiny_model, small_benchmark, per_token):
    model, proc = tiny_model
    sharpen(model)
    portraits = {it.person: it.pixel_values for s in ("forget", "retain")
                 for it in flatten(s, small_benchmark.eval[s], proc.pixel_values) if it.pixel_values is not None}
    images = list(portraits.values())[:2]  # two people
    prompts = prompts_of(images)
    assert shares_prompt(model)
    whole = whole_rows(model, proc, prompts, ANSWERS, per_token)
    torch.testing.assert_close(shared(model, proc, prompts, ANSWERS, per_token), whole, atol=1e-5, rtol=1e-5)
    # and it is not the same number whatever the prompt: another image moves the answers after it
    moved = shared(model, proc, [(q, images[1] if pv is not None else None) for q, pv in prompts], ANSWERS,
                   per_token)
    assert (moved - whole).abs().max() > 0.1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_real")
    return {f: write_tiny_real(f, root / f) for f in CONFIGS}


def _real(tmp_path, checkpoints, family):
    cfg = compose_config(["debug=fast", f"model={CONFIGS[family]}", f"model.path={checkpoints[family]}",
                          "model.dtype=float32", "model.portrait_size=32"], tmp_path / "run", tmp_path / "cache")
    model, proc = load_configured(cfg, checkpoints[family])
    sharpen(model)
    images = proc.pixel_values([Image.new("RGB", (32, 32), (200, 40, 90)), Image.new("RGB", (32, 32), (20, 140, 9))])
    return model, proc, prompts_of(images)


@pytest.mark.parametrize("family", ["llava", "idefics2"])
@pytest.mark.parametrize("per_token", [False, True])
def test_real_family_shared_prompt_equals_whole_rows(tmp_path, checkpoints, family, per_token):
    model, proc, prompts = _real(tmp_path, checkpoints, family)
    assert shares_prompt(model)
    whole = whole_rows(model, proc, prompts, ANSWERS, per_token)
    torch.testing.assert_close(shared(model, proc, prompts, ANSWERS, per_token), whole, atol=1e-5, rtol=1e-5)
    by_prompt = answer_set_logprobs(model, proc, prompts, ANSWERS, per_token, share_prompt=True)
    assert [len(r) for r in by_prompt] == [len(r) for r in ANSWERS]
    torch.testing.assert_close(torch.tensor([x for r in by_prompt for x in r]), whole, atol=1e-5, rtol=1e-5)


def test_qwen2_vl_scores_whole_rows(tmp_path, checkpoints):
    """Its 3-D rotary positions place the text after an image by the whole row: the 2-D positions given to the
    answers are wrong (forced, the answers move by about 0.1 nats here), so it keeps whole rows (bit for bit,
    as with share_prompt=false)."""
    model, proc, prompts = _real(tmp_path, checkpoints, "qwen2_vl")
    assert not shares_prompt(model)
    forced = shared(model, proc, prompts, ANSWERS, False)
    assert (forced - whole_rows(model, proc, prompts, ANSWERS, False)).abs().max() > 0.01
    assert answer_set_logprobs(model, proc, prompts, ANSWERS, share_prompt=True) == \
        answer_set_logprobs(model, proc, prompts, ANSWERS)


def _forwards(model, monkeypatch):
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


@pytest.mark.parametrize("mode", ["likelihood", "letter"])
def test_mc_records_do_not_depend_on_share_prompt(tiny_model, small_benchmark, monkeypatch, mode):
    model, proc = tiny_model
    sharpen(model)
    items = [it for it in flatten("forget", small_benchmark.eval["forget"], proc.pixel_values) if it.task == "mc"]
    calls = _forwards(model, monkeypatch)
    shared_records = score_mc(model, proc, items, mode, share_prompt=True)
    assert len(calls) == 2  # the prompts once, then every option after them
    assert score_mc(model, proc, items, mode) == shared_records  # whole rows: score_mc's default
    assert len(calls) == 3


def test_truth_ratio_records_do_not_depend_on_share_prompt(tiny_model, small_benchmark):
    model, proc = tiny_model
    sharpen(model)
    items = [it for it in flatten("forget", small_benchmark.eval["forget"], proc.pixel_values) if it.task == "prob"]
    assert items and all(it.perturbed for it in items)
    a, b = score_probabilities(model, proc, items, share_prompt=True), score_probabilities(model, proc, items)
    assert [r["uid"] for r in a] == [r["uid"] for r in b]
    for x, y in zip(a, b):
        torch.testing.assert_close(torch.tensor([x["gt_logp"], x["para_logp"], *x["pert_logp"]]),
                                   torch.tensor([y["gt_logp"], y["para_logp"], *y["pert_logp"]]),
                                   atol=1e-5, rtol=1e-5)
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)


def test_mismatched_answers_are_refused(tiny_model):
    model, proc = tiny_model
    pad = proc.tokenizer.pad_token_id
    batch = collate([prompt_example(proc, q, None) for q in QUESTIONS[:2]], pad, padding_side="left")
    with pytest.raises(ValueError, match="counts"):
        answers_after_prompts(model, batch, [[5], [6]], [1, 2], pad)
    with pytest.raises(ValueError, match="no tokens"):
        answers_after_prompts(model, batch, [[5], []], [1, 1], pad)
    with pytest.raises(ValueError, match="no answers"):
        answers_after_prompts(model, batch, [], [0, 0], pad)
