"""Answers scored after one pass over their shared prompt equal whole rows, on every family that uses it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from unlearn.config import compose_config
from unlearn.data.collate import collate, prompt_example, qa_example
from unlearn.eval.items import flatten
from unlearn.eval.scoring import answer_logprobs, answer_set_logprobs, score_mc, score_probabilities
from unlearn.eval.shared_prompt import answer_passes, answers_after_prompts, cache_bytes, shares_prompt
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


# how far float rounding moves an answer's log-probability (about -10 to -30 here) when its batch's rows change:
# 0 on the AMD processors this ran on, up to 4e-6 on an Intel Xeon with AMX; a wrong prompt moves it by more than 0.1
ROUNDING = 1e-4


def shared(model, proc, prompts, answers, per_token, cache_gb=None):
    pad = proc.tokenizer.pad_token_id
    batch = collate([prompt_example(proc, q, pv) for q, pv in prompts], pad, padding_side="left")
    return answers_after_prompts(model, batch, [proc.answer_ids(a) for row in answers for a in row],
                                 [len(row) for row in answers], pad, per_token, cache_gb)


def row_cache_bytes(model, proc, prompts, answers) -> int:
    """What one answer row's copy of its prompt's key/value cache takes at the end of its pass: the prompts are
    padded to one length P, the answers to one length A, and the copy grows from P to P + A tokens."""
    batch = collate([prompt_example(proc, q, pv) for q, pv in prompts], proc.tokenizer.pad_token_id,
                    padding_side="left")
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=True, logits_to_keep=1)
    prompt_len = batch["input_ids"].shape[1]
    answer_len = max(len(proc.answer_ids(a)) for row in answers for a in row)
    return cache_bytes(out.past_key_values) // len(prompts) * (prompt_len + answer_len) // prompt_len


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


def test_answer_passes_keep_each_pass_under_the_budget():
    assert answer_passes(10, 100, None) == 1  # no bound: one pass
    assert answer_passes(10, 100, 250) == 5  # 2 rows of 100 bytes per pass
    assert answer_passes(10, 100, 300) == 4  # 3, 3, 3, 1
    assert answer_passes(10, 100, 1000) == 1  # exactly fits
    assert answer_passes(10, 100, 999) == 2
    assert answer_passes(10, 100, 50) == 10  # a row larger than the budget still runs, alone
    assert answer_passes(1, 10**9, 1) == 1
    with pytest.raises(ValueError, match="0 answers"):
        answer_passes(0, 100, 250)


@pytest.mark.parametrize("family", ["embedded", "llava", "idefics2"])
def test_answers_in_passes_under_a_cache_budget_equal_one_pass(tmp_path, checkpoints, tiny_model, small_benchmark,
                                                               monkeypatch, family):
    """Split into passes, each answer sees the same prompt cache: the copy one pass grows must not reach the
    next, and each pass must take its own rows' prompts. Bit for bit on the AMD processors; on an Intel Xeon
    (AVX-512 with AMX, thirty-second session) the float kernels depend on a batch's rows, and the passes differ
    from one pass by float rounding (up to 4e-6 here), far below what a leaked or wrong prompt moves."""
    if family == "embedded":
        model, proc = tiny_model
        sharpen(model)
        portraits = [it.pixel_values for it in flatten("forget", small_benchmark.eval["forget"], proc.pixel_values)
                     if it.pixel_values is not None]
        prompts = prompts_of([portraits[0], portraits[-1]])
    else:
        model, proc, prompts = _real(tmp_path, checkpoints, family)
    per_row = row_cache_bytes(model, proc, prompts, ANSWERS)
    assert per_row > 0
    one = shared(model, proc, prompts, ANSWERS, False)
    n = sum(len(r) for r in ANSWERS)
    calls = _forwards(model, monkeypatch)
    for rows in (1, 3, n - 1):  # rows per pass: the budget holds `rows` grown copies and not one more
        calls.clear()
        split = shared(model, proc, prompts, ANSWERS, False, cache_gb=(rows + 0.5) * per_row / 1e9)
        assert len(calls) == 1 + -(-n // rows)  # the prompts once, then the answers in passes
        torch.testing.assert_close(split, one, rtol=0, atol=ROUNDING, msg=f"{rows} rows per pass")
    calls.clear()
    torch.testing.assert_close(shared(model, proc, prompts, ANSWERS, False, cache_gb=4), one, rtol=0, atol=ROUNDING)
    assert len(calls) == 2  # a budget far above the batch: one answer pass, as without a bound


def test_ranks_run_the_same_number_of_passes(tmp_path):
    """Under FSDP each pass gathers the weights on every rank: a rank with fewer answers (here 2 against 9, one
    row per pass) runs idle passes until the other is done, and its own numbers do not change."""
    script = Path(__file__).parent / "scripts" / "shared_prompt_in_step.py"
    out = tmp_path / "in_step.pt"
    proc = subprocess.run([sys.executable, str(script), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = torch.load(out, weights_only=False)
    assert [r["answers"] for r in ranks] == [2, 9]
    assert [r["forwards_alone"] for r in ranks] == [1 + 2, 1 + 9]  # each rank alone: one row per pass
    assert [r["forwards_in_step"] for r in ranks] == [1 + 9, 1 + 9]
    for r in ranks:
        assert torch.equal(r["in_step"], r["alone"])


def test_evaluation_passes_its_cache_budget_to_the_scorers(tiny_model, small_benchmark, monkeypatch):
    """eval.shared_cache_gb reaches both likelihood scorers: MC and truth-ratio sets run in more passes under a
    small budget, with the same records."""
    from unlearn.eval.evaluator import EvaluationModule

    model, proc = tiny_model
    sharpen(model)
    items = [it for it in flatten("forget", small_benchmark.eval["forget"], proc.pixel_values)
             if it.task in ("mc", "prob")][:24]
    calls = _forwards(model, monkeypatch)
    records = {}
    for budget in (None, 1e-9):  # 1 byte: one answer row per pass
        module = EvaluationModule(model, proc, items, "after", batch_size=64, shared_cache_gb=budget)
        module.on_validation_epoch_start()
        assert module.tasks == ["mc", "prob"]
        calls.clear()
        for i, task in enumerate(module.tasks):
            module.validation_step(module.items_by_task[task], 0, i)
        records[budget], passes = module._records, len(calls)
        if budget is None:
            assert passes == 2 * len(module.tasks)
        else:
            rows = sum(len(it.options) if it.task == "mc" else 2 + len(it.perturbed) for it in items)
            assert passes == len(module.tasks) + rows
    assert_same_records(records[1e-9], records[None])


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """Records equal but for float rounding (ROUNDING) in their numbers."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys(), g["uid"]
        for key, value in w.items():
            if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
                assert g[key] == pytest.approx(value, rel=0, abs=ROUNDING), (g["uid"], key)
            else:
                assert g[key] == value, (g["uid"], key)


def test_a_cache_whose_layers_count_in_place_is_refused_by_name():
    """A static layer updates its length tensor in place: a shallow copy per pass would corrupt the prompts'
    cache for the next pass, so it is refused with the setting that avoids it."""
    from transformers import cache_utils

    from unlearn.eval.shared_prompt import _select

    class Cache:
        layers = [cache_utils.StaticLayer(max_cache_len=4)]

    with pytest.raises(NotImplementedError, match=r"StaticLayer.*eval.share_prompt=false"):
        _select(Cache(), torch.tensor([0]))
