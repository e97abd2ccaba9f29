"""bench/manu_oracle.py: the first-order effect of zeroing a neuron, checked by hand on a tiny MLP."""

from __future__ import annotations

import torch
from torch import nn

from bench.manu_oracle import jaccard, oracle_scores, taylor_effects


class TinyLM(nn.Module):
    """Token ids -> embedding -> one MLP (up, relu, down) -> logits: the hooked `mlp.down` reads the neurons."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(3, 2)
        self.mlp = nn.Module()
        self.mlp.up = nn.Linear(2, 2, bias=False)
        self.mlp.down = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
            self.mlp.up.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
            self.mlp.down.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -1.0]]))

    def forward(self, input_ids, attention_mask=None, use_cache=False, **_):
        h = torch.relu(self.mlp.up(self.embed(input_ids)))
        return type("Out", (), {"logits": self.mlp.down(h)})()


@torch.no_grad()
def _loss(model, batch):
    logits = model(batch["input_ids"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    keep = labels != -100
    return torch.nn.functional.cross_entropy(logits[keep], labels[keep])


def test_taylor_effect_matches_the_hand_derivative_and_is_close_to_the_true_knockout():
    model = TinyLM()
    # one sequence [0, 2]: position 0 predicts token 2 (the answer); position 1 is not scored
    batch = {"input_ids": torch.tensor([[0, 2]]), "attention_mask": torch.ones(1, 2, dtype=torch.long),
             "labels": torch.tensor([[-100, 2]])}
    effect = taylor_effects(model, [batch], ["mlp.down"])["mlp.down"]
    # by hand: at position 0, h = relu(up(e0)) = (2, 0); logits = (2, 0, 1); p = softmax; the loss -log p_2 has
    # dL/dlogits = p - onehot(2), dL/dh = down^T (p - onehot); the effect of zeroing neuron j is -h_j dL/dh_j
    p = torch.softmax(torch.tensor([2.0, 0.0, 1.0]), 0)
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -1.0]]).T @ (p - torch.tensor([0.0, 0.0, 1.0]))
    expected = -torch.tensor([2.0, 0.0]) * g
    torch.testing.assert_close(effect.float(), expected, rtol=1e-5, atol=1e-6)
    assert effect[1] == 0  # a neuron that is 0 at the scored position: zeroing it changes nothing
    # neuron 0 adds (2, 0, 1) to the logits, more to a wrong answer than to the right one: zeroing it lowers the
    # loss, by -2 x (p_0 + 0.5 (p_2 - 1)) = -0.575 to first order, by log(3) - 1.408 = -0.310 truly
    assert effect[0] < 0
    base = float(_loss(model, batch))
    with torch.no_grad():
        model.mlp.down.weight[:, 0] = 0
    actual = float(_loss(model, batch)) - base
    assert actual < 0
    assert abs(actual - float(effect[0])) < 0.3


def test_padding_and_unscored_positions_add_nothing_and_the_mean_is_per_answer_token():
    model = TinyLM()
    one = {"input_ids": torch.tensor([[0, 2]]), "attention_mask": torch.ones(1, 2, dtype=torch.long),
           "labels": torch.tensor([[-100, 2]])}
    padded = {"input_ids": torch.tensor([[0, 2, 1]]), "attention_mask": torch.tensor([[1, 1, 0]]),
              "labels": torch.tensor([[-100, 2, -100]])}
    a = taylor_effects(model, [one], ["mlp.down"])["mlp.down"]
    b = taylor_effects(model, [padded], ["mlp.down"])["mlp.down"]
    torch.testing.assert_close(a, b)
    two = taylor_effects(model, [one, one], ["mlp.down"])["mlp.down"]  # a mean, not a sum, over answer tokens
    torch.testing.assert_close(a, two)
    assert not any(p.grad is not None for p in model.parameters())  # gradients cleared after the pass


def test_oracle_score_is_forget_minus_retain_and_the_overlap_counts():
    e = {k: {"m": torch.tensor(v, dtype=torch.float64)} for k, v in
         {"forget/multimodal": [1.0, 0.0], "forget/text": [3.0, 0.0],
          "retain/multimodal": [1.0, -1.0], "retain/text": [1.0, 1.0]}.items()}
    torch.testing.assert_close(oracle_scores(e)["m"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(oracle_scores(e, "oracle_forget")["m"], torch.tensor([2.0, 0.0], dtype=torch.float64))
    a = {"m": torch.tensor([True, True, False, False])}
    b = {"m": torch.tensor([False, True, True, False])}
    j = jaccard(a, b, ["m"])
    assert j["jaccard"] == 1 / 3 and j["share_of_b"] == 0.5 and j["both"] == 1 and j["b"] == 2


def test_iterative_oracle_prunes_through_the_package_and_keeps_earlier_picks():
    from types import SimpleNamespace

    from bench.manu_oracle import KEYS, iterative_oracle

    model = TinyLM()
    batch = {"input_ids": torch.tensor([[0, 2], [1, 0]]), "attention_mask": torch.ones(2, 2, dtype=torch.long),
             "labels": torch.tensor([[-100, 2], [-100, 0]])}
    loaders = {k: [batch] for k in KEYS}
    m = SimpleNamespace(scope="tower", neuron="input", prune=SimpleNamespace(mode="zero", factor=0.0))
    masks = iterative_oracle(model, loaders, {"mlp.down": "language"}, 50, m, steps=2)
    assert int(masks["mlp.down"].sum()) == 1  # floor(50 % of 2); round 1 (25 %) picks none
    j = int(masks["mlp.down"].nonzero())
    assert bool((model.mlp.down.weight[:, j] == 0).all()) and bool((model.mlp.up.weight[j] == 0).all())


def test_base_overrides_reach_the_composed_config(tmp_path):
    """`--base` (the organism, a LoRA stage 2) reaches the config the bench composes; no base is the default."""
    from bench.manu_oracle import bench_config

    default = bench_config(0, tmp_path / "run", tmp_path / "cache")
    organism = bench_config(1, tmp_path / "run", tmp_path / "cache",
                            ["experiment=organism", "finetune.lora.enabled=true"])
    assert organism.finetune.lora.enabled and not default.finetune.get("lora", {}).get("enabled", False)
    assert organism.model != default.model  # tiny_llava_base, not the embedded default
    assert organism.seed == 1 and organism.method.name == default.method.name
    assert organism.eval.tasks == ["mc"] and organism.paths.cache_dir == str(tmp_path / "cache")


def test_merge_adds_the_runs_and_overlaps_a_first_run_lacks_and_refuses_another_model():
    """`--table-only` over several --out dirs: one seed's records of two runs on one model make one table."""
    import pytest

    from bench.manu_oracle import merge_records, overlap_table, table

    before = {"forget/multimodal": 1.0, "forget/text": 1.0, "retain/multimodal": 1.0, "retain/text": 1.0}

    def run(sel, forget):
        return {"alpha": 5, "selector": sel, "after": {**before, "forget/multimodal": forget}}

    ov = {"jaccard": 0.5, "share_of_b": 0.5, "both": 1, "b": 2}
    main = {"seed": 0, "base": ["experiment=organism"], "before": before,
            "runs": [run("reference", 1.0), run("oracle", 0.9)], "overlap": {"5": {"reference|oracle|all": ov}}}
    extra = {"seed": 0, "base": ["experiment=organism"], "before": before,
             "runs": [run("reference", 1.0), run("paper", 0.8)], "overlap": {"5": {"paper|oracle|all": ov}}}
    merged, differ = merge_records([main, extra])
    assert differ == 0 and [r["selector"] for r in merged["runs"]] == ["reference", "oracle", "paper"]
    assert [r["selector"] for r in main["runs"]] == ["reference", "oracle"]  # the inputs are left as they were
    rows = table([merged]).splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["reference", "paper", "oracle"]  # in the page's selector order
    assert "+0.200 ± 0.000" in rows[1]
    assert "paper vs oracle" in overlap_table([merged]) and "reference vs oracle" in overlap_table([merged])
    # a shared run that differs is counted, the first's kept
    _, differ = merge_records([main, {**extra, "runs": [run("reference", 0.98)]}])
    assert differ == 1
    with pytest.raises(ValueError):  # another model: not merged
        merge_records([main, {**extra, "before": {**before, "retain/text": 0.99}}])
    with pytest.raises(ValueError):
        merge_records([main, {**extra, "base": []}])
