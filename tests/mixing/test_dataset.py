"""The training stream (sharding across workers and DDP ranks, resume) and the frozen evaluation set."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from manifests.schema import MixTask
from mixing.config import FaceStream, RenderConfig, preset_config
from mixing.dataset import MixtureLoader, MixtureSet, MixtureStream, freeze_recipes

# tiny items: 0.4 s, audio only
TINY = preset_config(
    MixTask.TWO_SPEAKERS_NOISE,
    duration_s=0.4,
    seed=9,
    render=RenderConfig(face_stream=FaceStream.NONE),
)


def _indices(batches):
    return [int(i) for b in batches for i in b["index"]]


def _take(loader, n_batches):
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n_batches:
            break
    return out


def test_two_workers_deliver_the_stream_in_order_and_resume_exactly(corpus):
    stream = MixtureStream(str(corpus), TINY)
    loader = MixtureLoader(stream, batch_size=3, num_workers=2)
    first = _take(loader, 5)
    assert _indices(first) == list(range(15))
    state = loader.state_dict()
    assert state["consumed_batches"] == 5

    resumed = MixtureLoader(MixtureStream(str(corpus), TINY), batch_size=3, num_workers=2)
    resumed.load_state_dict(state)
    rest = _take(resumed, 4)
    assert _indices(rest) == list(range(15, 27))
    # identical content to rendering the item directly
    direct = stream.item(16)
    torch.testing.assert_close(rest[0]["mixture"][1], direct["mixture"], rtol=0, atol=0)


def test_passes_have_a_length_and_continue_the_stream(corpus):
    loader = MixtureLoader(
        MixtureStream(str(corpus), TINY), batch_size=2, num_workers=2, batches_per_pass=3
    )
    assert len(loader) == 3
    assert _indices(list(loader)) == list(range(6))
    assert _indices(list(loader)) == list(range(6, 12))


def test_resume_rejects_a_different_layout(corpus):
    state = MixtureLoader(MixtureStream(str(corpus), TINY), batch_size=2).state_dict()
    other = MixtureLoader(MixtureStream(str(corpus), TINY), batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(state)


def test_set_epoch_changes_seeds_not_indices(corpus):
    stream = MixtureStream(str(corpus), TINY)
    a = stream.item(0)
    stream.set_epoch(1)
    b = stream.item(0)
    assert int(b["epoch"]) == 1 and not torch.equal(a["mixture"], b["mixture"])


def test_frozen_set_renders_the_same_items(corpus, tmp_path):
    cfg = TINY.with_overrides(render=RenderConfig(face_stream=FaceStream.CROPS))
    specs = freeze_recipes(str(corpus), str(tmp_path / "eval"), cfg, 6)
    assert (tmp_path / "eval" / "config" / "mix_freeze.yaml").exists()
    frozen = MixtureSet.from_frozen(str(corpus), str(tmp_path / "eval"), cfg.render)
    assert len(frozen) == 6 and [s.index for s in frozen.specs] == [s.index for s in specs]
    stream = MixtureStream(str(corpus), cfg)
    for i in (0, 5):
        torch.testing.assert_close(frozen[i]["mixture"], stream.item(i)["mixture"], rtol=0, atol=0)
        assert frozen[i]["face_crops"].shape == (2, 10, 32, 32, 3)
    batch = next(iter(torch.utils.data.DataLoader(frozen, batch_size=3)))
    assert batch["targets"].shape == (3, 2, 6400)


# ----------------------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_loader(corpus: str) -> MixtureLoader:
    # a spawned rank inherits the "spawn" start method; fork its DataLoader workers as torchrun would
    stream = MixtureStream(corpus, TINY)
    return MixtureLoader(stream, batch_size=2, num_workers=2, multiprocessing_context="fork")


def _ddp_worker(rank: int, world: int, port: int, corpus: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        loader = _ddp_loader(corpus)
        first = _indices(_take(loader, 3))
        state = loader.state_dict()
        resumed = _ddp_loader(corpus)
        resumed.load_state_dict(state)
        second = _indices(_take(resumed, 3))
        straight = _indices(_take(_ddp_loader(corpus), 6))
        gathered: list[object] = [None] * world
        torch.distributed.all_gather_object(gathered, (first, second, straight))
        if rank == 0:
            torch.save(gathered, out)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_ranks_two_workers_cover_the_stream_once_and_resume(corpus, tmp_path):
    out = str(tmp_path / "seen.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(corpus), out), nprocs=2, join=True)
    seen = torch.load(out)
    per_rank_first = [s[0] for s in seen]
    union = sorted(i for r in per_rank_first for i in r)
    assert union == list(range(12))  # 2 ranks x 3 batches x 2 items: every item once
    for first, second, straight in seen:
        assert first + second == straight  # the resumed loader continues exactly
    everything = [i for s in seen for i in s[0] + s[1]]
    assert sorted(everything) == list(range(24))


# ------------------------------------------------------------------------------------ Lightning


class _Recorder:
    """A tiny LightningModule that records the item indices of every training batch."""

    @staticmethod
    def build():
        import lightning

        class Module(lightning.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(1, 1)
                self.seen: list[int] = []

            def training_step(self, batch, batch_idx):
                self.seen += [int(i) for i in batch["index"]]
                return self.layer(batch["mixture"].mean(dim=1, keepdim=True)).pow(2).mean()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        return Module()


def _fit(corpus, root, max_steps, ckpt=None):
    import lightning

    module = _Recorder.build()
    loader = MixtureLoader(MixtureStream(str(corpus), TINY), batch_size=2, batches_per_pass=4)
    trainer = lightning.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt)
    return trainer, module.seen


def test_lightning_checkpoint_resumes_the_identical_stream(corpus, tmp_path):
    _, straight = _fit(corpus, tmp_path / "a", 7)
    assert straight == list(range(14))
    trainer, head = _fit(corpus, tmp_path / "b", 3)
    ckpt = str(tmp_path / "b" / "mid.ckpt")
    trainer.save_checkpoint(ckpt)
    _, tail = _fit(corpus, tmp_path / "c", 7, ckpt=ckpt)
    assert head + tail == straight
