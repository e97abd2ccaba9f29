"""bench/manu_sweep's grids (docs/manu_sweep.md's tables): each names settings the config still has."""

import pytest

from bench.manu_sweep import GRIDS, grid, main


@pytest.mark.parametrize("name", GRIDS)
def test_each_grid_composes_at_its_ends(name, tmp_path):
    from unlearn.config import compose_config

    settings = grid(name)
    assert settings and all(settings)
    for overrides in (settings[0], settings[-1]):  # each grid's entries share their keys
        cfg = compose_config(["method=manu", *overrides], tmp_path / "out", tmp_path / "cache")
        assert cfg.method.name == "manu"


def test_a_misspelt_grid_is_refused_before_anything_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.argv", ["manu_sweep", "--grid", "towrs", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main()
    assert "invalid choice: 'towrs'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
