"""The curation run: sources -> Dask tasks (one per source) -> a corpus folder, and a summary.

Contract of :func:`curate`:

- input: a list of :class:`curation.sources.Source`, a corpus folder, a :class:`CurateConfig`, and
  a :class:`avforge.core.cluster.ClusterConfig` (from ``dask_cluster.yaml``);
- output: the corpus folder grows by one shard per source (an existing corpus keeps its shards:
  curating more sources adds to it); ``DIR/config/curate.yaml`` holds the resolved config; returns a
  :class:`CurateSummary` (sources ok/failed, left for the next run, segments kept/rejected by
  reason, hours in/out, real-time factor per core);
- reruns (``curation.tasks``): a source with a ``sources`` row is done, ok or failed; with
  ``retry_failed`` (``avforge curate --retry-failed``) the failed ones are redone and the fetch
  ledger's entries of earlier runs are ignored. A source whose fetch failed for a transient reason
  (rate limit or bot check, network) after its retries gets no row: it is counted as left for the
  next run, which tries it again.

Scheduling: at most ``run.max_in_flight_per_worker`` x (worker threads) sources are submitted at a
time (a sliding window over ``as_completed``), so the scheduler's memory stays bounded on 100k sources.
A worker that dies has its tasks rescheduled by Dask; a task whose workers keep dying (``KilledWorker``)
is resubmitted up to ``run.task_retries`` times, then written as a failed row (``internal_error``).
A task that raises a non-systemic error (a bug on one odd input) becomes a failed row too, with the
exception in ``error_detail``. A :class:`avforge.core.errors.SystemicError` (the run was interrupted, the
output or scratch storage cannot be written, a corrupt manifest in the corpus) or an ``OSError``
(missing model files or binaries) stops the run: nothing more is submitted, the rest is cancelled,
no row is written for it, and it propagates (a rerun resumes). Ctrl-C (``KeyboardInterrupt``) stops
the run the same way. ``cluster.type: synchronous`` runs everything in this process, in order, and
lets any exception propagate with its traceback (debugging).

Scratch space is per run (:func:`run_scratch`): ``<scratch base>/run-<random>/``, holding the fetched
files of the run's sources and the local Dask cluster's worker directories, removed when the run
ends; a folder left by a killed run is removed by the next run that finds it unlocked. Two runs
into one corpus therefore never share or delete each other's files; a source done by both writes
identical shards (deterministic results, atomic renames).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from avforge.core.cluster import ClusterConfig, open_client
from avforge.core.config import write_resolved_config
from avforge.core.errors import StorageError, SystemicError, one_line
from avforge.core.files import is_local
from curation.config import CurateConfig
from curation.download import PACE_PREFIX
from curation.process import failed_record
from curation.sources import Source
from curation.tasks import TaskResult, curate_task, write_failed
from manifests.io import join
from manifests.schema import SourceError


@dataclass(frozen=True)
class CurateSummary:
    """What a run did (sources skipped because already done count in the totals, not the speed)."""

    sources_ok: int
    sources_failed: int
    sources_skipped: int
    failed_by_reason: dict[str, int]
    segments_kept: int
    segments_rejected: int
    rejected_by_reason: dict[str, int]
    hours_in: float
    """Hours of media processed by this run (skipped sources excluded)."""
    hours_out: float
    """Hours of kept clips (all sources)."""
    wall_s: float
    cores: int
    """Worker threads the run had."""
    rtf_per_core: float
    """Seconds of media processed per second of wall time per core (higher is faster)."""
    cpu_rtf: float
    """Seconds of media per second of task time (summed over tasks; one core each)."""
    results: list[TaskResult] = field(default_factory=list, repr=False)
    sources_deferred: int = 0
    """Sources whose fetch failed for a transient reason: no row written, the next run retries them."""
    deferred_by_reason: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        """A human-readable multi-line summary."""
        lines = [
            f"sources: {self.sources_ok} ok, {self.sources_failed} failed"
            f" ({self.sources_skipped} already done)",
        ]
        if self.failed_by_reason:
            lines.append(
                "  failed: " + ", ".join(f"{k} {v}" for k, v in self.failed_by_reason.items())
            )
        if self.sources_deferred:
            why = ", ".join(f"{k} {v}" for k, v in self.deferred_by_reason.items())
            lines.append(
                f"  left for the next run: {self.sources_deferred} ({why}; transient, no row "
                "written: rerun the same command later)"
            )
        lines.append(f"segments: {self.segments_kept} kept, {self.segments_rejected} rejected")
        if self.rejected_by_reason:
            lines.append(
                "  rejected: " + ", ".join(f"{k} {v}" for k, v in self.rejected_by_reason.items())
            )
        lines.append(
            f"hours: {self.hours_in:.3f} in, {self.hours_out:.3f} out; wall {self.wall_s:.1f} s "
            f"on {self.cores} core(s): {self.rtf_per_core:.1f}x real time per core "
            f"({self.cpu_rtf:.1f}x per task-second)"
        )
        return "\n".join(lines)


def summarize_run(results: Sequence[TaskResult], wall_s: float, cores: int) -> CurateSummary:
    """Aggregate task results (pure)."""
    fresh = [r for r in results if not r.skipped]
    media_s = sum(r.media_s for r in fresh)
    task_s = sum(r.processing_s for r in fresh)
    rejected: Counter[str] = Counter()
    for r in results:
        rejected.update(r.rejected_by_reason)
    failed = Counter(r.error or "unknown" for r in results if not r.ok and not r.deferred)
    deferred = Counter(r.error or "unknown" for r in results if r.deferred)
    return CurateSummary(
        sources_ok=sum(r.ok for r in results),
        sources_failed=sum(not r.ok and not r.deferred for r in results),
        sources_skipped=len(results) - len(fresh),
        failed_by_reason=dict(sorted(failed.items())),
        segments_kept=sum(r.kept for r in results),
        segments_rejected=sum(r.rejected for r in results),
        rejected_by_reason=dict(sorted(rejected.items())),
        hours_in=media_s / 3600.0,
        hours_out=sum(r.kept_s for r in results) / 3600.0,
        wall_s=wall_s,
        cores=cores,
        rtf_per_core=media_s / max(1e-9, wall_s * max(1, cores)),
        cpu_rtf=media_s / max(1e-9, task_s),
        results=list(results),
        sources_deferred=sum(deferred.values()),
        deferred_by_reason=dict(sorted(deferred.items())),
    )


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="source", disable=not enabled, dynamic_ncols=True)


def _run_synchronous(
    sources: Sequence[Source],
    cfg: CurateConfig,
    corpus: str,
    workdir: str,
    bar: Any,
    retry_failed: bool,
) -> list[TaskResult]:
    out = []
    for s in sources:
        out.append(curate_task(s, cfg, corpus, workdir, retry_failed))
        bar.update(1)
    return out


def _task_failure(source: Source, exc: BaseException, corpus: str, what: str) -> TaskResult:
    detail = f"{what}: {type(exc).__name__}: {one_line(str(exc), 200)}"
    return write_failed(corpus, failed_record(source, SourceError.INTERNAL_ERROR, detail))


def _run_dask(
    client: Any,
    sources: Sequence[Source],
    cfg: CurateConfig,
    corpus: str,
    workdir: str,
    bar: Any,
    on_result: Callable[[TaskResult], None] | None,
    retry_failed: bool = False,
) -> list[TaskResult]:
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    client.wait_for_workers(1, timeout=120)
    cores = max(1, sum(client.nthreads().values()))
    window = cfg.run.max_in_flight_per_worker * cores
    attempts: Counter[str] = Counter()
    by_key: dict[str, Source] = {}
    results: list[TaskResult] = []

    def submit(s: Source) -> Any:
        attempts[s.source_id] += 1
        key = f"curate-{s.source_id}-{attempts[s.source_id]}"
        by_key[key] = s
        return client.submit(
            curate_task, s, cfg, corpus, workdir, retry_failed, key=key, pure=False
        )

    pending: Iterator[Source] = iter(sources)
    ac = as_completed([submit(s) for _, s in zip(range(window), pending, strict=False)])
    try:
        for fut in ac:
            source = by_key.pop(fut.key)
            if fut.status == "finished":
                result = fut.result()
            else:
                exc = fut.exception()
                if isinstance(exc, SystemicError | OSError):
                    raise exc
                retry = attempts[source.source_id] <= cfg.run.task_retries
                if isinstance(exc, KilledWorker) and retry:
                    ac.add(submit(source))
                    fut.release()
                    continue
                what = "workers died" if isinstance(exc, KilledWorker) else "task raised"
                result = _task_failure(source, exc, corpus, what)
            fut.release()
            results.append(result)
            if on_result is not None:
                on_result(result)
            bar.update(1)
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(submit(nxt))
    except BaseException:
        # a systemic error, Ctrl-C: submit nothing more, cancel what is queued or running
        # (a task that still finishes writes its correct shards; none is written as failed)
        with contextlib.suppress(Exception):
            client.cancel(list(ac.futures))
        raise
    return results


def scratch_dir(corpus: str, cfg: CurateConfig) -> str:
    """The scratch base: ``run.workdir``, else ``DIR/.work`` for a local corpus, else the temporary
    folder (a remote corpus, e.g. ``s3://``, is not a place for scratch files). Each run works in its
    own folder under it (:func:`run_scratch`)."""
    if cfg.run.workdir is not None:
        return str(cfg.run.workdir)
    if is_local(corpus):
        return join(corpus, ".work")
    return os.path.join(tempfile.gettempdir(), "avforge-work")


RUN_PREFIX = "run-"
_LOCK = ".lock"
_DASK = "dask"
"""The local Dask cluster's worker folders (spill space) inside a run's scratch folder."""


def _remove_stale_runs(base: str) -> None:
    """Remove the run folders under ``base`` whose run is gone (their lock is free)."""
    for name in os.listdir(base):
        folder = os.path.join(base, name)
        if not name.startswith(RUN_PREFIX) or not os.path.isdir(folder):
            continue
        try:
            with open(os.path.join(folder, _LOCK), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
        except BlockingIOError:  # a live run holds it
            continue
        except OSError:  # removed meanwhile by another run, or not ours to remove
            continue


@contextlib.contextmanager
def run_scratch(corpus: str, cfg: CurateConfig) -> Iterator[str]:
    """This run's scratch folder ``<scratch_dir>/run-<random>/``, locked while the run lives and
    removed when it ends (with ``download.keep_downloads``, its fetched files are moved to
    ``<scratch_dir>/<source_id>/`` first); first removes the folders of runs that were killed
    (unlocked)."""
    base = scratch_dir(corpus, cfg)
    try:
        os.makedirs(base, exist_ok=True)
        _remove_stale_runs(base)
        # made under a hidden name, locked, then renamed: a run folder is never seen unlocked
        fresh = tempfile.mkdtemp(prefix=".new-", dir=base)
        lock = open(os.path.join(fresh, _LOCK), "a")  # noqa: SIM115 (held for the whole run)
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = os.path.join(base, RUN_PREFIX + os.path.basename(fresh)[len(".new-") :])
        os.rename(fresh, folder)
    except OSError as exc:
        raise StorageError(f"cannot make the scratch folder under {base}: {exc}") from exc
    try:
        yield folder
    finally:
        if cfg.download.keep_downloads:
            _keep_downloads(folder, base)
        shutil.rmtree(folder, ignore_errors=True)
        lock.close()


def _keep_downloads(folder: str, base: str) -> None:
    """Move the run's fetched files (``<run>/<source_id>/``) to ``<base>/<source_id>/`` (kept)."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name in (_DASK, _LOCK) or name.startswith(PACE_PREFIX) or not os.path.isdir(path):
            continue
        with contextlib.suppress(OSError):  # already kept by another run: keep that one
            os.rename(path, os.path.join(base, name))


def curate(
    sources: Sequence[Source],
    corpus: str,
    cfg: CurateConfig,
    cluster: ClusterConfig,
    on_result: Callable[[TaskResult], None] | None = None,
    retry_failed: bool = False,
) -> CurateSummary:
    """Curate ``sources`` into ``corpus`` on ``cluster`` (see the module docstring).

    ``on_result`` is called in this process with each finished source's result (progress hooks,
    tests). ``retry_failed`` redoes sources that failed before (see the module docstring). Raises
    only for systemic problems.
    """
    corpus = str(corpus)
    try:
        if is_local(corpus):
            if os.path.exists(corpus) and not os.path.isdir(corpus):
                raise StorageError(f"the corpus path {corpus} is a file, not a folder")
            os.makedirs(corpus, exist_ok=True)
        write_resolved_config(cfg, join(corpus, "config", "curate.yaml"))
    except OSError as exc:
        raise StorageError(f"cannot write the corpus {corpus}: {exc}") from exc
    t0 = time.monotonic()
    with run_scratch(corpus, cfg) as workdir:
        local_dir = os.path.join(workdir, _DASK)
        with (
            _progress(len(sources), cfg.run.progress) as bar,
            open_client(cluster, local_directory=local_dir) as client,
        ):
            if client is None:
                results = _run_synchronous(sources, cfg, corpus, workdir, bar, retry_failed)
                if on_result is not None:
                    for r in results:
                        on_result(r)
                cores = 1
            else:
                cores = max(1, sum(client.nthreads().values()))
                results = _run_dask(
                    client, sources, cfg, corpus, workdir, bar, on_result, retry_failed
                )
                cores = max(cores, sum(client.nthreads().values()))
    return summarize_run(results, time.monotonic() - t0, cores)
