"""Noise registration (folder, URL list over loopback HTTP) and the simulated RIR bank."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import numpy as np
import pyroomacoustics as pra
import pytest
import soundfile

import manifests
from avforge.core.cluster import ClusterConfig, ClusterType, LocalClusterConfig
from avforge.core.ids import hash_split
from avforge.testing.corpus import ASSETS
from manifests.schema import NoiseKind, Split
from mixing.noises import NOISE_SPLIT_SALT, NoiseConfig, add_noises, noise_id_of, split_of
from mixing.rirs import RirConfig, build_rirs, early_rir, simulate_room


@pytest.fixture
def noise_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "music").mkdir(parents=True)
    bike, rate = soundfile.read(ASSETS / "exercise_bike.wav", dtype="float32")
    stereo = np.stack([bike[: 3 * rate], bike[rate : 4 * rate]], axis=1)
    from scipy.signal import resample_poly

    soundfile.write(folder / "bike_44k.wav", resample_poly(stereo, 441, 160, axis=0), 44100)
    guitar, _ = soundfile.read(ASSETS / "guitar_16k.wav", dtype="float32")
    soundfile.write(folder / "music" / "guitar.flac", guitar[: 2 * rate], rate)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    return folder


def test_folder_of_noises_is_resampled_kinded_and_split_by_recording(noise_folder, tmp_path):
    out = tmp_path / "corpus"
    result = add_noises(
        str(noise_folder), str(out), NoiseConfig(val_fraction=0.3, test_fraction=0.3)
    )
    assert [f.origin.endswith("broken.wav") for f in result.failures] == [True]
    table = manifests.read_noises(str(out))
    rows = {r["origin"].split("/")[-1]: r for r in table.to_pylist()}
    assert set(rows) == {"bike_44k.wav", "guitar.flac"}
    assert rows["bike_44k.wav"]["sample_rate_hz"] == 16000
    assert rows["bike_44k.wav"]["num_samples"] == pytest.approx(48000, abs=2)
    assert rows["guitar.flac"]["kind"] == "music" and rows["bike_44k.wav"]["kind"] == "noise"
    for row in rows.values():
        assert row["split"] == split_of(row["noise_id"], val_fraction=0.3, test_fraction=0.3).value
    # the stored audio is the resampled recording (a 3 s bike noise, not silence)
    reader = manifests.MediaReader()
    rec = result.records[0]
    audio = reader.audio(str(out / "media" / rec.media_shard), rec.media_row)
    assert audio.shape == (rec.num_samples,) and np.sqrt(np.mean(audio**2)) > 1e-3
    again = add_noises(
        str(noise_folder), str(out), NoiseConfig(val_fraction=0.3, test_fraction=0.3)
    )
    assert again.records == [] and again.failures == result.failures  # nothing written again
    assert [(k.noise_id, k.split) for k in again.known] == [
        (r.noise_id, r.split) for r in result.records
    ]
    assert manifests.read_noises(str(out)).num_rows == 2


@pytest.mark.parametrize(
    ("noise_id", "val_fraction", "test_fraction", "expected"),
    [
        # u = split_fraction(noise_id, "noise"); test is [0, test_fraction), val the next val_fraction
        ("x-bc3bae0a", 0.1, 0.1, Split.TEST),  # u = 0.0104
        ("z-674c6832", 0.1, 0.1, Split.VAL),  # u = 0.1188
        ("z-674c6832", 0.3, 0.3, Split.TEST),
        ("exercise-bike-b6b3bf1a", 0.1, 0.1, Split.VAL),  # u = 0.1903
        ("exercise-bike-b6b3bf1a", 0.3, 0.3, Split.TEST),
        ("street-edd1db35", 0.3, 0.3, Split.TEST),  # u = 0.2122
        ("guitar-16k-e33379f2", 0.3, 0.3, Split.TRAIN),  # u = 0.8074
        ("party-532c1e5b", 0.1, 0.1, Split.TRAIN),  # u = 0.8638 (val under the old unsalted rule)
        ("x-bc3bae0a", 0.0, 0.0, Split.TRAIN),
    ],
)
def test_noise_split_is_the_salted_curation_rule(noise_id, val_fraction, test_fraction, expected):
    split = split_of(noise_id, val_fraction=val_fraction, test_fraction=test_fraction)
    assert split == expected
    assert split == hash_split(
        noise_id, val_ratio=val_fraction, test_ratio=test_fraction, salt=NOISE_SPLIT_SALT
    )


def test_noise_id_is_the_file_name_and_a_hash_of_its_bytes():
    data = b"some encoded audio"
    digest = hashlib.sha1(data).hexdigest()[:8]
    assert noise_id_of("/a/b/Exercise Bike.wav", data) == f"exercise-bike-{digest}"
    assert noise_id_of("https://host/x/exercise_bike.wav?dl=1", data).endswith(digest)
    assert noise_id_of("/a/b/exercise_bike.wav", data + b"!") != f"exercise-bike-{digest}"


def test_the_same_recording_gets_one_id_and_split_wherever_it_lives(noise_folder, tmp_path):
    """The id used to hash the path, so the bundled noises landed in other splits on another
    checkout (CI's demo found no train noise). Now a copy elsewhere gets the same id and split, and
    a second copy in the same call is reported, not registered twice."""
    copy = tmp_path / "elsewhere" / "deeper"
    copy.mkdir(parents=True)
    (copy / "bike_44k.wav").write_bytes((noise_folder / "bike_44k.wav").read_bytes())
    config = NoiseConfig(val_fraction=0.3, test_fraction=0.3)
    first = add_noises([str(noise_folder / "bike_44k.wav")], str(tmp_path / "a"), config)
    second = add_noises([str(copy / "bike_44k.wav")], str(tmp_path / "b"), config)
    assert [(r.noise_id, r.split) for r in first.records] == [
        (r.noise_id, r.split) for r in second.records
    ]
    both = add_noises(
        [str(noise_folder / "bike_44k.wav"), str(copy / "bike_44k.wav")],
        str(tmp_path / "c"),
        config,
    )
    assert [r.origin for r in both.records] == [str(noise_folder / "bike_44k.wav")]
    assert [f.reason for f in both.failures] == [
        f"the same recording as {noise_folder / 'bike_44k.wav'}"
    ]


def test_a_recording_registered_again_keeps_its_one_row(noise_folder, tmp_path):
    """Registering an overlapping set used to give a known recording a second row: in whatever split
    the hash (or ``--split``) said then, a leak across splits, and in any case a second weight in the
    sampler. Its first row stands, alone; only the new recording is written."""
    out = tmp_path / "corpus"
    bike = str(noise_folder / "bike_44k.wav")
    guitar = str(noise_folder / "music" / "guitar.flac")
    add_noises([bike], str(out), split=Split.TEST)
    again = add_noises([bike, guitar], str(out), split=Split.TRAIN)
    assert [(k.origin, k.split) for k in again.known] == [(bike, Split.TEST)]
    assert [r.origin for r in again.records] == [guitar]
    rows = manifests.read_noises(str(out)).to_pylist()
    splits = sorted((r["origin"].split("/")[-1], r["split"]) for r in rows)
    assert splits == [("bike_44k.wav", "test"), ("guitar.flac", "train")]


def test_url_list_over_loopback_http(noise_folder, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(noise_folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = tmp_path / "urls.txt"
        urls.write_text(f"# noises\n{base}/bike_44k.wav\n{base}/missing.wav\n")
        result = add_noises(str(urls), str(tmp_path / "c"), split=Split.TEST, kind=NoiseKind.BABBLE)
    finally:
        server.shutdown()
    assert [r.split for r in result.records] == [Split.TEST]
    assert [r.kind for r in result.records] == [NoiseKind.BABBLE]
    assert len(result.failures) == 1 and "missing.wav" in result.failures[0].origin


def test_early_rir_keeps_direct_path_and_fades():
    rir = np.ones(1000)
    early = early_rir(rir, direct=100, early_samples=50, fade_samples=20)
    assert np.all(early[:150] == 1) and np.all(early[170:] == 0) and 0 < early[160] < 1


def test_simulated_room_matches_its_rt60_and_geometry():
    cfg = RirConfig(rt60_s=(0.3, 0.3), sources_per_room=2, seed=4)
    room = simulate_room(cfg, 0)
    again = simulate_room(cfg, 0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(room.rirs, again.rirs, strict=True))
    for k, (full, early, direct) in enumerate(room.rirs):
        assert pra.experimental.measure_rt60(full, fs=16000, decay_db=20) == pytest.approx(
            0.3, abs=0.1
        )
        assert np.linalg.norm(early) == pytest.approx(1.0, rel=1e-4)
        distance_m = float(np.linalg.norm(np.subtract(room.sources_m[k], room.mic_m)))
        # direct path: propagation delay plus pyroomacoustics' 40-sample fractional-delay lead
        assert direct == pytest.approx(distance_m / pra.constants.get("c") * 16000 + 40, abs=2)
        assert np.abs(full[direct + 1200 :]).sum() > 0 and not early[direct + 1000 :].any()


def test_bank_on_a_local_dask_cluster_equals_the_serial_bank(tmp_path):
    cfg = RirConfig(n_rooms=3, sources_per_room=2, rooms_per_shard=1, rt60_s=(0.15, 0.25), seed=8)
    serial, parallel = str(tmp_path / "serial"), str(tmp_path / "parallel")
    assert build_rirs(serial, cfg, ClusterConfig(type=ClusterType.SYNCHRONOUS)) == 6
    local = ClusterConfig(
        type=ClusterType.LOCAL,
        local=LocalClusterConfig(n_workers=1, threads_per_worker=2, memory_limit="1GiB"),
    )
    assert build_rirs(parallel, cfg, local) == 6
    a, b = manifests.read_rirs(serial), manifests.read_rirs(parallel)
    assert a.equals(b) and a.num_rows == 6
    reader = manifests.MediaReader()
    for row in a.to_pylist():
        for k in (0, 1):
            np.testing.assert_array_equal(
                reader.audio(f"{serial}/media/{row['media_shard']}", row["media_row"] + k),
                reader.audio(f"{parallel}/media/{row['media_shard']}", row["media_row"] + k),
            )
    assert (
        build_rirs(serial, cfg, ClusterConfig(type=ClusterType.SYNCHRONOUS)) == 0
    )  # all shards done
