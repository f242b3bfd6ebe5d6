"""Data sources and preprocessing per modality: IDX images, series windows, presets."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroflow.data.idx import load_idx, read_idx, write_idx
from neuroflow.data.series import chronological_indices, load_series, make_windows
from neuroflow.data.sources import SourceError
from neuroflow.features.image import augment_shifts, fit_image_preprocessor, infer_image_shape
from neuroflow.features.sequence import fit_sequence_preprocessor, seasonal_naive
from neuroflow.features.transform import PreprocessOptions
from neuroflow.presets import list_presets, load_overrides, resolve, set_param_args

REPO = Path(__file__).resolve().parents[2]


def test_idx_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 3], dtype=np.uint8)
    write_idx(tmp_path / "img.idx", images)
    (tmp_path / "lbl.idx.gz").write_bytes(
        gzip.compress(
            (write_idx(tmp_path / "lbl.idx", labels), (tmp_path / "lbl.idx").read_bytes())[1]
        )
    )
    np.testing.assert_array_equal(read_idx(tmp_path / "img.idx"), images)
    frame, shape = load_idx(tmp_path / "img.idx", tmp_path / "lbl.idx.gz", "target")
    assert shape == [1, 4, 5]
    assert list(frame.columns[:2]) == ["pixel_0_0", "pixel_0_1"] and frame.shape == (3, 21)
    assert frame["target"].tolist() == [7, 0, 3]
    assert frame.iloc[1]["pixel_3_4"] == images[1, 3, 4]
    assert infer_image_shape(list(frame.columns[:-1])) == [1, 4, 5]


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 5)
    with pytest.raises(SourceError, match=r"bad\.idx.*\[2, 2, 2\]"):
        read_idx(bad)
    (tmp_path / "junk.idx").write_bytes(b"PK\x03\x04")
    with pytest.raises(SourceError, match=r"junk\.idx: not an IDX file"):
        read_idx(tmp_path / "junk.idx")
    write_idx(tmp_path / "img.idx", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "lbl.idx", np.zeros(2, np.uint8))
    with pytest.raises(SourceError, match=r"2,\) labels for 3 images"):
        load_idx(tmp_path / "img.idx", tmp_path / "lbl.idx", "target")


def test_bundled_series_is_the_published_one() -> None:
    series = load_series("airline")
    values = series["value"].to_numpy()
    assert len(values) == 144 and values.sum() == 40363
    assert values.min() == 104 and values.max() == 622
    assert series["time"].iloc[0] == "1949-01" and series["time"].iloc[-1] == "1960-12"


def test_windows_and_chronological_split() -> None:
    series = pd.DataFrame({"time": [str(i) for i in range(40)], "value": np.arange(40.0)})
    windows = make_windows(series, 6, "target")
    assert list(windows.columns) == [
        "time",
        "lag_6",
        "lag_5",
        "lag_4",
        "lag_3",
        "lag_2",
        "lag_1",
        "target",
    ]
    row = windows.iloc[0]
    assert row["lag_6"] == 0 and row["lag_1"] == 5 and row["target"] == 6 and row["time"] == "6"
    positions = chronological_indices(len(windows), val_fraction=0.15, test_fraction=0.2)
    splits = {name: windows.iloc[rows] for name, rows in positions.items()}
    assert splits["train"]["target"].max() < splits["val"]["target"].min()
    assert splits["val"]["target"].max() < splits["test"]["target"].min()
    assert sum(len(s) for s in splits.values()) == len(windows)
    np.testing.assert_array_equal(seasonal_naive(windows, 3), windows["lag_3"].to_numpy())


def test_sequence_scaling_is_shared_and_fitted_on_train_only() -> None:
    train = pd.DataFrame({"lag_2": [1.0, 2.0, 3.0], "lag_1": [2.0, 3.0, 4.0]})
    pre = fit_sequence_preprocessor(
        train, pd.Series([3.0, 4, 5]), ["lag_2", "lag_1"], PreprocessOptions(scale="standard")
    )
    values = train.to_numpy().ravel()
    assert pre.center == [pytest.approx(values.mean())] * 2
    assert pre.scale == [pytest.approx(values.std())] * 2
    later = pd.DataFrame({"lag_2": [100.0], "lag_1": [200.0]})  # test data never refits
    assert pre.transform(later)[0, 1] == pytest.approx(
        (200 - values.mean()) / values.std(), rel=1e-6
    )


def test_image_scaling_and_train_only_augmentation() -> None:
    cols = [f"pixel_{r}_{c}" for r in range(3) for c in range(3)]
    frame = pd.DataFrame(np.array([[0, 0, 0, 0, 8, 0, 0, 0, 0]], dtype=float), columns=cols)
    pre = fit_image_preprocessor(frame, pd.Series([1]), cols, PreprocessOptions(), "global")
    x = pre.transform(frame)
    assert x.max() == 1.0 and x.min() == 0.0  # divided by the train maximum
    ax, ay = augment_shifts(x, np.array([1]), [1, 3, 3], copies=4, max_shift=1, seed=0)
    assert ax.shape == (5, 9) and ay.tolist() == [1] * 5
    assert np.all(ax.sum(axis=1) == 1.0)  # a centre pixel shifted by one stays in the image
    np.testing.assert_array_equal(ax[0], x[0])  # the originals come first, unchanged
    same = augment_shifts(x, np.array([1]), [1, 3, 3], copies=0, max_shift=1, seed=0)
    assert same[0] is x


@pytest.mark.parametrize("name", list_presets(REPO))
def test_every_preset_gives_valid_params_and_has_its_suite(name: str) -> None:
    path = REPO / "presets" / f"{name}.yaml"
    params = resolve(REPO, load_overrides(path), str(path))
    assert (REPO / params.validate_.suite).is_file()
    args = set_param_args(load_overrides(path))
    assert args[0::2] == ["-S"] * (len(args) // 2) and all(a.startswith("++") for a in args[1::2])


def test_presets_cover_the_curriculum() -> None:
    names = set(list_presets(REPO))
    assert {"breast_cancer", "iris", "wine", "diabetes", "digits", "forecast", "anomaly"} <= names
    types = {
        resolve(REPO, load_overrides(REPO / "presets" / f"{n}.yaml"), n).model.type for n in names
    }
    assert {"mlp", "cnn", "lstm", "gru", "transformer", "autoencoder"} <= types


def test_set_param_args_quote_strings_and_keep_lists() -> None:
    args = set_param_args(
        {"model": {"hidden": [8, 4], "type": "cnn"}, "data": {"normal_class": None}}
    )
    assert args == [
        "-S",
        "++model.hidden=[8,4]",
        "-S",
        "++model.type='cnn'",
        "-S",
        "++data.normal_class=null",
    ]


def test_ingest_and_preprocess_idx_images(tmp_path: Path) -> None:
    """IDX files → pixel columns + image shape in the schema → scaled, augmented train tensors."""
    from safetensors.numpy import load_file

    from neuroflow.config import Params, Paths
    from neuroflow.stages import ingest, preprocess

    rng = np.random.default_rng(0)
    write_idx(tmp_path / "images.idx", rng.integers(0, 256, (60, 4, 4)).astype(np.uint8))
    write_idx(tmp_path / "labels.idx", np.tile(np.arange(3, dtype=np.uint8), 20))
    params = Params.model_validate(
        {
            "task": "multiclass",
            "data": {
                "source": "idx",
                "path": "images.idx",
                "labels_path": "labels.idx",
                "modality": "image",
            },
            "preprocess": {"augment_copies": 2},
            "model": {"type": "cnn"},
        }
    )
    paths = Paths(root=tmp_path)
    schema = ingest.run(params, paths)
    assert schema["image_shape"] == [1, 4, 4] and schema["classes"] == [0, 1, 2]
    preprocess.run(params, paths)
    train = load_file(str(paths.processed_split("train")))
    test = load_file(str(paths.processed_split("test")))
    assert len(train["x"]) == 3 * schema["rows"]["train"]  # originals + 2 shifted copies
    assert len(test["x"]) == schema["rows"]["test"]  # augmentation is for train only
    assert train["x"].min() >= 0.0 and train["x"].max() <= 1.0


def test_regression_bins_stratify_on_target_quantiles() -> None:
    from neuroflow.data.split import split_frame

    frame = pd.DataFrame({"x": np.arange(200.0), "target": np.arange(200.0)})
    splits = split_frame(
        frame, target="target", stratify=False, val_fraction=0.15, test_fraction=0.2, seed=0, bins=5
    )
    edges = np.digitize(splits["test"]["target"], [40, 80, 120, 160])
    assert np.bincount(edges, minlength=5).tolist() == [8] * 5  # 8 test rows per quintile


def test_an_input_file_dvc_does_not_track_is_flagged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import yaml

    from neuroflow.config import Params
    from neuroflow.stages.ingest import load_source

    deps = ["data/external", "data/listed.csv"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"ingest": {"deps": deps}}}))
    rows = "a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))
    places = {"data/my.csv": True, "data/external/my.csv": False, "data/listed.csv": False}
    for place, flagged in places.items():
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / place).write_text(rows)
        params = Params.model_validate({"data": {"source": "csv", "path": place}})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="neuroflow.stages.ingest"):
            frame, _ = load_source(params, tmp_path)
        assert len(frame) == 20
        assert ("not under any of the ingest stage's deps" in caplog.text) is flagged, place
