"""`nda batch FILE.jsonl|DIR`: evaluate many programs, one result line per job.

In: a JSONL file of jobs or a directory of program files (see `nda.batch.jobs`), the backend
and its workers, limits, tier, a store, -o, --resume, --commit.
Out: one JSON line per job (id, hash, every result field) to -o FILE (or stdout); on a
terminal a progress bar with programs/s (stderr); at the end a summary table (ok / failed by
error code / panicked, time, throughput) — or, with --json, exactly one JSON object (the
summary; with no -o it also holds the result lines under "results"). Exit 0 when every
program succeeded (and every commit was written), 1 when any failed, 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
import time

import click


def register(main: click.Group) -> None:
    from nda.cli.app import (EXIT_FAIL, EXIT_OK, Exit, emit_json, json_option, limit_options,
                             limits_from, parse_input, store_option, usage_fail)

    @main.command("batch")
    @click.argument("source")
    @click.option("-o", "--output", default=None, help="Write result lines to this file (default stdout).")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Worker processes / Ray actors (default: every core; Ray: every CPU).")
    @click.option("--backend", type=click.Choice(["process", "ray", "serial"]), default="process",
                  show_default=True, help="Where programs run.")
    @click.option("--ray-address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else a local Ray).")
    @click.option("--tier", default="auto", show_default=True, help="auto | interp | closure | native")
    @click.option("--no-gate", "no_gate", is_flag=True, help="Skip static validation (run what the gate rejects).")
    @click.option("--input", "input_spec", default=None,
                  help="Default conditioning vector for jobs without one: 1,2,-1 | @file.json | @file.npy")
    @click.option("--dim", type=int, default=None, help="Default conditioning vector: N ones.")
    @click.option("--resume", is_flag=True, help="Skip jobs whose id is already in the -o file; append.")
    @click.option("--commit", "do_commit", is_flag=True,
                  help="Store every program that passes the gate and runs (batched transactions).")
    @click.option("-m", "--message", default="nda batch", show_default=True, help="Commit message (--commit).")
    @click.option("--unordered", is_flag=True, help="Write results as they complete, not in input order.")
    @click.option("--chunksize", type=click.IntRange(min=1), default=None, help="Programs per chunk sent to a worker.")
    @click.option("--progress/--no-progress", "progress", default=None,
                  help="Progress bar on stderr (default: when stderr is a terminal).")
    @store_option
    @limit_options
    @json_option
    def batch(source, output, workers, backend, ray_address, tier, no_gate, input_spec, dim, resume,
              do_commit, message, unordered, chunksize, progress, store_path, as_json, **lim):
        """Run every program of a JSONL job file or a directory (see docs/batch.md)."""
        from pathlib import Path

        from nda.batch import jobs as J
        from nda.batch.runner import run_many
        from nda.core.errors import NdaError
        from nda.sandbox.runner import resolve_tier

        try:
            resolve_tier(tier)
        except ValueError as e:
            usage_fail(str(e), as_json)
        if resume and not output:
            usage_fail("--resume needs -o FILE (the results to resume)", as_json)
        if do_commit and no_gate:
            usage_fail("--commit stores only programs that pass the gate: drop --no-gate", as_json)
        if not Path(source).exists():
            usage_fail(f"{source}: no such file or directory", as_json)
        limits = limits_from(lim)
        default_input = None
        if input_spec is not None or dim is not None:
            default_input = parse_input(input_spec, dim, as_json, limits.max_input_len)

        store, writer_store = _stores(store_path, do_commit, as_json, usage_fail)
        skip = J.done_ids(output) if resume else set()
        total = J.count_jobs(source)
        summary = J.Summary()

        def unskipped():
            for j in J.read_jobs(source):
                if skip and J.job_key(j.id) in skip:
                    summary.skipped += 1
                else:
                    yield j

        jobs = unskipped()
        pending_jobs = max(0, total - len(skip))
        programs, inputs, ids = _columns(jobs)
        out_f = None
        results_json = [] if as_json and not output else None
        committer = J.Committer(writer_store, message) if do_commit else None
        try:
            if output:
                out_f = open(output, "a" if resume else "w", encoding="utf-8")
            it = run_many(programs, inputs, limits=limits, tier=tier, store=store, workers=workers,
                          backend=backend, ordered=not unordered, gate=not no_gate, ids=ids,
                          chunksize=chunksize, ray_address=ray_address, keep_program=do_commit,
                          default_input=default_input)
            show = sys.stderr.isatty() if progress is None else progress
            emit = _emitter(out_f, results_json)
            t0 = time.perf_counter()
            _drive(it, summary, committer, emit, show, pending_jobs)
            summary.elapsed_s = time.perf_counter() - t0
        except (NdaError, ValueError, RuntimeError, ImportError) as e:
            usage_fail(getattr(e, "message", None) or str(e), as_json)
        finally:
            if out_f is not None:
                out_f.close()
            if writer_store is not None:
                writer_store.close()
        d = summary.to_dict()
        if backend == "serial":
            workers = 1
        elif workers is None and backend == "process":
            from nda.batch.worker import default_workers

            workers = default_workers()
        d.update(backend=backend, workers=workers, output=output)  # Ray's default: None (its CPUs)
        if as_json:
            if results_json is not None:
                d["results"] = results_json
            emit_json(d)
        else:
            _print_summary(summary, backend, to_stderr=not output)
        raise Exit(EXIT_OK if d["ok"] else EXIT_FAIL)


def _stores(store_path, do_commit: bool, as_json: bool, usage_fail):
    """→ (store path for the workers or None, writable SiteMap for --commit or None)."""
    from pathlib import Path

    from nda.core.errors import NdaError

    path = Path(store_path or ".nda/sitemap.db")
    if do_commit:
        from nda.store.sitemap import SiteMap

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return str(path), SiteMap.open(str(path))
        except NdaError as e:
            usage_fail(e.message, as_json)
    if store_path is not None and not path.exists():
        usage_fail(f"{store_path}: no such store", as_json)
    return (str(path) if path.exists() else None), None


def _columns(jobs):
    """Three lazy, aligned streams (programs, inputs, ids) over one pass of `jobs`."""
    from collections import deque

    q_in: deque = deque()
    q_id: deque = deque()

    def programs():
        for j in jobs:
            q_in.append(j.input)
            q_id.append(j.id)
            yield j.program

    def pop(q):
        while True:
            yield q.popleft()

    return programs(), pop(q_in), pop(q_id)


def _emitter(out_f, results_json):
    from nda.batch.jobs import result_line

    def emit(r, stored=None, commit_error=None):
        line = result_line(r, stored, commit_error)
        if results_json is not None:
            results_json.append(line)
            return
        text = json.dumps(line, ensure_ascii=False)
        if out_f is not None:
            out_f.write(text + "\n")
        else:
            click.echo(text)

    return emit


COMMIT_BATCH = 256


def _drive(it, summary, committer, emit, show: bool, total: int) -> None:
    """Consume results: count, commit in batches (then write their lines), emit."""
    from nda.core.errors import NdaError

    held: list = []

    def flush_commits():
        roots, error = {}, None
        try:
            roots = committer.flush()
        except NdaError as e:
            error = e.message
        for r in held:
            ok = r.is_success()
            if ok and error is not None:
                summary.commit_failed += 1
            emit(r, roots.get(r.index), error if ok else None)
        summary.committed = committer.committed
        held.clear()

    progress = _progress(show, total)
    with progress as bar:
        task = bar.add_task("programs", total=total or None) if show else None
        for r in it:
            summary.add(r)
            if committer is None:
                emit(r)
            else:
                held.append(r)
                if r.is_success():
                    committer.add(r)
                if len(held) >= COMMIT_BATCH:
                    flush_commits()
            if task is not None:
                bar.advance(task)
        if committer is not None:
            flush_commits()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(show: bool, total: int):
    if not show:
        return _NoProgress()
    from nda.cli.app import console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} programs/s" if speed else "… programs/s")

    return Progress(TextColumn("[bold]nda batch"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console(stderr=True),
                    transient=False, redirect_stdout=False, redirect_stderr=False)


def _print_summary(summary, backend: str, to_stderr: bool) -> None:
    from rich.table import Table

    from nda.cli.app import console

    t = Table(title=f"nda batch ({backend})", show_header=True)
    t.add_column("result")
    t.add_column("programs", justify="right")
    t.add_row("[green]ok[/green]", f"{summary.succeeded:,}")
    for code, n in sorted(summary.failed.items()):
        t.add_row(f"[red]{code}[/red]", f"{n:,}")
    if summary.panicked:
        t.add_row("  of which panicked", f"{summary.panicked:,}")
    if summary.skipped:
        t.add_row("skipped (--resume)", f"{summary.skipped:,}")
    if summary.committed or summary.commit_failed:
        t.add_row("committed", f"{summary.committed:,}")
    if summary.commit_failed:
        t.add_row("[red]commit failed[/red]", f"{summary.commit_failed:,}")
    t.add_row("total", f"{summary.total:,}")
    t.add_row("time", f"{summary.elapsed_s:.2f} s")
    t.add_row("throughput", f"{summary.rate:,.0f} programs/s")
    console(stderr=to_stderr, highlight=False).print(t)
