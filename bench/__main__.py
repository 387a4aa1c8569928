"""``python -m bench``: run the benchmark and print one JSON document."""

from bench.cli import main

main()
