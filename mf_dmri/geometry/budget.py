"""Run a mesher back-end in a child process with a wall-time budget.

fTetWild can run for an hour in its optimisation loop and no back-end can be interrupted
from Python, so each call runs in a separate process (``forkserver`` start method: a
clean process without the parent's threads) that is killed when the budget is spent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import time

from mf_dmri.geometry.errors import MesherError, MesherTimeoutError

#: what to try next when a back-end runs out of time or fails, per method
NEXT_ROUTE = {
    "netgen": "method='tetwild' (tolerates bad surface triangles) or a larger length_scale",
    "tetwild": (
        "a larger envelope or edge length (fewer elements), fewer optimisation iterations "
        "(tetwild_options={'num_opt_iter': 10}), or repair the surface first "
        "(repair_surface) and use method='netgen'"
    ),
    "tetgen": "method='netgen' or method='tetwild'",
}


def _child(connection, backend, args, kwargs) -> None:
    from mf_dmri.geometry.native_output import native_output_to_log

    try:
        with native_output_to_log(logging.getLogger(__name__)):  # no mesher output on stdout
            result = backend(*args, **kwargs)
        connection.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, re-raised there
        connection.send(("error", exc))
    finally:
        connection.close()


@contextlib.contextmanager
def _main_module_not_reimported():
    """While a child starts: hide the main module's file and spec, so that the forkserver
    child does not re-run the caller's script.  The child needs nothing from it (the
    back-ends live in :mod:`mf_dmri.geometry.mesher_backends`), and a script without an
    ``if __name__ == "__main__":`` guard would otherwise call the mesher again in the child
    and fail with multiprocessing's bootstrapping RuntimeError."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in vars(main)}
    try:
        main.__spec__ = None
        main.__dict__.pop("__file__", None)
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def run_with_budget(method: str, backend, args: tuple, kwargs: dict, seconds: float | None):
    """``backend(*args, **kwargs)``; with ``seconds`` [s] in a child process killed after
    that long (:class:`MesherTimeoutError` naming the next route)."""
    if seconds is None:
        return backend(*args, **kwargs)
    if not seconds > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {seconds!r}")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mf_dmri.geometry.mesher_backends"])
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, backend, args, kwargs), daemon=True)
    start = time.perf_counter()
    with _main_module_not_reimported():
        process.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise MesherTimeoutError(
                f"{method} ran past its time budget of {seconds:g} s and was stopped; try "
                f"{NEXT_ROUTE[method]}, or pass a larger time_budget"
            )
        status, value = receiver.recv()
    except EOFError as exc:
        raise MesherError(
            f"{method} crashed (exit code {process.exitcode}) after "
            f"{time.perf_counter() - start:.1f} s; try {NEXT_ROUTE[method]}"
        ) from exc
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if status == "error":
        raise value
    return value
