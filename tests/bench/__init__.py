"""Throughput, CPU, memory and queue benchmarks (issue 5). Run with ``make bench``; never part of ``make test``.

``python -m tests.bench.run --help`` lists the options. Nothing here is collected by pytest (no ``test_*`` files).
"""
