"""Leak-free splits: the real split pass on a corpus of real speech (clips rows + media we write)."""

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation.export import ExportConfig, split_for
from curation.splits import (
    SplitPassConfig,
    find_leaks,
    read_heldout,
    read_split_records,
    run_split_pass,
)
from manifests.io import read_manifest, write_records
from manifests.media import MediaRecord, write_media_shard
from manifests.schema import (
    ClipRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
    table_to_records,
)

AUDIO = Path(__file__).parents[1] / "data" / "audio"
EXPORT = ExportConfig(val_ratio=0.3, test_ratio=0.3)
CFG = SplitPassConfig(export=EXPORT)


def _load(name: str) -> np.ndarray:
    a, _ = sf.read(AUDIO / f"{name}.flac", dtype="float32")
    return a


def add_source(corpus: Path, source_id: str, pieces: list[np.ndarray], voice: bool = True) -> None:
    """One curated source: its clips (real audio), media and sources rows (sources last)."""
    from curation.voice import load_voice_encoder

    clips, media, t = [], [], 0.0
    for row, audio in enumerate(pieces):
        dur = len(audio) / 16000
        cid = f"{source_id}-{round(t * 1000):08d}-{round((t + dur) * 1000):08d}"
        emb = load_voice_encoder().embed(audio) if voice else None
        media.append(MediaRecord(cid, 16000, audio, voice_embedding=emb))
        clips.append(
            ClipRecord(
                clip_id=cid,
                source_id=source_id,
                start_s=t,
                end_s=t + dur,
                duration_s=dur,
                snr_db=None,
                num_frames=int(dur * 25),
                sample_rate_hz=16000,
                num_samples=len(audio),
                split=split_for(source_id, EXPORT),
                media_shard=f"{source_id}.arrow",
                media_row=row,
                has_crops=False,
            )
        )
        t += dur + 1.0
    write_media_shard(str(corpus / "media" / f"{source_id}.arrow"), media)
    write_records(str(corpus), "clips", source_id, clips)
    write_records(
        str(corpus),
        "sources",
        source_id,
        [
            SourceRecord(
                source_id=source_id,
                url=f"/talks/{source_id}.mp4",
                kind=SourceKind.LOCAL,
                status=SourceStatus.OK,
            )
        ],
    )


def clip_splits(corpus: Path) -> dict[str, tuple[str, str]]:
    rows = table_to_records(read_manifest(str(corpus), "clips"), ClipRecord)
    return {c.clip_id: (c.source_id, Split(c.split)) for c in rows}


@pytest.fixture(scope="module")
def speech():
    a = _load("8629-261139-0000")  # speaker A, 7.4 s: three sources of A
    n = len(a) // 3
    return {
        "a": [a[:n], a[n : 2 * n], a[2 * n :]],
        "b": _load("1363-135842-0000"),
        "c": _load("1624-142933-0000"),
        "d": _load("5339-14133-0000"),
    }


def test_speaker_in_several_sources_ends_in_one_split_and_growth_is_stable(tmp_path, speech):
    corpus = tmp_path / "corpus"
    # Precondition: the per-source rule alone would put speaker A's sources in different splits.
    assert split_for("talk-a1", EXPORT) != split_for("talk-a3", EXPORT)
    add_source(corpus, "talk-a1", [speech["a"][0]])
    add_source(corpus, "talk-a3", [speech["a"][1]])
    add_source(corpus, "talk-b", [speech["b"]])
    check = run_split_pass(str(corpus), cfg=CFG, write=False)
    assert not check.written and not check.leaks.ok  # the per-source split leaks speaker A
    assert read_split_records(str(corpus)) == []

    first = run_split_pass(str(corpus), cfg=CFG)
    assert first.leaks.ok and first.new_clips == 3
    splits = clip_splits(corpus)
    a_splits = {s for sid, s in splits.values() if sid.startswith("talk-a")}
    assert len(a_splits) == 1
    recs = {r.clip_id: r for r in read_split_records(str(corpus))}
    assert set(recs) == set(splits)
    a_recs = [r for r in recs.values() if r.source_id.startswith("talk-a")]
    assert len({r.speaker_id for r in a_recs}) == 1
    assert {r.speaker_id for r in recs.values() if r.source_id == "talk-b"}.isdisjoint(
        {a_recs[0].speaker_id}
    )
    clips = table_to_records(read_manifest(str(corpus), "clips"), ClipRecord)
    assert all(c.speaker_id == recs[c.clip_id].speaker_id for c in clips)

    # Grow: A again in a new source, plus new speakers. Nothing assigned moves.
    add_source(corpus, "talk-a2", [speech["a"][2]])
    add_source(corpus, "talk-c", [speech["c"]])
    add_source(corpus, "talk-d", [speech["d"]])
    second = run_split_pass(str(corpus), cfg=CFG)
    assert second.new_clips == 3 and second.leaks.ok
    after = clip_splits(corpus)
    assert all(after[cid] == splits[cid] for cid in splits)
    assert after[next(c for c in after if c.startswith("talk-a2"))][1] in a_splits
    # A rerun changes nothing.
    run_split_pass(str(corpus), cfg=CFG)
    assert clip_splits(corpus) == after


def test_heldout_ids_never_land_in_train(tmp_path, speech):
    corpus = tmp_path / "corpus"
    add_source(corpus, "talk-a1", [speech["a"][0]])
    add_source(corpus, "talk-a2", [speech["a"][1]])
    add_source(corpus, "talk-b", [speech["b"]])
    cfg = SplitPassConfig(export=ExportConfig(val_ratio=0.0, test_ratio=0.0))  # all train
    run_split_pass(str(corpus), cfg=cfg)
    assert {s for _, s in clip_splits(corpus).values()} == {Split.TRAIN}
    ids = tmp_path / "test_list.txt"
    ids.write_text("# public test list\ntalk-a2\n")
    held = read_heldout(ids)
    check = run_split_pass(str(corpus), held, cfg=cfg, write=False)
    assert len(check.leaks.heldout_in_train) == 2  # talk-a2 and, by its speaker, talk-a1
    done = run_split_pass(str(corpus), held, cfg=cfg)
    assert done.moved_heldout == 2 and done.leaks.ok
    splits = clip_splits(corpus)
    assert {s for sid, s in splits.values() if sid.startswith("talk-a")} == {Split.TEST}
    assert {s for sid, s in splits.values() if sid == "talk-b"} == {Split.TRAIN}


def test_reupload_is_linked_without_voice(tmp_path, speech):
    # Voice linking off: only the audio fingerprint can join a re-encoded, trimmed re-upload.
    corpus = tmp_path / "corpus"
    src = tmp_path / "b.wav"
    sf.write(src, speech["b"], 16000)
    copy = tmp_path / "b.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-ss",
            "0.3",
            "-i",
            str(src),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "48k",
            str(copy),
        ],
        check=True,
    )
    from curation.decode import decode_audio

    add_source(corpus, "talk-b", [speech["b"]], voice=False)
    add_source(corpus, "reupload-b", [decode_audio(str(copy))], voice=False)
    add_source(corpus, "talk-c", [speech["c"]], voice=False)
    cfg = SplitPassConfig(link_speakers=False, export=EXPORT)
    summary = run_split_pass(str(corpus), cfg=cfg)
    assert summary.duplicate_links == [("reupload-b", "talk-b")]
    recs = {r.source_id: r for r in read_split_records(str(corpus))}
    assert recs["talk-b"].group_id == recs["reupload-b"].group_id != recs["talk-c"].group_id
    assert recs["talk-b"].split == recs["reupload-b"].split


def test_find_leaks_counts_groups_over_splits():
    from manifests.schema import SplitRecord

    recs = [
        SplitRecord("c1", "s1", "spk-1", "g1", Split.TRAIN),
        SplitRecord("c2", "s2", "spk-1", "g1", Split.TRAIN),
        SplitRecord("c3", "s3", "spk-2", "g2", Split.TEST),
    ]
    ok = find_leaks({"c1": Split.TRAIN, "c2": Split.TRAIN, "c3": Split.TEST}, recs)
    assert ok.ok
    bad = find_leaks({"c1": Split.TRAIN, "c2": Split.VAL, "c3": Split.TEST}, recs, ["s3"])
    assert bad.speakers == {"spk-1": {"train": 1, "val": 1}} and set(bad.groups) == {"g1"}
    assert bad.heldout_in_train == []


def test_cli_check_exits_1_on_leaks_and_split_fixes_them(tmp_path, speech):
    from typer.testing import CliRunner

    from avforge.cli import app

    corpus = tmp_path / "corpus"
    add_source(corpus, "talk-a1", [speech["a"][0]])
    add_source(corpus, "talk-a3", [speech["a"][1]])
    runner = CliRunner()
    cfg = tmp_path / "missing.txt"
    res = runner.invoke(app, ["split", str(corpus), "--heldout", str(cfg)])
    assert res.exit_code == 2 and "error: cannot read the held-out list" in res.output
    # Default ratios: put A's two sources in different splits by hand, as a user's own split would.
    rows = table_to_records(read_manifest(str(corpus), "clips"), ClipRecord)
    for c, s in zip(rows, (Split.TRAIN, Split.TEST), strict=True):
        write_records(str(corpus), "clips", c.source_id, [replace(c, split=s)])
    res = runner.invoke(app, ["split", str(corpus), "--check"])
    assert res.exit_code == 1, res.output
    assert "1 pseudo-speaker(s) and 1 group(s) span several splits" in res.output
    res = runner.invoke(app, ["split", str(corpus)])
    assert res.exit_code == 0 and "no leaks" in res.output, res.output
    assert len({s for _, s in clip_splits(corpus).values()}) == 1
    # avforge report shows the leak section from the pass's table.
    from curation.report import report_data

    assert report_data(str(corpus)).leaks.ok
