"""Run benchmarks: ``python -m benchmarks [read|pipeline|synthetic|coreg|atmosphere|chain ...]`` (no name: all but
``chain``); ``python -m benchmarks chain [--scale S | --quick]`` is issue 13's suite (``make bench``)."""

import sys

from . import bench_atmosphere, bench_chain, bench_coreg, bench_pipeline, bench_read, bench_synthetic

BENCHMARKS = {"read": bench_read.main, "pipeline": bench_pipeline.main, "synthetic": bench_synthetic.main,
              "coreg": bench_coreg.main, "atmosphere": bench_atmosphere.main}

if __name__ == "__main__":
    if sys.argv[1:2] == ["chain"]:
        bench_chain.main(sys.argv[2:])
    else:
        for name in sys.argv[1:] or list(BENCHMARKS):
            BENCHMARKS[name]()
