"""ZSL and GZSL evaluation of synthetic features over the feature spaces V, C, VC, VS, VCS.

A feature space is a concatenation of blocks, each a preprocessed matrix per sample:

- ``v``: the CE feature (real: the store's ``/features/ce`` through the DFG's
  CE scaler; synthetic: the generated ṽ0, already in that space);
- ``r``: the SC representation (real: ``/features/sc`` through the DFG's SC
  scaler; synthetic: the generated r̃0);
- ``s``: the DFG semantic decoder's output concatenated with its hidden layer,
  computed from ``v``.

Every space runs through one code path (:func:`evaluate_space`), driven by
:data:`SPACE_BLOCKS`. For each space two linear softmax classifiers are trained:

- ZSL: on synthetic unseen features only, predicting among the unseen classes,
  tested on test_unseen;
- GZSL: on the real seen features of the subset plus the synthetic unseen
  features, predicting among seen and unseen classes in global label ids,
  tested on test_seen (S) and test_unseen (U).

Headline figures are those of the final classifier epoch. The best epoch on the
test set is kept apart, under names that say it was selected on the test set.
Accuracies in results and tables are percent.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch

from zerodiff.classifier import ClassifierConfig, train_linear_classifier
from zerodiff.device import DeviceChoice
from zerodiff.errors import UserError
from zerodiff.metrics import PerClassAccuracy, harmonic_mean, per_class_top1
from zerodiff.preprocess import FeatureScaler
from zerodiff.store import FeatureStore
from zerodiff.subset import SubsetManifest
from zerodiff.synthetic import SyntheticFeatures

log = logging.getLogger(__name__)

FeatureSpace = Literal["V", "C", "VC", "VS", "VCS"]

# Blocks concatenated, in this order, to form each feature space.
SPACE_BLOCKS: dict[str, tuple[str, ...]] = {
    "V": ("v",),
    "C": ("r",),
    "VC": ("v", "r"),
    "VS": ("v", "s"),
    "VCS": ("v", "r", "s"),
}
PERCENT = 100.0

FULL_METHOD = "ZeroDiff"
BASELINE_METHOD = "f-VAEGAN"
# Switches that are off in the f-VAEGAN baseline: G(z, a) with the VAE, D_adv and the feedback decoder.
BASELINE_OFF = ("drg", "d_diff", "d_rep", "mutual", "input r0", "input v_t", "input t")


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` section of the parameters.

    ``space`` gives the headline metrics and must be available. ``spaces`` lists
    the spaces of the per-space table, and ``space`` is evaluated even if not
    listed. A listed space the inputs cannot provide is skipped with a warning.
    ``method`` names the generator in reports; None derives it from the DFG's
    switches (see :func:`method_from_switches`).
    """

    space: FeatureSpace = "V"
    spaces: tuple[FeatureSpace, ...] = ("V",)
    method: str | None = None
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    seed: int = 9182
    device: DeviceChoice = "auto"
    report_test_selected: bool = False

    @property
    def evaluated_spaces(self) -> tuple[str, ...]:
        """The configured space first, then the other listed spaces, without repeats."""
        return tuple(dict.fromkeys((self.space, *self.spaces)))


class FeatureModel(Protocol):
    """Interface of a trained DFG that evaluation uses: its feature scalers and its semantic decoder."""

    scaler_ce: FeatureScaler
    scaler_sc: FeatureScaler | None
    has_decoder: bool

    def decoder_embedding(self, features_ce: np.ndarray) -> np.ndarray: ...


@dataclass
class EvaluationInputs:
    """Everything one evaluation reads, with the file names quoted in error messages.

    ``store`` already has the manifest's protocol applied.
    """

    store: FeatureStore
    manifest: SubsetManifest
    synthetic: SyntheticFeatures
    model: FeatureModel
    store_path: str = "feature store"
    manifest_path: str = "subset manifest"
    synthetic_path: str = "synthetic features"
    model_path: str = "DFG checkpoint"
    model_sha256: str | None = None


class FeatureBlocks:
    """Preprocessed blocks of one group of samples. The decoder block is computed on first use."""

    def __init__(self, labels: np.ndarray, v: np.ndarray, r: np.ndarray | None, model: FeatureModel) -> None:
        self.labels = labels
        self._blocks: dict[str, np.ndarray | None] = {"v": v, "r": r}
        self._model = model

    def space(self, space: str) -> np.ndarray:
        """Return the float32 matrix [n, d] of ``space``: its blocks side by side."""
        parts = []
        for block in SPACE_BLOCKS[space]:
            if block == "s" and "s" not in self._blocks:
                self._blocks["s"] = np.asarray(self._model.decoder_embedding(self._blocks["v"]), dtype=np.float32)
            matrix = self._blocks[block]
            if matrix is None:
                raise ValueError(f"block {block!r} is unavailable; check_inputs should have rejected space {space}")
            parts.append(matrix)
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


@dataclass
class SampleGroups:
    """The four groups of samples every space is built from."""

    train_seen: FeatureBlocks
    synthetic_unseen: FeatureBlocks
    test_seen: FeatureBlocks
    test_unseen: FeatureBlocks
    seen_classes: np.ndarray
    unseen_classes: np.ndarray

    @property
    def gzsl_classes(self) -> np.ndarray:
        """Sorted global ids of the classes the GZSL classifier predicts among."""
        return np.union1d(self.seen_classes, self.unseen_classes)


@dataclass
class SpaceResult:
    """Final-epoch results of one feature space, with per-epoch curves on the test set.

    Predictions are global class ids. ``epochs`` has one row per classifier
    epoch with columns ``epoch``, ``zsl_top1``, ``gzsl_u``, ``gzsl_s``, ``gzsl_h``
    (percent, measured on the test set).
    """

    space: str
    zsl: PerClassAccuracy
    gzsl_unseen: PerClassAccuracy
    gzsl_seen: PerClassAccuracy
    zsl_predictions: np.ndarray
    gzsl_predictions_seen: np.ndarray
    gzsl_predictions_unseen: np.ndarray
    epochs: pd.DataFrame

    @property
    def zsl_top1(self) -> float:
        return PERCENT * self.zsl.mean

    @property
    def gzsl_u(self) -> float:
        return PERCENT * self.gzsl_unseen.mean

    @property
    def gzsl_s(self) -> float:
        return PERCENT * self.gzsl_seen.mean

    @property
    def gzsl_h(self) -> float:
        return harmonic_mean(self.gzsl_u, self.gzsl_s)


@dataclass
class EvaluationResult:
    """Results of every evaluated space; ``space`` is the one behind the headline metrics.

    ``skipped_spaces`` maps each listed space the inputs could not provide to the reason.
    """

    space: str
    spaces: dict[str, SpaceResult]
    counts: dict[str, int]
    batch_size: int
    test_seen_labels: np.ndarray
    test_unseen_labels: np.ndarray
    skipped_spaces: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> SpaceResult:
        return self.spaces[self.space]


def method_from_switches(model: object) -> str | None:
    """Name the method from a DFG's ``config.ablation`` and ``config.inputs`` switches.

    All on gives ``ZeroDiff``; exactly the f-VAEGAN switch set off gives
    ``f-VAEGAN``; anything else is ``ZeroDiff without`` the switches that are off.
    Returns None when the model exposes no such switches.
    """
    config = getattr(model, "config", None)
    ablation, inputs = getattr(config, "ablation", None), getattr(config, "inputs", None)
    if not (dataclasses.is_dataclass(ablation) and dataclasses.is_dataclass(inputs)):
        return None
    off = [item.name for item in dataclasses.fields(ablation) if not getattr(ablation, item.name)]
    off += [f"input {item.name}" for item in dataclasses.fields(inputs) if not getattr(inputs, item.name)]
    if not off:
        return FULL_METHOD
    if sorted(off) == sorted(BASELINE_OFF):
        return BASELINE_METHOD
    return f"{FULL_METHOD} without {', '.join(off)}"


def check_config(config: EvaluateConfig) -> None:
    """Raise :class:`UserError` for classifier settings outside their valid range."""
    classifier = config.classifier
    if not classifier.lr > 0:
        raise UserError(f"evaluate.classifier.lr must be positive, got {classifier.lr}")
    if not 0 <= classifier.beta1 < 1:
        raise UserError(f"evaluate.classifier.beta1 must lie in [0, 1), got {classifier.beta1}")
    if classifier.epochs < 1:
        raise UserError(f"evaluate.classifier.epochs must be at least 1, got {classifier.epochs}")
    if classifier.batch_size is not None and classifier.batch_size < 1:
        raise UserError(f"evaluate.classifier.batch_size must be at least 1 or null (synthetic samples per class), got {classifier.batch_size}")


def check_inputs(inputs: EvaluationInputs, spaces: tuple[str, ...]) -> None:
    """Raise :class:`UserError` unless the inputs belong together and support every space in ``spaces``."""
    store, manifest, synthetic, model = inputs.store, inputs.manifest, inputs.synthetic, inputs.model
    _check_provenance(inputs)

    outside = np.setdiff1d(manifest.indices, store.splits["trainval"])
    if outside.size:
        raise UserError(
            f"{inputs.manifest_path}: indices {outside[:5].tolist()} are not in the trainval split of "
            f"{inputs.store_path} under protocol {manifest.protocol!r}; re-run the subset stage"
        )
    if not np.array_equal(store.labels[manifest.indices], manifest.labels):
        raise UserError(f"{inputs.manifest_path}: column 'label' disagrees with /labels of {inputs.store_path}")

    d_ce = store.features_ce.shape[1]
    if synthetic.features_ce.shape[1] != d_ce:
        raise UserError(
            f"{inputs.synthetic_path}: /features/ce has {synthetic.features_ce.shape[1]} dimensions, "
            f"but {inputs.store_path} has {d_ce}"
        )
    if model.scaler_ce.data_min.shape[0] != d_ce:
        raise UserError(
            f"{inputs.model_path}: the CE scaler expects {model.scaler_ce.data_min.shape[0]} dimensions, "
            f"but {inputs.store_path} has {d_ce}"
        )
    bad = synthetic.labels[(synthetic.labels < 0) | (synthetic.labels >= store.num_classes)]
    if bad.size:
        raise UserError(f"{inputs.synthetic_path}: /labels outside [0, {store.num_classes}): {np.unique(bad)[:5].tolist()}")
    missing = np.setdiff1d(store.unseen_classes, synthetic.labels)
    if missing.size:
        names = [store.class_names[i] for i in missing[:5]]
        raise UserError(
            f"{inputs.synthetic_path}: no synthetic features for unseen class(es) {missing[:5].tolist()} ({', '.join(names)}) "
            f"of protocol {manifest.protocol!r}; re-run synthesize with the same subset manifest"
        )

    for space in spaces:
        check_space(inputs, space)


def check_space(inputs: EvaluationInputs, space: str) -> None:
    """Raise :class:`UserError` unless the inputs provide every block of ``space``."""
    blocks = SPACE_BLOCKS[space]
    if "r" in blocks:
        _check_sc_available(inputs, space)
    if "s" in blocks and not inputs.model.has_decoder:
        raise UserError(
            f"{inputs.model_path}: feature space {space} needs the DFG's semantic decoder, but this DFG was "
            f"trained without it; choose a space without S ({', '.join(s for s in SPACE_BLOCKS if 's' not in SPACE_BLOCKS[s])})"
        )


def _check_provenance(inputs: EvaluationInputs) -> None:
    manifest, model = inputs.manifest, inputs.model
    recorded = {
        "store_sha256": (getattr(model, "store_sha256", None), manifest.store_sha256),
        "protocol": (getattr(model, "protocol", None), manifest.protocol),
    }
    for key, (model_value, manifest_value) in recorded.items():
        if model_value is not None and model_value != manifest_value:
            raise UserError(
                f"{inputs.model_path} was trained with {key} {model_value!r}, but {inputs.manifest_path} has "
                f"{manifest_value!r}; evaluate with the subset manifest the DFG was trained on"
            )
    model_ratio = getattr(model, "ratio", None)
    if model_ratio is not None and not math.isclose(float(model_ratio), manifest.ratio):
        raise UserError(
            f"{inputs.model_path} was trained at subset ratio {model_ratio}, but {inputs.manifest_path} has "
            f"ratio {manifest.ratio}; evaluate with the subset manifest the DFG was trained on"
        )
    synthetic_dfg = inputs.synthetic.attrs.get("dfg_sha256")
    if inputs.model_sha256 is not None and synthetic_dfg is not None and synthetic_dfg != inputs.model_sha256:
        raise UserError(
            f"{inputs.synthetic_path} was generated by a DFG with SHA-256 {synthetic_dfg}, but {inputs.model_path} "
            f"has {inputs.model_sha256}; re-run synthesize with this DFG"
        )
    synthetic_sha = inputs.synthetic.attrs.get("store_sha256")
    if synthetic_sha is not None and synthetic_sha != manifest.store_sha256:
        raise UserError(
            f"{inputs.synthetic_path} was generated for feature store SHA-256 {synthetic_sha}, but "
            f"{inputs.manifest_path} records {manifest.store_sha256}; re-run synthesize"
        )


def _check_sc_available(inputs: EvaluationInputs, space: str) -> None:
    store, synthetic, model = inputs.store, inputs.synthetic, inputs.model
    if store.features_sc is None:
        raise UserError(f"{inputs.store_path}: feature space {space} needs /features/sc, which this store lacks; choose V or VS")
    if synthetic.features_sc is None:
        raise UserError(
            f"{inputs.synthetic_path}: feature space {space} needs /features/sc (generated r̃0), which this file lacks; "
            "choose V or VS"
        )
    if model.scaler_sc is None:
        raise UserError(f"{inputs.model_path}: feature space {space} needs the SC scaler, which this DFG lacks; choose V or VS")
    d_sc = store.features_sc.shape[1]
    for where, width in ((inputs.synthetic_path, synthetic.features_sc.shape[1]), (inputs.model_path, model.scaler_sc.data_min.shape[0])):
        if width != d_sc:
            raise UserError(f"{where}: SC features have {width} dimensions, but {inputs.store_path} /features/sc has {d_sc}")


def build_groups(inputs: EvaluationInputs) -> SampleGroups:
    """Preprocess the real samples with the DFG's scalers (never refitted) and select the synthetic unseen ones."""
    store, synthetic, model = inputs.store, inputs.synthetic, inputs.model
    unseen = store.unseen_classes

    def real(indices: np.ndarray) -> FeatureBlocks:
        v = model.scaler_ce.transform(store.features_ce[indices])
        r = None
        if store.features_sc is not None and model.scaler_sc is not None:
            r = model.scaler_sc.transform(store.features_sc[indices])
        return FeatureBlocks(store.labels[indices], v, r, model)

    # Synthetic samples of seen classes, if synthesis wrote any, are not part of either protocol.
    keep = np.isin(synthetic.labels, unseen)
    synthetic_sc = synthetic.features_sc[keep] if synthetic.features_sc is not None else None
    return SampleGroups(
        train_seen=real(inputs.manifest.indices),
        synthetic_unseen=FeatureBlocks(synthetic.labels[keep], synthetic.features_ce[keep], synthetic_sc, model),
        test_seen=real(store.splits["test_seen"]),
        test_unseen=real(store.splits["test_unseen"]),
        seen_classes=store.seen_classes,
        unseen_classes=unseen,
    )


def resolve_batch_size(config: ClassifierConfig, synthetic: SyntheticFeatures) -> int:
    """Return the classifier batch size: the configured one, else the synthetic samples per class.

    The per-class count comes from the file's ``per_class`` attribute, or, if it
    is absent, from the largest number of synthetic samples of one class.
    """
    if config.batch_size is not None:
        return config.batch_size
    per_class = synthetic.attrs.get("per_class")
    if per_class is not None and int(per_class) >= 1:
        return int(per_class)
    return int(np.bincount(synthetic.labels).max())


def evaluate_space(
    space: str,
    groups: SampleGroups,
    config: EvaluateConfig,
    batch_size: int,
    device: torch.device,
) -> SpaceResult:
    """Train and test the ZSL and GZSL classifiers on one feature space."""
    unseen, seen, gzsl_classes = groups.unseen_classes, groups.seen_classes, groups.gzsl_classes
    settings = {"config": config.classifier, "batch_size": batch_size, "seed": config.seed, "device": device, "record_epochs": True}

    # ZSL: synthetic unseen features only; class indices are positions in `unseen`.
    zsl_run = train_linear_classifier(
        groups.synthetic_unseen.space(space),
        np.searchsorted(unseen, groups.synthetic_unseen.labels),
        unseen.size,
        eval_sets={"test_unseen": groups.test_unseen.space(space)},
        **settings,
    )
    zsl_epochs = [unseen[p] for p in zsl_run.epoch_predictions["test_unseen"]]

    # GZSL: real seen plus synthetic unseen; class indices are positions in `gzsl_classes`.
    train_features = np.concatenate([groups.train_seen.space(space), groups.synthetic_unseen.space(space)])
    train_labels = np.concatenate([groups.train_seen.labels, groups.synthetic_unseen.labels])
    gzsl_run = train_linear_classifier(
        train_features,
        np.searchsorted(gzsl_classes, train_labels),
        gzsl_classes.size,
        eval_sets={"test_seen": groups.test_seen.space(space), "test_unseen": groups.test_unseen.space(space)},
        **settings,
    )
    seen_epochs = [gzsl_classes[p] for p in gzsl_run.epoch_predictions["test_seen"]]
    unseen_epochs = [gzsl_classes[p] for p in gzsl_run.epoch_predictions["test_unseen"]]

    curves = []
    for epoch, (zsl_pred, seen_pred, unseen_pred) in enumerate(zip(zsl_epochs, seen_epochs, unseen_epochs), start=1):
        u = PERCENT * per_class_top1(groups.test_unseen.labels, unseen_pred, unseen).mean
        s = PERCENT * per_class_top1(groups.test_seen.labels, seen_pred, seen).mean
        curves.append({
            "epoch": epoch,
            "zsl_top1": PERCENT * per_class_top1(groups.test_unseen.labels, zsl_pred, unseen).mean,
            "gzsl_u": u,
            "gzsl_s": s,
            "gzsl_h": harmonic_mean(u, s),
        })

    final_zsl, final_seen, final_unseen = zsl_epochs[-1], seen_epochs[-1], unseen_epochs[-1]
    return SpaceResult(
        space=space,
        zsl=per_class_top1(groups.test_unseen.labels, final_zsl, unseen),
        gzsl_unseen=per_class_top1(groups.test_unseen.labels, final_unseen, unseen),
        gzsl_seen=per_class_top1(groups.test_seen.labels, final_seen, seen),
        zsl_predictions=final_zsl,
        gzsl_predictions_seen=final_seen,
        gzsl_predictions_unseen=final_unseen,
        epochs=pd.DataFrame(curves, columns=["epoch", "zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h"]),
    )


def evaluate(inputs: EvaluationInputs, config: EvaluateConfig, device: torch.device) -> EvaluationResult:
    """Check the inputs, then evaluate every configured space in ZSL and GZSL."""
    check_config(config)
    check_inputs(inputs, (config.space,))
    spaces, skipped = [config.space], {}
    # The other listed spaces are extras: one the inputs cannot provide (an f-VAEGAN baseline
    # has no representations, for example) is skipped and recorded instead of failing the run.
    for space in config.evaluated_spaces[1:]:
        try:
            check_space(inputs, space)
            spaces.append(space)
        except UserError as error:
            log.warning("skipping feature space %s: %s", space, error)
            skipped[space] = str(error)
    if inputs.store.splits["test_seen"].size == 0:
        raise UserError(f"{inputs.store_path}: /splits/test_seen is empty under protocol {inputs.manifest.protocol!r}, so S is undefined")
    groups = build_groups(inputs)
    batch_size = resolve_batch_size(config.classifier, inputs.synthetic)
    counts = {
        "seen_classes": int(groups.seen_classes.size),
        "unseen_classes": int(groups.unseen_classes.size),
        "train_seen_real": int(groups.train_seen.labels.size),
        "train_unseen_synthetic": int(groups.synthetic_unseen.labels.size),
        "test_seen": int(groups.test_seen.labels.size),
        "test_unseen": int(groups.test_unseen.labels.size),
    }
    log.info("evaluating spaces %s with classifier batch size %d: %s", ", ".join(spaces), batch_size, counts)

    results = {}
    for space in spaces:
        results[space] = evaluate_space(space, groups, config, batch_size, device)
        result = results[space]
        log.info(
            "space %s: ZSL top-1 %.2f%%, GZSL U %.2f%% S %.2f%% H %.2f%%",
            space, result.zsl_top1, result.gzsl_u, result.gzsl_s, result.gzsl_h,
        )
    return EvaluationResult(
        space=config.space,
        spaces=results,
        counts=counts,
        batch_size=batch_size,
        test_seen_labels=groups.test_seen.labels,
        test_unseen_labels=groups.test_unseen.labels,
        skipped_spaces=skipped,
    )


def select_best_test_epoch(result: SpaceResult) -> dict[str, dict[str, float | int]]:
    """Return the best classifier epoch on the test set: by top-1 for ZSL and by H for GZSL.

    These figures are selected on the test set, which makes them optimistic;
    the first epoch wins ties.
    """
    epochs = result.epochs
    zsl_best = epochs.loc[epochs["zsl_top1"].idxmax()]
    gzsl_best = epochs.loc[epochs["gzsl_h"].idxmax()]
    return {
        "zsl": {"top1": float(zsl_best["zsl_top1"]), "epoch": int(zsl_best["epoch"])},
        "gzsl": {
            "u": float(gzsl_best["gzsl_u"]),
            "s": float(gzsl_best["gzsl_s"]),
            "h": float(gzsl_best["gzsl_h"]),
            "epoch": int(gzsl_best["epoch"]),
        },
    }


def build_metrics(
    result: EvaluationResult,
    class_names: list[str],
    *,
    dataset: str,
    method: str,
    ratio: float,
    protocol: str,
    report_test_selected: bool,
) -> dict[str, Any]:
    """Return the ``eval.json`` document: headline keys first, then per-space figures and provenance."""
    headline = result.headline
    metrics: dict[str, Any] = {
        "zsl": {"top1": headline.zsl_top1},
        "gzsl": {"u": headline.gzsl_u, "s": headline.gzsl_s, "h": headline.gzsl_h},
        "space": result.space,
        "dataset": dataset,
        "method": method,
        "ratio": ratio,
        "protocol": protocol,
        "spaces": {
            space: {
                "zsl": {"top1": item.zsl_top1},
                "gzsl": {"u": item.gzsl_u, "s": item.gzsl_s, "h": item.gzsl_h},
            }
            for space, item in result.spaces.items()
        },
        "counts": {**result.counts, "classifier_batch_size": result.batch_size},
        "skipped_spaces": result.skipped_spaces,
        "excluded_classes": {
            "zsl": [class_names[i] for i in headline.zsl.excluded],
            "gzsl_unseen": [class_names[i] for i in headline.gzsl_unseen.excluded],
            "gzsl_seen": [class_names[i] for i in headline.gzsl_seen.excluded],
        },
    }
    if report_test_selected:
        metrics["test_selected"] = select_best_test_epoch(headline)
    return metrics


def build_space_table(result: EvaluationResult, *, report_test_selected: bool) -> pd.DataFrame:
    """Return one row per feature space with its final-epoch ZSL and GZSL figures (percent)."""
    rows = []
    for space, item in result.spaces.items():
        row: dict[str, Any] = {
            "space": space,
            "zsl_top1": item.zsl_top1,
            "gzsl_u": item.gzsl_u,
            "gzsl_s": item.gzsl_s,
            "gzsl_h": item.gzsl_h,
        }
        if report_test_selected:
            selected = select_best_test_epoch(item)
            row.update({f"test_selected_zsl_{key}": value for key, value in selected["zsl"].items()})
            row.update({f"test_selected_gzsl_{key}": value for key, value in selected["gzsl"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def build_class_table(result: EvaluationResult, class_names: list[str]) -> pd.DataFrame:
    """Return one row per (space, task, class) with support, correct and accuracy (percent).

    ``task`` is ``zsl``, ``gzsl_unseen`` or ``gzsl_seen``. A class without test
    samples has an empty accuracy and ``included`` false.
    """
    rows = []
    for space, item in result.spaces.items():
        for task, accuracy in (("zsl", item.zsl), ("gzsl_unseen", item.gzsl_unseen), ("gzsl_seen", item.gzsl_seen)):
            for class_id, support, correct, value in zip(accuracy.classes, accuracy.support, accuracy.correct, accuracy.accuracy):
                rows.append({
                    "space": space,
                    "task": task,
                    "class_id": int(class_id),
                    "class_name": class_names[class_id],
                    "support": int(support),
                    "correct": int(correct),
                    "accuracy": PERCENT * value,
                    "included": bool(support > 0),
                })
    return pd.DataFrame(rows)


def build_confusion_table(result: EvaluationResult, class_names: list[str], task: str) -> pd.DataFrame:
    """Return the headline space's test predictions as ``actual,predicted`` class names.

    ``task`` ``zsl`` covers test_unseen; ``gzsl`` covers test_seen then test_unseen.
    """
    headline = result.headline
    if task == "zsl":
        actual, predicted = result.test_unseen_labels, headline.zsl_predictions
    elif task == "gzsl":
        actual = np.concatenate([result.test_seen_labels, result.test_unseen_labels])
        predicted = np.concatenate([headline.gzsl_predictions_seen, headline.gzsl_predictions_unseen])
    else:
        raise ValueError(f"invalid task {task!r}; expected 'zsl' or 'gzsl'")
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({"actual": names[actual], "predicted": names[predicted]})
