"""Fit the spectral-homogenization models of every supported sensor pair and score them.

    PYTHONPATH=$PWD python scripts/fit_spechomo.py [--aviris PATH] [--n-clusters 50] [--seed 0]

Builds the training library (``gmsdask.spectral.library``: the AVIRIS cube plus PROSAIL canopies, soils,
water, urban mixtures and the synthetic landscape's materials; needs the ``prosail`` package), convolves it
with each sensor's real spectral responses, fits ``LR`` and ``QR`` on the training split for every pair,
records the training RMSE of ``LI``, ``bandpass`` and ``none`` (their error layers), writes everything to
``gmsdask/spectral/data/spechomo_models.npz``, and prints per-band RMSE tables on the held-back split
(the tables of ``docs/spectral-homogenization.md``). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gmsdask.errors import ConfigError  # noqa: E402
from gmsdask.spectral.bands import surface_reflectance_bands  # noqa: E402
from gmsdask.spectral.homogenizer import MODEL_FILE, SpectralHomogenizer  # noqa: E402
from gmsdask.spectral.library import DEFAULT_COUNTS, LIBRARY_SEED, build_library  # noqa: E402
from gmsdask.spectral.training import fit_pair, pair_band_values, rmse_per_band, score_methods  # noqa: E402

SOURCES = ("SENTINEL_2A", "SENTINEL_2B", "LANDSAT_5", "LANDSAT_7", "LANDSAT_8", "LANDSAT_9")
TARGETS = ("SENTINEL_2A", "LANDSAT_8")
METHODS = ("none", "LI", "bandpass", "LR", "QR")
DEFAULT_AVIRIS = REPO.parent / "shared" / "data" / "hyperspectral" / "AV_mastercal_testdata.bsq"


def pairs() -> list[tuple[str, str]]:
    return [(s, t) for t in TARGETS for s in SOURCES if s != t]


def _unfitted_train_rmse(library, source: str, target: str) -> dict[str, np.ndarray]:
    x, y = pair_band_values(library, source, target)
    train = ~library.held_back
    out = {}
    for method in ("LI", "none", "bandpass"):
        try:
            homogenizer = SpectralHomogenizer(source, target, method)
        except ConfigError:  # bandpass has no coefficients for this pair
            continue
        out[method] = rmse_per_band(homogenizer.predict(x[train]), y[train]).astype(np.float32)
    return out


def fit_all(aviris: Path, n_clusters: int, seed: int, out: Path) -> None:
    library = build_library(aviris)
    arrays: dict[str, np.ndarray] = {}
    for source, target in pairs():
        key = f"{source}__{target}"
        models = fit_pair(library, source, target, n_clusters=n_clusters, seed=seed)
        arrays[f"{key}__centroids"] = models["LR"].centroids
        arrays[f"{key}__far_distance"] = np.float32(models["LR"].far_distance)
        arrays[f"{key}__baseline_index"] = models["LR"].baseline_index
        for method, model in models.items():
            arrays[f"{key}__{method}__coefficients"] = model.coefficients
            arrays[f"{key}__{method}__rmse"] = model.rmse
        for method, rmse in _unfitted_train_rmse(library, source, target).items():
            arrays[f"{key}__{method}__train_rmse"] = rmse
        print(f"fitted {source} -> {target}", file=sys.stderr)
    meta = {
        "pairs": pairs(), "n_clusters": n_clusters, "seed": seed, "library_seed": LIBRARY_SEED,
        "library_counts": {"aviris": int(np.sum(library.category == "aviris")), **DEFAULT_COUNTS},
        "held_back": "AVIRIS image lines 40-49; every fifth simulated spectrum of each category",
        "bands": {p: surface_reflectance_bands(p) for p in SOURCES},
        "fitted": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)
    report(library, out)


def report(library, model_file: Path) -> None:
    """Markdown tables of held-back RMSE per band (x 1e-4 reflectance) and method."""
    for source, target in pairs():
        methods = [m for m in METHODS if m != "bandpass" or not {"LANDSAT_5", "LANDSAT_7"} & {source, target}]
        scores = score_methods(library, source, target, methods, model_file=model_file)
        bands = surface_reflectance_bands(target)
        print(f"\n#### {source} -> {target}\n")
        print("| method | " + " | ".join(bands) + " |")
        print("|---" * (len(bands) + 1) + "|")
        for method, rmse in scores.items():
            cells = ["n/a" if not np.isfinite(v) else f"{v * 1e4:.1f}" for v in rmse]
            print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aviris", type=Path, default=DEFAULT_AVIRIS)
    parser.add_argument("--n-clusters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--report-only", action="store_true", help="score the existing model file only")
    args = parser.parse_args()
    if args.report_only:
        report(build_library(args.aviris), args.out)
    else:
        fit_all(args.aviris, args.n_clusters, args.seed, args.out)


if __name__ == "__main__":
    main()
