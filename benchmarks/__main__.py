"""Run every benchmark: ``python -m benchmarks [read|pipeline]`` (or ``make bench``)."""

import sys

from . import bench_pipeline, bench_read

BENCHMARKS = {"read": bench_read.main, "pipeline": bench_pipeline.main}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHMARKS):
        BENCHMARKS[name]()
