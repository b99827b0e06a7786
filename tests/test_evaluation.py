"""ZSL/GZSL evaluation over feature spaces, and the evaluate stage end to end, on a small fake dataset."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

from zerodiff.atomic import sha256_file
from zerodiff.classifier import ClassifierConfig
from zerodiff.dfg import DFGAblation, GeneratorInputs
from zerodiff.errors import UserError
from zerodiff.evaluation import (
    EvaluateConfig,
    EvaluationInputs,
    build_class_table,
    build_confusion_table,
    build_groups,
    build_metrics,
    build_space_table,
    evaluate,
    method_from_switches,
    resolve_batch_size,
)
from zerodiff.preprocess import FeatureScaler
from zerodiff.store import FeatureStore, apply_protocol, write_store
from zerodiff.subset import SubsetManifest, write_manifest
from zerodiff.synthetic import SyntheticFeatures, write_synthetic

CPU = torch.device("cpu")
SEEN = (0, 1, 2)
UNSEEN = (3, 4)
NAMES = ["zero", "one", "two", "three", "four"]
D_CE, D_SC, NUM_ATTRIBUTES, DECODER_HIDDEN = 6, 4, 3, 5
TRAIN_PER_CLASS, TEST_PER_CLASS, SYNTHETIC_PER_CLASS = 8, 4, 10
FAST = ClassifierConfig(epochs=25)


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch on one thread: these tiny problems are slower with more, above all on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
CENTRES_CE = 5.0 * np.eye(5, D_CE) + 2.0
CENTRES_SC = 3.0 * np.eye(5, D_SC, k=-1) + 3.0 * np.eye(5, D_SC)


@dataclasses.dataclass
class FakeDFG:
    """Stand-in for the trained DFG with the attributes evaluation reads."""

    scaler_ce: FeatureScaler
    scaler_sc: FeatureScaler | None
    store_sha256: str = ""
    ratio: float = 1.0
    seed: int = 0
    protocol: str = "standard"
    has_decoder: bool = True
    config: object | None = dataclasses.field(default_factory=lambda: types.SimpleNamespace(ablation=DFGAblation(), inputs=GeneratorInputs()))
    decoder_inputs: list = dataclasses.field(default_factory=list)

    def decoder_embedding(self, features_ce: np.ndarray) -> np.ndarray:
        if not self.has_decoder:
            raise UserError("the decoder was ablated")
        self.decoder_inputs.append(features_ce.copy())
        weights = np.linspace(-1.0, 1.0, D_CE * (NUM_ATTRIBUTES + DECODER_HIDDEN)).reshape(D_CE, -1)
        return np.tanh(features_ce @ weights).astype(np.float32)


def blobs(centres: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (centres[labels] + rng.normal(0.0, 0.05, size=(labels.size, centres.shape[1]))).astype(np.float32)


def make_store(seed: int = 0, unseen_at_seen_centres: bool = False, with_sc: bool = True) -> FeatureStore:
    """Five well-separated classes: three seen (trainval, test_seen), two unseen (test_unseen)."""
    rng = np.random.default_rng(seed)
    train_labels = np.repeat(SEEN, TRAIN_PER_CLASS)
    test_seen_labels = np.repeat(SEEN, TEST_PER_CLASS)
    test_unseen_labels = np.repeat(UNSEEN, TEST_PER_CLASS)
    labels = np.concatenate([train_labels, test_seen_labels, test_unseen_labels]).astype(np.int64)
    # With unseen_at_seen_centres, unseen test images look exactly like seen classes 0 and 1.
    feature_labels = labels.copy()
    if unseen_at_seen_centres:
        feature_labels[labels == 3] = 0
        feature_labels[labels == 4] = 1
    n_train, n_seen = train_labels.size, test_seen_labels.size
    return FeatureStore(
        dataset="fake",
        features_ce=blobs(CENTRES_CE, feature_labels, rng),
        features_sc=blobs(CENTRES_SC, feature_labels, rng) if with_sc else None,
        labels=labels,
        class_names=list(NAMES),
        attributes=rng.random((5, NUM_ATTRIBUTES)).astype(np.float32),
        splits={
            "trainval": np.arange(n_train),
            "test_seen": np.arange(n_train, n_train + n_seen),
            "test_unseen": np.arange(n_train + n_seen, labels.size),
        },
    )


def make_inputs(store: FeatureStore, *, synthetic_classes=UNSEEN, seed: int = 1, **dfg_changes) -> EvaluationInputs:
    """A full-trainval manifest, a DFG whose scalers are fitted on it, and ideal synthetic features.

    The synthetic features are fresh draws around each class's centre, through
    the DFG's scalers, as a perfect generator would produce.
    """
    rng = np.random.default_rng(seed)
    indices = store.splits["trainval"]
    dfg = FakeDFG(
        scaler_ce=FeatureScaler.fit(store.features_ce[indices]),
        scaler_sc=FeatureScaler.fit(store.features_sc[indices]) if store.features_sc is not None else None,
    )
    dfg = dataclasses.replace(dfg, **dfg_changes)
    manifest = SubsetManifest(
        indices=indices, labels=store.labels[indices], ratio=1.0, seed=0, source="sampled", store_sha256="", protocol="standard"
    )
    labels = np.repeat(np.asarray(synthetic_classes, dtype=np.int64), SYNTHETIC_PER_CLASS)
    synthetic = SyntheticFeatures(
        features_ce=dfg.scaler_ce.transform(blobs(CENTRES_CE, labels, rng)),
        features_sc=dfg.scaler_sc.transform(blobs(CENTRES_SC, labels, rng)) if store.features_sc is not None else None,
        labels=labels,
        attrs={"per_class": SYNTHETIC_PER_CLASS},
    )
    return EvaluationInputs(store=store, manifest=manifest, synthetic=synthetic, model=dfg)


def config(**changes) -> EvaluateConfig:
    return dataclasses.replace(EvaluateConfig(classifier=FAST, device="cpu"), **changes)


def test_separable_data_scores_full_marks():
    result = evaluate(make_inputs(make_store()), config(), CPU)
    assert result.headline.zsl_top1 == pytest.approx(100.0)
    assert result.headline.gzsl_u == pytest.approx(100.0)
    assert result.headline.gzsl_s == pytest.approx(100.0)
    assert result.headline.gzsl_h == pytest.approx(100.0)


def test_unseen_predicted_as_seen_is_wrong():
    inputs = make_inputs(make_store(unseen_at_seen_centres=True))
    result = evaluate(inputs, config(), CPU)
    gzsl = build_confusion_table(result, NAMES, "gzsl")
    unseen_rows = gzsl[gzsl["actual"].isin(["three", "four"])]
    assert set(unseen_rows["predicted"]) <= {"zero", "one", "two"}
    assert result.headline.gzsl_u == 0.0
    assert result.headline.gzsl_h == 0.0
    assert result.headline.gzsl_s == pytest.approx(100.0)


def test_metrics_match_sklearn_on_predictions():
    # Shift the unseen test features halfway towards class 0 so that accuracies are not all 100%.
    store = make_store(seed=4)
    unseen_rows = store.splits["test_unseen"]
    store.features_ce[unseen_rows] = 0.5 * store.features_ce[unseen_rows] + 0.5 * store.features_ce[0]
    result = evaluate(make_inputs(store), config(classifier=ClassifierConfig(epochs=3)), CPU)

    zsl = build_confusion_table(result, NAMES, "zsl")
    assert result.headline.zsl_top1 == pytest.approx(100 * balanced_accuracy_score(zsl["actual"], zsl["predicted"]))

    gzsl = build_confusion_table(result, NAMES, "gzsl")
    for group, value in ((["three", "four"], result.headline.gzsl_u), (["zero", "one", "two"], result.headline.gzsl_s)):
        rows = gzsl[gzsl["actual"].isin(group)]
        recalls = [np.mean(rows.loc[rows["actual"] == name, "predicted"] == name) for name in group]
        assert value == pytest.approx(100 * np.mean(recalls))
    u, s = result.headline.gzsl_u, result.headline.gzsl_s
    assert result.headline.gzsl_h == pytest.approx(2 * u * s / (u + s) if u + s else 0.0)


@pytest.mark.parametrize(
    ("space", "width"),
    [
        ("V", D_CE),
        ("C", D_SC),
        ("VC", D_CE + D_SC),
        ("VS", D_CE + NUM_ATTRIBUTES + DECODER_HIDDEN),
        ("VCS", D_CE + D_SC + NUM_ATTRIBUTES + DECODER_HIDDEN),
    ],
)
def test_space_widths(space, width):
    groups = build_groups(make_inputs(make_store()))
    for group in (groups.train_seen, groups.synthetic_unseen, groups.test_seen, groups.test_unseen):
        assert group.space(space).shape == (group.labels.size, width)


def test_real_features_use_dfg_scalers():
    store = make_store()
    inputs = make_inputs(store)
    # Scalers fitted on other data: evaluation must apply them, not refit its own.
    inputs.model.scaler_ce = FeatureScaler.fit(store.features_ce * 3.0 + 1.0)
    inputs.model.scaler_sc = FeatureScaler.fit(store.features_sc * 2.0)
    groups = build_groups(inputs)
    test_rows = store.splits["test_seen"]
    expected_v = inputs.model.scaler_ce.transform(store.features_ce[test_rows])
    expected_r = inputs.model.scaler_sc.transform(store.features_sc[test_rows])
    np.testing.assert_array_equal(groups.test_seen.space("V"), expected_v)
    np.testing.assert_array_equal(groups.test_seen.space("C"), expected_r)
    np.testing.assert_array_equal(groups.test_seen.space("VC"), np.concatenate([expected_v, expected_r], axis=1))


def test_synthetic_features_are_not_rescaled():
    inputs = make_inputs(make_store())
    groups = build_groups(inputs)
    np.testing.assert_array_equal(groups.synthetic_unseen.space("V"), inputs.synthetic.features_ce)
    np.testing.assert_array_equal(groups.synthetic_unseen.space("C"), inputs.synthetic.features_sc)


def test_decoder_reads_preprocessed_v():
    store = make_store()
    inputs = make_inputs(store)
    groups = build_groups(inputs)
    decoded = groups.test_unseen.space("VS")[:, D_CE:]
    expected_v = inputs.model.scaler_ce.transform(store.features_ce[store.splits["test_unseen"]])
    np.testing.assert_array_equal(inputs.model.decoder_inputs[-1], expected_v)
    np.testing.assert_array_equal(decoded, inputs.model.decoder_embedding(expected_v))


def test_all_spaces_in_one_run():
    result = evaluate(make_inputs(make_store()), config(space="VC", spaces=("V", "C", "VC", "VS", "VCS")), CPU)
    assert list(result.spaces) == ["VC", "V", "C", "VS", "VCS"]
    table = build_space_table(result, report_test_selected=False)
    assert table["space"].tolist() == ["VC", "V", "C", "VS", "VCS"]
    assert (table["zsl_top1"] == 100.0).all()


def test_synthetic_seen_classes_are_ignored():
    inputs = make_inputs(make_store(), synthetic_classes=(0, 3, 4))
    groups = build_groups(inputs)
    assert set(groups.synthetic_unseen.labels.tolist()) == {3, 4}
    result = evaluate(inputs, config(), CPU)
    assert result.counts["train_unseen_synthetic"] == 2 * SYNTHETIC_PER_CLASS
    assert result.counts["train_seen_real"] == len(SEEN) * TRAIN_PER_CLASS


def test_class_without_test_samples_excluded_and_listed():
    store = make_store()
    test_seen = store.splits["test_seen"]
    store.splits["test_seen"] = test_seen[store.labels[test_seen] != 2]
    result = evaluate(make_inputs(store), config(), CPU)
    assert result.headline.gzsl_seen.excluded.tolist() == [2]
    assert result.headline.gzsl_s == pytest.approx(100.0)
    metrics = build_metrics(
        result, NAMES, dataset="fake", method="zerodiff", ratio=1.0, protocol="standard", report_test_selected=False
    )
    assert metrics["excluded_classes"]["gzsl_seen"] == ["two"]
    table = build_class_table(result, NAMES)
    row = table[(table["task"] == "gzsl_seen") & (table["class_name"] == "two")].iloc[0]
    assert row["support"] == 0
    assert not row["included"]
    assert np.isnan(row["accuracy"])


def test_validation_protocol_uses_val_classes_as_unseen():
    store = make_store()
    # Class 2 is held out as the validation "unseen" class; classes 0 and 1 train.
    trainval = store.splits["trainval"]
    store.splits["train"] = trainval[store.labels[trainval] != 2]
    store.splits["val"] = trainval[store.labels[trainval] == 2]
    validation = apply_protocol(store, "validation")
    inputs = make_inputs(validation, synthetic_classes=(2,))
    inputs.manifest = dataclasses.replace(inputs.manifest, protocol="validation")
    inputs.model.protocol = "validation"
    result = evaluate(inputs, config(), CPU)
    assert result.counts["unseen_classes"] == 1
    assert result.counts["seen_classes"] == 2
    assert set(result.test_unseen_labels.tolist()) == {2}
    assert result.headline.zsl_top1 == pytest.approx(100.0)


def test_runs_are_bit_identical():
    first = evaluate(make_inputs(make_store()), config(classifier=ClassifierConfig(epochs=2)), CPU)
    second = evaluate(make_inputs(make_store()), config(classifier=ClassifierConfig(epochs=2)), CPU)
    pd.testing.assert_frame_equal(first.headline.epochs, second.headline.epochs)
    assert np.array_equal(first.headline.gzsl_predictions_unseen, second.headline.gzsl_predictions_unseen)


def test_test_selected_only_when_requested():
    result = evaluate(make_inputs(make_store(seed=2)), config(classifier=ClassifierConfig(epochs=4)), CPU)
    common = {"dataset": "fake", "method": "zerodiff", "ratio": 1.0, "protocol": "standard"}
    plain = build_metrics(result, NAMES, report_test_selected=False, **common)
    assert "test_selected" not in plain
    selected = build_metrics(result, NAMES, report_test_selected=True, **common)["test_selected"]
    epochs = result.headline.epochs
    assert selected["zsl"]["top1"] == pytest.approx(epochs["zsl_top1"].max())
    assert selected["gzsl"]["h"] == pytest.approx(epochs["gzsl_h"].max())
    assert selected["zsl"]["top1"] >= plain["zsl"]["top1"]
    assert 1 <= selected["gzsl"]["epoch"] <= 4


@pytest.mark.parametrize(
    ("configured", "attrs", "expected"),
    [(7, {"per_class": 10}, 7), (None, {"per_class": 10}, 10), (None, {}, SYNTHETIC_PER_CLASS)],
)
def test_batch_size_resolution(configured, attrs, expected):
    synthetic = make_inputs(make_store()).synthetic
    synthetic.attrs = attrs
    assert resolve_batch_size(ClassifierConfig(batch_size=configured), synthetic) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda inputs: setattr(inputs.model, "has_decoder", False), "semantic decoder"),
        (lambda inputs: setattr(inputs.model, "scaler_sc", None), "SC scaler"),
        (lambda inputs: setattr(inputs.synthetic, "features_sc", None), "generated r̃0"),
        (lambda inputs: setattr(inputs.model, "ratio", 0.3), "subset ratio 0.3"),
        (lambda inputs: setattr(inputs.model, "protocol", "validation"), "protocol"),
        (lambda inputs: setattr(inputs.model, "store_sha256", "abc"), "store_sha256"),
        (lambda inputs: inputs.synthetic.attrs.update(store_sha256="abc"), "re-run synthesize"),
        (
            lambda inputs: (inputs.synthetic.attrs.update(dfg_sha256="abc"), setattr(inputs, "model_sha256", "def")),
            "generated by a DFG with SHA-256 abc",
        ),
        (lambda inputs: setattr(inputs.synthetic, "labels", np.where(inputs.synthetic.labels == 4, 3, 3)), "four"),
        (lambda inputs: setattr(inputs.synthetic, "features_ce", inputs.synthetic.features_ce[:, :3]), "dimensions"),
        (lambda inputs: setattr(inputs, "manifest", dataclasses.replace(inputs.manifest, indices=np.array([0, 30]))), "trainval"),
    ],
)
def test_bad_inputs_raise_user_error(change, message):
    inputs = make_inputs(make_store())
    change(inputs)
    with pytest.raises(UserError, match=message):
        evaluate(inputs, config(space="VCS"), CPU)


def test_unavailable_extra_space_is_skipped():
    inputs = make_inputs(make_store())
    inputs.model.has_decoder = False
    result = evaluate(inputs, config(space="V", spaces=("V", "VS", "C")), CPU)
    assert list(result.spaces) == ["V", "C"]
    assert list(result.skipped_spaces) == ["VS"]
    assert "semantic decoder" in result.skipped_spaces["VS"]
    metrics = build_metrics(
        result, NAMES, dataset="fake", method="zerodiff", ratio=1.0, protocol="standard", report_test_selected=False
    )
    assert list(metrics["skipped_spaces"]) == ["VS"]
    assert set(metrics["spaces"]) == {"V", "C"}


def test_store_without_sc_rejects_space_c():
    inputs = make_inputs(make_store(with_sc=False))
    with pytest.raises(UserError, match="/features/sc"):
        evaluate(inputs, config(space="C"), CPU)
    assert evaluate(inputs, config(space="VS", spaces=("V", "VS")), CPU).headline.zsl_top1 == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("ablation", "inputs", "expected"),
    [
        ({}, {}, "ZeroDiff"),
        ({"drg": False, "d_diff": False, "d_rep": False, "mutual": False}, {"r0": False, "v_t": False, "t": False}, "f-VAEGAN"),
        ({"d_rep": False}, {}, "ZeroDiff without d_rep"),
        ({"mutual": False}, {"t": False}, "ZeroDiff without mutual, input t"),
        ({"drg": False, "d_diff": False, "d_rep": False, "mutual": False, "decoder": False}, {"r0": False, "v_t": False, "t": False},
         "ZeroDiff without drg, d_diff, d_rep, mutual, decoder, input r0, input v_t, input t"),
    ],
)
def test_method_from_switches(ablation, inputs, expected):
    model = types.SimpleNamespace(config=types.SimpleNamespace(ablation=DFGAblation(**ablation), inputs=GeneratorInputs(**inputs)))
    assert method_from_switches(model) == expected


def test_method_from_real_dfg_switches():
    dfg = pytest.importorskip("zerodiff.dfg")
    baseline = types.SimpleNamespace(
        ablation=dfg.DFGAblation(drg=False, d_diff=False, d_rep=False, mutual=False),
        inputs=dfg.GeneratorInputs(r0=False, v_t=False, t=False),
    )
    assert method_from_switches(types.SimpleNamespace(config=baseline)) == "f-VAEGAN"
    full = types.SimpleNamespace(ablation=dfg.DFGAblation(), inputs=dfg.GeneratorInputs())
    assert method_from_switches(types.SimpleNamespace(config=full)) == "ZeroDiff"


def test_method_unknown_without_switches():
    assert method_from_switches(types.SimpleNamespace()) is None


@pytest.mark.parametrize(
    ("classifier", "message"),
    [(ClassifierConfig(lr=0.0), "lr"), (ClassifierConfig(epochs=0), "epochs"), (ClassifierConfig(batch_size=0), "batch_size")],
)
def test_invalid_classifier_settings_raise(classifier, message):
    with pytest.raises(UserError, match=message):
        evaluate(make_inputs(make_store()), config(classifier=classifier), CPU)


# The evaluate stage end to end, with files on disk and a stand-in for zerodiff.dfg.


def write_stage_inputs(folder: Path, monkeypatch: pytest.MonkeyPatch, **dfg_changes) -> dict[str, Path]:
    store = make_store()
    inputs = make_inputs(store, **dfg_changes)
    paths = {name: folder / name for name in ("features.h5", "subset.parquet", "synthetic.h5", "dfg.pt", "params.yaml")}
    write_store(paths["features.h5"], store)
    store_sha = sha256_file(paths["features.h5"])
    write_manifest(paths["subset.parquet"], dataclasses.replace(inputs.manifest, store_sha256=store_sha))
    inputs.synthetic.attrs["store_sha256"] = store_sha
    write_synthetic(paths["synthetic.h5"], inputs.synthetic)
    inputs.model.store_sha256 = store_sha
    paths["dfg.pt"].write_bytes(b"stand-in")
    paths["params.yaml"].write_text(
        "evaluate:\n  space: VC\n  spaces: [V, VC, VS]\n  device: cpu\n  report_test_selected: true\n"
        "  classifier:\n    epochs: 25\n"
    )

    def load_dfg(path, device):
        assert Path(path) == paths["dfg.pt"]
        return inputs.model

    monkeypatch.setitem(sys.modules, "zerodiff.dfg", types.SimpleNamespace(load_dfg=load_dfg))
    return paths


def run_stage(paths: dict[str, Path], folder: Path, *extra: str):
    from stages.evaluate import main

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    arguments = [
        "--store", str(paths["features.h5"]),
        "--manifest", str(paths["subset.parquet"]),
        "--synthetic", str(paths["synthetic.h5"]),
        "--dfg", str(paths["dfg.pt"]),
        "--metrics", str(folder / "metrics" / "eval.json"),
        "--tables-dir", str(folder / "metrics"),
        "--plots-dir", str(folder / "plots" / "evaluate"),
        "--params", str(paths["params.yaml"]),
        *extra,
    ]
    return CliRunner().invoke(app, arguments)


def test_stage_writes_every_output(tmp_path, monkeypatch):
    paths = write_stage_inputs(tmp_path, monkeypatch)
    outcome = run_stage(paths, tmp_path)
    assert outcome.exit_code == 0, outcome.output

    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    for section, keys in (("zsl", {"top1"}), ("gzsl", {"u", "s", "h"})):
        assert set(metrics[section]) == keys
        assert all(0.0 <= metrics[section][key] <= 100.0 for key in keys)
    assert metrics["space"] == "VC"
    assert (metrics["method"], metrics["ratio"], metrics["protocol"], metrics["dataset"]) == ("ZeroDiff", 1.0, "standard", "fake")
    assert set(metrics["spaces"]) == {"V", "VC", "VS"}
    assert metrics["spaces"]["VC"]["zsl"] == metrics["zsl"]
    assert set(metrics["test_selected"]) == {"zsl", "gzsl"}

    # The headline figures recomputed independently from the confusion data.
    plots = tmp_path / "plots" / "evaluate"
    zsl = pd.read_csv(plots / "confusion_zsl.csv")
    assert list(zsl.columns) == ["actual", "predicted"]
    assert len(zsl) == len(UNSEEN) * TEST_PER_CLASS
    assert metrics["zsl"]["top1"] == pytest.approx(100 * balanced_accuracy_score(zsl["actual"], zsl["predicted"]))
    gzsl = pd.read_csv(plots / "confusion_gzsl.csv")
    assert len(gzsl) == (len(SEEN) + len(UNSEEN)) * TEST_PER_CLASS

    epochs = pd.read_csv(plots / "classifier_epochs.csv")
    assert epochs["epoch"].tolist() == list(range(1, 26))
    assert epochs["zsl_top1"].iloc[-1] == pytest.approx(metrics["zsl"]["top1"])

    classes = pd.read_csv(tmp_path / "metrics" / "eval_classes.csv")
    assert set(classes["space"]) == {"V", "VC", "VS"}
    assert len(classes) == 3 * (2 * len(UNSEEN) + len(SEEN))
    spaces = pd.read_csv(tmp_path / "metrics" / "eval_spaces.csv")
    assert spaces["space"].tolist() == ["VC", "V", "VS"]
    assert "test_selected_gzsl_h" in spaces.columns


def test_stage_is_deterministic(tmp_path, monkeypatch):
    paths = write_stage_inputs(tmp_path, monkeypatch)
    assert run_stage(paths, tmp_path / "a").exit_code == 0
    assert run_stage(paths, tmp_path / "b").exit_code == 0
    for name in ("metrics/eval.json", "metrics/eval_classes.csv", "plots/evaluate/confusion_gzsl.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_stage_rejects_mismatched_dfg(tmp_path, monkeypatch):
    paths = write_stage_inputs(tmp_path, monkeypatch, ratio=0.1)
    outcome = run_stage(paths, tmp_path)
    assert outcome.exit_code == 1
    assert "subset ratio 0.1" in outcome.output
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "metrics" / "eval.json").exists()


def test_stage_needs_a_method_name(tmp_path, monkeypatch):
    paths = write_stage_inputs(tmp_path, monkeypatch, config=None)
    outcome = run_stage(paths, tmp_path)
    assert outcome.exit_code == 1
    assert "evaluate.method" in outcome.output
    outcome = run_stage(paths, tmp_path, "--set", "method=f-vaegan")
    assert outcome.exit_code == 0, outcome.output
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text())["method"] == "f-vaegan"
