"""A real-speech corpus with speaker-disjoint splits, imported through the public Lhotse import path.

:func:`build_speech_corpus` registers LibriSpeech utterances (one per speaker) as audio-only clips:
one Lhotse recordings manifest per split, each imported with ``avforge.interop.import_lhotse`` and
that split forced, so train, validation and test speakers are disjoint by construction; each cut's
supervision carries the speaker and its sex, which the import stores as the clip's gender.
:func:`bundled_speakers` reads a folder's ``speakers.tsv`` (columns speaker, sex, split, file). The
repository's test data has two such folders (origin and licence in ``tests/data/speech/README.md``):
``tests/data/speech/librispeech`` (44 speakers, 4 s of one utterance each: 32 train, 4 val and 8 test,
half of each female) and ``tests/data/speech/librispeech_more`` (the 207 other speakers of the same
selection, 8 s each, all ``train``), used by the learning test and the learning-curve benchmark.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from avforge.interop.lhotse_import import LhotseImportConfig, import_lhotse
from manifests import Split


class Speaker(NamedTuple):
    speaker: str
    sex: str
    """``F`` or ``M`` (LibriSpeech ``SPEAKERS.TXT``)."""
    split: Split
    path: Path


def bundled_speakers(folder: Path) -> list[Speaker]:
    """The speakers of ``folder/speakers.tsv`` (columns speaker, sex, split, file)."""
    with open(folder / "speakers.tsv", newline="") as fh:
        return [
            Speaker(r["speaker"], r["sex"], Split(r["split"]), folder / r["file"])
            for r in csv.DictReader(fh, delimiter="\t")
        ]


def build_speech_corpus(speakers: Sequence[Speaker], out: Path) -> Path:
    """Import ``speakers`` as audio-only clips into corpus folder ``out`` (one import per split)."""
    out.mkdir(parents=True, exist_ok=True)
    for split in Split:
        chosen = [s for s in speakers if s.split == split]
        if not chosen:
            continue
        cuts = []
        for s in chosen:
            rec = Recording.from_file(s.path, recording_id=s.path.stem)
            sup = SupervisionSegment(
                rec.id, rec.id, 0.0, rec.duration, speaker=s.speaker, gender=s.sex
            )
            cuts.append(MonoCut(rec.id, 0.0, rec.duration, 0, recording=rec, supervisions=[sup]))
        manifest = out / f"librispeech-{split.value}.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(manifest)
        result = import_lhotse(manifest, str(out), LhotseImportConfig(split=split))
        if result.failures:
            raise RuntimeError(f"import failed: {result.failures}")
    return out
