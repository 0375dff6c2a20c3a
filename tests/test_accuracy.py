"""dscbench accuracy: the data sets read and checked, the recipe deterministic per seed, the
intervals over seeds, the accuracy files, and the command end to end (tiny data, one epoch)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from dscbench import counting
from dscbench.accuracy import data as datasets
from dscbench.accuracy import summary, train
from dscbench.cli import app
from dscbench.errors import DataError, ResultsError
from dscbench.models.zoo import digits_cnn
from dscbench.results import accuracy as files
from dscbench.spec import ModelSpec


def blobs(n: int = 60, classes: int = 3, side: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """An easy task: class k lights up row band k of an 8x8 image (and the whole image by k,
    which a network ending in global average pooling sees wherever the band is), plus noise."""
    rng = np.random.default_rng(seed)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(count) % classes
        x = rng.normal(0, 0.3, (count, side, side)).astype(np.float32)
        for i, label in enumerate(y):
            x[i, label * 2 : label * 2 + 2] += 3.0
            x[i] += 1.5 * label
        return x, y.astype(np.int64)

    x_train, y_train = split(n)
    x_test, y_test = split(n // 2)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_checked_standardizes_with_the_training_statistics():
    arrays = blobs()
    d = datasets.checked("blobs", "test", arrays, [])
    assert d.shape == (1, 8, 8) and d.classes == 3 and d.class_names == ["0", "1", "2"]
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std()) - 1) < 1e-4
    mean, std = arrays["x_train"].mean(), arrays["x_train"].std()
    expected = (arrays["x_test"][0, 0, 0] - mean) / std
    assert d.x_test[0, 0, 0, 0] == pytest.approx(expected, rel=1e-4)
    assert d.mean == [pytest.approx(float(mean), rel=1e-5)]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(y_train=a["y_train"][:-1]),
         "x_train has 60 samples but y_train has 59"),
        (lambda a: a["y_test"].__setitem__(0, 7), "y_test has label 7, out of range (the "
         "training labels make 3 classes, 0..2)"),
        (lambda a: a["y_train"].__setitem__(0, -1), "y_train has label -1, out of range"),
        (lambda a: a.update(y_train=a["y_train"].astype(float)), "y_train holds float64 values"),
        (lambda a: a["x_test"].__setitem__((0, 0, 0), np.nan), "x_test holds NaN or infinite"),
        (lambda a: a.update(x_test=a["x_test"][:, :4]),
         "x_train's samples are (1, 8, 8), x_test's (1, 4, 8)"),
        (lambda a: a.update(x_train=a["x_train"].reshape(60, -1)), "x_train has shape (60, 64)"),
        (lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]), "x_test has no"),
    ],
)  # fmt: skip
def test_checked_refuses_inconsistent_arrays(change, message):
    arrays = blobs()
    change(arrays)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        datasets.checked("blobs", "test", arrays, [])


def test_npz_round_trip_and_refusals(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **blobs())
    d = datasets.load(str(path))
    assert d.name == "d.npz" and len(d.y_train) == 60 and len(d.y_test) == 30
    missing = tmp_path / "m.npz"
    np.savez(missing, **{k: v for k, v in blobs().items() if k != "y_test"})
    with pytest.raises(DataError, match="no array 'y_test'"):
        datasets.load(str(missing))
    # an object array needs a pickle to load: refused, never unpickled
    hostile = tmp_path / "h.npz"
    np.savez(hostile, **{**blobs(), "x_train": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError, match="refused: only plain numeric arrays"):
        datasets.load(str(hostile))
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match=r"g\.npz"):
        datasets.load(str(garbage))
    with pytest.raises(DataError, match="no such file or folder"):
        datasets.load(str(tmp_path / "absent.npz"))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"not an \.npz file nor a folder"):
        datasets.load(str(tmp_path / "x.txt"))


def test_image_folder(tmp_path):
    from PIL import Image

    for split, count in (("train", 3), ("test", 2)):
        for k, name in enumerate(("cat", "dog")):
            folder = tmp_path / "imgs" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((6, 5), 40 * k + i, dtype=np.uint8)).save(
                    folder / f"{i}.png"
                )
    d = datasets.load(str(tmp_path / "imgs"))
    assert d.shape == (1, 6, 5) and d.classes == 2 and d.class_names == ["cat", "dog"]
    assert list(d.y_train) == [0, 0, 0, 1, 1, 1] and list(d.y_test) == [0, 0, 1, 1]
    Image.fromarray(np.zeros((7, 5), dtype=np.uint8)).save(tmp_path / "imgs/test/dog/odd.png")
    with pytest.raises(DataError, match=r"odd.png is 5x7, the first image 5x6"):
        datasets.load(str(tmp_path / "imgs"))
    (tmp_path / "imgs/test/dog/odd.png").unlink()
    (tmp_path / "imgs/test/bird").mkdir()
    with pytest.raises(DataError, match="test/bird/ is a class that train/ does not have"):
        datasets.load(str(tmp_path / "imgs"))
    (tmp_path / "imgs/test/bird").rmdir()
    (tmp_path / "imgs/train/cat/broken.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        datasets.load(str(tmp_path / "imgs"))


def test_digits_ship_with_scikit_learn_and_split_the_same_way_every_time():
    pytest.importorskip("sklearn")
    d = datasets.load("digits")
    assert d.shape == (1, 8, 8) and d.classes == 10
    assert (len(d.y_train), len(d.y_test)) == (1347, 450)
    # stratified: each digit's test count is a quarter of its images, rounded either way
    from sklearn.datasets import load_digits

    per_digit = np.bincount(load_digits().target, minlength=10)
    counts = np.bincount(d.y_test, minlength=10)
    assert np.all(np.abs(counts - per_digit / 4) <= 1) and counts.sum() == 450
    again = datasets.load("digits")
    assert np.array_equal(again.x_test, d.x_test) and np.array_equal(again.y_train, d.y_train)


def test_digits_cnn_counts_by_hand():
    """Conv 1->32, 32->64 (8x8), pool, 64->64 (4x4), BN after each, linear 64->10."""
    spec = ModelSpec(batch=1, model="digits-cnn", input_shape=(1, 8, 8))
    std, sep = (counting.counts_of(spec, v) for v in ("standard", "separable"))
    bn = 2 * (32 + 64 + 64)
    assert std.params == 1 * 32 * 9 + 32 * 64 * 9 + 64 * 64 * 9 + bn + 64 * 10 + 10
    sep_bn = 2 * (32 + 32 + 64 + 64 + 64)  # a BN after the depthwise and the pointwise conv
    assert sep.params == 288 + 32 * 9 + 32 * 64 + 64 * 9 + 64 * 64 + sep_bn + 650
    assert std.macs == 64 * 288 + 64 * 32 * 64 * 9 + 16 * 64 * 64 * 9 + 640
    assert sep.macs == 64 * 288 + 64 * (32 * 9 + 32 * 64) + 16 * (64 * 9 + 64 * 64) + 640


def tiny_recipe(epochs: int = 2) -> train.Recipe:
    return train.Recipe(epochs=epochs, batch_size=16)


def test_training_is_deterministic_per_seed_and_learns_an_easy_task():
    torch.set_num_threads(1)
    d = datasets.checked("blobs", "test", blobs(), [])

    def trained(seed: int, epochs: int = 2) -> train.Trained:
        torch.manual_seed(seed)
        return train.train(digits_cnn("separable", classes=3), d, seed, tiny_recipe(epochs))

    a, b, c = trained(0), trained(0), trained(1)
    assert (a.test_accuracy, a.test_loss, a.train_loss) == (b.test_accuracy, b.test_loss,
                                                            b.train_loss)  # fmt: skip
    assert a.train_loss != c.train_loss
    assert trained(0, epochs=8).test_accuracy >= 0.9  # three bright bands: an easy task


def test_epoch_times_come_from_the_clock():
    ticks = iter(range(100))
    d = datasets.checked("blobs", "test", blobs(n=16), [])
    done = train.train(digits_cnn("standard", classes=3), d, 0, tiny_recipe(3),
                       clock=lambda: float(next(ticks)) * 0.5)  # fmt: skip
    assert done.epoch_times_s == [0.5, 0.5, 0.5]
    assert done.train_time_s == 1.5 and done.epoch_time_s == 0.5


def test_a_model_with_too_few_outputs_is_refused():
    d = datasets.checked("blobs", "test", blobs(classes=3), [])
    with pytest.raises(DataError, match="gives 2 outputs, but the data has 3 classes"):
        train.check_fits(digits_cnn("standard", classes=2), d, "--model x")
    with pytest.raises(DataError, match="does not take the data's"):
        train.check_fits(torch.nn.Linear(5, 3), d, "--model x")


def test_intervals_over_seeds_are_student_t():
    values = np.array([0.90, 0.92, 0.94])
    i = summary.mean_interval(values)
    half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)  # sd 0.02 exactly
    assert i.estimate == pytest.approx(0.92)
    assert (i.low, i.high) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    assert half == pytest.approx(0.04968, abs=1e-5)
    r = summary.ratio_interval(np.array([2.0, 4.0]), np.array([1.0, 2.0]))
    assert (r.estimate, r.low, r.high) == (2.0, 2.0, 2.0)  # the same ratio twice: no spread
    one = summary.mean_interval(np.array([0.5]))
    assert one.estimate == 0.5 and math.isnan(one.low)


def table(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"variant": v, "seed": s, "epochs": 2, "test_accuracy": a, "test_loss": 0.1,
          "train_loss": 0.2, "train_time_s": 2 * t, "epoch_time_s": t, "params": 10}
         for v, s, a, t in rows]
    )  # fmt: skip


def test_summary_pairs_the_twins_by_seed():
    t = table([("standard", 0, 0.95, 1.0), ("separable", 0, 0.93, 0.5),
               ("standard", 1, 0.97, 1.0), ("separable", 1, 0.94, 0.5)])  # fmt: skip
    s = summary.summarize(t)
    assert s.accuracy["standard"].estimate == pytest.approx(0.96)
    assert s.difference.estimate == pytest.approx(-0.025) and s.difference.n == 2
    half = stats.t.ppf(0.975, 1) * np.std([-0.02, -0.03], ddof=1) / math.sqrt(2)
    assert s.difference.high == pytest.approx(-0.025 + half)
    assert s.epoch_time_ratio.estimate == pytest.approx(0.5)
    assert s.epoch_time_s == {"standard": 1.0, "separable": 0.5}


def test_accuracy_files_round_trip_and_refuse_what_they_cannot_read(tmp_path):
    assert files.load_accuracy(tmp_path) is None
    t = table([("standard", 0, 0.95, 1.0), ("separable", 0, 0.93, 0.5)])
    files.write_accuracy(tmp_path, t, {"model": "m", "status": "complete"})
    back, doc = files.load_accuracy(tmp_path)
    pd.testing.assert_frame_equal(back, t[files.ACCURACY_COLUMNS])
    assert doc["version"] == files.ACCURACY_VERSION and doc["model"] == "m"
    (tmp_path / files.ACCURACY_JSON).write_text(json.dumps({"version": 99}))
    with pytest.raises(ResultsError, match="version 99 is newer"):
        files.load_accuracy(tmp_path)
    (tmp_path / files.ACCURACY_JSON).write_text("{not json")
    with pytest.raises(ResultsError, match="not readable JSON"):
        files.load_accuracy(tmp_path)
    files.write_accuracy(tmp_path, t.assign(variant="sideways"), {})
    with pytest.raises(ResultsError, match="variant 'sideways'"):
        files.load_accuracy(tmp_path)


def test_pareto_figure_has_a_point_per_twin():
    pytest.importorskip("matplotlib")
    from dscbench.export import accuracy as render

    t = table([("standard", 0, 0.95, 1.0), ("separable", 0, 0.93, 0.5),
               ("standard", 1, 0.97, 1.0), ("separable", 1, 0.94, 0.5)])  # fmt: skip
    rows = pd.DataFrame([
        {"config_id": "c", "backend": "torch-cpu", "variant": "standard", "status": "ok",
         "latency_median_s": 2e-3,
         "speedup": math.nan, "speedup_rerun_low": math.nan, "speedup_rerun_high": math.nan},
        {"config_id": "c", "backend": "torch-cpu", "variant": "separable", "status": "ok",
         "latency_median_s": 1e-3,
         "speedup": 2.0, "speedup_rerun_low": 1.8, "speedup_rerun_high": 2.2},
    ])  # fmt: skip
    d = render.document(t, {"model": "m", "data": {"name": "blobs"}}, rows)
    assert d["latency_s"] == {"standard": 2e-3, "separable": 1e-3}
    assert d["speedup"] == {"estimate": 2.0, "low": 1.8, "high": 2.2}
    fig = render.pareto_figure(d)
    points = fig.axes[0].containers
    assert len(points) == 2
    assert [c.lines[0].get_xdata()[0] for c in points] == [2.0, 1.0]  # ms
    lines = render.markdown(d)
    assert lines[2].startswith("| standard | 96.00% [") and "-2.50 pts" in lines[4]


def write_npz(tmp_path, **changes) -> str:
    arrays = {**blobs(), **changes}
    path = tmp_path / "blobs.npz"
    np.savez(path, **arrays)
    return str(path)


TINY = ["--seeds", "2", "--epochs", "1", "--min-time", "0.02", "--rounds", "1",
        "--processes", "1"]  # fmt: skip


@pytest.mark.slow
def test_accuracy_command_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["accuracy", "--model", "tests.user_models:three_class_cnn",
                                   "--data", write_npz(tmp_path), *TINY, "-o", str(out),
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["seeds"] == [0, 1] and doc["accuracy"]["standard"]["n"] == 2
    assert doc["latency_s"]["standard"] > 0 and doc["latency_s"]["separable"] > 0
    assert (out / "results.parquet").exists() and (out / "accuracy.parquet").exists()
    table_, meta = files.load_accuracy(out)
    assert meta["status"] == "complete" and len(table_) == 4
    assert meta["recipe"]["epochs"] == 1 and meta["data"]["classes"] == 3
    shown = CliRunner().invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "test accuracy (95% CI over 2 seeds)" in shown.output
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and "## Accuracy (run)" in report.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "LABELS"], "y_test has label 5, out of range"),
        (["--data", "NPZ", "--model", "digits-cnn", "--seeds", "2"],
         "its inputs are 3x8x8 (C x H x W) but --model digits-cnn takes 1x8x8"),
        (["--data", "NPZ", "--model", "tests.user_models:three_class_cnn", "--seeds", "1"],
         "--seeds"),
    ],
)  # fmt: skip
def test_accuracy_bad_input_is_one_line(tmp_path, args, message):
    labels = write_npz(tmp_path, y_test=np.full(30, 5))
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, **{**blobs(), "x_train": np.zeros((60, 3, 8, 8)),
                     "x_test": np.zeros((30, 3, 8, 8))})  # fmt: skip
    args = [{"LABELS": labels, "NPZ": str(rgb)}.get(a, a) for a in args]
    res = CliRunner().invoke(app, ["accuracy", *args, "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
