"""`nda bench`: run the benchmark suite and print a table (or one JSON object).

In: benchmark names, --runs, --tier, --plot FILE (`write`: --sizes, --kinds, --no-micro, --clock). Out: a rich table of medians and ratios against
the baselines measured in the same run (see `benchsuite`); with --plot also a bar chart of the
ratios (`benchplot`). `nda bench write` runs `bench_write` (the cold write path) instead."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from nda.cli.app import Exit, console as make_console, emit_json, json_option, usage_fail

    @main.command()
    @click.argument("names", nargs=-1)
    @click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True, help="Runs per measurement (median reported).")
    @click.option("--tier", "tiers", multiple=True, help="Tier(s) to measure (default: all available).")
    @click.option("--plot", "plot_path", default=None, metavar="FILE.svg",
                  help="Also draw the ratios to FILE (.svg or .png; needs matplotlib, the pictures extra).")
    @click.option("--sizes", default=None, help="`write` only: program sizes in nodes, comma-separated (default 100,1000,10000).")
    @click.option("--kinds", default=None, help="`write` only: program kinds, comma-separated (scalar, mixed; default both).")
    @click.option("--no-micro", is_flag=True, help="`write` only: skip the tiny-run and block4 measurements.")
    @click.option("--clock", type=click.Choice(["wall", "cpu"]), default=None,
                  help="`write` only: time stages on the wall clock (default) or this process's CPU clock.")
    @json_option
    def bench(names, runs, tiers, plot_path, sizes, kinds, no_micro, clock, as_json):
        """Run the benchmark suite (block4, loop100k, nested, calls10k, compile; `batch` —
        run_many on 4,000 fresh programs against CPython — only when named), or `nda bench
        write`: the cold write path (parse, gate, hash, compile, run, commit of fresh
        programs) against CPython's compile()/exec() of the same program."""
        from rich.table import Table

        if "write" in names:
            if len(names) > 1:
                usage_fail("`write` runs on its own (no other benchmark names with it)", as_json)
            if plot_path is not None or tiers:
                usage_fail("--plot and --tier do not apply to `nda bench write`", as_json)
            _bench_write(runs if runs != 20 else 5, sizes, kinds, no_micro, clock or "wall", as_json)
            return
        if sizes is not None or kinds is not None or no_micro or clock is not None:
            usage_fail("--sizes, --kinds, --no-micro and --clock apply to `nda bench write` only", as_json)

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
        if plot_path is not None:
            from nda.cli.app import diag_fail
            from nda.cli.benchplot import check_plot, plot_ratios
            from nda.core.errors import NdaError

            try:
                check_plot(plot_path)
            except ValueError as e:
                usage_fail(str(e), as_json)
            except NdaError as e:
                diag_fail(e, as_json)

        def plot(rows) -> None:
            if plot_path is not None:
                try:
                    plot_ratios(rows_to_json(rows), plot_path,
                                title=f"nda bench (median of {runs} runs; ratio = baseline / median)")
                except OSError as e:
                    usage_fail(f"{plot_path}: cannot write: {e.strerror or e}", as_json)

        console = make_console(stderr=True)
        if as_json:
            rows = run_suite(names, runs, tiers)
            plot(rows)
            emit_json({"ok": True, "runs": runs, "rows": rows_to_json(rows), "plot": plot_path})
            return
        with console.status("benchmarking…") as status:
            rows = run_suite(names, runs, tiers, progress=lambda n: status.update(f"benchmarking {n}…"))
        plot(rows)
        table = Table(title=f"nda bench (median of {runs} runs; ratio = baseline / median)")
        for col in ("benchmark", "tier", "median µs", "min µs", "ratio", "target", "met"):
            table.add_column(col, justify="right" if col not in ("benchmark", "tier", "target") else "left")
        for r in rows:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}× vs {r.baseline}"
            met = "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]")
            tier = r.tier + (f" · {r.extra['programs_per_s']:,.0f} programs/s" if "programs_per_s" in r.extra else "")
            table.add_row(r.bench, tier, f"{r.median_us:,.1f}", f"{r.min_us:,.1f}", ratio, r.target or "", met)
        make_console().print(table)
        raise Exit(0)

    def _bench_write(runs, sizes, kinds, no_micro, clock, as_json):
        from nda.cli.bench_write import KINDS, SIZES, render, run_write_bench

        try:
            sizes = tuple(int(x) for x in sizes.split(",")) if sizes else SIZES
            if any(s < 20 or s > 200_000 for s in sizes):
                raise ValueError("sizes must be between 20 and 200000 nodes")
        except ValueError as e:
            usage_fail(f"bad --sizes: {e}", as_json)
        kinds = tuple(k.strip() for k in kinds.split(",")) if kinds else KINDS
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            usage_fail(f"unknown kind(s): {', '.join(bad)} (known: {', '.join(KINDS)})", as_json)
        if as_json:
            emit_json({"ok": True, **run_write_bench(sizes, kinds, runs, not no_micro, clock=clock)})
            return
        with make_console(stderr=True).status("benchmarking the write path…") as status:
            result = run_write_bench(sizes, kinds, runs, not no_micro, clock=clock,
                                     progress=lambda n: status.update(f"benchmarking {n}…"))
        render(result, make_console())
        raise Exit(0)
