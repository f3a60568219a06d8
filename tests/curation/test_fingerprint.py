"""Near-duplicate audio: a re-encoded, trimmed copy of a real talk is linked; other talks are not."""

import subprocess
from itertools import combinations
from pathlib import Path

import pytest

from avforge.core import assets
from curation.decode import decode_audio
from curation.fingerprint import DuplicateIndex, fingerprint, match, source_fingerprint

VIDEO = assets.VIDEO_DIR
TALKS = ["hdtf_katie_hill", "hdtf_ed_markey", "hdtf_amy_klobuchar", "hdtf_alexandria_ocasio_cortez"]


@pytest.fixture(scope="module")
def talks():
    return {n: decode_audio(str(VIDEO / f"{n}.mp4")) for n in TALKS}


def _reencode(
    tmp: Path, name: str, trim_s: float, args: list[str], ext: str, dur: str = ""
) -> Path:
    out = tmp / f"{name}.{ext}"
    cmd = ["ffmpeg", "-v", "error", "-y", "-ss", str(trim_s), "-i", str(VIDEO / f"{name}.mp4")]
    cmd += (["-t", dur] if dur else []) + ["-vn", *args, str(out)]
    subprocess.run(cmd, check=True)
    return out


def test_reencoded_trimmed_copy_is_linked(talks, tmp_path):
    opus = _reencode(tmp_path, "hdtf_katie_hill", 0.37, ["-c:a", "libopus", "-b:a", "24k"], "opus")
    mp3 = _reencode(
        tmp_path, "hdtf_katie_hill", 1.13, ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3", "5"
    )
    orig = fingerprint(talks["hdtf_katie_hill"])
    for path, trim in ((opus, 0.37), (mp3, 1.13)):
        m = match(orig, fingerprint(decode_audio(str(path))))
        assert m.is_duplicate(), m
        # b's time minus a's: the copy starts `trim` seconds later (one 16 ms frame of tolerance)
        assert abs(m.offset_s + trim) <= 0.05, m
    for other in TALKS[1:]:
        assert not match(
            fingerprint(decode_audio(str(opus))), fingerprint(talks[other])
        ).is_duplicate()


def test_different_talks_are_not_linked(talks):
    fps = {n: fingerprint(a) for n, a in talks.items()}
    for a, b in combinations(TALKS, 2):
        m = match(fps[a], fps[b])
        assert not m.is_duplicate(), (a, b, m)
        assert m.ratio < 0.02


def test_index_links_clip_sets_of_a_copy(talks, tmp_path):
    # Sources made of kept clips: the copy's clips start elsewhere in it (trimmed by 0.37 s).
    copy = decode_audio(
        str(_reencode(tmp_path, "hdtf_katie_hill", 0.37, ["-c:a", "aac", "-b:a", "48k"], "m4a"))
    )
    r = 16000
    orig = talks["hdtf_katie_hill"]
    idx = DuplicateIndex()
    for n in TALKS[1:]:
        assert idx.add(n, source_fingerprint([(0.0, talks[n][: 4 * r], r)])) == []
    assert idx.add("orig", source_fingerprint([(1.0, orig[r : 5 * r], r)])) == []
    found = idx.add("copy", source_fingerprint([(2.0, copy[2 * r : 6 * r], r)]))
    assert [k for k, _ in found] == ["orig"]
