"""Benchmarks: speed as ratios against baselines run in the same process (never as timed tests).

Environment, set before GDAL and numpy load:

- GDAL's block cache (default 5 % of RAM) would keep a whole decoded test band after its first read and make
  later runs memory copies; it is capped so that every run decodes, as it must for data larger than the cache.
- BLAS libraries run their own thread pools; ``distributed`` pins them to one thread in its worker processes
  (its nanny's pre-spawn environment), and the in-process threaded runs here do the same, so that two Dask
  threads do not oversubscribe two cores with four BLAS threads.
"""

import os

os.environ.setdefault("GDAL_CACHEMAX", "64")
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
