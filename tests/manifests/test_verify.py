"""Media checksums and ``avforge verify``: flipped bytes are named, clean corpora verify clean."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import manifests
from avforge.core.errors import CorruptCorpusError
from avforge.testing.corpus import build_corpus
from manifests.io import open_ipc, shard_path, write_table
from manifests.media import MEDIA_REQUIRED_SCHEMA, MediaReader, verify_row
from manifests.verify import check_media_shard, verify_corpus

MEDIA = "clips-00000"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """Two speakers, two clips each, with faces and lip features, plus the bundled noises."""
    return build_corpus(
        tmp_path_factory.mktemp("verify"), n_speakers=2, clips_per_speaker=2, with_lip_features=True
    )


def _copy(corpus: Path, dest: Path) -> Path:
    return Path(shutil.copytree(corpus, dest))


def _cell_offset(path: Path, row: int, column: str) -> int:
    """Byte offset in the file of the first data byte of ``column``'s cell ``row`` (``face_crops``:
    of its first frame; the frames of a row are stored back to back)."""
    cell = open_ipc(str(path), memory_map=False).column(column)[row]
    frames = [v.as_py() for v in cell.values] if column == "face_crops" else [cell.as_py()]
    data = path.read_bytes()
    needle = b"".join(frames)
    offset = data.find(needle)
    assert offset >= 0 and data.find(needle, offset + 1) < 0
    return offset


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def _avforge(*args: object):
    """``avforge ARGS`` on the real command line (so the ``verify`` verb must be registered)."""
    from typer.testing import CliRunner

    from avforge.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_written_rows_carry_checksums_that_match(clean) -> None:
    table = open_ipc(str(shard_path(str(clean), "media", MEDIA)))
    assert table.schema.field("samples_crc32").type == pa.uint32()
    assert table.column("samples_crc32").null_count == 0
    assert table.column("face_crc32").null_count == 0  # every clip has a face track
    assert all(verify_row("x", table, r) for r in range(table.num_rows))
    noise = manifests.read_noises(str(clean)).column("media_shard")[0].as_py()
    noise_table = open_ipc(str(clean / "media" / noise))
    assert noise_table.column("samples_crc32").null_count == 0
    assert noise_table.column("face_crc32").null_count == noise_table.num_rows  # no faces


def test_clean_corpus_verifies_clean(clean) -> None:
    report = verify_corpus(str(clean))
    assert report.ok, report.errors
    assert report.tables["clips"] == (1, 4)
    assert report.checked_rows == report.media_rows == 4 + 3  # clips + the three bundled noises
    assert not report.no_checksums
    run = _avforge("verify", str(clean))
    assert run.exit_code == 0, run.stderr
    assert "clean: no problems found" in run.stdout and "error:" not in run.stderr


def test_flipped_audio_byte_is_named_by_verify_and_on_read(clean, tmp_path) -> None:
    corpus = _copy(clean, tmp_path / "c")
    media = corpus / "media" / f"{MEDIA}.arrow"
    _flip(media, _cell_offset(media, 2, "samples") + 1001)
    report = verify_corpus(str(corpus))
    assert len(report.errors) == 1
    (line,) = report.errors
    assert str(media) in line and "row 2 (axb-00)" in line and "audio (samples)" in line
    run = _avforge("verify", str(corpus))
    assert run.exit_code == 2
    errors = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and str(media) in errors[0] and "checksum mismatch" in errors[0]
    assert "1 problem(s) found" in run.stdout
    # the reader refuses the row, and only that row
    reader = MediaReader()
    assert reader.audio(str(media), 1).shape[0] > 0
    with pytest.raises(CorruptCorpusError, match=r"row 2 .*checksum mismatch"):
        reader.audio(str(media), 2)
    assert MediaReader(verify=False).audio(str(media), 2).shape[0] > 0


def test_flipped_crop_byte_is_named_by_verify(clean, tmp_path) -> None:
    corpus = _copy(clean, tmp_path / "c")
    media = corpus / "media" / f"{MEDIA}.arrow"
    _flip(media, _cell_offset(media, 3, "face_crops") + 700)
    (line,) = verify_corpus(str(corpus)).errors
    assert str(media) in line and "row 3" in line and "face data" in line
    # schema-only check passes: the file is well-formed Arrow
    assert verify_corpus(str(corpus), checksums=False).ok


def test_corpus_without_checksums_is_a_note_not_an_error(clean, tmp_path) -> None:
    """A media shard written before checksums existed: readable, and 'no checksums' in verify."""
    corpus = _copy(clean, tmp_path / "c")
    media = corpus / "media" / f"{MEDIA}.arrow"
    old = open_ipc(str(media)).select([f.name for f in MEDIA_REQUIRED_SCHEMA])
    write_table(str(media), old.replace_schema_metadata(MEDIA_REQUIRED_SCHEMA.metadata))
    report = verify_corpus(str(corpus))
    assert report.ok, report.errors
    assert report.no_checksums == [str(media)]
    run = _avforge("verify", str(corpus))
    assert run.exit_code == 0 and "no checksums" in run.stdout
    samples = MediaReader().audio(str(media), 0)
    assert np.isfinite(samples).all() and samples.shape[0] > 0


def test_missing_media_and_bad_rows_are_named(clean, tmp_path) -> None:
    corpus = _copy(clean, tmp_path / "c")
    noise_shard = manifests.read_noises(str(corpus)).column("media_shard")[0].as_py()
    (corpus / "media" / noise_shard).unlink()
    media = corpus / "media" / f"{MEDIA}.arrow"
    media.write_bytes(media.read_bytes()[:5000])  # truncated
    report = verify_corpus(str(corpus))
    assert any(str(media) in e and "truncated or corrupt" in e for e in report.errors)
    assert any(noise_shard in e and "not found" in e for e in report.errors)
    with pytest.raises(CorruptCorpusError, match="truncated or corrupt"):
        check_media_shard(str(media))
    run = _avforge("verify", str(tmp_path / "nowhere"))
    assert run.exit_code == 2 and "error:" in run.stderr
