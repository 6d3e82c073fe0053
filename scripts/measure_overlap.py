"""Wall time of a batch with the scale-up overlapped with the data preparation, against the sequential order.

A thin wrapper of :func:`benchmarks.overlap.overlap` (table 7 of BENCHMARKS.md, which ``make bench`` writes):
runs the measurement for the preparation times given (seconds; default 0, load / 2, load, 2 x load) and
prints that table.

    PYTHONPATH=. python scripts/measure_overlap.py [P ...]
"""

from __future__ import annotations

import logging
import sys

from benchmarks import overlap, report


def main(argv: list[str]) -> None:
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("airflow_esml").setLevel(logging.WARNING)
    load = overlap.LOAD_SECONDS
    preps = [float(x) for x in argv] or [0.0, load / 2, load, 2 * load]
    print(report.overlap_section(overlap.overlap(preps, runs=1)))


if __name__ == "__main__":
    main(sys.argv[1:])
