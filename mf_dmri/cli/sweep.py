"""``mf-dmri sweep CONFIG.toml``: run (or resume) a parameter sweep into an HDF5 file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mf_dmri.cli.flags import add_allow, positive

if TYPE_CHECKING:  # imported lazily: ``mf-dmri --help`` must not need h5py or torch
    from mf_dmri.sweep import SweepResult
    from mf_dmri.sweep.progress import ProgressUpdate


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a parameter sweep (dictionary generation) from a TOML file",
        description="Simulate every geometry x tissue point of CONFIG for its acquisitions "
        "and store signals, parameter table and provenance in one HDF5 file.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="sweep description (TOML, units in keys)")
    parser.add_argument("--out", type=Path, help="output HDF5 file (default: CONFIG stem + .h5)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    parser.add_argument("--ray", action="store_true", help="run on a local Ray instance")
    parser.add_argument("--ray-address", help="run on the Ray cluster at this address")
    parser.add_argument("--ray-workers", type=positive(int), help="CPUs of the local Ray instance")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda or cuda:N")
    parser.add_argument("--cache-dir", type=Path, help="keep solved eigenbases here")
    parser.add_argument("--table", type=Path, help="also export the table (.csv or .parquet)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_allow(parser)


class _Bar:
    """tqdm bar when tqdm is installed, else a plain line on stderr every 5 %."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar, self.enabled, self.last = None, enabled, -1
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=initial, unit="row", dynamic_ncols=True)

    def __call__(self, update: ProgressUpdate) -> None:
        if self.bar is not None:
            self.bar.update(update.rows_done - self.bar.n)
            self.bar.set_postfix_str(f"{update.signals_per_second:,.0f} signals/s")
            return
        percent = 100 * update.rows_done // max(update.rows_total, 1)
        if self.enabled and percent // 5 != self.last // 5:
            self.last = percent
            print(
                f"sweep: {update.rows_done}/{update.rows_total} rows, "
                f"{update.rate:.1f} rows/s, ETA {update.eta:.0f} s",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _reuse(coupled: bool) -> str:
    if coupled:
        return "coupled geometries: every tissue point is a geometry point, one solve each"
    return "tissue and acquisition values never force a solve"


def _summary(result: SweepResult, out: Path, geometries: int, coupled: bool) -> str:
    return "\n".join(
        [
            f"sweep finished: {out}",
            f"  rows x measurements    {result.rows} x {result.measurements}",
            f"  chunks computed/resumed {result.chunks_computed}/{result.chunks_skipped} "
            f"of {result.chunks_total}",
            f"  eigenbasis solves      {result.basis_solves} (cache hits {result.cache_hits}; "
            f"{geometries} geometries; {_reuse(coupled)})",
            f"  time                   {result.elapsed:.1f} s on {result.device} "
            f"({result.executor}), {result.signals_per_second:,.0f} signals/s",
        ]
    )


def run(args: argparse.Namespace) -> int:
    from mf_dmri.io.sweep_provenance import sweep_provenance
    from mf_dmri.io.sweep_store import SweepStore, export_table
    from mf_dmri.io.sweep_toml import default_registry, load_sweep_toml
    from mf_dmri.sweep import build_plan, run_sweep
    from mf_dmri.sweep.engine import resolve_device

    resolve_device(args.device)  # a bad --device is refused before any work
    if args.table is not None and args.table.suffix not in (".csv", ".parquet"):
        raise ValueError(
            f"--table {args.table}: the table format comes from the suffix; use .csv or .parquet"
        )
    registry = default_registry()
    spec = load_sweep_toml(args.config, registry=registry, allow=args.allow)
    plan = build_plan(spec, registry)
    out = args.out or Path(args.config.stem + ".h5")
    if args.dry_run:
        print(
            f"{plan.num_rows} rows ({len(plan.geometries)} geometries x {plan.num_tissue} "
            f"tissue points) x {plan.measurements.count} measurements in "
            f"{len(plan.chunks)} chunks; {len(plan.geometries)} eigenbasis solves "
            f"({_reuse(plan.coupled)})"
        )
        return 0
    store = SweepStore(out, plan, resume=args.resume)
    cache = None
    if args.cache_dir is not None:
        from mf_dmri.io.sweep_cache import DiskBasisCache

        cache = DiskBasisCache(args.cache_dir)
    executor = "ray" if (args.ray or args.ray_address) else "local"
    done = store.completed()
    bar = _Bar(
        plan.num_rows, sum(c.size for c in plan.chunks if c.index in done), not args.no_progress
    )
    try:
        result = run_sweep(
            plan,
            store,
            registry=registry,
            cache=cache,
            device=args.device,
            progress=bar,
            executor=executor,
            ray_address=args.ray_address,
            ray_workers=args.ray_workers,
        )
    finally:
        bar.close()
    provenance = sweep_provenance(
        plan, device=result.device, executor=executor, config_text=args.config.read_text()
    )
    store.finalize(provenance)
    if args.table is not None:
        export_table(out, args.table)
    print(_summary(result, out, len(plan.geometries), plan.coupled))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m mf_dmri.cli.sweep``)."""
    from mf_dmri.cli.main import run_guarded

    parser = argparse.ArgumentParser(prog="mf-dmri sweep")
    add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the full traceback")
    args = parser.parse_args(argv)
    return run_guarded(run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
