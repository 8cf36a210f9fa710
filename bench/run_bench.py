"""Run the benchmark suite: python bench/run_bench.py [NAMES…] [--runs N] [--json] (same as `nda bench`)."""
import sys

from nda.cli.app import main

if __name__ == "__main__":
    sys.argv = ["nda", "bench", *sys.argv[1:]]
    main()
