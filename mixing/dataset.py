"""Datasets of rendered mixtures: an endless training stream and a frozen evaluation set.

:class:`MixtureStream` (``IterableDataset``) renders recipe ``g`` of the current epoch for
``g = 0, 1, 2, ...`` forever; recipes come from :class:`mixing.sampler.RecipeSampler`, so item ``g``
is the same whoever renders it. Iterate it through :class:`MixtureLoader` (a ``DataLoader``), which
shards it without duplicates or losses and makes it resumable:

- DDP: rank ``r`` of ``R`` takes global items ``g = i·R + r`` for its local items ``i = 0, 1, ...``;
- workers: local batch ``k`` (items ``k·B .. k·B + B - 1``) is rendered by worker ``k mod W``,
  which is exactly the worker the ``DataLoader`` asks for batch ``k`` (in-order delivery), so the
  batches reach the training loop in local order;
- resume: the loader counts the batches it handed out (``consumed_batches``); ``state_dict`` /
  ``load_state_dict`` save and restore that count (Lightning does so through the loader's
  checkpoint state), and the next iteration starts at exactly the next batch. With
  ``batches_per_pass`` set the loader has a length (one Lightning epoch), Lightning then does not
  prefetch, so the count is exactly what was trained on; each new pass continues the stream.
  Resuming needs the same world size and batch size (checked).

:class:`MixtureSet` is the map-style twin over a fixed list of recipes (a frozen evaluation set from
:func:`freeze_recipes`, ``avforge mix freeze``); rendering is deterministic, so only recipes are stored.

Items are dicts of tensors: ``mixture`` (T,), ``images`` and ``targets`` (n, T), ``noise`` (T,),
``face_mask`` (n, V) bool, ``face_crops`` (n, V, H, W, 3) uint8, ``face_embeddings`` (n, V, D) and
``lip_features`` (n, V, D_lip) when configured, ``index`` and ``epoch`` (int64). See
:mod:`mixing.render` for their meaning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from avforge.core.config import write_resolved_config
from manifests import read_mixtures, write_records
from manifests.io import join
from manifests.schema import MixtureSpec, table_to_records
from mixing.config import FaceStream, MixingConfig, RenderConfig
from mixing.draw import render_item, render_items
from mixing.render import MixtureRenderer, RenderedMixture
from mixing.sampler import RecipeSampler

FREEZE_BATCH = 64
"""Recipes ``freeze_recipes`` renders at once."""


def to_item(rendered: RenderedMixture) -> dict[str, torch.Tensor]:
    """A rendered mixture as a dict of tensors (see the module docstring)."""
    item = {
        "mixture": torch.from_numpy(rendered.mixture),
        "images": torch.from_numpy(rendered.images),
        "targets": torch.from_numpy(rendered.targets),
        "noise": torch.from_numpy(rendered.noise),
        "face_mask": torch.from_numpy(rendered.face_mask),
        "index": torch.tensor(rendered.spec.index, dtype=torch.int64),
        "epoch": torch.tensor(rendered.spec.epoch, dtype=torch.int64),
    }
    if rendered.face_crops is not None:
        item["face_crops"] = torch.from_numpy(rendered.face_crops)
    if rendered.face_embeddings is not None:
        item["face_embeddings"] = torch.from_numpy(rendered.face_embeddings)
    if rendered.lip_features is not None:
        item["lip_features"] = torch.from_numpy(rendered.lip_features)
    return item


def distributed_layout() -> tuple[int, int]:
    """(world size, rank) of the initialised default process group, else (1, 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class MixtureStream(IterableDataset):
    """Endless on-the-fly mixtures from ``corpus`` drawn by ``config`` (see the module docstring)."""

    def __init__(self, corpus: str, config: MixingConfig, *, epoch: int = 0) -> None:
        super().__init__()
        self.config = config
        self.sampler = RecipeSampler.from_corpus(str(corpus), config)
        self.renderer = MixtureRenderer(str(corpus), config.render)
        self.epoch = epoch
        self.consumed_batches = 0
        self.batch_size = 1
        self.batches_per_pass: int | None = None
        self.world_size, self.rank = 1, 0
        self.pass_start = 0

    def item(self, index: int) -> dict[str, torch.Tensor]:
        """Global item ``index`` of the current epoch, rendered."""
        return to_item(render_item(self.renderer, self.sampler, epoch=self.epoch, index=index))

    def global_index(self, local_index: int) -> int:
        """Global item of this rank's ``local_index``-th item."""
        return local_index * self.world_size + self.rank

    def worker_batches(self, worker_id: int, num_workers: int) -> Iterator[int]:
        """Local batch numbers worker ``worker_id`` renders in this pass, in order."""
        k = self.pass_start + worker_id
        end = None if self.batches_per_pass is None else self.pass_start + self.batches_per_pass
        while end is None or k < end:
            yield k
            k += num_workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        draws = [(self.renderer, self.sampler)] * self.batch_size
        for k in self.worker_batches(worker_id, num_workers):
            indices = [self.global_index(k * self.batch_size + j) for j in range(self.batch_size)]
            # one batch rendered at once (the same items as self.item, fewer numpy calls)
            for rendered in render_items(draws, epoch=self.epoch, indices=indices).items:
                yield to_item(rendered)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first item (new seeds: (seed, epoch, index))."""
        self.epoch = epoch
        self.consumed_batches = 0

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: epoch and batches consumed, plus the layout they assume."""
        return {
            "epoch": self.epoch,
            "consumed_batches": self.consumed_batches,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.config.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (same seed, batch size and world size required)."""
        for key, now in (("seed", self.config.seed), ("batch_size", self.batch_size)):
            if state[key] != now:
                raise ValueError(
                    f"cannot resume the mixture stream: {key} was {state[key]}, is {now}"
                )
        world, _ = distributed_layout()
        if state["world_size"] != world:
            raise ValueError(
                f"cannot resume the mixture stream: world size was {state['world_size']}, is {world}"
            )
        self.epoch = int(state["epoch"])
        self.consumed_batches = int(state["consumed_batches"])


class MixtureLoader(DataLoader):
    """A ``DataLoader`` over a :class:`MixtureStream` that shards, counts and resumes it.

    ``batches_per_pass``: batches per ``iter()`` (one Lightning epoch); None iterates forever.
    ``persistent_workers`` is not supported (each pass hands the workers its start position).

    Example::

        loader = MixtureLoader(MixtureStream("corpus/", cfg), batch_size=8, num_workers=2, batches_per_pass=1000)
        state = loader.state_dict()     # later: loader.load_state_dict(state) continues exactly
    """

    def __init__(
        self,
        dataset: MixtureStream,
        *,
        batch_size: int = 1,
        num_workers: int = 0,
        batches_per_pass: int | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("MixtureLoader does not support persistent_workers")
        if batches_per_pass is not None and batches_per_pass < 1:
            raise ValueError(f"batches_per_pass must be >= 1, got {batches_per_pass}")
        dataset.batch_size = batch_size
        dataset.batches_per_pass = batches_per_pass
        self.batches_per_pass = batches_per_pass
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, **kwargs)

    def __len__(self) -> int:
        if self.batches_per_pass is None:
            raise TypeError("an endless MixtureLoader has no length (set batches_per_pass)")
        return self.batches_per_pass

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        stream: MixtureStream = self.dataset  # type: ignore[assignment]
        stream.world_size, stream.rank = distributed_layout()
        stream.pass_start = stream.consumed_batches
        for batch in super().__iter__():
            stream.consumed_batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state_dict)  # type: ignore[attr-defined]


class MixtureSet(Dataset):
    """Map-style dataset over fixed recipes (validation / test); item ``i`` renders ``specs[i]``."""

    def __init__(
        self, corpus: str, specs: Sequence[MixtureSpec], render: RenderConfig | None = None
    ) -> None:
        self.specs = list(specs)
        self.renderer = MixtureRenderer(str(corpus), render)
        for spec in self.specs:
            self.renderer.check_spec(spec)

    @classmethod
    def from_frozen(
        cls, corpus: str, recipes_dir: str, render: RenderConfig | None = None
    ) -> MixtureSet:
        """The recipes frozen in ``recipes_dir`` (its ``mixtures`` manifest), rendered from ``corpus``."""
        return cls(corpus, table_to_records(read_mixtures(str(recipes_dir)), MixtureSpec), render)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return to_item(self.renderer(self.specs[i]))


def freeze_recipes(
    corpus: str,
    out: str,
    config: MixingConfig,
    count: int,
    *,
    epoch: int = 0,
    shard: str = "mixtures-00000",
) -> list[MixtureSpec]:
    """Draw recipes ``0 .. count - 1`` of ``epoch`` and write them to ``out/mixtures/<shard>.arrow``,
    with the resolved config in ``out/config/mix_freeze.yaml``; returns them. Every recipe is rendered
    once (audio only) before anything is written, so the set holds only renderable recipes (a silent
    draw is replaced as in training, see :func:`mixing.draw.render_item`).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    sampler = RecipeSampler.from_corpus(str(corpus), config)
    renderer = MixtureRenderer(str(corpus), replace(config.render, face_stream=FaceStream.NONE))
    specs = []
    for first in range(0, count, FREEZE_BATCH):
        indices = range(first, min(first + FREEZE_BATCH, count))
        rendered = render_items([(renderer, sampler)] * len(indices), epoch=epoch, indices=indices)
        specs += [item.spec for item in rendered.items]
    write_records(str(out), "mixtures", shard, specs)
    write_resolved_config(config, join(str(out), "config", "mix_freeze.yaml"))
    return specs
