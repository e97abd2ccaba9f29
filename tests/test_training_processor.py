"""<section>.image_processor: a recipe's training or statistics data read other image settings than the evaluation.

MLLMU-Bench and MANU train and prune Idefics2 with do_image_splitting=False and evaluate with the checkpoint's
processor (which splits each image into 4 crops plus the whole)."""

import pytest
import torch
from PIL import Image

from unlearn.config import compose_config
from unlearn.models.loading import load_model, training_processor
from unlearn.models.tiny_real import build_tiny_real

TEMPLATE = {"prefix": "User:", "question": "{question}<end_of_utterance>\nAssistant:", "answer": " {answer}",
            "stop": "<end_of_utterance>"}


def _image():
    return Image.new("RGB", (32, 32), (200, 40, 90))


@pytest.fixture(scope="module")
def splitting_idefics2(tmp_path_factory):
    """A tiny Idefics2 checkpoint whose processor splits images, as HuggingFaceM4/idefics2-8b's does."""
    model, tok, images = build_tiny_real("idefics2")
    images = type(images).from_dict(images.to_dict(), do_image_splitting=True)
    path = tmp_path_factory.mktemp("idefics2_split")
    for part in (model, tok, images):
        part.save_pretrained(path)
    return path


def _crops(proc) -> int:
    (image,) = proc.pixel_values([_image()])
    return image.tensors["pixel_values"].shape[1]


def test_training_processor_changes_only_the_image_settings(splitting_idefics2):
    _, proc = load_model(splitting_idefics2, template=TEMPLATE)
    assert training_processor(proc, {}, "method.image_processor") is proc
    assert training_processor(proc, None, "method.image_processor") is proc
    train = training_processor(proc, {"do_image_splitting": False}, "method.image_processor")
    assert _crops(proc) == 5 and _crops(train) == 1  # the evaluation's processor is left as it was
    assert train.tokenizer is proc.tokenizer and train.template == proc.template
    (image,) = train.pixel_values([_image()])
    n = proc.config.perceiver_config.resampler_n_latents
    assert len(image.block) == 1 + (n + 1)  # <fake> + latents + <fake>: one crop's block


def test_training_processor_is_the_processor_loaded_with_those_settings(splitting_idefics2):
    """The same tensors as `model.image_processor` would give, had it been set for everything."""
    _, proc = load_model(splitting_idefics2, template=TEMPLATE)
    _, loaded = load_model(splitting_idefics2, template=TEMPLATE, image_processor={"do_image_splitting": False})
    (ours,) = training_processor(proc, {"do_image_splitting": False}, "manu.image_processor").pixel_values([_image()])
    (theirs,) = loaded.pixel_values([_image()])
    assert ours.block == theirs.block
    assert ours.tensors.keys() == theirs.tensors.keys()
    for key in ours.tensors:
        assert torch.equal(ours.tensors[key], theirs.tensors[key]), key


def test_unknown_image_settings_are_refused_naming_the_key(splitting_idefics2):
    _, proc = load_model(splitting_idefics2, template=TEMPLATE)
    with pytest.raises(ValueError, match=r"method.image_processor: Idefics2ImageProcessor\w* has no setting "
                                         r"\['do_image_spliting'\]"):
        training_processor(proc, {"do_image_spliting": False}, "method.image_processor")
    with pytest.raises(ValueError, match=r"model.image_processor: .* has no setting \['do_image_spliting'\]"):
        load_model(splitting_idefics2, template=TEMPLATE, image_processor={"do_image_spliting": False})


def test_the_embedded_processor_has_no_image_settings(tiny_model):
    _, proc = tiny_model
    with pytest.raises(ValueError, match=r"finetune.image_processor=\{'size': 64\}: the embedded model's processor"):
        training_processor(proc, {"size": 64}, "finetune.image_processor")


@pytest.mark.parametrize("overrides,key,expected", [
    (["experiment=mllmu_baselines", "model=idefics2_8b"], "method", {"do_image_splitting": False}),
    (["experiment=mllmu_baselines"], "method", None),  # LLaVA's CLIP processor has no such setting
    (["experiment=manu_official", "model=idefics2_8b"], "manu", {"do_image_splitting": False}),
    (["experiment=manu_official"], "manu", None),
    (["method=finetune", "finetune=mllmu_bench", "model=idefics2_8b"], "finetune", {"do_image_splitting": False}),
    (["method=finetune", "finetune=mllmu_bench_reference", "model=idefics2_8b"], "finetune",
     {"do_image_splitting": False}),
    (["experiment=mmunlearner_official", "model=idefics2_8b"], "mmunlearner", {}),  # MLLMU_manifold.py: the checkpoint's
    ([], "manu", {}),
])
def test_presets_set_the_authors_training_image_settings(tmp_path, overrides, key, expected):
    from omegaconf import OmegaConf

    cfg = compose_config(overrides, tmp_path / "run", tmp_path / "cache")
    assert OmegaConf.to_container(cfg[key], resolve=True).get("image_processor") == expected
    # evaluation: the checkpoint's settings as shipped, through the PIL processor the authors' transformers load
    assert OmegaConf.to_container(cfg.model, resolve=True).get("image_processor", {}) in ({}, {"backend": "pil"})
    plain = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"})
    plain.paths.output_dir = str(tmp_path)
    OmegaConf.resolve(plain)  # in place too (a plain-dict default of oc.select could not be resolved so)
    assert plain[key].get("image_processor") == expected


TRAINING_STEPS = {  # what reads each recipe's training or statistics data
    "manu": [("unlearn.methods.manu:ActivationPass", "validation_step")],
    "ga": [("unlearn.methods.gradient:GradientUnlearning", "training_step")],
    "finetune": [("unlearn.methods.finetune:FinetuneModule", "training_step")],
    "mmunlearner": [("unlearn.methods.mmunlearner:FisherPass", "validation_step"),
                    ("unlearn.methods.mmunlearner:MaskedUnlearning", "training_step")],
}


@pytest.mark.slow
@pytest.mark.parametrize("method,overrides", [
    ("manu", ["experiment=manu_official", "manu.official.layers=null"]),
    ("ga", ["experiment=mllmu_baselines"]),
    ("finetune", ["finetune=mllmu_bench", "finetune.epochs=1"]),
    ("mmunlearner", ["+mmunlearner.image_processor.do_image_splitting=false", "mmunlearner.epochs=1"]),
])
def test_recipes_train_on_unsplit_images_and_evaluate_on_split_ones(tmp_path, monkeypatch, splitting_idefics2,
                                                                   method, overrides):
    """On Idefics2 the statistics pass (MANU), the training steps (GA, teaching) and the mask pass and update
    (MMUnlearner) read one crop per image, the evaluation before and after them five, as the authors' scripts
    and MLLMU-Bench's eval.py do."""
    import importlib

    import unlearn.pipeline as pipeline
    from unlearn.data.fixtures import write_mllmu_bench_fixture

    seen: dict[str, set] = {"eval": set(), "train": set()}
    phase = {"now": "eval"}
    load = pipeline.load_configured

    def load_and_watch(cfg, path, *key):
        model, proc = load(cfg, path, *key)

        def record(module, args, kwargs):
            if kwargs.get("pixel_values") is not None:
                seen[phase["now"]].add(kwargs["pixel_values"].shape[1])

        model.model.register_forward_pre_hook(record, with_kwargs=True)
        return model, proc

    steps = [(path, step, "train") for path, step in TRAINING_STEPS[method]]
    for path, step, name in [*steps, ("unlearn.eval.evaluator:EvaluationModule", "validation_step", "eval")]:
        module, cls = path.split(":")
        owner = getattr(importlib.import_module(module), cls)

        def in_phase(self, *a, _original=getattr(owner, step), _name=name, **k):
            phase["now"] = _name
            return _original(self, *a, **k)

        monkeypatch.setattr(owner, step, in_phase)
    monkeypatch.setattr(pipeline, "load_configured", load_and_watch)
    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config([*overrides, f"method={method}", "model=idefics2_8b", "model.dtype=float32",
                          f"model.path={splitting_idefics2}", "data=mllmu_bench", f"data.path={root}",
                          "data.forget_split=forget_15", "logger=none", "eval.max_people=2", "eval.max_new_tokens=2",
                          "eval.tasks=[mc]", "eval.mc_mode=likelihood", "eval.protocol=embedded",
                          "eval.scorer=embedded", "save_model=false"], tmp_path / "run", tmp_path / "cache")
    pipeline.run(cfg)
    assert seen["train"] == {1}
    assert seen["eval"] == {5}


def test_methods_and_properties_are_not_settings(splitting_idefics2):
    _, proc = load_model(splitting_idefics2, template=TEMPLATE)
    for name in ("resize", "preprocess", "backend"):  # attributes, but from_dict would overwrite or fail on them
        with pytest.raises(ValueError, match=rf"manu.image_processor: .* has no setting \['{name}'\]"):
            training_processor(proc, {name: 1}, "manu.image_processor")
    _, loaded = load_model(splitting_idefics2, template=TEMPLATE, image_processor={"do_image_splitting": False,
                                                                                 "local_files_only": True})
    assert _crops(loaded) == 1  # a loader argument is no setting, but from_pretrained takes it


def test_the_vanilla_key_holds_training_image_settings_only_when_set(tmp_path):
    from unlearn.pipeline import vanilla_key

    def key(*overrides):
        return vanilla_key(compose_config(list(overrides), tmp_path / "run", tmp_path / "cache"))

    assert key() == key("finetune.image_processor=null")  # empty: the key of a model taught before the setting
    assert key() != key("+finetune.image_processor.size=64")


def test_the_vanilla_key_holds_the_split_probe_floor_only_where_it_is_read(tmp_path):
    from unlearn.pipeline import vanilla_key

    def key(*overrides):
        return vanilla_key(compose_config(list(overrides), tmp_path / "run", tmp_path / "cache"))

    before = key("~finetune.target_split_mc_acc")  # the recipe before the floor: the models cached under it
    assert key("finetune.target_split_mc_acc=null") == before
    assert key() != before and key() != key("finetune.target_split_mc_acc=0.9")
    # no probe, nothing to floor: the key of a fixed-epoch recipe does not move with it
    assert key("finetune.target_mc_acc=null") == key("finetune.target_mc_acc=null", "~finetune.target_split_mc_acc")
    # the reference model's floor reads its whole retain split, where its probe reads 20 people: a setting too
    ref = "finetune.people=without_forget"
    assert key(ref) != key(ref, "~finetune.target_split_mc_acc")


def test_a_setting_the_image_processor_lacks_is_refused_before_any_evaluation(tmp_path, monkeypatch,
                                                                             splitting_idefics2):
    import unlearn.pipeline as pipeline

    def never(*a, **k):
        raise AssertionError("evaluated before the recipe's image settings were checked")

    monkeypatch.setattr(pipeline, "evaluate", never)
    monkeypatch.setattr(pipeline, "evaluate_before", never)
    from unlearn.data.fixtures import write_mllmu_bench_fixture

    root = write_mllmu_bench_fixture(tmp_path / "mllmu", num_people=6)
    cfg = compose_config(["experiment=manu_official", "model=idefics2_8b", "model.dtype=float32",
                          f"model.path={splitting_idefics2}", f"data.path={root}", "logger=none",
                          "manu.image_processor={do_image_spliting: false}",
                          "manu.official.layers=null"],  # the tiny model has 2 language layers, not LLaVA's 32
                         tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ValueError, match=r"manu.image_processor: .* has no setting \['do_image_spliting'\]"):
        pipeline.run(cfg)


@pytest.mark.parametrize("model", ["llava_1_5_7b", "idefics2_8b", "qwen2_vl_7b", "qwen2_vl_2b"])
def test_real_models_read_images_through_the_pil_processor(tmp_path, model):
    """The authors' transformers (4.45-4.49) load the PIL image processors by default; this one picks the
    torchvision ones wherever torchvision is installed, which resize to other pixels."""
    cfg = compose_config([f"model={model}"], tmp_path / "run", tmp_path / "cache")
    assert cfg.model.image_processor.backend == "pil"
