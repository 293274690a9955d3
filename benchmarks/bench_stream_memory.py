"""Memory of a two-layer element-wise stack learning a long stream online.

One ``RTRLRegressor(cell="egru", n_hidden=(256, 256), stateful=True,
update="step")`` learns a stream of ``--steps`` rows (default 10**6) by
``partial_fit`` on chunks of ``--chunk`` rows (default 10**4), generated on
the fly: a sine of period 50 steps plus Gaussian noise (standard deviation
0.1); the target of step t is the clean sine at step t + 1 (one-step
forecasting). The gradient is ``--gradient`` (default ``"rtrl"``, exact
RTRL through the stack, which streams: ``skrtrl._stack.STACK_MODES``;
``"local"`` is the layer-local approximation).

Every ``--every`` chunks the script records the resident set size of the
process (``/proc/self/statm``), its peak so far (``ru_maxrss``) and the
current and peak Python allocations traced by ``tracemalloc`` (numpy's
included; ``--no-tracemalloc`` leaves it off, it costs a little per
allocation). At the end it prints: the steps run, steps per second (wall
clock and the main thread's CPU time, which does not count time lost to
other processes on a shared machine), the RSS after the first chunk, at the
middle and at the end, the peak RSS, the traced memory at the same points,
and whether memory stayed flat: the RSS at the end is within ``--tolerance``
(default 5 %) of the RSS after the first chunk.

The claim being checked: exact RTRL keeps the hidden state and the
influence of the parameters on it, whose size does not depend on how many
steps the stream has had, so its memory does not grow with the stream.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_stream_memory.py             # 10**6 steps
    PYTHONPATH=. python benchmarks/bench_stream_memory.py --quick     # 50,000 steps
    PYTHONPATH=. python benchmarks/bench_stream_memory.py --steps 200000 --json m.json

No assertion: the figures are printed (and written with ``--json``).
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc

import numpy as np

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 2.0**20
PERIOD = 50
NOISE = 0.1


def rss_bytes():
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_BYTES


def peak_rss_bytes():
    """Peak resident set size of this process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def chunk(index, size):
    """Rows ``index * size, ...`` of the stream, the same for any chunking.

    The input is the noisy sine at step t; the target is the clean sine at
    step t + 1. The noise of each chunk has its own seed.
    """
    t = np.arange(index * size, (index + 1) * size)
    rng = np.random.default_rng([index, size])
    x = np.sin(2 * np.pi * t / PERIOD) + NOISE * rng.standard_normal(size)
    y = np.sin(2 * np.pi * (t + 1) / PERIOD)
    return x[:, np.newaxis], y


def run(args):
    from skrtrl import RTRLRegressor

    if args.tracemalloc:
        tracemalloc.start()
    model = RTRLRegressor(
        cell="egru",
        n_hidden=(256, 256),
        gradient=args.gradient,
        stateful=True,
        update="step",
        solver="sgd",
        learning_rate_init=1e-3,
        momentum=0.9,
        random_state=0,
    )
    n_chunks = max(1, args.steps // args.chunk)
    records = []
    losses = []
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    for index in range(n_chunks):
        X, y = chunk(index, args.chunk)
        model.partial_fit(X, y)
        losses.append(float(model.loss_))
        if index == 0 or (index + 1) % args.every == 0 or index == n_chunks - 1:
            traced = tracemalloc.get_traced_memory() if args.tracemalloc else (0, 0)
            records.append(
                {
                    "chunk": index + 1,
                    "steps": (index + 1) * args.chunk,
                    "wall_s": time.perf_counter() - wall0,
                    "cpu_s": time.thread_time() - cpu0,
                    "rss": rss_bytes(),
                    "peak_rss": peak_rss_bytes(),
                    "traced": traced[0],
                    "traced_peak": traced[1],
                    "loss": losses[-1],
                }
            )
            r = records[-1]
            print(
                f"  {r['steps']:>9} steps  {r['wall_s']:8.1f} s  "
                f"RSS {r['rss'] / MIB:7.1f} MiB  peak {r['peak_rss'] / MIB:7.1f} MiB  "
                f"traced {r['traced'] / MIB:6.2f} MiB  loss {r['loss']:.4f}",
                flush=True,
            )
    return records, losses, n_chunks * args.chunk


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 steps")
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=5, help="record every N chunks")
    parser.add_argument("--gradient", default="rtrl", choices=["rtrl", "local"])
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument(
        "--no-tracemalloc", dest="tracemalloc", action="store_false", default=True
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.chunk, args.every = 50_000, 1_000, 10
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(
        f"egru (256, 256), gradient={args.gradient!r}, {args.steps} steps in chunks "
        f"of {args.chunk}; load average {load:.1f}",
        flush=True,
    )
    records, losses, steps = run(args)
    first, middle, last = records[0], records[len(records) // 2], records[-1]
    growth = last["rss"] / first["rss"] - 1
    flat = abs(growth) <= args.tolerance
    print()
    print(f"steps run              {steps}")
    print(f"steps per second       {steps / last['wall_s']:.0f} (wall clock)")
    print(f"                       {steps / last['cpu_s']:.0f} (main-thread CPU time)")
    for name, r in (("start", first), ("middle", middle), ("end", last)):
        print(
            f"RSS at {name:<7} ({r['steps']:>9} steps)  {r['rss'] / MIB:7.1f} MiB   "
            f"traced {r['traced'] / MIB:6.2f} MiB"
        )
    print(f"peak RSS (ru_maxrss)   {last['peak_rss'] / MIB:.1f} MiB")
    print(f"peak traced            {last['traced_peak'] / MIB:.2f} MiB")
    print(
        f"RSS end / start - 1    {growth:+.2%}: "
        + ("flat" if flat else "NOT flat")
        + f" (tolerance {args.tolerance:.0%})"
    )
    n = max(1, len(losses) // 10)
    print(
        f"mean loss, first / last tenth of the chunks  "
        f"{np.mean(losses[:n]):.4f} / {np.mean(losses[-n:]):.4f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "python": sys.version,
                    "platform": platform.platform(),
                    "load_average": load,
                    "steps": steps,
                    "records": records,
                    "flat": flat,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
