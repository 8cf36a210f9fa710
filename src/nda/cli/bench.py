"""`nda bench`: run the benchmark suite and print a table (or one JSON object).

In: benchmark names, --runs, --tier. Out: a rich table of medians and ratios against the
baselines measured in the same run (see `benchsuite`)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from nda.cli.app import Exit, console as make_console, emit_json, json_option, usage_fail

    @main.command()
    @click.argument("names", nargs=-1)
    @click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True, help="Runs per measurement (median reported).")
    @click.option("--tier", "tiers", multiple=True, help="Tier(s) to measure (default: all available).")
    @json_option
    def bench(names, runs, tiers, as_json):
        """Run the benchmark suite (block4, loop100k, calls10k)."""
        from rich.table import Table

        from nda.cli.benchsuite import BENCHMARKS, rows_to_json, run_suite
        from nda.sandbox.runner import resolve_tier

        try:
            # validate names, keep "auto" as a tier of its own (it is measured, not resolved)
            tiers = list(dict.fromkeys("auto" if str(t).lower() == "auto" else resolve_tier(t)
                                       for t in tiers)) or None
        except ValueError as e:
            usage_fail(str(e), as_json)
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            usage_fail(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})", as_json)
        console = make_console(stderr=True)
        if as_json:
            rows = run_suite(names, runs, tiers)
            emit_json({"ok": True, "runs": runs, "rows": rows_to_json(rows)})
            return
        with console.status("benchmarking…") as status:
            rows = run_suite(names, runs, tiers, progress=lambda n: status.update(f"benchmarking {n}…"))
        table = Table(title=f"nda bench (median of {runs} runs; ratio = baseline / median)")
        for col in ("benchmark", "tier", "median µs", "min µs", "ratio", "target", "met"):
            table.add_column(col, justify="right" if col not in ("benchmark", "tier", "target") else "left")
        for r in rows:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}× vs {r.baseline}"
            met = "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]")
            table.add_row(r.bench, r.tier, f"{r.median_us:,.1f}", f"{r.min_us:,.1f}", ratio, r.target or "", met)
        make_console().print(table)
        raise Exit(0)
