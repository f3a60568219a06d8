"""RIR bank: simulated room impulse responses for reverberant mixtures (``avforge rirs build``).

Each room is a pyroomacoustics ``ShoeBox`` (image-source method) with its size and RT60 drawn from
:class:`RirConfig` ranges (defaults: 3-10 m x 3-10 m x 2.5-4 m, RT60 0.2-0.8 s), one microphone and
``sources_per_room`` source positions (0.5 m from the walls, 1.2-1.9 m high, at least
``min_source_distance_m`` from the microphone). Wall absorption and reflection order come from
Sabine's formula (``pyroomacoustics.inverse_sabine``); a size/RT60 pair it cannot realise is redrawn.

For every (room, source position) the bank stores two float32 rows in a media shard:

- row ``media_row``: the full RIR (truncated to ``max_rir_s``);
- row ``media_row + 1``: the *early* RIR, the direct path plus the reflections arriving within
  ``early_s`` (50 ms) after it, faded out over 5 ms. Renderers use it for the target of a
  reverberant speaker (the dereverberated signal a model should recover, aligned with the mixture).

Both are divided by the early RIR's L2 norm, so a target keeps about its dry level. RIR ``direct_delay_samples``
is the direct-path peak (the propagation delay plus pyroomacoustics' 40-sample fractional-delay lead).

Distribution: rooms are grouped into shards of ``rooms_per_shard``; one Dask task per shard simulates
its rooms and writes ``media/rirs-<k>.arrow`` then ``rirs/rirs-<k>.arrow`` atomically. A shard whose
manifest exists is skipped, so a rerun finishes only what is missing. Every room's randomness derives
from (seed, room index): the bank does not depend on the cluster shape. A room's split comes from a
hash of its id (RIRs of one room are never in two splits).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from avforge.core.cluster import ClusterConfig, open_client
from avforge.core.config import ConfigError, check_range
from avforge.core.ids import hash_split
from manifests.io import exists, shard_path, write_records
from manifests.media import MediaRecord, write_media_shard
from manifests.schema import RirRecord, SampleFormat
from mixing.functional import check_rir


@dataclass(frozen=True)
class RirConfig:
    """The RIR bank: how many rooms, and the ranges their parameters are drawn from."""

    n_rooms: int = 200
    sources_per_room: int = 4
    rooms_per_shard: int = 20
    sample_rate_hz: int = 16000
    room_x_m: tuple[float, float] = (3.0, 10.0)
    room_y_m: tuple[float, float] = (3.0, 10.0)
    room_z_m: tuple[float, float] = (2.5, 4.0)
    rt60_s: tuple[float, float] = (0.2, 0.8)
    wall_margin_m: float = 0.5
    min_source_distance_m: float = 0.75
    early_s: float = 0.05
    """Early reflections kept in the target RIR, after the direct path."""
    max_rir_s: float = 1.5
    max_order_cap: int = 30
    """Upper bound on the image-source order (cost grows with its cube)."""
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "n_rooms", 1)
        check_range(self, "sources_per_room", 1, 64)
        check_range(self, "rooms_per_shard", 1)
        check_range(self, "sample_rate_hz", 8000, 48000)
        for name, low in (
            ("room_x_m", 2.0),
            ("room_y_m", 2.0),
            ("room_z_m", 2.0),
            ("rt60_s", 0.05),
        ):
            pair = getattr(self, name)
            if len(pair) != 2 or not low <= pair[0] <= pair[1]:
                raise ConfigError(
                    f"must be [min, max] with {low} <= min <= max, got {list(pair)}", name
                )
        check_range(self, "wall_margin_m", 0.1, 0.9)
        check_range(self, "min_source_distance_m", 0.1, 5.0)
        check_range(self, "early_s", 0.0, 0.5)
        check_range(self, "max_rir_s", 0.05, 10.0)
        check_range(self, "max_order_cap", 1, 100)
        check_range(self, "val_fraction", 0.0, 1.0)
        check_range(self, "test_fraction", 0.0, 1.0 - self.val_fraction)


@dataclass(frozen=True)
class SimulatedRoom:
    """One simulated room: parameters and, per source position, (full RIR, early RIR, direct delay)."""

    room_id: str
    rt60_s: float
    size_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]
    sources_m: list[tuple[float, float, float]]
    rirs: list[tuple[np.ndarray, np.ndarray, int]]


def early_rir(rir: np.ndarray, *, direct: int, early_samples: int, fade_samples: int) -> np.ndarray:
    """``rir`` up to ``direct + early_samples``, then a half-Hann fade over ``fade_samples``, then zeros."""
    out = np.zeros_like(rir)
    stop = min(rir.shape[0], direct + early_samples)
    out[:stop] = rir[:stop]
    fade_stop = min(rir.shape[0], stop + fade_samples)
    if fade_stop > stop:
        ramp = 0.5 * (1 + np.cos(np.pi * np.arange(1, fade_stop - stop + 1) / (fade_samples + 1)))
        out[stop:fade_stop] = rir[stop:fade_stop] * ramp
    return out


def _position(rng: np.random.Generator, size: np.ndarray, margin: float) -> np.ndarray:
    low = np.array([margin, margin, min(1.2, size[2] - margin)])
    high = np.array([size[0] - margin, size[1] - margin, min(1.9, size[2] - margin)])
    return rng.uniform(low, high)


def simulate_room(config: RirConfig, room_index: int) -> SimulatedRoom:
    """Simulate room ``room_index`` of the bank (deterministic in (config.seed, room_index))."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, room_index]))
    fs = config.sample_rate_hz
    for _ in range(100):
        size = np.array(
            [
                rng.uniform(*config.room_x_m),
                rng.uniform(*config.room_y_m),
                rng.uniform(*config.room_z_m),
            ]
        )
        rt60 = float(rng.uniform(*config.rt60_s))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, size)
        except ValueError:  # this RT60 is too short for this room: draw again
            continue
        break
    else:
        raise ConfigError("no room size / RT60 pair in the ranges is realisable", "rt60_s")
    mic = _position(rng, size, config.wall_margin_m)
    sources = []
    while len(sources) < config.sources_per_room:
        pos = _position(rng, size, config.wall_margin_m)
        if np.linalg.norm(pos - mic) >= config.min_source_distance_m:
            sources.append(pos)
    room = pra.ShoeBox(
        size,
        fs=fs,
        materials=pra.Material(absorption),
        max_order=min(int(max_order), config.max_order_cap),
    )
    room.add_microphone(mic)
    for pos in sources:
        room.add_source(pos)
    room.compute_rir()
    rirs = []
    for k in range(len(sources)):
        full = np.asarray(room.rir[0][k], np.float64)[: round(config.max_rir_s * fs)]
        direct = int(np.argmax(np.abs(full)))
        early = early_rir(
            full,
            direct=direct,
            early_samples=round(config.early_s * fs),
            fade_samples=round(0.005 * fs),
        )
        norm = float(np.linalg.norm(early))
        full32, early32 = (full / norm).astype(np.float32), (early / norm).astype(np.float32)
        check_rir(full32)
        check_rir(early32)
        rirs.append((full32, early32, direct))
    room_id = f"room-{hashlib.sha1(f'{config.seed}:{room_index}'.encode()).hexdigest()[:10]}"
    as_tuple = lambda v: (float(v[0]), float(v[1]), float(v[2]))  # noqa: E731
    return SimulatedRoom(
        room_id, rt60, as_tuple(size), as_tuple(mic), [as_tuple(s) for s in sources], rirs
    )


ROOM_SPLIT_SALT = "room"
"""Salt of the per-room split (:func:`avforge.core.ids.hash_split` on the room id): every RIR of a
room is in that room's split."""


def shard_name(shard_index: int) -> str:
    return f"rirs-{shard_index:05d}"


def build_rir_shard(out: str, config: RirConfig, shard_index: int) -> int:
    """Simulate and write shard ``shard_index`` (skipped when written already); returns its RIR count."""
    name = shard_name(shard_index)
    if exists(shard_path(out, "rirs", name)):
        return -1
    first = shard_index * config.rooms_per_shard
    rooms = [
        simulate_room(config, i)
        for i in range(first, min(config.n_rooms, first + config.rooms_per_shard))
    ]
    media: list[MediaRecord] = []
    records: list[RirRecord] = []
    for room in rooms:
        split = hash_split(
            room.room_id,
            val_ratio=config.val_fraction,
            test_ratio=config.test_fraction,
            salt=ROOM_SPLIT_SALT,
        )
        for k, (full, early, direct) in enumerate(room.rirs):
            rir_id = f"{room.room_id}-s{k}"
            records.append(
                RirRecord(
                    rir_id=rir_id,
                    room_id=room.room_id,
                    rt60_s=room.rt60_s,
                    room_x_m=room.size_m[0],
                    room_y_m=room.size_m[1],
                    room_z_m=room.size_m[2],
                    source_x_m=room.sources_m[k][0],
                    source_y_m=room.sources_m[k][1],
                    source_z_m=room.sources_m[k][2],
                    mic_x_m=room.mic_m[0],
                    mic_y_m=room.mic_m[1],
                    mic_z_m=room.mic_m[2],
                    sample_rate_hz=config.sample_rate_hz,
                    num_samples=int(full.shape[0]),
                    direct_delay_samples=direct,
                    split=split,
                    media_shard=name + ".arrow",
                    media_row=len(media),
                )
            )
            media.append(
                MediaRecord.from_audio(
                    f"{rir_id}/full", full, config.sample_rate_hz, SampleFormat.FLOAT32
                )
            )
            media.append(
                MediaRecord.from_audio(
                    f"{rir_id}/early", early, config.sample_rate_hz, SampleFormat.FLOAT32
                )
            )
    write_media_shard(shard_path(out, "media", name), media)
    write_records(out, "rirs", name, records)  # written last: the shard's "done" marker
    return len(records)


def build_rirs(out: str, config: RirConfig, cluster: ClusterConfig | None = None) -> int:
    """Build the whole bank in ``out`` on the Dask cluster ``cluster`` (default: local); returns the
    number of RIRs written by this call (shards already present are skipped).

    Example::

        build_rirs("corpus/", RirConfig(n_rooms=50), ClusterConfig(type=ClusterType.SYNCHRONOUS))
    """
    out = str(out)
    n_shards = -(-config.n_rooms // config.rooms_per_shard)
    todo = [k for k in range(n_shards) if not exists(shard_path(out, "rirs", shard_name(k)))]
    with open_client(cluster or ClusterConfig()) as client:
        if client is None:
            counts = [build_rir_shard(out, config, k) for k in todo]
        else:
            futures = client.map(
                build_rir_shard, [out] * len(todo), [config] * len(todo), todo, pure=False
            )  # type: ignore[attr-defined]
            counts = client.gather(futures)  # type: ignore[attr-defined]
    return sum(c for c in counts if c > 0)


__all__ = [
    "RirConfig",
    "SimulatedRoom",
    "build_rir_shard",
    "build_rirs",
    "early_rir",
    "simulate_room",
]
