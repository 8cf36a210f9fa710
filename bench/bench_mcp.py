"""MCP latency over stdio: python bench/bench_mcp.py [--calls N] [--rounds R] [--json]

Starts `python -m nda mcp` as a subprocess, connects the official SDK's stdio client, warms up,
then times N `nda_run` calls of a tiny program (`(print (int 1))`, as an agent would send it:
no `syntax`, no input) per round, R rounds → median, p90 and min per call (ms, wall clock at
the client, so it includes JSON-RPC framing, the pipe, argument validation and the answer's
serialisation), and the CPU time per call of the server process and of the client (medians
over rounds; on a loaded machine the CPU times are the steadier figure). Also prints the
answer's size in characters (the JSON text content).

It uses whatever `nda` is importable (run it with PYTHONPATH=src from a checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

TINY = "(print (int 1))"


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's child processes (the server), from /proc;
    0.0 where /proc is unavailable. CPU time is far less sensitive than wall time to other
    load on the machine."""
    me, total, tick = os.getpid(), 0.0, os.sysconf("SC_CLK_TCK")
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _measure(calls: int, rounds: int, args: dict) -> dict:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "nda", "mcp"],
                                   env={**os.environ})
    per_call: list[float] = []
    async with Client(params) as c:
        first = await c.call_tool("nda_run", args)
        size = len(first.content[0].text)
        for _ in range(20):  # warm-up: imports, compile caches, first JIT
            await c.call_tool("nda_run", args)
        medians, cpu = [], []
        for _ in range(rounds):
            times = []
            s0, c0 = _children_cpu_s(), time.process_time()
            for _ in range(calls):
                t = time.perf_counter()
                await c.call_tool("nda_run", args)
                times.append((time.perf_counter() - t) * 1e3)
            cpu.append(((_children_cpu_s() - s0) * 1e3 / calls,
                        (time.process_time() - c0) * 1e3 / calls))
            medians.append(statistics.median(times))
            per_call += times
    per_call.sort()
    return {"calls": calls * rounds, "median_ms": round(statistics.median(medians), 3),
            "round_medians_ms": [round(m, 3) for m in medians],
            "p90_ms": round(per_call[int(0.9 * (len(per_call) - 1))], 3),
            "min_ms": round(per_call[0], 3), "answer_chars": size,
            "server_cpu_ms": round(statistics.median(x for x, _ in cpu), 3),
            "client_cpu_ms": round(statistics.median(y for _, y in cpu), 3),
            "answer": json.loads(first.content[0].text) if size < 2000 else "(long)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--args", default=None,
                    help='tool arguments as JSON (default {"source": "(print (int 1))"})')
    a = ap.parse_args()
    import anyio

    args = json.loads(a.args) if a.args else {"source": TINY}
    out = anyio.run(_measure, a.calls, a.rounds, args)
    if a.json:
        print(json.dumps(out))
    else:
        print(f"nda_run {args} over stdio: median {out['median_ms']} ms per call "
              f"(rounds {out['round_medians_ms']}), p90 {out['p90_ms']} ms, min {out['min_ms']} ms, "
              f"{out['calls']} calls; CPU per call: server {out['server_cpu_ms']} ms, client "
              f"{out['client_cpu_ms']} ms; answer {out['answer_chars']} characters")


if __name__ == "__main__":
    main()
