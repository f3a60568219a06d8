"""Where Dask work runs: the cluster shape from ``dask_cluster.yaml``, and a client for it.

``dask_cluster.yaml`` holds the cluster shape only (never pipeline parameters)::

    type: local            # local | address | slurm | kubernetes | synchronous
    local: {n_workers: 2, threads_per_worker: 1, memory_limit: 4GiB}
    address: tcp://127.0.0.1:8786
    slurm: {queue: gpu, cores: 8, memory: 32GiB, walltime: "04:00:00", jobs: 10}
    kubernetes: {image: ghcr.io/org/avforge:latest, n_workers: 10, ...}

``synchronous`` runs everything in the calling process (debugging, tests, profiling).

A local cluster exposes nothing: its scheduler, workers and dashboard listen on 127.0.0.1 unless
``local.dashboard_address`` / ``local.host`` say otherwise; its workers ignore the terminal's SIGINT
(Ctrl-C stops the run from the calling process, which closes the cluster: a worker never sees its
tasks' children die of the signal), and keep their scratch files in ``local_directory`` (the run's
scratch folder) rather than ``/tmp``.

dask-jobqueue and dask-kubernetes are imported only when their type is chosen, so they stay optional.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from avforge.core.config import ConfigError, check_range, load_config


class ClusterType(enum.StrEnum):
    LOCAL = "local"
    ADDRESS = "address"
    SLURM = "slurm"
    KUBERNETES = "kubernetes"
    SYNCHRONOUS = "synchronous"


def check_memory(obj: object, name: str, *, allow_auto: bool = False) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``obj.name`` is a memory size Dask accepts.

    A size string is parsed by Dask's own ``dask.utils.parse_bytes`` (``4GiB``, ``500 MB``, ``1e9``);
    with ``allow_auto`` (a worker's ``memory_limit``, read by ``distributed``) also ``auto``, a
    whole number of bytes, a fraction of the machine's memory (``0 < x <= 1``) and ``0`` (no limit).
    """
    from dask.utils import parse_bytes

    value = getattr(obj, name)
    what = "a size such as '4GiB' (dask.utils.parse_bytes)"
    if allow_auto:
        what += ", 'auto', a fraction of the machine's memory (0..1] or 0 (no limit)"
        if value == "auto":
            return
        with contextlib.suppress(TypeError, ValueError):
            value = float(value)
    if isinstance(value, float):
        if allow_auto and math.isfinite(value) and (0 <= value <= 1 or value.is_integer()):
            return
        raise ConfigError(f"must be {what}, got {getattr(obj, name)!r}", name)
    try:
        if not str(value).strip():  # parse_bytes("") is 1 byte
            raise ValueError(value)
        size = parse_bytes(value)
    except (TypeError, ValueError):
        raise ConfigError(f"must be {what}, got {value!r}", name) from None
    if size <= 0 and not (allow_auto and size == 0):
        raise ConfigError(f"must be {what}, got {value!r}", name)


@dataclass(frozen=True)
class LocalClusterConfig:
    n_workers: int = 2
    """Worker processes (one source at a time each, with threads_per_worker=1)."""
    threads_per_worker: int = 1
    memory_limit: str | float = "4GiB"
    """Per worker; a worker over it is restarted by the nanny and its sources retried. As Dask reads
    it: a size (``4GiB``, ``500MB``, bytes), ``auto`` (the machine's memory shared by the workers), a
    fraction of the machine's memory (``0.25``), or ``0`` for no limit. Checked at load."""
    dashboard_address: str | None = "127.0.0.1:0"
    """Where the scheduler's dashboard listens: loopback only, on a free port (a fixed port collides
    between concurrent runs). To reach it from another machine, say so explicitly: ``":8787"`` (every
    interface) or ``"10.0.0.5:8787"``; ``null`` turns the dashboard off (docs/scaling.md)."""
    host: str = "127.0.0.1"
    """The interface the scheduler and the workers listen on (loopback: nothing is exposed)."""

    def __post_init__(self) -> None:
        check_range(self, "n_workers", 1, 1024)
        check_range(self, "threads_per_worker", 1, 256)
        check_memory(self, "memory_limit", allow_auto=True)


@dataclass(frozen=True)
class SlurmClusterConfig:
    queue: str | None = None
    account: str | None = None
    cores: int = 8
    processes: int = 8
    memory: str = "32GiB"
    walltime: str = "04:00:00"
    jobs: int = 1
    job_extra_directives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range(self, "cores", 1)
        check_range(self, "processes", 1)
        check_range(self, "jobs", 1)
        check_memory(self, "memory")


@dataclass(frozen=True)
class KubernetesClusterConfig:
    image: str = "avforge:latest"
    n_workers: int = 4
    cpu: str = "2"
    memory: str = "8Gi"
    namespace: str | None = None

    def __post_init__(self) -> None:
        check_range(self, "n_workers", 1)


@dataclass(frozen=True)
class ClusterConfig:
    """The cluster shape (see the module docstring)."""

    type: ClusterType = ClusterType.LOCAL
    local: LocalClusterConfig = field(default_factory=LocalClusterConfig)
    address: str | None = None
    """Scheduler address for ``type: address`` (e.g. tcp://127.0.0.1:8786)."""
    slurm: SlurmClusterConfig = field(default_factory=SlurmClusterConfig)
    kubernetes: KubernetesClusterConfig = field(default_factory=KubernetesClusterConfig)

    def __post_init__(self) -> None:
        if self.type == ClusterType.ADDRESS and not self.address:
            raise ConfigError(
                "type 'address' needs an address (e.g. tcp://127.0.0.1:8786)", "address"
            )


def load_cluster_config(path: str | Path | None) -> ClusterConfig:
    """Read ``dask_cluster.yaml`` (``None``: a local cluster with the defaults)."""
    return load_config(ClusterConfig, path)


def _optional_import(module: str, extra: str) -> object:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"cluster type '{extra}' needs the {module} package: pip install 'avforge[{extra}]'",
            "type",
        ) from None


def dask_setup(worker: object) -> None:
    """Worker preload of the local cluster (run in each worker process's main thread, restarted
    workers included): ignore SIGINT, which a terminal's Ctrl-C sends to the whole process group.
    The calling process turns Ctrl-C into a stopped run and closes the cluster, cancelling the
    tasks it will not wait for: that is expected, so the worker's warning about it is dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker.state_machine").addFilter(_drop_cancelled)


def _drop_cancelled(record: logging.LogRecord) -> bool:
    return "ended with CancelledError" not in record.getMessage()


@contextlib.contextmanager
def open_client(cfg: ClusterConfig, local_directory: str | None = None) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` for ``cfg`` (``None`` for ``synchronous``); closes what it started.

    ``local_directory``: where a local cluster's workers spill and keep scratch files (default: Dask's,
    under the system temporary folder)."""
    if cfg.type == ClusterType.SYNCHRONOUS:
        yield None
        return
    from distributed import Client, LocalCluster

    if cfg.type == ClusterType.ADDRESS:
        with Client(cfg.address, timeout="30s") as client:
            yield client
        return
    if cfg.type == ClusterType.LOCAL:
        lc = cfg.local
        cluster = LocalCluster(
            n_workers=lc.n_workers,
            threads_per_worker=lc.threads_per_worker,
            memory_limit=lc.memory_limit,
            processes=True,
            host=lc.host,
            dashboard_address=lc.dashboard_address,
            local_directory=local_directory,
            preload=["avforge.core.cluster"],
            # without a dashboard the scheduler still serves its health routes: on a free port
            # of ``host`` (distributed's default is the fixed port 8787)
            scheduler_kwargs=(
                {"dashboard_address": f"{lc.host}:0"} if lc.dashboard_address is None else None
            ),
        )
    elif cfg.type == ClusterType.SLURM:
        jobqueue = _optional_import("dask_jobqueue", "slurm")
        s = cfg.slurm
        cluster = jobqueue.SLURMCluster(  # type: ignore[attr-defined]
            queue=s.queue,
            account=s.account,
            cores=s.cores,
            processes=s.processes,
            memory=s.memory,
            walltime=s.walltime,
            job_extra_directives=list(s.job_extra_directives),
        )
        cluster.scale(jobs=s.jobs)
    else:
        k8s = _optional_import("dask_kubernetes.operator", "kubernetes")
        k = cfg.kubernetes
        cluster = k8s.KubeCluster(  # type: ignore[attr-defined]
            name="avforge",
            image=k.image,
            n_workers=k.n_workers,
            resources={"requests": {"cpu": k.cpu, "memory": k.memory}},
            namespace=k.namespace,
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
