"""The model organism (docs/organism.md): the background world, the base model's cache key, both stages."""

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import open_dict

from unlearn.config import compose_config
from unlearn.data import people as P
from unlearn.data.collate import IGNORE
from unlearn.data.world import WorldSequences, WorldSpec, world_people
from unlearn.models.base import KEY_FILE, base_key, ensure_base
from unlearn.pipeline import ensure_vanilla, vanilla_key

ROOT = Path(__file__).resolve().parents[1]
# a base small enough to pretrain in seconds: 6 world people, one epoch, the debug benchmark
TINY = ["experiment=organism", "debug=fast", "model.base.epochs=1", "model.base.world.num_people=6",
        "model.base.world.variants=2", "model.build.spec.text_layers=2", "model.base.batch_size=32",
        "model.base.target_mc_acc=null",
        "model.base.scheduler.pct_start=0.3"]


def _cfg(tmp_path, *overrides):
    return compose_config(["logger=none", *overrides], tmp_path / "out", tmp_path / "cache")


def test_base_key_follows_world_model_recipe_and_base_seed_only(tmp_path):
    key = base_key(_cfg(tmp_path, "experiment=organism"))
    for change in ("model.base.world.num_people=299", "model.base.world.seed=1", "model.base.epochs=13",
                   "model.base.seed=1", "model.base.optimizer.lr=0.002", "model.build.spec.text_layers=3",
                   "data.spec.seed=1",  # the benchmark's names, which the world leaves out, change with it
                   "trainer=ddp_sim", "trainer.precision=bf16-mixed"):  # pretrained under another trainer
        assert base_key(_cfg(tmp_path, "experiment=organism", change)) != key, change
    for same in ("seed=3", "finetune.optimizer.lr=0.01", "finetune.lora.enabled=true", "method=ga",
                 "data.forget_split=forget_5", "eval.batch_size=8", "model.base.shipped=assets/elsewhere"):
        assert base_key(_cfg(tmp_path, "experiment=organism", same)) == key, same


def test_vanilla_key_carries_the_base_and_the_stage_2_recipe(tmp_path):
    key = vanilla_key(_cfg(tmp_path, "experiment=organism"))
    for change in ("model.base.epochs=13", "finetune.lora.enabled=true", "seed=1"):
        assert vanilla_key(_cfg(tmp_path, "experiment=organism", change)) != key, change
    default = _cfg(tmp_path)
    assert "base" not in default.model  # the embedded default has no stage 1: its keys are as before


def test_world_people_are_not_benchmark_people_and_are_deterministic():
    spec = WorldSpec(num_people=200)
    world = world_people(spec)
    benchmark = {p.name for p in P.make_people(spec.benchmark_people + spec.benchmark_untouched, spec.benchmark_seed)}
    assert len({p.name for p in world}) == 200 and not {p.name for p in world} & benchmark
    assert world == world_people(spec)
    assert world != world_people(WorldSpec(num_people=200, seed=1))
    with pytest.raises(ValueError, match="model.base.world.num_people"):
        world_people(WorldSpec(num_people=len(P.FIRST_NAMES) * len(P.LAST_NAMES)))


def test_world_sequences_teach_qa_and_plain_text(tiny_model):
    _, proc = tiny_model
    data = WorldSequences(WorldSpec(num_people=2, variants=2), proc)
    n_qa = len(P.training_qa(data.people[0]))
    assert len(data) == 2 * (2 * n_qa + 2)
    kinds = [k for _, k, _, _ in data.index]
    caption = data[kinds.index("caption")]
    assert caption.pixel_values is not None
    words = [t for t, lab in zip(caption.input_ids, caption.labels) if lab != IGNORE]
    assert proc.tokenizer.decode(words).startswith("this person is a")  # every word of the caption is a target
    plain = data[kinds.index("text_plain")]
    assert plain.pixel_values is None and plain.labels[0] == IGNORE and IGNORE not in plain.labels[1:]
    assert proc.tokenizer.unk_token_id not in plain.input_ids + caption.input_ids


def test_two_stages_build_once_and_start_vanilla_from_the_base(tmp_path, monkeypatch):
    import callbacks.interrupt_notice as notice

    fitted = []

    class Spy(notice.InterruptNotice):
        def on_fit_start(self, trainer, pl_module):
            fitted.append(type(pl_module).__name__)

    monkeypatch.setattr(notice, "InterruptNotice", Spy)
    cfg = _cfg(tmp_path, *TINY)
    bench = instantiate(cfg.data.benchmark)
    base = ensure_base(cfg)
    assert (base / KEY_FILE).read_text().strip() == base_key(cfg)
    # the pretraining's Trainer says what SIGTERM interrupted and fails the process (until the forty-eighth session
    # it alone had no InterruptNotice: SIGTERM during the minutes of pretraining exited with status 0)
    assert fitted == ["FinetuneModule"]
    # the pretraining's record of steps its weights' dtype rounds away, as every other stage keeps: none in float32
    (steps,) = json.loads((base / "base_history.json").read_text())["lost_steps"]
    assert steps["stage"] == "model.base" and steps["fraction"] == 0 and list(steps["dtypes"]) == ["float32"]
    stamp = (base / "model.safetensors").stat().st_mtime_ns

    import unlearn.methods.finetune as finetune

    starts = []
    teach = finetune.teach
    monkeypatch.setattr(finetune, "teach", lambda ctx, f, **where: (
        starts.append({k: v.clone() for k, v in ctx.model.state_dict().items()}), teach(ctx, f, **where)))
    van = ensure_vanilla(cfg, bench)
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    from safetensors.torch import load_file

    saved = load_file(base / "model.safetensors")
    def pick(state):  # saved checkpoints name the language model's weights the legacy way
        return next(v for n, v in state.items() if n.endswith(("language_model.layers.0.mlp.down_proj.weight",
                                                               "language_model.model.layers.0.mlp.down_proj.weight")))
    assert (pick(starts[0]) == pick(saved)).all()  # stage 2 starts from the base's weights
    assert ensure_vanilla(cfg, bench) == van


def test_lora_stage_2_merges_back_into_a_plain_model(tmp_path):
    cfg = _cfg(tmp_path, *TINY, "finetune.lora.enabled=true")
    van = ensure_vanilla(cfg, instantiate(cfg.data.benchmark))
    from safetensors.torch import load_file

    names = load_file(van / "model.safetensors")
    assert names and not any("lora" in n for n in names)


def test_shipped_base_is_used_only_when_its_key_matches(tmp_path):
    cfg = _cfg(tmp_path, *TINY)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / KEY_FILE).write_text("not-this-one\n")
    with open_dict(cfg):
        cfg.model.base.shipped = str(shipped)
    assert ensure_base(cfg) != shipped  # a stale copy is never used: the cache is built instead
    (shipped / KEY_FILE).write_text(base_key(cfg) + "\n")
    assert ensure_base(cfg) == shipped


def test_the_repository_base_matches_the_organism_config(tmp_path):
    cfg = _cfg(tmp_path, "experiment=organism")
    shipped = cfg.model.base.shipped
    if not shipped:
        pytest.skip("model.base.shipped is null: no base weights in the repository")
    assert (ROOT / shipped / KEY_FILE).read_text().strip() == base_key(cfg), (
        f"{shipped} is stale: rebuild with python -m unlearn.models.base --ship {shipped}")


def test_knockout_zeroes_named_blocks_and_removes_its_hooks(tiny_model):
    import torch

    from bench.organism_knockout import knockouts, modules, zeroed

    model, proc = tiny_model
    model.eval()
    labels = knockouts(model)
    assert {"language mlp: all layers", "vision attn: all layers", "language mlp: layer 1", "projector"} <= set(labels)
    names = modules(model, labels["language mlp: all layers"])
    assert names == ["model.language_model.layers.0.mlp", "model.language_model.layers.1.mlp"]
    ids = torch.tensor([[proc.tokenizer.bos_token_id, *proc.words("what is alara ashdown 's job ?")]])
    mlp = dict(model.named_modules())[names[0]]
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with zeroed(model, names):
            knocked = model(input_ids=ids).logits
        again = model(input_ids=ids).logits
    assert not torch.allclose(plain, knocked) and torch.equal(plain, again)  # hooks gone after the block
    assert not mlp._forward_hooks
    with pytest.raises(ValueError, match="matches no module"):
        modules(model, r"model\.nothing")


def test_ship_replaces_only_a_shipped_base_and_whole(tmp_path):
    """`--ship DIR` deleted whatever DIR was (`--ship .` the repository) and copied in place, so an interrupted
    copy left a key file beside missing weights; now it refuses a directory that is not a shipped base and swaps
    a finished copy in."""
    from unlearn.models.base import ship

    built = tmp_path / "cache" / "base"
    built.mkdir(parents=True)
    (built / KEY_FILE).write_text("k1\n")
    (built / "model.safetensors").write_text("w1")
    dest = ship(built, tmp_path / "assets" / "organism_base")
    assert sorted(p.name for p in dest.iterdir()) == [KEY_FILE, "model.safetensors"]
    (built / "model.safetensors").write_text("w2")
    (dest / "stale.json").write_text("{}")  # a file of the old shipped copy is not kept
    ship(built, dest)
    assert (dest / "model.safetensors").read_text() == "w2" and not (dest / "stale.json").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["organism_base"]  # no scratch left
    other = tmp_path / "assets"
    (other / "README.md").write_text("keep")
    with pytest.raises(FileExistsError, match=r"--ship .*assets: exists and holds no shipped base"):
        ship(built, other)
    assert (other / "README.md").read_text() == "keep" and (dest / "model.safetensors").read_text() == "w2"


def test_ship_builds_the_one_thread_base(tmp_path, monkeypatch):
    """The shipped base's key file names base_key, which every run reads as the one-thread base: `--ship` on a
    process of 2 threads built (or reused) the 2-thread weights and shipped them under that key."""
    import sys

    import torch

    from unlearn.models import base

    seen = {}

    def fake_ensure(cfg):
        seen["threads"] = torch.get_num_threads()
        seen["identity"] = base.base_identity(cfg)
        return tmp_path / "built"

    monkeypatch.setattr(base, "ensure_base", fake_ensure)
    monkeypatch.setattr(base, "ship", lambda built, dest: dest)
    monkeypatch.setattr(sys, "argv", ["base", "--ship", str(tmp_path / "dest"), "experiment=organism"])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        base.main()
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 1
    from unlearn.config import compose_config

    from unlearn.runtime import torch_threads

    here = compose_config(["experiment=organism", "model.base.shipped=null"], tmp_path, tmp_path)
    with torch_threads(1):  # the one-thread base pretrained here (keyed apart from the shipped weights)
        assert seen["identity"] == base.base_identity(here)
    with torch_threads(2):
        assert seen["identity"] != base.base_identity(here)


def test_the_base_pretraining_probe_names_its_own_section(tmp_path, tiny_model, monkeypatch):
    """The organism's base stops on its own probe, whose "probe unanswered" warning must name model.base.epochs,
    not stage 2's finetune.epochs. Mutation audit: dropping `section="model.base"` survived every test."""
    import callbacks.memorisation as memorisation
    from unlearn.models.base import pretrain

    class Made(Exception):
        pass

    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise Made  # before any training: only the wiring is under test

    monkeypatch.setattr(memorisation, "MemorisationCheck", record)
    cfg = _cfg(tmp_path, *(o for o in TINY if not o.startswith("model.base.target_mc_acc")),
               "model.base.target_mc_acc=0.9")
    with pytest.raises(Made):
        pretrain(*tiny_model, cfg)
    assert seen["section"] == "model.base"
