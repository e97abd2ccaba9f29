"""`teach_seed` owns the vanilla model (its weights and cache key); `seed` owns the method's draws."""

import lightning as L
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from unlearn.config import compose_config
from unlearn.pipeline import ensure_vanilla, vanilla_key
from unlearn.rng import isolated_rng, seeded


def _cfg(tmp_path, *overrides, cache="cache"):
    return compose_config(["logger=none", *overrides], tmp_path / "out", tmp_path / cache)


def test_teach_seed_keys_the_vanilla_model_and_defaults_to_seed(tmp_path):
    for organism in ([], ["experiment=organism"]):
        key = vanilla_key(_cfg(tmp_path, *organism))
        assert vanilla_key(_cfg(tmp_path, *organism, "seed=1", "teach_seed=0")) == key
        assert vanilla_key(_cfg(tmp_path, *organism, "teach_seed=1")) != key
        assert vanilla_key(_cfg(tmp_path, *organism, "seed=1")) == vanilla_key(_cfg(tmp_path, *organism, "teach_seed=1"))


def test_the_forget_split_keys_the_vanilla_model_where_it_decides_who_is_taught_or_probed(tmp_path):
    """Teaching probes the forget split's people for its stop, and a reference model (without_forget) is taught
    on everyone else: both depend on data.forget_split. A fixed recipe on everyone does not."""
    def key(*o):
        return vanilla_key(_cfg(tmp_path, *o))

    for recipe in ([], ["finetune.people=without_forget"], ["experiment=organism"]):
        assert key(*recipe, "data.forget_split=forget_5") != key(*recipe, "data.forget_split=forget_10"), recipe
    fixed = ["finetune.target_mc_acc=null"]
    assert key(*fixed, "data.forget_split=forget_5") == key(*fixed, "data.forget_split=forget_15")
    assert key(*fixed, "finetune.people=without_forget", "data.forget_split=forget_5") != \
        key(*fixed, "finetune.people=without_forget", "data.forget_split=forget_15")


def test_isolated_rng_restores_every_generator():
    import random

    import numpy as np

    L.seed_everything(7, verbose=False)
    expected = (torch.rand(2), random.random(), np.random.rand())
    L.seed_everything(7, verbose=False)
    with seeded(123):
        drawn = torch.rand(2)
    with isolated_rng():
        torch.rand(5), random.random(), np.random.rand()
    assert not torch.equal(drawn, expected[0])
    got = (torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


def _weights(path):
    (f,) = path.glob("*.safetensors")
    return load_file(f)


def test_teach_seed_alone_decides_the_weights_and_teaching_leaves_the_random_state(tmp_path):
    fast = ["debug=fast", "finetune.epochs=1"]
    apart = _cfg(tmp_path, *fast, "seed=3", "teach_seed=5")
    benchmark = instantiate(apart.data.benchmark)
    L.seed_everything(3, verbose=False)
    path = ensure_vanilla(apart, benchmark)  # teaches
    after_teaching = torch.rand(4)
    L.seed_everything(3, verbose=False)
    assert ensure_vanilla(apart, benchmark) == path  # reads the cache
    assert torch.equal(torch.rand(4), after_teaching)  # the method draws the same either way

    same = _cfg(tmp_path, *fast, "seed=5", cache="cache2")
    L.seed_everything(5, verbose=False)
    other = ensure_vanilla(same, instantiate(same.data.benchmark))
    assert other.name == path.name
    a, b = _weights(path), _weights(other)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_method_finetune_publishes_the_model_an_unlearning_run_would_teach(tmp_path, taught_fast):
    """`python train.py method=finetune` (with its before-evaluation, which draws) publishes under the vanilla
    key the very weights `ensure_vanilla` teaches for that key; until 2026-12-03 only 2 of 64 tensors agreed.
    ensure_vanilla's model is the session's (conftest.taught_fast: ensure_vanilla's teaching of this key)."""
    from tests.conftest import seed_cache
    from unlearn.pipeline import run

    fast = ["debug=fast", "finetune.epochs=2"]
    taught = _cfg(tmp_path, *fast, "method=finetune", "save_model=false", cache="a")
    assert taught.eval.before
    run(taught)
    published = tmp_path / "a" / "vanilla" / f"{taught.model.name}-{vanilla_key(taught)}"
    cached = _cfg(tmp_path, *fast, cache="b")
    seed_cache(taught_fast, tmp_path / "b")
    L.seed_everything(0, verbose=False)
    path = ensure_vanilla(cached, instantiate(cached.data.benchmark))
    assert path.name == published.name
    a, b = _weights(published), _weights(path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
