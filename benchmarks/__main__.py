"""Run benchmarks: ``python -m benchmarks [read|pipeline|synthetic|coreg|atmosphere|chain ...]`` (no name: all but
``chain``); ``python -m benchmarks chain [--scale S | --quick]`` is issue 13's suite (``make bench``);
``python -m benchmarks catalog [--scenes N ...]`` replays a job's catalogue calls without pixel work."""

import sys

from . import (
    bench_atmosphere,
    bench_catalog,
    bench_chain,
    bench_coreg,
    bench_pipeline,
    bench_read,
    bench_synthetic,
)

BENCHMARKS = {"read": bench_read.main, "pipeline": bench_pipeline.main, "synthetic": bench_synthetic.main,
              "coreg": bench_coreg.main, "atmosphere": bench_atmosphere.main}

if __name__ == "__main__":
    if sys.argv[1:2] == ["chain"]:
        bench_chain.main(sys.argv[2:])
    elif sys.argv[1:2] == ["catalog"]:
        bench_catalog.main(sys.argv[2:])
    else:
        for name in sys.argv[1:] or list(BENCHMARKS):
            BENCHMARKS[name]()
