"""The layering of avforge's packages, checked on every import statement (docs/architecture.md).

Each module belongs to one layer and may import only from its own layer and the layers below:

1. ground floor: ``avforge.core`` (and ``avforge`` itself: the version string)
2. ``manifests``
3. stages: ``curation``, ``mixing``, which do not import each other
4. ``training``
5. interop, testing and tools: ``avforge.interop``, ``avforge.synth``, ``avforge.variants``,
   ``avforge.testing``, the calibration tools ``curation.calibrate*``
6. command line and demo: ``avforge.cli``, ``avforge.cli_errors``, ``avforge.doctor``,
   ``avforge.demo*``, and every package's ``cli`` module

Function-level (lazy) imports count too. No product module imports ``tests`` or ``benchmarks``.
``make layers`` runs this file; ``.ci/run`` runs ``make layers``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("avforge", "manifests", "curation", "mixing", "training")
LAYER_NAMES = {
    1: "ground floor",
    2: "manifests",
    3: "stages",
    4: "training",
    5: "interop/testing/tools",
    6: "cli/demo",
}
TOOLS = ("avforge.interop", "avforge.synth", "avforge.variants", "avforge.testing")
CLI = ("avforge.cli", "avforge.cli_errors", "avforge.doctor")
"""With every ``avforge.demo*`` module and every ``cli`` module: layer 6."""
INDEPENDENT = ("curation", "mixing")
"""Packages of one layer that must not import each other."""

ALLOWED: dict[tuple[str, str], str] = {
    ("curation.snr", "training.denoiser"): (
        "snr.estimator: denoiser runs a trained 1-speaker separator; imported lazily, only when "
        "that estimator is configured"
    ),
}
"""Documented exceptions: (importer, imported module) -> why."""


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer(module: str) -> int:
    """The layer of a project module (dotted name)."""
    if module == "avforge" or _under(module, ("avforge.core",)):
        return 1
    if _under(module, CLI) or module.startswith("avforge.demo") or module.endswith(".cli"):
        return 6
    if _under(module, TOOLS) or module.startswith("curation.calibrate"):
        return 5
    top = module.split(".")[0]
    return {"manifests": 2, "curation": 3, "mixing": 3, "training": 4}.get(top, 5)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every absolute import of a project or test module in ``path``;
    ``from X import y`` counts as ``X.y`` when ``X.y`` is a module, else as ``X``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [_submodule(node.module, a.name) for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in (*PACKAGES, "tests", "benchmarks"):
                out.append((node.lineno, name))
    return out


def _submodule(package: str, name: str) -> str:
    base = ROOT.joinpath(*package.split("."))
    if (base / name).is_dir() or (base / f"{name}.py").exists():
        return f"{package}.{name}"
    return package


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layering, as ``file:line: a (layer) imports b (layer)``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            mod = module_name(path, root)
            for line, imported in imports(path):
                where = f"{path.relative_to(root)}:{line}: {mod}"
                if imported.split(".")[0] in ("tests", "benchmarks"):
                    found.append(f"{where} imports {imported} (test or benchmark code)")
                    continue
                if (mod, imported) in ALLOWED:
                    continue
                a, b = layer(mod), layer(imported)
                if b > a:
                    found.append(
                        f"{where} ({LAYER_NAMES[a]}) imports {imported} ({LAYER_NAMES[b]}, a "
                        "higher layer)"
                    )
                top_a, top_b = mod.split(".")[0], imported.split(".")[0]
                if a == b == 3 and top_a != top_b and {top_a, top_b} <= set(INDEPENDENT):
                    found.append(f"{where} imports {imported}: stages do not import each other")
    return found


def test_no_module_imports_from_a_higher_layer() -> None:
    problems = violations()
    assert not problems, "layering broken (docs/architecture.md):\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("avforge", 1),
        ("avforge.core.config", 1),
        ("manifests.io", 2),
        ("curation.snr", 3),
        ("mixing.render", 3),
        ("training.train", 4),
        ("curation.calibrate_speaker", 5),
        ("avforge.variants", 5),
        ("curation.cli", 6),
        ("avforge.demo_videos", 6),
    ],
)
def test_layer_of_known_modules(module: str, expected: int) -> None:
    assert layer(module) == expected


def test_a_back_import_is_caught(tmp_path: Path) -> None:
    """The check itself: a manifests module importing curation is reported with its file and line."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "manifests" / "bad.py").write_text(
        "import os\n\nfrom curation.pipeline import curate\n"
    )
    (tmp_path / "curation" / "ok.py").write_text("from manifests.io import join\n")
    assert violations(tmp_path) == [
        "manifests/bad.py:3: manifests.bad (manifests) imports curation.pipeline (stages, a higher layer)"
    ]
