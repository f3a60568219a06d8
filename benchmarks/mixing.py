"""Mixing speed: avforge's on-the-fly renderer vs Lhotse's ``MixedCut.load_audio``, side by side.

What is measured: mixtures per second in one process (one thread) for 2 speakers + noise, 3 s at
16 kHz, audio only, with and without reverb. Both tools mix the *same* recipes from the *same* clips:

- avforge: a corpus built with ``tests.helpers.corpus.build_corpus`` (real speech from
  ``avforge/assets/audio``, PCM16 media shards) plus a simulated RIR bank; recipes drawn by
  ``RecipeSampler``; timed: ``MixtureRenderer.render_audio(spec)`` per recipe (crop, active-speech
  levels, SIR/SNR gains, reverb with full + early RIR, peak guard).
- Lhotse: the same clips, noises and RIRs exported as WAV files (its usual on-disk input), one
  ``MixedCut`` per recipe built as ``cut1[.reverb_rir(rir1)].mix(cut2[.reverb_rir(rir2)], snr=SIR)
  .mix(noise, snr=SNR)`` with the recipe's offsets; timed: ``cut.load_audio()`` per cut.

Lhotse is not a project dependency. It runs in its own environment, in a subprocess of this script
(same machine, same run)::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install torch==2.13.0 lhotse urllib3
    .venv/bin/python benchmarks/mixing.py --lhotse-python /tmp/benchvenv/bin/python

Without ``--lhotse-python`` (and no importable lhotse) only avforge is measured. Results are printed
as a Markdown table and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- lhotse side


def lhotse_worker(job_path: str) -> None:
    """Runs inside the Lhotse environment: build the MixedCuts of the job and time load_audio."""
    import numpy as np
    from lhotse import Recording

    job = json.loads(Path(job_path).read_text())
    recordings: dict[str, Recording] = {}

    def rec(path: str) -> Recording:
        if path not in recordings:
            recordings[path] = Recording.from_file(path)
        return recordings[path]

    results: dict[str, list] = {}
    for name, recipes in job["sets"].items():
        cuts = []
        for r in recipes:
            c1 = (
                rec(r["clips"][0]).to_cut().truncate(offset=r["offsets"][0], duration=r["duration"])
            )
            c2 = (
                rec(r["clips"][1]).to_cut().truncate(offset=r["offsets"][1], duration=r["duration"])
            )
            if r["rirs"][0]:
                c1 = c1.reverb_rir(rec(r["rirs"][0]))
                c2 = c2.reverb_rir(rec(r["rirs"][1]))
            noise_rec = rec(r["noise"])
            noise_offset = min(r["noise_offset"], noise_rec.duration - r["duration"])
            noise = noise_rec.to_cut().truncate(offset=noise_offset, duration=r["duration"])
            cuts.append(c1.mix(c2, snr=r["sir"]).mix(noise, snr=r["snr"]))
        for cut in cuts[:5]:  # warm-up: file handles, caches
            cut.load_audio()
        sample = np.stack([cuts[i].load_audio()[0] for i in range(job["n_compare"])])
        np.save(Path(job["out_dir"]) / f"lhotse_{name}.npy", sample)
        results[name] = cuts
    import lhotse

    print(json.dumps({"ready": True, "lhotse_version": lhotse.__version__}), flush=True)
    for line in sys.stdin:  # "go NAME": time one round of that setting
        name = line.split()[1]
        start = time.perf_counter()
        for cut in results[name]:
            cut.load_audio()
        print(
            json.dumps({"mixtures_per_s": len(results[name]) / (time.perf_counter() - start)}),
            flush=True,
        )


# ----------------------------------------------------------------------------- avforge side


def build_bench_corpus(work: Path, n_rooms: int) -> Path:
    from avforge.cluster import ClusterConfig, ClusterType
    from mixing.rirs import RirConfig, build_rirs
    from tests.helpers.corpus import build_corpus

    corpus = build_corpus(
        work, n_speakers=7, clips_per_speaker=4, clip_duration_s=6.0, with_faces=False
    )
    build_rirs(
        str(corpus),
        RirConfig(
            n_rooms=n_rooms,
            sources_per_room=4,
            rooms_per_shard=n_rooms,
            val_fraction=0,
            test_fraction=0,
        ),
        ClusterConfig(type=ClusterType.SYNCHRONOUS),
    )
    return corpus


def export_wavs(corpus: Path, out: Path) -> dict[str, str]:
    """Every clip, noise and full RIR of the corpus as a WAV file (Lhotse's input); id -> path."""
    import soundfile

    import manifests

    reader = manifests.MediaReader()
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table, key, subtype in (
        ("clips", "clip_id", "PCM_16"),
        ("noises", "noise_id", "PCM_16"),
        ("rirs", "rir_id", "FLOAT"),
    ):
        for row in manifests.read_manifest(str(corpus), table).to_pylist():
            audio = reader.audio(str(corpus / "media" / row["media_shard"]), row["media_row"])
            path = out / f"{row[key]}.wav"
            soundfile.write(path, audio, 16000, subtype=subtype)
            paths[row[key]] = str(path)
    return paths


def time_avforge(renderer, specs) -> float:
    """Mixtures per second of one pass over ``specs``."""
    start = time.perf_counter()
    for spec in specs:
        renderer.render_audio(spec)
    return len(specs) / (time.perf_counter() - start)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lhotse-python", help="python of an environment with lhotse installed")
    parser.add_argument("--count", type=int, default=300, help="recipes per setting")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (medians reported)"
    )
    parser.add_argument("--rooms", type=int, default=12)
    parser.add_argument("--out", default="bench_mixing.json")
    parser.add_argument("--lhotse-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lhotse_worker:
        lhotse_worker(args.lhotse_worker)
        return

    import numpy as np

    from manifests.schema import MixTask
    from mixing.config import FaceStream, RenderConfig, preset_config
    from mixing.render import MixtureRenderer
    from mixing.sampler import RecipeSampler

    work = Path(tempfile.mkdtemp(prefix="avforge-bench-mixing-"))
    corpus = build_bench_corpus(work, args.rooms)
    wavs = export_wavs(corpus, work / "wav")
    render = RenderConfig(face_stream=FaceStream.NONE)
    base = preset_config(
        MixTask.CUSTOM,
        n_speakers=2,
        duration_s=3.0,
        snr_db_range=(0.0, 20.0),
        seed=1,
        render=render,
    )
    settings = {"dry": base, "reverb": base.with_overrides(p_reverb=1.0)}
    renderer = MixtureRenderer(str(corpus), render)
    results: dict[str, dict] = {}
    job = {"sets": {}, "rounds": args.rounds, "n_compare": 20, "out_dir": str(work)}
    specs_by = {}
    for name, cfg in settings.items():
        specs = RecipeSampler.from_corpus(str(corpus), cfg).take(args.count)
        specs_by[name] = specs
        for spec in specs[:5]:
            renderer.render_audio(spec)
        results[name] = {"avforge_mixtures_per_s": []}
        job["sets"][name] = [
            {
                "clips": [wavs[c] for c in s.clip_ids],
                "offsets": s.offsets_s,
                "duration": s.duration_s,
                "sir": -s.gains_db[1],
                "noise": wavs[s.noise_id],
                "noise_offset": s.noise_offset_s,
                "snr": s.noise_snr_db,
                "rirs": [wavs[r] if r else None for r in s.rir_ids],
            }
            for s in specs
        ]
    lhotse_python = args.lhotse_python
    if lhotse_python is None:
        try:
            import lhotse  # noqa: F401

            lhotse_python = sys.executable
        except ImportError:
            print("lhotse not available: measuring avforge only", file=sys.stderr)
    lhotse_version = None
    worker = None
    if lhotse_python:
        job_path = work / "job.json"
        job_path.write_text(json.dumps(job))
        worker = subprocess.Popen(
            [lhotse_python, __file__, "--lhotse-worker", str(job_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lhotse_version = json.loads(worker.stdout.readline())["lhotse_version"]  # type: ignore[union-attr]
    # interleave the two tools round by round, so that both see the same machine load
    for _ in range(args.rounds):
        for name in settings:
            results[name]["avforge_mixtures_per_s"].append(time_avforge(renderer, specs_by[name]))
            if worker is not None:
                worker.stdin.write(f"go {name}\n")  # type: ignore[union-attr]
                worker.stdin.flush()  # type: ignore[union-attr]
                speed = json.loads(worker.stdout.readline())["mixtures_per_s"]  # type: ignore[union-attr]
                results[name].setdefault("lhotse_mixtures_per_s", []).append(speed)
    if worker is not None:
        worker.stdin.close()  # type: ignore[union-attr]
        worker.wait(timeout=60)
        for name in settings:
            r = results[name]
            r["speedup_per_round"] = [
                a / b
                for a, b in zip(
                    r["avforge_mixtures_per_s"], r["lhotse_mixtures_per_s"], strict=True
                )
            ]
            theirs = np.load(work / f"lhotse_{name}.npy")
            ours = np.stack(
                [renderer.render_audio(s)[0] for s in specs_by[name][: job["n_compare"]]]
            )
            n = min(theirs.shape[1], ours.shape[1])
            corr = [
                float(np.corrcoef(a[:n], b[:n])[0, 1]) for a, b in zip(ours, theirs, strict=True)
            ]
            r["mixture_correlation_median"] = float(np.median(corr))
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "count": args.count,
        "rounds": args.rounds,
        "lhotse_version": lhotse_version,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(
        f"| setting | avforge mixtures/s | Lhotse mixtures/s | speed-up | corr. |  ({report['date']}, {report['machine']})"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ours = float(np.median(r["avforge_mixtures_per_s"]))
        if "lhotse_mixtures_per_s" in r:
            theirs = float(np.median(r["lhotse_mixtures_per_s"]))
            ratio = float(np.median(r["speedup_per_round"]))
            corr = r["mixture_correlation_median"]
            print(
                f"| 2S+noise 3 s, {name} | {ours:.0f} | {theirs:.1f} | {ratio:.1f}x | {corr:.2f} |"
            )
        else:
            print(f"| 2S+noise 3 s, {name} | {ours:.0f} | - | - | - |")


if __name__ == "__main__":
    main()
