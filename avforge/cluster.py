"""Where Dask work runs: the cluster shape from ``dask_cluster.yaml``, and a client for it.

``dask_cluster.yaml`` holds the cluster shape only (never pipeline parameters)::

    type: local            # local | address | slurm | kubernetes | synchronous
    local: {n_workers: 2, threads_per_worker: 1, memory_limit: 4GiB}
    address: tcp://127.0.0.1:8786
    slurm: {queue: gpu, cores: 8, memory: 32GiB, walltime: "04:00:00", jobs: 10}
    kubernetes: {image: ghcr.io/org/avforge:latest, n_workers: 10, ...}

``synchronous`` runs everything in the calling process (debugging, tests, profiling).
dask-jobqueue and dask-kubernetes are imported only when their type is chosen, so they stay optional.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from avforge.config import ConfigError, check_range, load_config


class ClusterType(enum.StrEnum):
    LOCAL = "local"
    ADDRESS = "address"
    SLURM = "slurm"
    KUBERNETES = "kubernetes"
    SYNCHRONOUS = "synchronous"


@dataclass(frozen=True)
class LocalClusterConfig:
    n_workers: int = 2
    """Worker processes (one source at a time each, with threads_per_worker=1)."""
    threads_per_worker: int = 1
    memory_limit: str = "4GiB"
    """Per worker; a worker over it is restarted by the nanny and its sources retried."""
    dashboard_address: str = ":0"
    """Where the scheduler's dashboard listens; ':0' picks a free port (distributed always starts
    one when bokeh is present, and a fixed default port collides between concurrent runs)."""

    def __post_init__(self) -> None:
        check_range(self, "n_workers", 1, 1024)
        check_range(self, "threads_per_worker", 1, 256)


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


@contextlib.contextmanager
def open_client(cfg: ClusterConfig) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` for ``cfg`` (``None`` for ``synchronous``); closes what it started."""
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
            dashboard_address=lc.dashboard_address,
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
