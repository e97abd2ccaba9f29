"""method=evaluate: a model evaluated without unlearning, by the same protocol, splits and metrics as every
method's, once (the `after` stage), and not saved again."""

import json

import pytest

from unlearn.config import compose_config


@pytest.mark.slow
def test_evaluate_reads_what_a_methods_before_evaluation_reads_once_and_saves_nothing(tmp_path, monkeypatch,
                                                                                      taught_fast):
    from tests.conftest import seed_cache
    from unlearn.pipeline import run

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cache = tmp_path / "c"
    seed_cache(taught_fast, cache)
    evaluated = run(compose_config(["debug=fast", "logger=none", "method=evaluate"], tmp_path / "e", cache))
    assert not any(k.startswith("before/") for k in evaluated)  # one evaluation: the model as loaded
    assert not (tmp_path / "e" / "model").exists()  # the model is where it was
    assert not (cache / "eval_before").exists()  # and no before-evaluation was made to cache
    items = json.loads((tmp_path / "e" / "items.json").read_text())
    assert list(items) == ["after"] and items["after"]
    # the same numbers as the before-evaluation of a method run from the same model
    ga = run(compose_config(["debug=fast", "logger=none", "method=ga", "save_model=false"], tmp_path / "g", cache))
    after = {k.removeprefix("after/"): v for k, v in evaluated.items() if k.startswith("after/")}
    before = {k.removeprefix("before/"): v for k, v in ga.items() if k.startswith("before/")}
    assert after == before and len(after) > 50
    summary = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert summary["method"] == "evaluate"
