"""The `bayesdrop` command: help that teaches, listing, a tiny run on digits, errors."""

from __future__ import annotations

import json

import pytest

from bayesdrop.cli import build_parser, main

TINY_FLAGS = [
    "--dataset",
    "digits",
    "--model",
    "lenet5",
    "--epochs",
    "1",
    "--train-size",
    "96",
    "--test-size",
    "40",
    "--samples",
    "3",
    "--val-samples",
    "2",
    "--batch-size",
    "48",
    "--chart-steps",
    "4",
    "--no-track",
]


@pytest.mark.parametrize("command", [[], ["run"], ["sweep"], ["evaluate"], ["plot"], ["list"], ["quickstart"]])
def test_help_has_examples(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and "bayesdrop " in text


def test_every_config_key_has_a_flag() -> None:
    from bayesdrop.experiments._config import field_names

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {a.dest for a in run._actions}
    assert set(field_names()) <= flags


def test_list_shows_datasets_models_methods(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("fashion-mnist", "digits", "lenet5", "resnet18", "dropconnect", "concrete"):
        assert word in out
    assert main(["list", "methods"]) == 0
    assert "gaussian" in capsys.readouterr().out


def test_bad_value_exits_2_naming_the_key(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dataset", "digits", "--method", "mcdrop", "--no-track"]) == 2
    err = capsys.readouterr().err
    assert "Expected argument `method` to be one of ('dropout', 'dropconnect'" in err
    assert main(["run", "--rate", "0.1,0.2", "--no-track"]) == 2
    assert "use `bayesdrop sweep`" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("dataset: digits\nbogus: 1\n")
    assert main(["sweep", "c.yaml", "--dry-run"]) == 2
    assert "Unknown config key `bogus`" in capsys.readouterr().err


def test_tiny_run_then_evaluate_plot_and_sweep_listing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY_FLAGS, "--output-dir", "out", "--progress", "true"]) == 0
    out = capsys.readouterr().out
    assert "Classification · 40 examples · T = 3 MC samples" in out
    (folder,) = [p for p in (tmp_path / "out").iterdir() if not p.name.startswith("_")]
    assert folder.name.startswith("digits_lenet5_dropout_p0.5_T3_s0-")
    metrics = json.loads((folder / "metrics.json").read_text())
    charts = sorted(p.name.split("_")[0] for p in folder.glob("*.png"))
    assert charts == ["morph", "reliability", "risk-coverage", "rotation"]
    assert not (tmp_path / "mlflow.db").exists()  # --no-track

    assert main(["evaluate", str(folder), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])  # same seed, same numbers
    assert main(["evaluate", str(folder), "--samples", "5"]) == 0
    assert "T = 5 MC samples" in capsys.readouterr().out

    assert main(["plot", str(folder), "--image", "3", "--morph-to", "5", "--out", "pics"]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in (tmp_path / "pics").glob("*.png"))
    assert sorted(p.split("/")[-1] for p in printed) == names
    assert "morph_digits_lenet5_dropout_p0.5_T3_s0_img3-to-5.png" in names

    assert main(["sweep", *TINY_FLAGS, "--output-dir", "out", "--samples", "3,6", "--dry-run"]) == 0
    states = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert states == ["finished", "pending"]


def test_quickstart_falls_back_to_digits_without_fashion_mnist(monkeypatch, capsys) -> None:
    import bayesdrop.data
    from bayesdrop import BayesdropError
    from bayesdrop.cli import quickstart_config, quickstart_dataset

    def missing(*a, **k):
        raise BayesdropError("Fashion-MNIST test files not found in: /nowhere")

    monkeypatch.setattr(bayesdrop.data, "load_fashion_mnist", missing)
    assert quickstart_dataset() == "digits"
    assert "using scikit-learn's digits" in capsys.readouterr().out
    cfg = quickstart_config(
        "digits", epochs=None, samples=50, output_dir="runs", data_dir=None, device="cpu", tracking=True
    )
    assert (cfg.dataset, cfg.model, cfg.method, cfg.samples) == ("digits", "lenet5", "dropout", 50)
    fashion = quickstart_config(
        "fashion-mnist", epochs=None, samples=50, output_dir="runs", data_dir=None, device="cpu", tracking=True
    )
    assert (fashion.dataset, fashion.epochs, fashion.tracking) == ("fashion-mnist", 2, True)


@pytest.mark.parametrize("given_root", [False, True])
def test_quickstart_note_lists_every_place_looked_and_how_to_get_the_data(
    tmp_path, monkeypatch, capsys, given_root: bool
) -> None:
    import dataclasses

    from bayesdrop.cli import quickstart_dataset
    from bayesdrop.data import mnist

    # no $BAYESDROP_DATA, a user cache that does not exist, no Debian package
    monkeypatch.delenv("BAYESDROP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "_FASHION", dataclasses.replace(mnist._FASHION, system_dirs=(str(tmp_path / "deb"),)))
    root = tmp_path / "given"
    root.mkdir()
    assert quickstart_dataset(str(root) if given_root else None) == "digits"
    note = capsys.readouterr().out
    places = [
        (tmp_path / "cache" / "bayesdrop" / "fashion-mnist", "user cache; missing"),
        (tmp_path / "deb", "system package; missing"),
    ]
    if given_root:
        places += [
            (root, "root=; exists"),
            (root / "fashion-mnist", "root=; missing"),
            (root / "FashionMNIST" / "raw", "root=; missing"),
        ]
    for place, label in places:
        assert f"{place}  ({label})" in note
    assert "$BAYESDROP_DATA/fashion-mnist  ($BAYESDROP_DATA is not set)" in note
    # and how to get the data
    assert "apt-get install dataset-fashion-mnist" in note and "download=True" in note and "--data-dir" in note
