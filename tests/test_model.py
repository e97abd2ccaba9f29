import pytest
import torch

from unlearn.data.collate import IGNORE, collate, qa_example
from unlearn.models.loading import CheckpointError, load_model, save_model
from unlearn.models.tiny_llava import TinyLlavaSpec, build_tiny_llava


def _batch(proc, image):
    px = proc.pixel_values([image])[0]
    exs = [qa_example(proc, [("what is this person 's job ?", "teacher")], px),
           qa_example(proc, [("what is alara venn 's job ?", "nurse"), ("when was alara venn born ?", "1960")], None)]
    return collate(exs, proc.tokenizer.pad_token_id)


def test_build_is_seeded_and_small():
    (m1, _), (m2, _) = build_tiny_llava(TinyLlavaSpec()), build_tiny_llava(TinyLlavaSpec())
    p1, p2 = dict(m1.named_parameters()), dict(m2.named_parameters())
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert 100_000 < sum(p.numel() for p in m1.parameters()) < 2_000_000


def test_save_load_round_trip(tiny_model, small_splits, tmp_path):
    model, proc = tiny_model
    batch = _batch(proc, small_splits["forget_10"][0]["image"])
    model.eval()
    with torch.no_grad():
        ref = model(**batch).logits
    save_model(model, proc, tmp_path / "ckpt")
    loaded, proc2 = load_model(tmp_path / "ckpt")
    batch2 = _batch(proc2, small_splits["forget_10"][0]["image"])
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    with torch.no_grad():
        out = loaded.eval()(**batch2).logits
    torch.testing.assert_close(out, ref)


def test_settings_for_a_real_checkpoints_processor_are_named_when_the_embedded_one_ignores_them(tiny_model, tmp_path,
                                                                                            caplog):
    import logging

    model, proc = tiny_model
    save_model(model, proc, tmp_path / "ckpt")
    with caplog.at_level(logging.WARNING, logger="unlearn.models.loading"):
        load_model(tmp_path / "ckpt")
        assert not caplog.records
        load_model(tmp_path / "ckpt", template={"prefix": "USER: "}, image_processor={"do_resize": False})
    (record,) = caplog.records
    assert "model.template, model.image_processor not applied" in record.getMessage()


def test_models_load_with_hub_kernels_off(tiny_model, tmp_path):
    """transformers 5 would swap layers for kernels downloaded from the hub at the first train() on a GPU (a
    download at run time, failing offline; seen on an H200): every load turns them off."""
    import unlearn.models.loading as loading

    model, proc = tiny_model
    save_model(model, proc, tmp_path / "ckpt")
    loaded, _ = load_model(tmp_path / "ckpt")
    if not loading.HUB_KERNELS_SWITCH:
        pytest.skip("this transformers has no hub kernels")
    assert loaded.use_kernels is False
    loaded.train()  # what a gradient method does first: no kernelize, no hub read
    assert loaded.use_kernels is False and loaded.kernels_mode is None


def test_labels_cover_answers_only(tiny_model):
    _, proc = tiny_model
    ex = qa_example(proc, [("what is alara venn 's job ?", "nurse")], None)
    supervised = [t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE]
    assert proc.tokenizer.decode(supervised) == "nurse <eos>"
    full = qa_example(proc, [("what is alara venn 's job ?", "nurse")], None, answer_only=False)
    assert sum(l != IGNORE for l in full.labels) > len(supervised)


def test_image_rows_get_image_tokens(tiny_model, small_splits):
    model, proc = tiny_model
    batch = _batch(proc, small_splits["forget_10"][0]["image"])
    n_img = (batch["input_ids"] == proc.image_token_id).sum(1).tolist()
    assert n_img == [proc.num_image_tokens, 0]
    assert batch["pixel_values"].shape == (1, 3, 32, 32)
    assert model(**batch).loss.isfinite()


def test_missing_checkpoint_names_the_key(tmp_path):
    with pytest.raises(CheckpointError, match=r"model.path=.*nowhere: no checkpoint there"):
        load_model(tmp_path / "nowhere")
    # a relative path of more than two parts cannot be a hub id (`name` or `owner/name`): read as local
    with pytest.raises(CheckpointError, match=r"method.reference_path=runs/nowhere/model: no checkpoint there"):
        load_model("runs/nowhere/model", key="method.reference_path")


def test_an_unsupported_family_is_refused_from_its_config_before_its_weights(tmp_path):
    import json

    ckpt = tmp_path / "bert"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "bert"}))  # no weights: loading them would fail
    with pytest.raises(CheckpointError, match=r"model.path: .*config.json says model_type 'bert', which has no "
                                              r"image adapter here; supported: \['llava'"):
        load_model(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not readable JSON"):
        load_model(ckpt)


def test_a_failed_hub_read_names_the_key_and_how_to_write_a_local_path(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from unlearn.models.loading import load_model\n"
            "try:\n    load_model('nowhere/model')\nexcept Exception as e:\n    print(type(e).__name__, e)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}  # offline: no retries, an empty cache
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("CheckpointError model.path=nowhere/model: no such local directory, and reading it as a "
                          "hub id failed (write a local path as ./nowhere/model or an absolute one; "), out
    # the command that fetches it, which the docs promise (until the forty-sixth session the data's message alone
    # gave one)
    assert "`hf download nowhere/model --local-dir DIR`, and set model.path=DIR" in out, out


def test_an_unreachable_hub_checkpoint_is_refused_by_its_message_alone(tmp_path, monkeypatch):
    """The run's checkpoint read as a hub id offline: train.py printed the message under Hydra's traceback (and
    huggingface_hub's chained errors) until the forty-sixth session; it is now a refusal before the run."""
    from transformers import AutoConfig

    from unlearn.config import compose_config
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.pipeline import run
    from unlearn.settings import refused_before_run

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(AutoConfig, "from_pretrained", offline)
    data = write_mllmu_bench_fixture(tmp_path / "MLLMU-Bench")
    cfg = compose_config(["debug=fast", "method=evaluate", "model=llava_1_5_7b", "data=mllmu_bench",
                          f"data.path={data}", "eval.before=false"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(CheckpointError, match=r"model.path=llava-hf/llava-1.5-7b-hf: .*hf download") as refused:
        run(cfg)
    assert refused_before_run(refused.value)


def test_mc_scoring_modes_pick_an_option(tiny_model, small_splits):
    from unlearn.eval.items import flatten
    from unlearn.eval.scoring import score_mc

    model, proc = tiny_model
    items = [it for it in flatten("forget", small_splits["forget_10"], proc.pixel_values) if it.task == "mc"]
    for mode in ("likelihood", "letter"):
        records = score_mc(model.eval(), proc, items, mode)
        assert len(records) == len(items)
        assert all(r["prediction"] in it.options for r, it in zip(records, items))
        assert all(r["score"] == float(r["prediction"] == it.answer) for r, it in zip(records, items))
    with pytest.raises(ValueError, match="eval.mc_mode='guess'"):
        score_mc(model, proc, items, "guess")


def test_likelihood_mc_picks_the_option_of_highest_summed_log_probability(tiny_model, small_splits, monkeypatch):
    """The option whose answer tokens the model finds most likely in all (a sum, not a per-token mean), each
    option scored after the question alone; and the pick follows the scores, not their order."""
    from tests.likelihood import answer_token_logprobs
    from unlearn.eval import scoring
    from unlearn.eval.items import flatten

    model, proc = tiny_model
    model.eval()
    items = [it for it in flatten("forget", small_splits["forget_10"], proc.pixel_values) if it.task == "mc"][:6]

    def summed(it, option):
        return answer_token_logprobs(model, proc, it.question, option, it.pixel_values).sum().item()

    records = scoring.score_mc(model, proc, items, "likelihood")
    checked = 0
    for it, r in zip(items, records):
        s = sorted(((summed(it, o), o) for o in it.options), reverse=True)
        if s[0][0] - s[1][0] > 1e-3:  # clear of float rounding
            assert r["prediction"] == s[0][1]
            checked += 1
    assert checked >= 3

    asked = []

    def fake(model, proc, prompts, answers, per_token=False, **kw):
        asked.append(per_token)
        return [[-3.0, -1.0, -2.0, -5.0] for _ in prompts]

    monkeypatch.setattr(scoring, "answer_set_logprobs", fake)
    records = scoring.score_mc(model, proc, items, "likelihood")
    assert [r["prediction"] for r in records] == [it.options[1] for it in items] and asked == [False]


def test_generate_mode_reads_the_first_option_letter(tiny_model, small_splits, monkeypatch):
    """MLLMU-Bench's MC: the generated letter decides; text without an option letter is wrong."""
    from unlearn.eval import scoring
    from unlearn.eval.items import flatten

    model, proc = tiny_model
    items = [it for it in flatten("forget", small_splits["forget_10"], proc.pixel_values) if it.task == "mc"][:3]
    prompts = []

    def fake_generate(model, proc, batch, max_new_tokens, stop=None):
        prompts.append(batch["input_ids"])
        return [f"{'abcd'[items[0].answer_index]} : yes", f"{'abcd'[(items[1].answer_index + 1) % 4]}", "( a )"]

    monkeypatch.setattr(scoring, "greedy_answers", fake_generate)
    records = scoring.score_mc(model, proc, items, "generate")
    assert [r["score"] for r in records] == [1.0, 0.0, 0.0]
    assert records[0]["prediction"] == items[0].answer
    assert records[2]["prediction"] is None and records[2]["reply"] == "( a )"  # no letter: no option chosen
    assert "options" in proc.decode(prompts[0][0].tolist())  # the lettered question was asked


def test_processor_encodes_each_text_once_and_hands_out_copies(tiny_model, monkeypatch):
    _, proc = tiny_model
    encode, calls = proc.tokenizer.encode, []
    monkeypatch.setattr(proc.tokenizer, "encode", lambda text, **kw: calls.append(text) or encode(text, **kw))
    text = "what colour are the eyes of anna berg ?"
    first = proc.words(text)
    assert first == encode(text, add_special_tokens=False)
    first.append(-1)  # a caller extending its ids must not change what the next caller gets
    assert proc.words(text) == encode(text, add_special_tokens=False)
    assert proc.prompt_ids(text) == proc.prompt_ids(text) and calls.count(text) == 1


def test_a_truncated_weights_file_names_its_key(tiny_model, tmp_path):
    """A cut-off model.safetensors (a copy interrupted, a full disk) raised safetensors' own error, naming no file
    or setting."""
    from unlearn.models.loading import CheckpointError, load_model, save_model

    model, proc = tiny_model
    save_model(model, proc, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"the cached vanilla model=.*m: its weights could not be read"):
        load_model(tmp_path / "m", key="the cached vanilla model")


def test_a_users_unreadable_checkpoint_is_named_by_model_path(tiny_model, tmp_path):
    """model.path's checkpoint unreadable: the message names model.path, and does not tell the user to delete
    it (that advice is for the cache's own vanilla model, which is taught again)."""
    from unlearn.config import compose_config
    from unlearn.models.loading import CheckpointError, save_model
    from unlearn.pipeline import run

    model, proc = tiny_model
    save_model(model, proc, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    cfg = compose_config(["debug=fast", "logger=none", f"model.path={tmp_path / 'm'}"], tmp_path / "run",
                         tmp_path / "cache")
    with pytest.raises(CheckpointError, match=r"model.path=.*m: its weights could not be read") as err:
        run(cfg)
    assert "delete" not in str(err.value) and "cached vanilla" not in str(err.value)


def test_the_second_mc_reading_is_scored_its_own_way_beside_the_first(tiny_model, small_splits, monkeypatch):
    """eval.mc_also (on by default for the embedded data): the same MC items read by generation beside the
    likelihood reading, under their own uids and metric. Until 2026-12-06 no fast test held it: a lost uid suffix
    dropped the headline mc_acc, a swapped mode read likelihood twice."""
    from unlearn.eval import scoring
    from unlearn.eval.evaluator import EvaluationModule
    from unlearn.eval.items import flatten
    from unlearn.eval.metrics import aggregate

    model, proc = tiny_model
    items = [it for it in flatten("forget", small_splits["forget_10"], proc.pixel_values)
             if it.task == "mc" and it.modality == "text"][:3]
    monkeypatch.setattr(scoring, "greedy_answers", lambda model, proc, batch, max_new_tokens, stop=None: [
        f"{'abcd'[items[0].answer_index]}", f"{'abcd'[(items[1].answer_index + 1) % 4]}", "none"])
    module = EvaluationModule(model, proc, items, "after", mc_mode="likelihood", mc_also="generate")
    module._score(items, "mc")
    first = [r for r in module._records if "metric" not in r]
    second = [r for r in module._records if r.get("metric") == "mc_acc_generate"]
    assert [r["uid"] for r in first] == [it.uid for it in items]
    assert [r["uid"] for r in second] == [f"{it.uid}#generate" for it in items]
    assert [r["score"] for r in second] == [1.0, 0.0, 0.0]  # the replies decide it, not the likelihoods
    metrics = aggregate(module._records, "after")
    assert metrics["after/forget/text/n_mc_acc"] == 3 and metrics["after/forget/text/mc_acc_generate"] == 1 / 3
    assert "after/forget/text/mc_acc" in metrics
