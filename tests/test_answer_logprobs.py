"""Whole-row answer log-probabilities normalise only the answer positions, without a key/value cache, and
give the values of normalising every position, bit for bit (on CPU), in every family."""

import pytest
import torch

from tests.test_shared_prompt import ANSWERS, CONFIGS, _real, checkpoints, prompts_of, sharpen  # noqa: F401
from unlearn.data.collate import IGNORE, collate, qa_example
from unlearn.eval.items import flatten
from unlearn.eval.scoring import answer_logprobs, model_inputs


def every_position(model, batch, per_token=False):
    """The computation before: float32 logits and log-softmax over every position of every row."""
    logits = model(**model_inputs(batch, "cpu")).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (logp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if per_token else total


def rows(proc, prompts):
    exs = [qa_example(proc, [(q, a)], pv) for (q, pv), row in zip(prompts, ANSWERS) for a in row]
    return collate(exs, proc.tokenizer.pad_token_id)


def check(model, proc, prompts):
    batch = rows(proc, prompts)
    assert (batch["attention_mask"] == 0).any()  # right padding, whose positions must not count
    for per_token in (False, True):
        got, want = answer_logprobs(model, batch, per_token=per_token), every_position(model, batch, per_token)
        assert torch.equal(got, want), (got - want).abs().max()
    answer_lengths = (batch["labels"] != IGNORE).sum(-1)
    assert answer_lengths.min() < answer_lengths.max()  # rows whose answers end at different positions


def test_embedded_model(tiny_model, small_benchmark):
    model, proc = tiny_model
    sharpen(model)
    images = [it.pixel_values for it in flatten("forget", small_benchmark.eval["forget"], proc.pixel_values)
              if it.pixel_values is not None][:2]
    check(model, proc, prompts_of(images))


def test_embedded_model_in_bfloat16(tiny_model, small_benchmark):
    model, proc = tiny_model
    sharpen(model).to(torch.bfloat16)
    images = [it.pixel_values.to(torch.bfloat16) for it in
              flatten("forget", small_benchmark.eval["forget"], proc.pixel_values) if it.pixel_values is not None][:2]
    check(model, proc, prompts_of(images))


@pytest.mark.parametrize("family", list(CONFIGS))
def test_real_families(tmp_path, checkpoints, family):  # noqa: F811
    model, proc, prompts = _real(tmp_path, checkpoints, family)
    check(model, proc, prompts)


def test_no_cache_is_built_and_logits_only_at_answers(tiny_model, small_benchmark, monkeypatch):
    """The forward is asked for no cache (whole rows never read one: it held every layer's keys and values)
    and for logits at the answer positions alone: one row of vocabulary per answer token, not per position."""
    model, proc = tiny_model
    seen = {}
    forward = model.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        out = forward(*args, **kwargs)
        seen["logits"] = out.logits.shape
        return out

    monkeypatch.setattr(model, "forward", spy)
    batch = rows(proc, prompts_of([None]))
    answer_logprobs(model, batch)
    assert seen.get("use_cache") is False
    answer_tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert seen["logits"] == (answer_tokens, model.config.text_config.vocab_size)
    assert answer_tokens < batch["input_ids"].numel() / 2  # the prompts are most of each row
    # a row with no answer tokens gets no logits and sums to 0
    first_row = int((batch["labels"][0, 1:] != IGNORE).sum())
    batch["labels"][0] = IGNORE
    assert answer_logprobs(model, batch, per_token=True)[0] == 0
    assert seen["logits"][0] == answer_tokens - first_row

def test_manu_statistics_pass_without_every_logit_gathers_the_same_moments(tmp_path, tiny_model, small_benchmark,
                                                                            monkeypatch):
    """MANU's pass reads the MLPs only: one logit per row and no cache leave every moment bit for bit."""
    import copy

    from unlearn.config import compose_config
    from unlearn.methods import manu
    from unlearn.pipeline import RunContext

    model, proc = tiny_model
    sharpen(model)
    cfg = compose_config(["debug=fast", "method=manu", "logger=none"], tmp_path / "run", tmp_path / "cache")
    made = []

    class Recorded(manu.ActivationStatistics):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(manu, "ActivationStatistics", Recorded)
    now = manu.ActivationPass.validation_step

    def every_position(self, batch, batch_idx, dataloader_idx=0):  # the pass before: full logits and a cache
        self.model(**model_inputs(batch, self.device))

    weights = []
    for step in (now, every_position):
        monkeypatch.setattr(manu.ActivationPass, "validation_step", step)
        ctx = RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path / step.__name__)
        manu.run(ctx)
        weights.append(ctx.model.state_dict())
    a, b = (m.moments for m in made)
    assert a.keys() == b.keys() and a
    for key in a:
        for name in a[key]:
            for field, x in vars(a[key][name]).items():
                assert torch.equal(x, getattr(b[key][name], field)), (key, name, field)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
