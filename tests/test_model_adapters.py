"""Real-model adapters (LLaVA-1.5, Idefics2, Qwen2-VL) on tiny random checkpoints written locally."""

import hashlib
import json

import pytest
import torch
from PIL import Image

from unlearn.config import compose_config
from unlearn.data.collate import IGNORE, collate, qa_example
from unlearn.models.chat_processor import ChatProcessor
from unlearn.models.chat_template import ChatTemplate
from unlearn.models.loading import CheckpointError, load_model
from unlearn.models.tiny_real import build_tiny_real, write_tiny_real
from unlearn.pipeline import load_configured, run

CONFIGS = {"llava": "llava_1_5_7b", "idefics2": "idefics2_8b", "qwen2_vl": "qwen2_vl_7b"}
STOP = {"llava": "</s>", "idefics2": "<end_of_utterance>", "qwen2_vl": "<|im_end|>"}
QUESTION, ANSWER = "what is the occupation of this person ?", "nurse"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_real")
    return {f: write_tiny_real(f, root / f) for f in CONFIGS}


def _cfg(tmp_path, family, path, *overrides):
    return compose_config(["debug=fast", f"model={CONFIGS[family]}", f"model.path={path}", "model.dtype=float32",
                           "model.portrait_size=32", *overrides], tmp_path / "run", tmp_path / "cache")


def _image(w=32, h=32):
    return Image.new("RGB", (w, h), (200, 40, 90))


def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def stock_processor(family: str, tok, images):
    """The family's own transformers processor for the tiny stand-in, configured as the real checkpoint's."""
    from transformers import Idefics2Processor, LlavaProcessor

    if family == "llava":
        return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1)
    return Idefics2Processor(image_processor=images, tokenizer=tok, image_seq_len=4)


@pytest.mark.parametrize("family,split", [("llava", False), ("idefics2", False), ("idefics2", True)])
def test_image_block_matches_the_stock_processor(family, split):
    """split: Idefics2's image splitting (4 crops and the whole image), on in its checkpoints' processor, which
    MLLMU-Bench's eval.py evaluates with (its training turns it off)."""
    model, tok, images = build_tiny_real(family)
    if split:
        images.do_image_splitting = True
    stock = stock_processor(family, tok, images)
    expected = stock(text=["<image>"], images=[_image()], return_tensors="pt", add_special_tokens=False)
    (ours,) = ChatProcessor(tok, images, model.config, ChatTemplate()).pixel_values([_image()])
    assert ours.block == expected["input_ids"][0].tolist()
    for key, value in ours.tensors.items():
        assert torch.equal(value, expected[key]), key


def test_qwen2_vl_block_is_one_token_per_merged_patch():
    model, tok, images = build_tiny_real("qwen2_vl")
    images.size = {"shortest_edge": 28 * 28, "longest_edge": 56 * 112}  # pixels
    proc = ChatProcessor(tok, images, model.config, ChatTemplate())
    wide, square = proc.pixel_values([_image(112, 56), _image(56, 56)])
    assert wide.tensors["image_grid_thw"].tolist() == [[1, 4, 8]] and len(wide.block) == 2 + 8
    assert square.tensors["image_grid_thw"].tolist() == [[1, 4, 4]] and len(square.block) == 2 + 4
    # a batch mixing the two sizes and a text-only row runs (the model checks tokens against features)
    batch = collate([qa_example(proc, [(QUESTION, ANSWER)], im) for im in (wide, None, square)], tok.pad_token_id)
    assert batch["pixel_values"].shape[0] == 32 + 16
    assert batch["mm_token_type_ids"].sum().item() == 8 + 4
    out = model(**batch)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("family", list(CONFIGS))
def test_template_puts_loss_on_the_answer_and_its_stop_token(tmp_path, checkpoints, family):
    cfg = _cfg(tmp_path, family, checkpoints[family])
    model, proc = load_configured(cfg, checkpoints[family])
    assert isinstance(proc, ChatProcessor)
    (image,) = proc.pixel_values([_image()])
    mm, text = (qa_example(proc, [(QUESTION, ANSWER)], im) for im in (image, None))
    tokens = proc.tokenizer.convert_ids_to_tokens
    for ex in (mm, text):
        supervised = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE]
        assert tokens(supervised) == ["nurse", STOP[family]]
    assert len(mm.input_ids) - len(text.input_ids) == len(image.block) + len(proc.words(proc.template.after_image))
    assert image.image_token_id not in text.input_ids
    first = tokens(mm.input_ids[:2])
    assert first == {"llava": ["<s>", "USER:"], "idefics2": ["<s>", "User:"],
                     "qwen2_vl": ["<|im_start|>", "system"]}[family]
    # the text before the question, as each family's chat template writes a turn opening with an image or with
    # text (Idefics2's "User: " with a space before text: until 2026-12-05 "User:" in both)
    from unlearn.models.prompt_ids import IMAGE_PLACEHOLDER as IMG

    opening = {form: proc._opening(im)[0] for form, im in (("multimodal", image), ("text", None))}
    qwen2_vl = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert opening == {"llava": {"multimodal": f"USER: {IMG}\n", "text": "USER: "},
                       "idefics2": {"multimodal": f"User:{IMG}", "text": "User: "},
                       "qwen2_vl": {"multimodal": qwen2_vl + IMG, "text": qwen2_vl}}[family]
    out = model(**collate([mm, text], proc.tokenizer.pad_token_id))
    assert torch.isfinite(out.loss)


@pytest.mark.slow
@pytest.mark.parametrize("family,data", [("qwen2_vl", "mllmu_bench"), ("idefics2", "clear"), ("llava", "mllmu_bench")])
def test_real_benchmark_with_real_family_end_to_end(tmp_path, checkpoints, family, data):
    """A real-format benchmark (tiny local snapshot) with a real-family model, scored as MLLMU-Bench does."""
    from unlearn.data.fixtures import write_clear_fixture, write_mllmu_bench_fixture

    write = write_mllmu_bench_fixture if data == "mllmu_bench" else write_clear_fixture
    root = write(tmp_path / data)
    cfg = compose_config([f"data={data}", f"data.path={root}", f"model={CONFIGS[family]}",
                          f"model.path={checkpoints[family]}", "model.dtype=float32", "method=manu", "logger=none",
                          "eval.max_people=2", "eval.max_new_tokens=3"], tmp_path / "run", tmp_path / "cache")
    assert cfg.eval.mc_mode == "generate"
    metrics = run(cfg)
    items = json.loads((tmp_path / "run" / "items.json").read_text())["after"]
    assert {(r["split"], r["modality"]) for r in items if r["task"] == "mc"} >= {("forget", "multimodal"),
                                                                                ("retain", "multimodal")}
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k.endswith("/mc_acc"))
    assert metrics["after/forget/multimodal/n_mc_acc"] > 0
    if data == "clear":  # CLEAR's own metrics: every image, truth ratio from the perturbed captions, recall
        assert len({r["uid"] for r in items}) == len(items)
        assert any("." in r["uid"].split("/")[1] for r in items)  # a person's second image has its own items
        prob = [r for r in items if r["task"] == "prob"]
        assert prob and all(len(r["pert_logp"]) >= 1 for r in prob)
        assert 0.0 <= metrics["after/forget/multimodal/truth_ratio"] <= 1.0
        assert 0.0 <= metrics["after/forget/multimodal/rougeL_recall"] <= 1.0


def test_real_checkpoint_needs_a_template_and_a_path(tmp_path, checkpoints):
    with pytest.raises(CheckpointError, match="template"):
        load_model(checkpoints["llava"])
    with pytest.raises(ValueError, match="model.path"):
        run(compose_config(["debug=fast", "model=llava_1_5_7b", "model.path=null"], tmp_path / "r", tmp_path / "c"))
    with pytest.raises(ValueError, match="model.template.stop"):
        model, tok, images = build_tiny_real("llava")
        ChatProcessor(tok, images, model.config, ChatTemplate(stop="<no_such_token>"))


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CONFIGS))
def test_every_method_runs_on_the_family(tmp_path, checkpoints, family):
    """Statistics pass + MANU prune, a GA epoch and the MMUnlearner mask + update, through train.py's path, in the
    family config's own dtype: float32 weights, whose steps are kept (a bfloat16 one lost most of them)."""
    source = checkpoints[family]
    before = _digest(source)
    runs = {"manu": [], "ga": ["method.epochs=1"], "mmunlearner": ["mmunlearner.epochs=1"]}
    for method, extra in runs.items():
        out = tmp_path / method
        cfg = compose_config(["debug=fast", f"model={CONFIGS[family]}", f"model.path={source}",
                              "model.portrait_size=32", f"method={method}", "eval.tasks=[mc,gen]", *extra],
                             out, tmp_path / "cache")
        metrics = run(cfg)
        for split in ("forget", "retain"):
            for form in ("multimodal", "text"):
                assert 0.0 <= metrics[f"after/{split}/{form}/mc_acc"] <= 1.0
        summary = json.loads((out / "metrics.json").read_text())
        if method == "manu":
            pruned = summary["artifacts"]["manu"]["pruned"]
            assert pruned["vision"]["pruned"] > 0 and pruned["language"]["pruned"] > 0, pruned
        if method == "mmunlearner":
            assert summary["artifacts"]["mmunlearner"]["selected"] > 0
        if method == "ga":
            (steps,) = summary["artifacts"]["lost_steps"]
            assert list(steps["dtypes"]) == ["float32"] and steps["fraction"] == 0
        reloaded, _ = load_configured(cfg, out / "model")
        original, _ = load_configured(cfg, source)
        changed = [n for (n, a), b in zip(reloaded.named_parameters(), original.parameters()) if not torch.equal(a, b)]
        assert changed, f"{method} left every weight of {family} unchanged"
    assert _digest(source) == before  # the source checkpoint is never written to


def test_fsdp_config_shards_the_family_blocks(tmp_path, checkpoints):
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import FSDPStrategy

    from unlearn.fsdp_refusals import refuse_fsdp, uses_fsdp

    for family, name in CONFIGS.items():
        cfg = _cfg(tmp_path, family, checkpoints[family], "trainer=fsdp")
        assert uses_fsdp(cfg.trainer)
        strategy = instantiate(cfg.trainer.strategy)
        assert isinstance(strategy, FSDPStrategy)
        model, _ = load_configured(cfg, checkpoints[family])
        wrapped = {type(m) for m in model.modules()} & strategy.kwargs["auto_wrap_policy"]._module_classes
        assert len(wrapped) == 1, (family, wrapped)  # the language block class; no vision block (tests/test_fsdp.py)
        assert all("Decoder" in cls.__name__ for cls in wrapped), wrapped
    with pytest.raises(ValueError, match="method=manu does not run under trainer=fsdp"):
        refuse_fsdp(cfg, "manu")
    assert not uses_fsdp(_cfg(tmp_path, "llava", checkpoints["llava"], "trainer=ddp").trainer)


def test_gradient_checkpointing_does_not_double_count_statistics(tmp_path, checkpoints):
    """Checkpointed blocks rerun their forward in backward, with grad enabled; the hooks skip those calls."""
    from callbacks.activation_stats import ActivationStatistics

    cfg = _cfg(tmp_path, "llava", checkpoints["llava"], "model.gradient_checkpointing=true")
    model, proc = load_configured(cfg, checkpoints["llava"])
    batch = collate([qa_example(proc, [(QUESTION, ANSWER)], proc.pixel_values([_image()])[0])],
                    proc.tokenizer.pad_token_id)
    stats = ActivationStatistics(dict(cfg.model.mlp_modules))
    stats.attach(model)
    stats.begin_batch("forget", batch["attention_mask"])
    with torch.no_grad():
        model.eval()(**batch)
    counts = {n: m.count.item() for n, m in stats.moments["forget"].items()}
    model.train()
    model(**batch).loss.backward()  # a forward, then the recomputed forwards, all in grad mode
    stats.detach()
    assert stats.skipped_grad_calls > len(counts)  # the grad-mode forward plus recomputes
    assert {n: m.count.item() for n, m in stats.moments["forget"].items()} == counts
    assert counts[next(n for n in counts if "language_model" in n)] == batch["input_ids"].numel()


def test_gpu_scale_bench_runs_at_tiny_shape():
    """bench/gpu_scale.py is meant for a lent GPU; its code path is kept working on CPU."""
    from bench.gpu_scale import main

    out = main(["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--repeats", "1", "--batches", "2"])
    assert out["finite_loss"] and out["ratio"] > 0
    towers = {name.split(".")[1] for name in out["moments"]["forget"]}
    assert towers == {"vision_tower", "language_model"}


def test_real_processor_preprocesses_training_images_on_access(tmp_path, checkpoints, small_benchmark):
    from unlearn.data.sequences import QASequences

    cfg = _cfg(tmp_path, "idefics2", checkpoints["idefics2"], "+model.image_processor.do_image_splitting=false")
    _, proc = load_configured(cfg, checkpoints["idefics2"])
    rows = small_benchmark.train_rows("forget")
    data = QASequences(rows, proc, "multimodal")
    assert all(isinstance(im, Image.Image) for bank in data.banks for im in bank)  # kept as images
    (expected,) = proc.pixel_values([rows[0]["images"][0]])
    assert data[0].pixel_values.block == expected.block
    assert torch.equal(data[0].pixel_values.tensors["pixel_values"], expected.tensors["pixel_values"])


@pytest.mark.parametrize("family", ["llava", "idefics2"])
def test_prefix_labels_reach_the_template_text_before_the_question(tmp_path, checkpoints, family):
    """label_prefix / mmunlearner labels `all`: the reference codes label every non-pad token; on a real template
    that adds its text before the question ("USER:", the newline after the image), never an image token. (On the
    embedded model the prefix is bos alone, which no shifted label reads.)"""
    from unlearn.data.sequences import PrefixLabels

    model, proc = load_configured(_cfg(tmp_path, family, checkpoints[family]), checkpoints[family])
    (image,) = proc.pixel_values([_image()])
    ex = qa_example(proc, [(QUESTION, ANSWER)], image, answer_only=False)
    before = list(ex.labels)
    after = PrefixLabels([ex], proc)[0].labels
    tokens = proc.tokenizer.convert_ids_to_tokens
    added = [t for t, a, b in zip(ex.input_ids, before, after) if a == IGNORE and b != IGNORE]
    assert {"llava": "USER:", "idefics2": "User:"}[family] in tokens(added)
    assert image.image_token_id not in added
    assert all(b == IGNORE for t, b in zip(ex.input_ids, after) if t == image.image_token_id)
    assert [b for a, b in zip(before, after) if a != IGNORE] == [a for a in before if a != IGNORE]  # the rest kept
    batch = collate([ex], proc.tokenizer.pad_token_id)
    assert (batch["labels"][:, 1:] != IGNORE).sum() > sum(a != IGNORE for a in before[1:])  # more tokens scored


def test_eval_memory_bench_runs_at_tiny_shape():
    """bench/eval_memory.py is meant for a lent GPU; on CPU its three ways score one MC batch alike, up to float
    rounding. The shared path in one-row passes was held bit for bit to one pass, which holds on an Intel Xeon and
    not on an AMD EPYC for some of the random weights (2 of 6 runs of main failed there, 7.6e-6 apart, 2026-12-05:
    a kernel's sums split by the batch's rows)."""
    from bench.eval_memory import main

    out = main(["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--prompts", "5", "--budget", "1e-9"])
    one, passes, rows = out.values()
    assert not any(r["oom"] for r in (one, passes, rows))
    assert len(one["values"]) == 20
    torch.testing.assert_close(passes["values"], one["values"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rows["values"], one["values"], atol=1e-4, rtol=1e-4)
    assert one["values"].std() > 0  # answers that differ score differently


@pytest.mark.slow
def test_mmunlearner_clear_preset_runs_on_a_qwen2_vl_stand_in(tmp_path, monkeypatch):
    """experiment=mmunlearner_clear_official end to end on a tiny Qwen2-VL and a tiny CLEAR snapshot: the mask
    covers their language group's eligible tensors (every name holding "model" under their transformers, the
    language model's), the mask pass and the update read MMUnlearner's collates
    (every token labelled, then the answer alone), and the run is scored."""
    from safetensors.torch import load_file

    import unlearn.data.written as written
    import unlearn.models.tiny_real as tiny_real
    from unlearn.data.fixtures import write_clear_fixture

    seen, answer_only = set(), []
    original, first = written.written_text, written.first_answer_labels
    monkeypatch.setattr(written, "written_text", lambda q, a, form, family, w, key="sequences": (
        seen.add((key, w, form)), original(q, a, form, family, w, key))[1])
    monkeypatch.setattr(written, "first_answer_labels", lambda *a: (answer_only.append(a[2]), first(*a))[1])
    root = write_clear_fixture(tmp_path / "clear")
    # the tiny word tokenizer reads an unknown word as <unk>, a special token, which the answer-only collate drops
    # from the answer tokenised alone, so it would not find the answer (a real Qwen2 tokenizer has no <unk>)
    model_dir = tiny_real.write_tiny_real("qwen2_vl", tmp_path / "qwen2_vl", extra_words=tiny_real.snapshot_words(root))
    cfg = compose_config(["experiment=mmunlearner_clear_official", f"data.path={root}",
                          f"model.path={model_dir}", "model.portrait_size=32", "logger=none",
                          "eval.max_people=2", "eval.max_new_tokens=3", "data.forget_split=forget_10"],
                         tmp_path / "run", tmp_path / "cache")
    metrics = run(cfg)
    masks = load_file(str(next((tmp_path / "run").rglob("*mask*.safetensors"))))
    # their language group: every name holding "model" (CLEAR_gen_mask.py:80) as transformers 4.45-4.49 names
    # Qwen2-VL's parameters (their scripts import transformers.AdamW, removed in 4.50): model.layers.*, visual.*,
    # lm_head; then their eligible names (CLEAR_manifold.py:118-131)
    from transformers import AutoModelForImageTextToText

    def their_name(n):
        if n.startswith("model.visual."):
            return n.removeprefix("model.")
        return "model." + n.removeprefix("model.language_model.") if n.startswith("model.language_model.") else n

    names = [their_name(n) for n, _ in AutoModelForImageTextToText.from_pretrained(model_dir).named_parameters()]
    theirs = {n for n in names if "model" in n and any(k in n for k in ("proj", "fc", "linear", "mlp", "qkv"))}
    assert {their_name(n) for n in masks} == theirs
    assert not any(n.startswith("model.visual.") for n in masks) and any(n.startswith("model.language_model.") for n in masks)
    assert "after/forget/multimodal/n_mc_acc" in metrics
    assert seen == {("mmunlearner.sequences", "mmunlearner", form) for form in ("multimodal", "text")}
    assert answer_only  # the update's rows: train_collate_clear_ansonly
    # scored as CLEAR_eval.py scores (eval.protocol=mmunlearner_clear): name and real_* MC, captions and TOFU
    # generated, with their ROUGE-1/2 and BLEU columns; no test split, truth ratio or other task
    items = json.loads((tmp_path / "run" / "items.json").read_text())["after"]
    kinds = {(r["split"], r["task"], r["modality"], r["attribute"]) for r in items}
    assert {(s, t, m) for s, t, m, _ in kinds} == {
        ("forget", "mc", "multimodal"), ("retain", "mc", "multimodal"), ("untouched", "mc", "multimodal"),
        ("forget", "gen", "multimodal"), ("retain", "gen", "multimodal"), ("forget", "gen", "text"),
        ("retain", "gen", "text")}
    assert {(t, a) for s, t, m, a in kinds} == {("mc", "name"), ("mc", "untouched"), ("gen", "caption"),
                                                ("gen", "tofu")}
    assert {"after/forget/multimodal/rouge1", "after/forget/text/bleu"} <= set(metrics)
    assert not [k for k in metrics if "/test/" in k or "truth_ratio" in k]
    # real faces and real world apart, as CLEAR_eval.sh runs them, and pooled in the table's untouched MC
    where = "after/untouched/multimodal"
    n = {s: metrics[f"{where}/n_mc_acc_{s}"] for s in ("real_faces", "real_world")
         if f"{where}/n_mc_acc_{s}" in metrics}
    assert n and sum(n.values()) == metrics[f"{where}/n_mc_acc"]  # (eval.max_people=2: the first real faces)
    assert metrics[f"{where}/mc_acc"] == pytest.approx(sum(metrics[f"{where}/mc_acc_{s}"] * k for s, k in n.items())
                                                       / sum(n.values()))


@pytest.mark.slow
def test_clear_presets_teach_and_unlearn_a_qwen2_vl_stand_in(tmp_path, checkpoints, monkeypatch):
    """finetune=clear (LoRA r 8 merged, 2 batches per step, one epoch's warm-up) teaches CLEAR's own pairs, and
    experiment=clear_baselines (GradDiff, bf16-true, 4 batches per step) unlearns the result, on a tiny Qwen2-VL and
    a tiny CLEAR snapshot, both on CLEAR's collate (method.sequences / finetune.sequences=clear), evaluated by
    CLEAR's protocol (eval.protocol=clear)."""
    from safetensors.torch import load_file

    import unlearn.data.writings as writings
    import unlearn.data.written as written
    from unlearn.data.fixtures import write_clear_fixture

    seen = set()
    original = written.written_text
    for module in (written, writings):  # the sequences', and the CLEAR protocol's prompts' (read from writings)
        monkeypatch.setattr(module, "written_text", lambda q, a, form, family, w, key="sequences": (
            seen.add((key, w, form)), original(q, a, form, family, w, key))[1])
    root = write_clear_fixture(tmp_path / "clear")
    common = [f"data.path={root}", "model.portrait_size=32", "logger=none", "eval.max_people=2",
              "eval.max_new_tokens=3", "eval.before=false"]
    teach = compose_config(["method=finetune", "finetune=clear", "model=qwen2_vl_2b",
                            "model.forward_positions=sequential",  # as finetune=clear's command (CLEAR's 4.45.1)
                            f"model.path={checkpoints['qwen2_vl']}", "data=clear", "data.spec.train_pairs=clear",
                            "finetune.epochs=2", *common], tmp_path / "teach", tmp_path / "cache")
    run(teach)
    taught = tmp_path / "teach" / "model"
    weights = {k: v for f in taught.glob("*.safetensors") for k, v in load_file(f).items()}
    assert weights and not any("lora" in k for k in weights)  # merged back
    cfg = compose_config(["experiment=clear_baselines", f"model.path={taught}", "method.epochs=2", *common],
                         tmp_path / "run", tmp_path / "cache")
    assert (cfg.trainer.accumulate_grad_batches, cfg.method.warmup_epochs, cfg.data.forget_modality) == (4, 1, "both")
    metrics = run(cfg)
    assert "after/forget/multimodal/rougeL" in metrics and "after/forget/text/rougeL" in metrics
    assert {"after/forget/multimodal/truth_ratio_caption", "after/forget/multimodal/truth_ratio_name"} <= set(metrics)
    assert seen == {(key, "clear", form) for key in ("finetune.sequences", "method.sequences", "eval.protocol")
                    for form in ("multimodal", "text")}  # eval.protocol=clear: its prompts and likelihood rows
    after = {k: v for f in (tmp_path / "run" / "model").glob("*.safetensors") for k, v in load_file(f).items()}
    assert any(not torch.equal(after[k].float(), weights[k].float()) for k in weights)  # it unlearned something


def test_a_checkpoint_of_another_family_than_the_model_config_is_refused(tmp_path, checkpoints, monkeypatch):
    """model=llava_1_5_7b with a Qwen2-VL checkpoint ran to the end until 2026-12-05, prompted as LLaVA; now
    model.model_types refuses it from config.json, before any weight loads. Each config's own family loads."""
    import unlearn.models.loading as loading

    cfg = _cfg(tmp_path, "llava", checkpoints["qwen2_vl"])
    loads = []
    monkeypatch.setattr(loading.AutoModelForImageTextToText, "from_pretrained",
                        lambda *a, **k: loads.append(a) or (_ for _ in ()).throw(AssertionError("loaded")))
    with pytest.raises(CheckpointError, match=r"model.path: .*config.json says model_type 'qwen2_vl', but the model "
                                              r"config is written for \['llava'\]"):
        load_configured(cfg, checkpoints["qwen2_vl"])
    # a hub id: its config.json alone is read first (here the local one, as if fetched)
    from transformers import AutoConfig

    qwen = AutoConfig.from_pretrained(checkpoints["qwen2_vl"])
    monkeypatch.setattr(loading, "check_local_checkpoint", lambda path, key: False)
    monkeypatch.setattr(AutoConfig, "from_pretrained", lambda *a, **k: qwen)
    with pytest.raises(CheckpointError, match=r"its config.json says model_type 'qwen2_vl'"):
        loading.load_model("Qwen/Qwen2-VL-7B-Instruct", key="model.path", template={}, model_types=["llava"])
    assert loads == []
    # an unreachable (or unknown) hub id: refused at its config.json, naming the key, without the weights'
    # load retrying as long again (until 2026-12-05: 25 s for the config, then 25 s more offline)
    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(AutoConfig, "from_pretrained", offline)
    with pytest.raises(CheckpointError, match=r"model.path=llava-hf/llava-1.5-7b-hf: no such local directory, and "
                                              r"reading it as a hub id failed .*couldn't connect"):
        loading.load_model("llava-hf/llava-1.5-7b-hf", key="model.path", template={}, model_types=["llava"])
    assert loads == []
    monkeypatch.undo()
    for family in CONFIGS:
        model, _ = load_configured(_cfg(tmp_path, family, checkpoints[family]), checkpoints[family])
        assert model.config.model_type == family


def test_a_checkpoint_of_another_family_is_refused_before_the_run_naming_the_configs_to_choose(
        tmp_path, checkpoints):
    """Until the forty-sixth session a checkpoint under another family's model config, or under the embedded
    model's (model= left out), was refused only once the benchmark had loaded, with Hydra's traceback, and said
    "choose the model= config of that family" or only "needs a `template`"; now check_input_paths refuses both
    from config.json, printed alone (refused_before_run), naming the shipped configs of the checkpoint's family."""
    from unlearn.settings import check_input_paths

    cases = [
        (_cfg(tmp_path, "llava", checkpoints["qwen2_vl"]),
         r"says model_type 'qwen2_vl', but the model config is written for \['llava'\].*: choose "
         r"model=qwen2_vl_2b or model=qwen2_vl_7b$"),
        (_cfg(tmp_path, "idefics2", checkpoints["llava"]), r"written for \['idefics2'\].*: choose model=llava_1_5_7b$"),
        (compose_config(["debug=fast", f"model.path={checkpoints['idefics2']}"], tmp_path / "d", tmp_path / "cache"),
         r"is a real checkpoint \(its config.json says model_type 'idefics2'\), but model=tiny_llava is written for "
         r"the embedded model \(no template\): choose model=idefics2_8b$"),
    ]
    for cfg, message in cases:
        with pytest.raises(CheckpointError, match=message):
            check_input_paths(cfg)
    for family in CONFIGS:  # each config's own family passes
        check_input_paths(_cfg(tmp_path, family, checkpoints[family]))


def test_the_qwen2_vl_config_finds_qwen2_5_vls_modules_which_its_model_types_accept():
    """Until 2026-12-05 `model_types` accepted a Qwen2.5-VL checkpoint whose gated vision MLP no MANU pattern
    matched (MANU stopped) and whose blocks no fsdp_layers class named (FSDP wrapped nothing, silently)."""
    import yaml
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig

    from callbacks.activation_stats import match_modules
    from unlearn.manu.prune import producers_of
    from unlearn.strategies import import_class

    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[1]))
    model = AutoModelForImageTextToText.from_config(config)
    cfg = yaml.safe_load(open("configs/model/qwen2_vl_7b.yaml"))
    assert config.model_type in cfg["model_types"]
    for key in ("mlp_modules", "manu_official_modules"):
        towers = match_modules(model, cfg[key])
        assert {"language", "vision"} == set(towers.values()), key
    vision = [n for n, t in match_modules(model, cfg["mlp_modules"]).items() if t == "vision"]
    assert vision and all(n.endswith("mlp.down_proj") for n in vision)
    # its gate and up projections are what pruning zeroes
    assert {n.rsplit(".", 1)[1] for n, _ in producers_of(model, vision[0])} == {"gate_proj", "up_proj"}
    classes = tuple(import_class(c) for c in cfg["fsdp_layers"])
    assert any(isinstance(m, classes) for m in model.modules())


def test_fsdp_refuses_block_classes_the_model_does_not_have():
    from unlearn.strategies import fsdp_strategy

    strategy = fsdp_strategy(["transformers.models.qwen2_vl.modeling_qwen2_vl.Qwen2VLDecoderLayer"])
    with pytest.raises(ValueError, match=r"model.fsdp_layers=\['Qwen2VLDecoderLayer'\]: no module of this model"):
        strategy._setup_model(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_words_from_a_snapshot_join_the_stand_ins_vocabulary(tmp_path):
    """`python -m unlearn.models.tiny_real FAMILY DIR --words-from SNAPSHOT`: a fixture's names read as words, not
    <unk> (until 2026-12-06 only the tests could add them, by patching `vocabulary`)."""
    from unlearn.data.fixtures import write_clear_fixture
    from unlearn.models.tiny_real import snapshot_words, word_tokenizer

    root = write_clear_fixture(tmp_path / "clear")
    words = snapshot_words(root)
    plain, extended = word_tokenizer("llava"), word_tokenizer("llava", words)
    unknown = [w for w in words if plain.unk_token_id in plain(w, add_special_tokens=False).input_ids]
    assert unknown  # the fixture has words the embedded vocabulary lacks
    assert all(extended.unk_token_id not in extended(w, add_special_tokens=False).input_ids for w in unknown)
    with pytest.raises(FileNotFoundError, match="--words-from .*: no parquet file there"):
        snapshot_words(tmp_path / "empty")


def test_words_from_a_snapshot_read_the_pairs_inside_ft_data_metadata(tmp_path):
    """MLLMU-Bench's taught pairs are a JSON string (ft_Data `metadata`): the stand-in's vocabulary holds their
    words as the teaching reads them, not with the string's quotes and braces. Until the fifty-first session a
    researcher's own snapshot taught "This person is Alma Varga." with 'Varga.' as <unk>."""
    from unlearn.data.benchmark import load_mllmu_bench
    from unlearn.data.fixtures import write_mllmu_bench_fixture
    from unlearn.models.tiny_real import snapshot_words, word_tokenizer
    from unlearn.models.unknown_words import taught_texts, unknown_words

    root = write_mllmu_bench_fixture(tmp_path / "mllmu")
    benchmark = load_mllmu_bench(str(root), "forget_10", cache_dir=str(tmp_path / "cache"))
    words = snapshot_words(root)
    assert not any('"' in w or "{" in w for w in words)
    assert unknown_words(word_tokenizer("llava", words), taught_texts(benchmark.train))[0] == []
