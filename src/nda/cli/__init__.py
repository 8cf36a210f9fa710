"""CLI: the `nda` command (click + rich) — arguments in, exit status and text or JSON out.

`app` defines the command group and the run/fmt/hash verbs; `check`, `store`, `tokens`, `graph`
and `bench` add their verbs; `benchsuite` holds the benchmarks `nda bench` runs and `benchplot`
draws their ratios.
"""
