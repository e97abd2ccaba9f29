"""model.processor_path: a real checkpoint read with the processor of another directory (or hub id), as the official
scripts read theirs from the released model's hub id (`--model_id`: MLLMU-Bench eval.py:857-858, GA.py:218; MANU
prune_incremental.py load_model_and_processor; MMUnlearner MLLMU_eval.py), never from the checkpoint they save
(finetune.py:221 saves the weights alone)."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from unlearn.config import compose_config
from unlearn.models.checkpoint_files import check_processor_files_family
from unlearn.models.loading import CheckpointError, load_model
from unlearn.models.tiny_real import build_tiny_real
from unlearn.pipeline import before_cache_path, load_configured

CONFIGS = {"llava": "llava_1_5_7b", "idefics2": "idefics2_8b", "qwen2_vl": "qwen2_vl_7b"}
STOP = {"llava": None, "idefics2": "<end_of_utterance>", "qwen2_vl": "<|im_end|>"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Per family: `released`, the tiny model's processor as built (its own pad token; Idefics2 without image
    splitting), and `checkpoint`, the same weights saved with another tokenizer setting (pad = eos) and, for
    Idefics2, image splitting on. (The padding side is not compared: nothing here reads the tokenizer's, every
    collate names its own.)"""
    root = tmp_path_factory.mktemp("processor_path")
    out = {}
    for family in CONFIGS:
        model, tok, images = build_tiny_real(family)
        released, checkpoint = root / f"{family}_released", root / f"{family}_checkpoint"
        tok.save_pretrained(released)
        images.save_pretrained(released)
        model.save_pretrained(checkpoint)
        tok.pad_token = tok.eos_token
        tok.save_pretrained(checkpoint)
        if family == "idefics2":
            images = type(images).from_dict(images.to_dict(), do_image_splitting=True)
        images.save_pretrained(checkpoint)
        out[family] = checkpoint, released
    return out


def _template(family):
    return {"prefix": "", "question": "{question}", "answer": " {answer}", "stop": STOP[family]}


@pytest.mark.parametrize("family", list(CONFIGS))
def test_the_processor_comes_from_processor_path(pair, family):
    checkpoint, released = pair[family]
    _, own = load_model(checkpoint, template=_template(family))
    _, theirs = load_model(checkpoint, template=_template(family), processor_path=released)
    assert own.tokenizer.pad_token == own.tokenizer.eos_token
    assert theirs.tokenizer.pad_token != theirs.tokenizer.eos_token
    assert theirs.tokenizer.pad_token_id != own.tokenizer.pad_token_id
    if family == "idefics2":  # the image settings follow it too
        assert own.image_processor.do_image_splitting and not theirs.image_processor.do_image_splitting
        (image,) = theirs.pixel_values([Image.new("RGB", (32, 32), (200, 40, 90))])
        assert image.tensors["pixel_values"].shape[1] == 1


def test_the_run_reads_it_and_keys_it(pair, tmp_path):
    """Through load_configured (training, evaluation, MANU, MMUnlearner, relearn all read ctx.processor), and in
    the before-evaluation's key: by the directory's files, so a processor changed in place is evaluated anew."""
    checkpoint, released = pair["llava"]

    def cfg(*more):
        return compose_config(["debug=fast", "model=llava_1_5_7b", f"model.path={checkpoint}", "method=ga",
                               "eval.cache_before=true", *more], tmp_path / "run", tmp_path / "cache")

    _, proc = load_configured(cfg(f"model.processor_path={released}"), checkpoint)
    assert proc.tokenizer.pad_token == "<pad>"
    _, own = load_configured(cfg(), checkpoint)
    assert own.tokenizer.pad_token == "</s>"

    base = before_cache_path(cfg(), checkpoint)
    keyed = before_cache_path(cfg(f"model.processor_path={released}"), checkpoint)
    assert base is not None and keyed is not None and keyed != base
    copy = shutil.copytree(released, tmp_path / "copy")
    assert before_cache_path(cfg(f"model.processor_path={copy}"), checkpoint) != keyed  # another directory
    (copy / "special_tokens_map.json").write_text("{}")
    before = before_cache_path(cfg(f"model.processor_path={copy}"), checkpoint)
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + " ")
    assert before_cache_path(cfg(f"model.processor_path={copy}"), checkpoint) != before  # edited in place


def test_a_checkpoint_saved_without_its_processor_loads_with_it(pair, tmp_path):
    """As the official scripts save theirs (the weights alone): refused naming the setting that reads it."""
    checkpoint, released = pair["llava"]
    weights = tmp_path / "weights_alone"
    weights.mkdir()
    for f in checkpoint.iterdir():
        if f.name in ("config.json", "generation_config.json") or f.suffix == ".safetensors":
            shutil.copy(f, weights / f.name)
    with pytest.raises(CheckpointError, match=r"model.path=.*no tokenizer file.*model.processor_path="):
        load_model(weights, template=_template("llava"))
    _, proc = load_model(weights, template=_template("llava"), processor_path=released)
    assert proc.tokenizer.pad_token == "<pad>"


def test_a_wrong_processor_path_is_refused_naming_the_key(pair, tmp_path, tiny_model):
    checkpoint, released = pair["llava"]
    with pytest.raises(CheckpointError, match=r"model.processor_path=.*nowhere: no such directory"):
        load_model(checkpoint, template=_template("llava"), processor_path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"model.processor_path=.*empty: no tokenizer file"):
        load_model(checkpoint, template=_template("llava"), processor_path=tmp_path / "empty")
    model, proc = tiny_model  # the embedded model's processor is saved with it: refused, not dropped
    model.save_pretrained(tmp_path / "embedded")
    proc.save_pretrained(tmp_path / "embedded")
    with pytest.raises(CheckpointError, match=r"model.processor_path=.*is the embedded model"):
        load_model(tmp_path / "embedded", processor_path=released)


def test_settings_check_it_before_the_run(pair, tmp_path):
    from unlearn.settings import check_input_paths

    checkpoint, _ = pair["llava"]
    cfg = compose_config(["debug=fast", "model=llava_1_5_7b", f"model.path={checkpoint}", "method=ga",
                          f"model.processor_path={tmp_path / 'nowhere'}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(CheckpointError, match=r"model.processor_path=.*nowhere: no such directory"):
        check_input_paths(cfg)
    cfg = compose_config(["debug=fast", f"+model.processor_path={checkpoint}"], tmp_path / "run2", tmp_path / "c2")
    with pytest.raises(ValueError, match=r"model.processor_path=.*model=tiny_llava is the embedded model"):
        check_input_paths(cfg)


def test_a_processor_path_of_another_family_is_refused_before_the_weights(pair, tmp_path, monkeypatch):
    """model.processor_path at a Qwen2-VL folder for a LLaVA checkpoint loaded until the forty-sixth session, and
    the run stopped in generate, in the before-evaluation ("model_kwargs are not used by the model:
    ['image_grid_thw']"); now refused naming the key, from the files before the run (check_input_paths) and in
    load_model before the weights, whose load is read after the processor's (an unreachable processor hub id
    was refused after them: 28 GB at 7B)."""
    import unlearn.models.loading as loading
    from unlearn.settings import check_input_paths

    checkpoint, _ = pair["llava"]
    _, qwen = pair["qwen2_vl"]
    message = (r"model.processor_path=.*qwen2_vl_released: its image processor is Qwen2VLImageProcessor\w*, a "
               r"qwen2_vl checkpoint's, but the checkpoint is model_type 'llava'")
    cfg = compose_config(["debug=fast", "model=llava_1_5_7b", f"model.path={checkpoint}", "method=ga",
                          f"model.processor_path={qwen}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(CheckpointError, match=message):
        check_input_paths(cfg)
    loads = []
    monkeypatch.setattr(loading.AutoModelForImageTextToText, "from_pretrained",
                        lambda *a, **k: loads.append(a) or (_ for _ in ()).throw(AssertionError("loaded")))
    with pytest.raises(CheckpointError, match=message):
        load_model(checkpoint, template=_template("llava"), processor_path=qwen)
    assert loads == []
    monkeypatch.undo()
    for family, (own, released) in pair.items():  # each family's own processor passes both checks
        load_model(own, template=_template(family), processor_path=released)
        check_processor_files_family(released, family, "model.processor_path")


def test_the_reference_model_reads_the_runs_processor_path(tmp_path, monkeypatch, tiny_model, small_benchmark):
    """method.reference_path (NPO's oracle, saved by the official scripts without processor files, as
    NPO.py:109 reads its weights alone) loads with the run's model.processor_path."""
    import copy

    import unlearn.methods.gradient as gradient
    import unlearn.models.loading as loading
    from unlearn.pipeline import RunContext

    seen = {}

    def capture(path, *a, processor_path=None, **k):
        seen["processor_path"] = processor_path
        raise RuntimeError("captured")

    monkeypatch.setattr(loading, "load_model", capture)
    cfg = compose_config(["method=npo", f"method.reference_path={tmp_path / 'ref'}", "logger=none",
                          "+model.processor_path=/models/released"], tmp_path / "run", tmp_path / "cache")
    model, proc = tiny_model
    with pytest.raises(RuntimeError, match="captured"):
        gradient.run(RunContext(cfg, small_benchmark, copy.deepcopy(model), proc, tmp_path))
    assert seen == {"processor_path": "/models/released"}


def test_a_checkpoint_resumes_only_under_the_processor_it_was_made_with(pair, tmp_path):
    """The processor's pad id and image settings shape every batch: a run's last.ckpt resumed under another
    model.processor_path is refused (resume_identity); one saved before the key existed resumes under the
    checkpoint's own processor only."""
    from unlearn.methods.gradient import check_resume, resume_identity

    checkpoint, released = pair["llava"]

    def identity(*more):
        return resume_identity(compose_config(["debug=fast", "model=llava_1_5_7b", f"model.path={checkpoint}",
                                               "method=ga", *more], tmp_path / "run", tmp_path / "cache"))

    own, theirs = identity(), identity(f"model.processor_path={released}")
    assert own["processor"] is None and theirs["processor"] == str(released.resolve())
    check_resume(theirs, identity(f"model.processor_path={released}"), None, None)
    with pytest.raises(ValueError, match=r"method.ckpt_path: the checkpoint was saved under other settings "
                                         r"\(processor: saved None"):
        check_resume(own, theirs, None, None)
    # one saved before the key existed was made with the checkpoint's own processor: it resumes there alone
    older = {k: v for k, v in own.items() if k != "processor"}
    check_resume(older, own, None, None)
    with pytest.raises(ValueError, match=r"processor: saved None"):
        check_resume(older, theirs, None, None)
