"""Time DRG and DFG training at the AWA2 benchmark sizes on synthetic data.

The networks and trainers are the library's own (:class:`zerodiff.drg.DRGTrainer`
and :class:`zerodiff.dfg.DFGTrainer` with their default options). They are sized
as for AWA2: 2048-d CE features and SC representations, 85-d class semantics,
40 seen classes and 23,527 training samples. Latent and time-embedding sizes are
85, the hidden width 4096, the batch 64, with 5 critic steps per generator step. The data are
synthetic and generated directly in the preprocessed space ([0, 1] features,
L2-normalised semantics), so their values, not their sizes, differ from AWA2.

For each generator the script runs a few warm-up generator iterations (5 critic
steps and 1 generator step each, through
:func:`zerodiff.training.generator_iteration`, the routine the training loop
calls), then times ``--iterations`` more one by one and prints:

* seconds per generator iteration (median, with min and max);
* critic samples per second (critic_iter x batch / seconds) and training
  samples per second (batch / seconds, the rate at which an epoch advances);
* model FLOPs per generator iteration, counted from the layer shapes, and the
  achieved FLOP/s;
* the best measured torch.matmul throughput of the machine and the achieved
  fraction of it;
* peak memory and the speed-up over the released code's figures.

Run from the repository root: ``python -m bench.bench_generators --help``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from zerodiff.dfg import DFGConfig, DFGTrainer
from zerodiff.drg import DRGConfig, DRGTrainer
from zerodiff.nets import ConditionalMLP
from zerodiff.preprocess import FeatureScaler
from zerodiff.store import FeatureStore
from zerodiff.subset import SubsetManifest
from zerodiff.training import AdversarialTrainer, TrainingData, generator_iteration

GENERATORS = ("drg", "dfg")

# Seconds per generator iteration reported for the authors' released code at these
# sizes on a 2-core CPU. This script does not run the release.
RELEASED_SECONDS = {"drg": 2.53, "dfg": 4.87}

# (m, k, n): an [m, k] @ [k, n] float32 product. The first is the shape of a
# batch-64 layer of width 4096, the second a large square product that reaches
# the machine's best sustained throughput.
MATMUL_SHAPES = ((64, 4096, 4096), (4096, 4096, 4096))
MATMUL_MIN_SECONDS = 0.2  # each throughput sample runs at least this long

FLOP_RULE = (
    "model FLOPs: a linear layer (k -> n) applied to m rows costs 2*m*k*n forward; a backward pass costs "
    "2x the forward of the layers it trains (weight and input gradients) and 1x for frozen layers it only "
    "passes through (input gradients); the gradient penalty's first-order gradient costs 1x the forward of "
    "the layers between the critic's output and its interpolated inputs, on the interpolated rows only, and "
    "its double backward 2x that gradient; biases, activations, losses, sampling and optimiser updates are "
    "not counted."
)


@dataclass(frozen=True)
class BenchSizes:
    """Data and network sizes of one benchmark run; the defaults are the AWA2 ones."""

    features_ce: int = 2048
    features_sc: int = 2048
    attributes: int = 85
    seen_classes: int = 40
    unseen_classes: int = 10
    samples: int = 23527
    hidden: int = 4096
    latent_size: int = 85
    time_embedding: int = 85
    batch_size: int = 64
    critic_iter: int = 5


@dataclass(frozen=True)
class FlopTerm:
    """One line of the FLOP count: ``multiplier`` x the forward of ``network`` on ``rows`` rows."""

    step: str
    network: str
    rows: int
    forward_per_row: int
    multiplier: int
    passes: str

    @property
    def flops(self) -> int:
        return self.rows * self.forward_per_row * self.multiplier


@dataclass
class BenchResult:
    """Timings and derived figures of one generator."""

    kind: str
    seconds: list[float]
    flops_per_iteration: int
    batch_size: int
    critic_iter: int
    peak_memory_bytes: int

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def critic_samples_per_second(self) -> float:
        return self.critic_iter * self.batch_size / self.median_seconds

    @property
    def training_samples_per_second(self) -> float:
        return self.batch_size / self.median_seconds

    @property
    def achieved_flops(self) -> float:
        return self.flops_per_iteration / self.median_seconds


def synthetic_training_data(sizes: BenchSizes, device: torch.device, seed: int = 0) -> TrainingData:
    """Build AWA2-sized training data in the preprocessed space, resident on ``device``.

    Each seen class has its own mean feature vector in [0.2, 0.8]; samples add
    Gaussian noise (standard deviation 0.1) and are clipped to [0, 1]. The
    scalers are the identity because the features are generated already
    scaled. There are no held-out samples, so the per-epoch critic gaps are
    empty; the benchmark does not time them.
    """
    generator = torch.Generator().manual_seed(seed)
    num_classes = sizes.seen_classes + sizes.unseen_classes
    labels = torch.arange(sizes.samples) % sizes.seen_classes

    def features(dim: int) -> torch.Tensor:
        means = 0.2 + 0.6 * torch.rand(sizes.seen_classes, dim, generator=generator)
        noise = 0.1 * torch.randn(sizes.samples, dim, generator=generator)
        return (means[labels] + noise).clamp_(0.0, 1.0)

    features_ce = features(sizes.features_ce)
    features_sc = features(sizes.features_sc)
    attributes = torch.rand(num_classes, sizes.attributes, generator=generator)
    attributes = attributes / attributes.norm(dim=1, keepdim=True)

    labels_np = labels.numpy().astype(np.int64)
    indices = np.arange(sizes.samples, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    store = FeatureStore(
        dataset="synthetic-awa2-sized",
        features_ce=features_ce.numpy(),
        features_sc=features_sc.numpy(),
        labels=labels_np,
        class_names=[f"class_{index}" for index in range(num_classes)],
        attributes=attributes.numpy(),
        splits={"trainval": indices, "test_seen": empty, "test_unseen": empty},
    )
    manifest = SubsetManifest(indices, labels_np, 1.0, seed, "synthetic", store_sha256="", protocol="standard")

    def identity_scaler(dim: int) -> FeatureScaler:
        return FeatureScaler(np.zeros(dim), np.ones(dim), 1.0)

    return TrainingData(
        features_ce=features_ce.to(device),
        features_sc=features_sc.to(device),
        labels=labels.to(device),
        attributes=attributes.to(device),
        held_out_ce=torch.zeros(0, sizes.features_ce, device=device),
        held_out_sc=torch.zeros(0, sizes.features_sc, device=device),
        held_out_labels=torch.zeros(0, dtype=torch.int64, device=device),
        scaler_ce=identity_scaler(sizes.features_ce),
        scaler_sc=identity_scaler(sizes.features_sc),
        store=store,
        manifest=manifest,
    )


def build_trainer(kind: str, sizes: BenchSizes, data: TrainingData, device: torch.device) -> AdversarialTrainer:
    """Build the library's DRG or DFG trainer with default options at ``sizes``.

    The DFG runs with its default ``representation_input: real``, so it needs
    no trained DRG.
    """
    shared = {
        "hidden": sizes.hidden,
        "latent_size": sizes.latent_size,
        "time_embedding": sizes.time_embedding,
        "batch_size": sizes.batch_size,
        "critic_iter": sizes.critic_iter,
        "device": device.type,
    }
    if kind == "drg":
        return DRGTrainer(DRGConfig(**shared), data, device)
    if kind == "dfg":
        return DFGTrainer(DFGConfig(**shared), data, None, device)
    raise ValueError(f"invalid generator {kind!r}; expected one of {', '.join(GENERATORS)}")


def forward_flops_per_row(module: nn.Module | None) -> int:
    """Return 2*k*n summed over every linear layer of ``module`` (each is applied once per row)."""
    if module is None:
        return 0
    return sum(2 * layer.in_features * layer.out_features for layer in module.modules() if isinstance(layer, nn.Linear))


def penalty_flops_per_row(critic: ConditionalMLP, interpolated: Sequence[str]) -> int:
    """Return the forward FLOPs per row of the layers between a critic's output and ``interpolated``.

    The gradient with respect to raw inputs passes through the output and
    hidden layers; an interpolated representation ``r`` also passes through
    its embedding.
    """
    flops = forward_flops_per_row(critic.hidden) + forward_flops_per_row(critic.output)
    if "r" in interpolated:
        flops += forward_flops_per_row(critic.representation_embedding)
    return flops


def count_flops(trainer: AdversarialTrainer) -> list[FlopTerm]:
    """Count the model FLOPs of one critic step and one generator step under :data:`FLOP_RULE`."""
    rows = trainer.config.batch_size
    networks = trainer.networks
    if isinstance(trainer, DRGTrainer):
        critics = {"critic_adv": (networks.critic_adv, ["x"]), "critic_diff": (networks.critic_diff, ["x_t"])}
        generator_rows = rows
        trained_in_generator_step: dict[str, nn.Module] = {}
        frozen_in_generator_step = {name: critic for name, (critic, _) in critics.items()}
        trained_in_critic_step: dict[str, nn.Module] = {}
    elif isinstance(trainer, DFGTrainer):
        if trainer.config.representation_input != "real":
            raise ValueError("the FLOP count covers representation_input 'real' only, which needs no DRG pass")
        critics = {
            f"critic_{name}": (critic, ["x_t"] if name == "diff" else ["x"]) for name, critic in networks.critics().items()
        }
        # One G pass covers the VAE reconstruction rows and the adversarial rows.
        generator_rows = 2 * rows
        trained_in_generator_step = {"encoder": networks.encoder}
        frozen_in_generator_step = {name: critic for name, (critic, _) in critics.items()}
        trained_in_critic_step = {}
        if networks.decoder is not None:
            frozen_in_generator_step["decoder"] = networks.decoder
            trained_in_critic_step["decoder"] = networks.decoder
    else:
        raise TypeError(f"no FLOP count for {type(trainer).__name__}")

    terms = [FlopTerm("critic", "generator", rows, forward_flops_per_row(networks.generator), 1, "forward, no grad")]
    for name, (critic, interpolated) in critics.items():
        terms.append(FlopTerm("critic", name, 3 * rows, forward_flops_per_row(critic), 3, "forward + backward"))
        terms.append(
            FlopTerm("critic", name, rows, penalty_flops_per_row(critic, interpolated), 3, "penalty gradient + double backward")
        )
    for name, module in trained_in_critic_step.items():
        terms.append(FlopTerm("critic", name, rows, forward_flops_per_row(module), 3, "forward + backward"))

    terms.append(FlopTerm("generator", "generator", generator_rows, forward_flops_per_row(networks.generator), 3, "forward + backward"))
    for name, module in trained_in_generator_step.items():
        terms.append(FlopTerm("generator", name, rows, forward_flops_per_row(module), 3, "forward + backward"))
    for name, module in frozen_in_generator_step.items():
        terms.append(FlopTerm("generator", name, rows, forward_flops_per_row(module), 2, "forward + input gradients (frozen)"))
    return terms


def flops_per_iteration(terms: Sequence[FlopTerm], critic_iter: int) -> int:
    """Return the FLOPs of ``critic_iter`` critic steps and one generator step."""
    critic = sum(term.flops for term in terms if term.step == "critic")
    generator = sum(term.flops for term in terms if term.step == "generator")
    return critic_iter * critic + generator


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul(shape: tuple[int, int, int], device: torch.device, repeats: int) -> float:
    """Return the best FLOP/s of ``repeats`` timed samples of an [m, k] @ [k, n] float32 torch.matmul."""
    m, k, n = shape
    generator = torch.Generator(device=device).manual_seed(0)
    left = torch.randn(m, k, generator=generator, device=device)
    right = torch.randn(k, n, generator=generator, device=device)
    out = torch.empty(m, n, device=device)
    torch.matmul(left, right, out=out)  # warm-up: thread pool, kernel selection
    synchronize(device)

    start = time.perf_counter()
    torch.matmul(left, right, out=out)
    synchronize(device)
    calls = max(1, math.ceil(MATMUL_MIN_SECONDS / max(time.perf_counter() - start, 1e-9)))

    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            torch.matmul(left, right, out=out)
        synchronize(device)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * m * k * n * calls / elapsed)
    return best


def time_iterations(trainer: AdversarialTrainer, warmup: int, iterations: int, device: torch.device) -> list[float]:
    """Run ``warmup`` generator iterations, then return the seconds of each of ``iterations`` more."""
    critic_iter = trainer.config.critic_iter
    for index in range(warmup):
        generator_iteration(trainer, critic_iter, 1, index + 1)
    synchronize(device)
    seconds = []
    for index in range(iterations):
        start = time.perf_counter()
        generator_iteration(trainer, critic_iter, 1, warmup + index + 1)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def peak_memory_bytes(device: torch.device) -> int:
    """Return peak device memory on CUDA, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def bench_generator(kind: str, sizes: BenchSizes, data: TrainingData, device: torch.device, warmup: int, iterations: int) -> tuple[BenchResult, list[FlopTerm]]:
    """Build one generator's trainer, time it and return the result with its FLOP breakdown."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = build_trainer(kind, sizes, data, device)
    terms = count_flops(trainer)
    seconds = time_iterations(trainer, warmup, iterations, device)
    result = BenchResult(
        kind=kind,
        seconds=seconds,
        flops_per_iteration=flops_per_iteration(terms, sizes.critic_iter),
        batch_size=sizes.batch_size,
        critic_iter=sizes.critic_iter,
        peak_memory_bytes=peak_memory_bytes(device),
    )
    return result, terms


def format_flops(value: float) -> str:
    return f"{value / 1e9:.1f} GFLOP"


def print_report(result: BenchResult, terms: Sequence[FlopTerm], matmul: dict[tuple[int, int, int], float], device: torch.device) -> None:
    """Print one generator's figures."""
    kind = result.kind.upper()
    print(f"\n== {kind} ({len(result.seconds)} timed generator iterations)")
    print("FLOP count per step:")
    for term in terms:
        print(f"  {term.step:9s} {term.network:12s} rows {term.rows:4d}  x{term.multiplier} {term.passes:38s} {format_flops(term.flops):>12s}")
    print(f"seconds per generator iteration: median {result.median_seconds:.3f}, min {min(result.seconds):.3f}, max {max(result.seconds):.3f}")
    print(f"critic samples per second:   {result.critic_samples_per_second:.1f}")
    print(f"training samples per second: {result.training_samples_per_second:.1f}")
    print(f"model FLOPs per generator iteration: {format_flops(result.flops_per_iteration)}")
    best = max(matmul.values())
    print(f"achieved: {result.achieved_flops / 1e9:.1f} GFLOP/s, {result.achieved_flops / best:.1%} of the best measured matmul throughput")
    for (m, k, n), flops in matmul.items():
        print(f"  {result.achieved_flops / flops:.1%} of the [{m}x{k}] @ [{k}x{n}] throughput")
    memory_kind = "peak CUDA memory allocated" if device.type == "cuda" else "peak resident set size of the process so far"
    print(f"{memory_kind}: {result.peak_memory_bytes / 2**20:.0f} MiB")
    released = RELEASED_SECONDS[result.kind]
    print(
        f"released code: {released:.2f} s per generator iteration (reported, 2-core CPU); "
        f"speed-up of this run over it: {released / result.median_seconds:.2f}x (target: at least 2x)"
    )
    floor = result.flops_per_iteration / best
    print(f"matmul-bound floor: {floor:.2f} s per generator iteration if every model FLOP ran at the best matmul throughput")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time DRG and DFG training steps at the AWA2 benchmark sizes on synthetic data.")
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, default=list(GENERATORS), help="Generators to time.")
    parser.add_argument("--iterations", type=int, default=10, help="Timed generator iterations per generator (default 10).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed generator iterations before timing (default 2).")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="Device to run on (default cpu).")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice).")
    parser.add_argument("--matmul-repeats", type=int, default=5, help="Timed samples per matmul shape; the best counts (default 5).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic data (default 0).")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.matmul_repeats < 1:
        parser.error("--iterations and --matmul-repeats must be at least 1 and --warmup at least 0")
    if args.threads is not None and args.threads < 1:
        parser.error(f"invalid --threads {args.threads}; expected a positive integer")
    return args


def resolve_bench_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but no CUDA device is available; use --device cpu")
    return torch.device(choice)


def main(
    argv: Sequence[str] | None = None,
    sizes: BenchSizes = BenchSizes(),
    matmul_shapes: Sequence[tuple[int, int, int]] = MATMUL_SHAPES,
) -> dict[str, BenchResult]:
    """Run the benchmark, print its report and return the results by generator.

    ``sizes`` and ``matmul_shapes`` exist so that tests can run the whole
    script at toy sizes; the command line always uses the defaults.
    """
    args = parse_args(argv)
    device = resolve_bench_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, device {device}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    else:
        load = ", ".join(f"{value:.2f}" for value in _load_average())
        print(f"CPU: {platform.processor() or 'unknown'}, {torch.get_num_threads()} torch threads, load average {load}")
    print(f"sizes: {sizes}")
    print(FLOP_RULE)

    print("\nmatmul throughput (float32, best of the timed samples):")
    matmul = {shape: measure_matmul(shape, device, args.matmul_repeats) for shape in matmul_shapes}
    for (m, k, n), flops in matmul.items():
        print(f"  [{m}x{k}] @ [{k}x{n}]: {flops / 1e9:.1f} GFLOP/s")
    matmul_best = max(matmul.values())
    print(f"  best: {matmul_best / 1e9:.1f} GFLOP/s (the reference for the achieved fractions)")

    data = synthetic_training_data(sizes, device, args.seed)
    resident = sum(tensor.numel() * tensor.element_size() for tensor in (data.features_ce, data.features_sc))
    print(f"training data resident on {device}: {resident / 2**20:.0f} MiB of features")

    results = {}
    for kind in args.generators:
        result, terms = bench_generator(kind, sizes, data, device, args.warmup, args.iterations)
        print_report(result, terms, matmul, device)
        results[kind] = result
    return results


def _load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (math.nan, math.nan, math.nan)


if __name__ == "__main__":
    main()
