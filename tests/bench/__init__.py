"""Throughput, CPU, start-up, memory and queue benchmarks (issues 5 and 11). Run with ``make bench``; never part of
``make test``.

``python -m tests.bench.run --help`` lists the options. ``run.py`` drives the phases (``candidates.py``: the data path
candidates, whose programs are the ``cand_*.py`` scripts; ``link.py``: uploads on a throttled link), ``report.py``
judges the targets. Nothing here is collected by pytest (no ``test_*`` files).
"""
