"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``)."""

from . import bench_read

if __name__ == "__main__":
    bench_read.main()
