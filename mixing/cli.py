"""Command-line verbs of the mixing stage: ``mix freeze``, ``mix render``, ``noises add``, ``rirs build``.

Each verb is a thin wrapper: it loads its config (YAML through ``avforge.core.config.load_config``, with a
few common fields as options), calls one library function, and prints what it wrote. Errors in the
inputs (a bad config, a missing or corrupt manifest, a corpus that cannot serve the config, a recipe
naming missing media, an unwritable output) are printed as one ``error:`` line and exit with status 2
(``avforge.cli_errors``); so does ``noises add`` when no recording could be registered.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from avforge.cli_errors import fail, reported_errors
from avforge.core.config import load_config, write_resolved_config
from manifests.io import join, require_corpus
from manifests.schema import MixTask, NoiseKind, Split
from mixing.config import MixingConfig

mix_app = typer.Typer(
    help="Mixture recipes: freeze evaluation sets, render examples.", no_args_is_help=True
)
noises_app = typer.Typer(help="Noise and music corpora for mixing.", no_args_is_help=True)
rirs_app = typer.Typer(help="Room impulse response banks.", no_args_is_help=True)


def _mixing_config(
    config: Path | None, task: MixTask | None, split: Split | None, seed: int | None
) -> MixingConfig:
    cfg = load_config(MixingConfig, config)
    changes: dict[str, object] = {}
    if task is not None and task != cfg.task:
        # a new task takes that task's preset for the fields it fixes
        changes.update(task=task, n_speakers=None, p_noise=None, noise_mode=None)
    if split is not None:
        changes["split"] = split
    if seed is not None:
        changes["seed"] = seed
    return replace(cfg, **changes) if changes else cfg


@mix_app.command("freeze")
def freeze(
    # corpus folders are str, not Path: a Path would turn s3://b/c into the local folder s3:/b/c
    corpus: str = typer.Argument(
        ..., help="Corpus folder or fsspec URL (clips, noises, rirs manifests)."
    ),
    out: str = typer.Option(
        ..., "--out", help="Folder or URL for the frozen recipes (mixtures manifest)."
    ),
    count: int = typer.Option(1000, "--count", min=1, help="Number of recipes."),
    config: Path | None = typer.Option(None, "--config", help="MixingConfig YAML."),
    task: MixTask | None = typer.Option(None, "--task", help="Paper task preset."),
    split: Split | None = typer.Option(
        None, "--split", help="Split to draw from (default: the config's)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Base seed."),
    epoch: int = typer.Option(0, "--epoch", min=0),
) -> None:
    """Write a fixed evaluation set of mixture recipes (recipes only: rendering is deterministic)."""
    from mixing.dataset import freeze_recipes
    from mixing.errors import MixingError
    from mixing.sampler import SamplerError

    with reported_errors(SamplerError, MixingError):
        cfg = _mixing_config(config, task, split, seed)
        specs = freeze_recipes(require_corpus(corpus), str(out), cfg, count, epoch=epoch)
    typer.echo(f"froze {len(specs)} recipes in {join(str(out), 'mixtures')}")


@mix_app.command("render")
def render(
    corpus: str = typer.Argument(..., help="Corpus folder or fsspec URL."),
    out: Path = typer.Option(..., "--out", help="Local folder for the example WAV / MP4 files."),
    recipes: str | None = typer.Option(
        None, "--recipes", help="Frozen recipes folder (default: draw new ones)."
    ),
    count: int = typer.Option(4, "--count", min=1, help="Number of examples."),
    config: Path | None = typer.Option(None, "--config", help="MixingConfig YAML."),
    task: MixTask | None = typer.Option(None, "--task", help="Paper task preset."),
    split: Split | None = typer.Option(None, "--split"),
    seed: int | None = typer.Option(None, "--seed"),
) -> None:
    """Render a few mixtures as WAV + MP4 (faces side by side) for listening and looking."""
    from manifests import read_mixtures
    from manifests.schema import MixtureSpec, table_to_records
    from mixing.errors import MixingError
    from mixing.examples import ExampleError, write_examples
    from mixing.render import MixtureRenderer
    from mixing.sampler import RecipeSampler, SamplerError

    with reported_errors(SamplerError, MixingError, ExampleError):
        cfg = _mixing_config(config, task, split, seed)
        if recipes is not None:
            specs = table_to_records(read_mixtures(str(recipes)), MixtureSpec)[:count]
        else:
            specs = RecipeSampler.from_corpus(require_corpus(corpus), cfg).take(count)
        renderer = MixtureRenderer(str(corpus), cfg.render)
        folders = write_examples(renderer, specs, out)
    for folder in folders:
        typer.echo(str(folder))


@noises_app.command("add")
def noises_add(
    source: str = typer.Argument(
        ..., help="A folder of audio files, or a text file of paths/URLs."
    ),
    out: str = typer.Option(..., "--out", help="Corpus folder or URL to register the noises in."),
    config: Path | None = typer.Option(None, "--config", help="NoiseConfig YAML."),
    split: Split | None = typer.Option(
        None, "--split", help="Force one split (default: by recording hash)."
    ),
    kind: NoiseKind | None = typer.Option(
        None, "--kind", help="Force one kind (default: by folder name)."
    ),
) -> None:
    """Register noise or music recordings (resampled to 16 kHz, split by recording)."""
    from mixing.noises import NoiseConfig, add_noises

    with reported_errors():
        cfg = load_config(NoiseConfig, config)
        result = add_noises(source, str(out), cfg, split=split, kind=kind)
        write_resolved_config(cfg, join(str(out), "config", "noises_add.yaml"))
    for r in result.records:
        typer.echo(f"{r.noise_id}\t{r.kind.value}\t{r.split.value}\t{r.duration_s:.1f} s")
    for k in result.known:
        typer.echo(f"{k.noise_id}\talready registered ({k.split.value})")
    for f in result.failures:
        typer.echo(f"failed: {f.origin}: {f.reason}", err=True)
    if not result.records and not result.known:
        fail(f"no recording registered from {source} ({len(result.failures)} failed, listed above)")


@rirs_app.command("build")
def rirs_build(
    out: str = typer.Option(..., "--out", help="Corpus folder or URL to write the RIR bank into."),
    config: Path | None = typer.Option(None, "--config", help="RirConfig YAML."),
    rooms: int | None = typer.Option(
        None, "--rooms", min=1, help="Number of rooms (overrides the config)."
    ),
    cluster: Path | None = typer.Option(
        None, "--cluster", help="dask_cluster.yaml (default: local)."
    ),
) -> None:
    """Simulate a bank of room impulse responses (pyroomacoustics ShoeBox) on the Dask cluster."""
    from avforge.core.cluster import load_cluster_config
    from mixing.rirs import RirConfig, build_rirs

    with reported_errors():
        cfg = load_config(RirConfig, config)
        if rooms is not None:
            cfg = replace(cfg, n_rooms=rooms)
        written = build_rirs(str(out), cfg, load_cluster_config(cluster))
        write_resolved_config(cfg, join(str(out), "config", "rirs_build.yaml"))
    typer.echo(f"wrote {written} RIRs into {join(str(out), 'rirs')}")


def register(app: typer.Typer) -> None:
    """Add the mixing verbs to ``app``."""
    app.add_typer(mix_app, name="mix")
    app.add_typer(noises_app, name="noises")
    app.add_typer(rirs_app, name="rirs")
