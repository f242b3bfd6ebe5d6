"""The gan_digits preset, shrunk to a few epochs, through the real `run-preset` → `dvc exp run`.

What a user of the preset gets: both networks' losses per epoch (history and MLflow), the two
scores with their real-vs-real references and the naive baseline as DVC metrics, the sample grid
as a DVC plot and an MLflow artifact, and the generator registered as ONNX (latent in, image
out) that onnxruntime runs. The bar itself (FD within 3× real-vs-real, all ten classes) needs the
full preset: benchmarks/bench_gan.py measures it over seeds 0-4.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import copy_project, run, run_tiny_preset

pytestmark = pytest.mark.slow

TINY = {"epochs": 3, "patience": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def gan_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = copy_project(tmp_path_factory.mktemp("gan") / "project")
    return root, run_tiny_preset(root, "gan_digits", TINY, timeout=900)


def test_metrics_are_the_generative_scores(gan_project: tuple[Path, str]) -> None:
    root, stdout = gan_project
    printed = json.loads(stdout[stdout.index("{") :])
    metrics = json.loads((root / "artifacts" / "metrics.json").read_text())
    assert printed["test"] == metrics["test"]
    test = metrics["test"]
    # Scores of a real distance in the rater's feature space, with their references.
    assert test["fid"] > test["fid_real"] > 0
    assert test["fid_ratio"] == pytest.approx(test["fid"] / test["fid_real"])
    assert 1.0 <= test["inception_score"] <= 10.0
    assert test["inception_score_real"] > 8.0  # the rater is sure of held-out real digits
    assert test["rater_val_accuracy"] > 0.9
    assert test["baseline_fid"] > test["fid_real"]
    assert sum(metrics["generated_per_class"].values()) == metrics["generated"]
    assert 1 <= test["classes_generated"] <= 10
    shown = json.loads(run(root, "dvc", "metrics", "show", "--json").stdout)
    assert "fid" in json.dumps(shown)


def test_history_has_both_losses_and_the_sample_grid_is_a_plot(
    gan_project: tuple[Path, str],
) -> None:
    root, _ = gan_project
    history = json.loads((root / "artifacts" / "plots" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(h["d_loss"] > 0 and h["g_loss"] > 0 for h in history)
    grid = root / "artifacts" / "plots" / "test" / "samples" / "samples.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "artifacts" / "report" / "samples.png").is_file()
    plots = root / "artifacts" / "plots" / "test"
    assert not list(plots.glob("*/*.json"))  # no classifier or regression plot for a GAN
    shown = json.loads(run(root, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    drawn = {Path(name).relative_to("artifacts/plots").as_posix() for name in shown["data"]}
    assert drawn == {"history.json", "test/samples/samples.png"}, drawn
    db = sqlite3.connect(root / "mlflow.db")
    try:
        keys = {k for (k,) in db.execute("SELECT DISTINCT key FROM metrics")}
    finally:
        db.close()
    assert {"d_loss", "g_loss", "val_loss", "test_fid", "test_inception_score"} <= keys


def test_generator_onnx_makes_images_from_latent_vectors(gan_project: tuple[Path, str]) -> None:
    import onnxruntime

    root, _ = gan_project
    registration = json.loads((root / "artifacts" / "export" / "registration.json").read_text())
    assert registration["parity_max_abs_diff"] <= 1e-4
    session = onnxruntime.InferenceSession(
        str(root / "artifacts" / "export" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (latent,) = session.get_inputs()
    assert latent.name == "latent" and latent.shape[1] == 32
    z = np.random.default_rng(0).standard_normal((7, 32)).astype(np.float32)
    (images,) = session.run(["image"], {"latent": z})
    assert images.shape == (7, 1, 8, 8)
    assert images.min() >= 0.0 and images.max() <= 16.0  # the digits' own pixel units


def test_serve_answers_a_request_for_n_samples(gan_project: tuple[Path, str]) -> None:
    import httpx
    from tests.conftest import neuroflow_server

    root, _ = gan_project
    with neuroflow_server(root, "--alias", "challenger", log_name="serve_gan.log") as url:
        answer = httpx.post(f"{url}/invocations", json={"n": 6, "seed": 3}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        images = np.asarray(body["images"])
        assert images.shape == (6, 1, 8, 8) and body["shape"] == [1, 8, 8]
        assert images.min() >= 0.0 and images.max() <= 16.0
        again = httpx.post(f"{url}/invocations", json={"n": 6, "seed": 3}, timeout=30).json()
        assert again["images"] == body["images"]  # a seed gives the same samples again
        bad = httpx.post(f"{url}/invocations", json={"n": 0}, timeout=30)
        assert bad.status_code == 400 and '"n" must be an integer' in bad.json()["message"]


def test_gate_judges_the_generator_by_frechet_distance(gan_project: tuple[Path, str]) -> None:
    root, _ = gan_project
    proc = run(root, "neuroflow", "promote", "--dry-run", "--json", "--detail", check=False)
    text = proc.stdout + proc.stderr
    # No champion yet: the absolute bar, fid at most 3× real-vs-real, on the frozen test rows.
    assert "threshold fid_ratio" in text and "<= 3.0" in text, text[-3000:]
    assert "smoke" in text and "finite samples" in text, text[-3000:]
