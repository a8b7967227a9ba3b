"""The ``recipes-jax`` command.

recipes-jax demo                       # mfms_bo vs random search on the built-in world
recipes-jax init --space space.toml    # an example space file to edit; --check validates one
recipes-jax suggest --space space.toml --ledger runs.csv -n 4   # next runs, marked pending
recipes-jax record --ledger runs.csv --id r7 --value 2.31   # a finished run's result
recipes-jax simulate --table t.npz --mixture 0.2,0.2,0.2,0.2,0.2 --scale 1000 --steps 19500
recipes-jax convert runs.pkl --trusted -o runs.npz   # the paper's pickle -> safe npz
recipes-jax summary runs.npz
recipes-jax benchmark --paper-runs surrogate_runs.pkl --trusted --out results/
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import numpy as np

DEFAULT_METRIC = "eval/RedPajamaStackExchange/CrossEntropyLoss"


def _use_cpu_devices(args) -> None:
    """Before any JAX computation: one CPU device per core (or ``--cpu-devices``), so that
    sweeps on CPU run several seeds at once (see :mod:`recipes_jax.cpu_devices`). Where JAX
    has already started (the command called from Python), its devices are kept."""
    from recipes_jax.cpu_devices import use_cpu_cores

    if args.cpu_devices is not None and args.cpu_devices < 1:
        raise ValueError(f"--cpu-devices must be >= 1; got {args.cpu_devices}")
    use_cpu_cores(args.cpu_devices, strict=False)


def cmd_demo(args) -> int:
    """``recipes-jax demo``: mfms_bo against random search on the built-in world."""
    _use_cpu_devices(args)
    from recipes_jax.demo import run_demo

    if args.seeds < 1 or args.budget <= 0 or args.asks < 1:
        raise ValueError("--seeds and --asks must be >= 1 and --budget > 0 (e.g. --seeds 16)")
    run_demo(
        seeds=args.seeds,
        budget=args.budget,
        num_asks=args.asks,
        objective=args.objective,
        out_dir=None if args.out == "" else args.out,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return 0


def cmd_simulate(args) -> int:
    """``recipes-jax simulate``: print a saved run table's simulated metric at one query."""
    from recipes_jax.simulator.run_table import RunTable
    from recipes_jax.simulator.simulator import Simulator

    try:
        w = np.array([[float(x) for x in args.mixture.split(",")]])
    except ValueError:
        raise ValueError(
            f"--mixture {args.mixture!r} is not a comma-separated list of numbers; write one "
            "weight per domain, e.g. --mixture 0.2,0.2,0.2,0.2,0.2"
        ) from None
    table = RunTable.load(args.table)
    if args.metric is None and table.num_metrics != 1:
        raise ValueError(
            f"{args.table} has {table.num_metrics} metrics; choose one with --metric, e.g. "
            f"--metric {table.metrics[0]!r} (`recipes-jax summary {args.table}` lists them)"
        )
    sim = Simulator(table, args.metric, clamp=args.clamp)
    value = float(sim(w, args.scale, args.steps)[0])
    print(f"{sim.metric} at scale {args.scale:g}M, {args.steps} steps: {value:.6g}")
    return 0


def cmd_convert(args) -> int:
    """``recipes-jax convert``: the paper's pickle of runs -> a safe ``.npz`` RunTable."""
    from recipes_jax.simulator.loaders import UntrustedFileError
    from recipes_jax.simulator.run_table import RunTable

    if not args.trusted:
        raise UntrustedFileError(
            f"refusing to load {args.pickle}: pickle files can run arbitrary code when loaded. "
            f"If you trust where it came from, run `recipes-jax convert {args.pickle} --trusted "
            f"-o {args.output}` once and use the safe .npz from then on"
        )
    table = RunTable.from_paper_pickle(args.pickle, trusted=True)
    table.save(args.output)
    print(table.summary())
    print(f"wrote {args.output}")
    return 0


def cmd_summary(args) -> int:
    """``recipes-jax summary``: print a description of a saved run table."""
    from recipes_jax.simulator.run_table import RunTable

    print(RunTable.load(args.table).summary())
    return 0


def _names(text: str, allowed, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {what} {unknown or text!r}; choose from {','.join(allowed)}")
    return names


def cmd_init(args) -> int:
    """``recipes-jax init``: write an example space file, or with ``--check`` validate and
    describe one."""
    from recipes_jax import space_file

    if args.check:
        space = space_file.load_space(args.check)
        cheapest = float(space.cost(space.scales[0], space.steps[0]))
        print(
            f"{args.check}: {space.num_domains} domains {list(space.domains)}; scales "
            f"{list(space.scales)} (millions of parameters); {len(space.steps)} step counts "
            f"{space.steps[0]}..{space.steps[-1]}; target {space.target[0]:g}M x "
            f"{space.target[1]} steps; {'maximize' if space.maximize else 'minimize'} "
            f"{space.metric!r}; the cheapest run costs {cheapest:.2g} target runs"
        )
        return 0
    path = space_file.write_example(args.space, overwrite=args.force)
    print(f"wrote {path}: the paper's setting; edit the domains, scales, steps, target and metric")
    return 0


def _read_curve(text: str):
    """A learning curve from ``step=value;...`` or from a CSV file of ``step,value`` rows."""
    import csv
    import io
    import os

    from recipes_jax import ledger

    if "=" in text or not os.path.exists(text):
        return ledger.parse_curve(text)
    from recipes_jax.atomic import read_text

    points = []
    with io.StringIO(read_text(text, what="curve file"), newline="") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or (i == 1 and row[0].strip().lower() == "step"):
                continue
            if len(row) != 2:
                raise ValueError(f"{text} line {i}: expected two columns step,value; got {row}")
            points.append(f"{row[0].strip()}={row[1].strip()}")
    return ledger.parse_curve(";".join(points))


def cmd_record(args) -> int:
    """``recipes-jax record``: record a run's value, learning curve or failure in the ledger."""
    from recipes_jax import ledger, space_file

    space = space_file.load_space(args.space)
    curve = _read_curve(args.curve) if args.curve else ()
    run = ledger.record(
        args.ledger,
        space,
        args.id,
        value=args.value,
        curve=curve,
        status=args.status,
        note=args.note,
        overwrite=args.force,
    )
    value = "" if run.value != run.value else f" value {run.value:g}"
    print(f"{args.ledger}: run {run.id} recorded as {run.status}{value}")
    return 0


def cmd_suggest(args) -> int:
    """``recipes-jax suggest``: fit the model to the ledger and append ``-n`` pending runs."""
    import jax

    from recipes_jax import benchmark, ledger, space_file
    from recipes_jax.atomic import writable_path
    from recipes_jax.suggest import suggest

    space = space_file.load_space(args.space)
    writable_path(args.ledger)  # a missing folder fails now, not after the computation
    runs = ledger.read_ledger(args.ledger, space)
    options = {} if args.preset == "default" else benchmark.PRESETS[args.preset]
    start = time.perf_counter()
    with jax.enable_x64(True):  # GP fitting in float64, without touching the global flag
        key = jax.random.fold_in(jax.random.key(args.seed), len(runs))
        new = suggest(space, runs, args.n, key, **options)
    # appended to the ledger as it is now: whatever was recorded meanwhile is kept
    now, new = ledger.append_runs(args.ledger, space, new)
    done = sum(r.informs_model for r in runs)
    print(
        f"{args.ledger}: {len(runs)} runs ({done} with results); {len(new)} new pending runs "
        f"in {time.perf_counter() - start:.1f} s:"
    )
    if not ledger.same_runs(now, runs):
        warnings.warn(
            f"{args.ledger} changed while the runs were chosen (another command wrote to it); "
            f"its {len(now)} runs are kept and the new ones appended after them, but the new "
            "ones did not take those changes into account: run suggest again if that matters",
            UserWarning,
            stacklevel=1,
        )
    names = [d[:12] for d in space.domains]
    print(
        f"{'id':>6} {'scale':>7} {'steps':>7} {'cost':>8} {'acq (log)':>10}  "
        + " ".join(f"{n:>12}" for n in names)
    )
    for r in new:
        print(
            f"{r.id:>6} {r.scale:>7g} {r.steps:>7d} {r.cost:>8.4f} {r.score:>10.3f}  "
            + " ".join(f"{w:>12.4f}" for w in r.mixture)
        )
    print("train them, then: recipes-jax record --ledger ... --id <id> --value <metric>")
    return 0


def cmd_benchmark(args) -> int:
    """``recipes-jax benchmark``: the speedup benchmark over the chosen worlds, objectives and
    methods."""
    import functools

    import jax

    from recipes_jax import analysis, benchmark

    _use_cpu_devices(args)
    if args.worlds is None:
        args.worlds = "paper,default" if args.paper_runs else "default"
        if not args.paper_runs:
            print("no --paper-runs given: running the built-in default world only")
    worlds = _names(args.worlds, benchmark.WORLDS, "worlds")
    if "paper" in worlds and not args.paper_runs:
        raise ValueError(
            "the paper world needs the paper's run table: --paper-runs PATH "
            "(data_mixing_runs.pkl with --trusted, or a RunTable .npz)"
        )
    objectives = _names(args.objectives, list(benchmark.OBJECTIVES), "objectives")
    methods = _names(args.methods, benchmark.METHODS, "methods")
    problems = []
    for world in worlds:
        for objective in objectives:
            if world == "paper":
                build = functools.partial(
                    benchmark.paper_problem, objective, args.paper_runs, trusted=args.trusted
                )
            else:
                build = functools.partial(benchmark.default_problem, objective)
            problems.append(build)
    quick = args.quick
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1; got {args.seeds}")
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        raise ValueError(f"--budget must be a positive number of target runs; got {args.budget}")
    with jax.enable_x64(not args.float32):  # GP fits in float64; the global flag is left alone
        benchmark.run_benchmark(
            problems,
            methods=methods,
            seeds=args.seeds if args.seeds is not None else (4 if quick else 128),
            budget=args.budget if args.budget is not None else (5.0 if quick else 50.0),
            preset=args.preset or ("quick" if quick else "standard"),
            out_dir=args.out,
            batch_size=args.batch_size,
            num_bootstrap=200 if quick else 1000,
        )
    if args.out:
        print(f"wrote {args.out}/speedup.json" + (" and the plots" if analysis.can_plot() else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``recipes-jax`` argument parser; each subcommand sets ``func`` to its ``cmd_*``."""
    parser = argparse.ArgumentParser(
        prog="recipes-jax",
        description="Multi-fidelity, multi-scale Bayesian optimization of data mixtures.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="mfms_bo vs random search on the built-in world: table and regret-vs-cost PNG",
        description="A short campaign on the built-in world (no files needed): mfms_bo against "
        "random search, same seeds and budget, scored by regret at the target; prints a table, "
        "writes regret_vs_cost.png and demo.json. About 30-40 s on 2 CPU cores, most of it "
        "compiling. Example: recipes-jax demo --seeds 16 --budget 10 --out recipes-jax-demo",
    )
    demo.add_argument("--seeds", type=int, default=16, help="campaigns per method (default 16)")
    demo.add_argument(
        "--budget", type=float, default=10.0, help="target runs per campaign (default 10)"
    )
    demo.add_argument("--asks", type=int, default=50, help="mfms_bo asks per campaign (default 50)")
    demo.add_argument(
        "--objective",
        choices=("stackexchange", "commoncrawl", "hellaswag"),
        default="stackexchange",
    )
    demo.add_argument("--out", default="recipes-jax-demo", help="output directory ('' for none)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="JAX CPU devices to spread seeds over (default: one per core; no effect on GPU)",
    )
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="query a simulator built from a saved run table",
        description="Example: recipes-jax simulate --table t.npz --metric "
        f"{DEFAULT_METRIC} --mixture 0.2,0.2,0.2,0.2,0.2 --scale 1000 --steps 19500",
    )
    simulate.add_argument("--table", required=True, help="a .npz written by RunTable.save")
    simulate.add_argument("--metric", default=None)
    simulate.add_argument(
        "--mixture", required=True, help="comma-separated weights, one per domain"
    )
    simulate.add_argument("--scale", type=float, required=True, help="millions of parameters")
    simulate.add_argument("--steps", type=int, required=True)
    simulate.add_argument("--clamp", action="store_true", help="clamp out-of-range queries")
    simulate.set_defaults(func=cmd_simulate)

    convert = sub.add_parser(
        "convert",
        help="convert the paper's pickle of runs to a safe .npz run table",
        description="Example: recipes-jax convert data_mixing_runs.pkl --trusted -o runs.npz",
    )
    convert.add_argument("pickle")
    convert.add_argument("-o", "--output", required=True)
    convert.add_argument(
        "--trusted", action="store_true", help="confirm you trust the file (pickle runs code)"
    )
    convert.set_defaults(func=cmd_convert)

    summary = sub.add_parser(
        "summary",
        help="describe a saved run table",
        description="Example: recipes-jax summary runs.npz",
    )
    summary.add_argument("table")
    summary.set_defaults(func=cmd_summary)

    init = sub.add_parser(
        "init",
        help="write an example space file (or --check one)",
        description="Example: recipes-jax init --space space.toml   (then edit it; "
        "recipes-jax init --check space.toml validates it)",
    )
    init.add_argument("--space", default="space.toml", help="where to write (default space.toml)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--check", metavar="PATH", help="validate a space file instead of writing")
    init.set_defaults(func=cmd_init)

    sug = sub.add_parser(
        "suggest",
        help="fit the model to the ledger and append the next runs to train (pending)",
        description="Example: recipes-jax suggest --space space.toml --ledger runs.csv -n 4",
    )
    sug.add_argument("--space", default="space.toml", help="the space file (default space.toml)")
    sug.add_argument("--ledger", required=True, help="the ledger CSV (created if absent)")
    sug.add_argument("-n", type=int, default=1, help="how many runs to propose (default 1)")
    sug.add_argument("--seed", type=int, default=0)
    sug.add_argument(
        "--preset",
        choices=("default", "standard", "quick"),
        default="default",
        help="search effort: mfms_bo's defaults, the speedup benchmark's, or a quick one",
    )
    sug.set_defaults(func=cmd_suggest)

    rec = sub.add_parser(
        "record",
        help="record a run's result (or its failure) in the ledger",
        description="Examples: recipes-jax record --ledger runs.csv --id r7 --value 2.31   |   "
        "recipes-jax record --ledger runs.csv --id r7 --curve 6500=2.6;13000=2.4   |   "
        "recipes-jax record --ledger runs.csv --id r8 --status failed --note 'node died'",
    )
    rec.add_argument("--ledger", required=True, help="the campaign's ledger CSV")
    rec.add_argument("--space", default="space.toml", help="its space file (default space.toml)")
    rec.add_argument("--id", required=True, help="the run's id in the ledger")
    rec.add_argument(
        "--value", type=float, help="the metric at the run's steps (nan or inf: it diverged)"
    )
    rec.add_argument("--curve", help="learning curve: step=value;... or a CSV file step,value")
    rec.add_argument(
        "--status",
        choices=("done", "failed", "diverged"),
        help="default: done for a finite value, diverged otherwise",
    )
    rec.add_argument("--note", help="free text kept in the ledger")
    rec.add_argument("--force", action="store_true", help="replace an earlier record")
    rec.set_defaults(func=cmd_record)

    bench = sub.add_parser(
        "benchmark",
        help="the speedup benchmark: mfms_bo against the baselines, many seeds",
        description="Example: recipes-jax benchmark --paper-runs surrogate_runs.pkl --trusted "
        "--objectives stackexchange --seeds 128 --out results/   (or --quick: seconds)",
    )
    bench.add_argument("--quick", action="store_true", help="4 seeds, budget 5, tiny search")
    bench.add_argument("--worlds", help="comma-separated: paper,default (default: all available)")
    bench.add_argument("--objectives", default="stackexchange,commoncrawl,hellaswag")
    bench.add_argument(
        "--methods", default="mfms_bo,random_search,hyperband,mf_bo_steps,single_fidelity_bo"
    )
    bench.add_argument("--seeds", type=int, help="campaigns per method (default 128)")
    bench.add_argument("--budget", type=float, help="target runs per campaign (default 50)")
    bench.add_argument("--preset", choices=("standard", "quick"), help="GP compute settings")
    bench.add_argument("--paper-runs", help="the paper's run table (.pkl with --trusted, or .npz)")
    bench.add_argument(
        "--trusted", action="store_true", help="confirm you trust --paper-runs (pickle runs code)"
    )
    bench.add_argument("--out", help="directory for speedup.json and the regret plots")
    bench.add_argument(
        "--batch-size",
        type=int,
        help="seeds per batch: vmapped on GPU, looped on CPU (default: all at once)",
    )
    bench.add_argument("--float32", action="store_true", help="leave jax_enable_x64 off")
    bench.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="JAX CPU devices to spread seeds over (default: one per core; no effect on GPU)",
    )
    bench.set_defaults(func=cmd_benchmark)
    return parser


def _warning_printer(command: str, fallback):
    """A ``warnings.showwarning`` that prints user warnings (things the user's data or options
    cause, e.g. runs that never vary a domain) as ``recipes-jax <command>: warning: ...`` lines,
    without Python's source location; other categories go to ``fallback``."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            print(f"recipes-jax {command}: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status, 2 on
    a user error (printed to stderr)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command, warnings.showwarning)
            return args.func(args)
    except (ValueError, KeyError, OSError) as e:  # OSError: missing files, folders, locks...
        # a KeyError's str() is the repr of its message: print the message itself
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"recipes-jax {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
