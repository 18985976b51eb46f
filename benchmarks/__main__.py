"""Run benchmarks: ``python -m benchmarks [read|pipeline|synthetic|coreg|atmosphere ...]`` (or ``make bench`` for all)."""

import sys

from . import bench_atmosphere, bench_coreg, bench_pipeline, bench_read, bench_synthetic

BENCHMARKS = {"read": bench_read.main, "pipeline": bench_pipeline.main, "synthetic": bench_synthetic.main,
              "coreg": bench_coreg.main, "atmosphere": bench_atmosphere.main}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
