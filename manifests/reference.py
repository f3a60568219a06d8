"""Generate the manifest column reference (docs/manifest_reference.md) from the schema module.

The column docs are the attribute docstrings of the record dataclasses in ``manifests/schema.py``, read
with ``ast`` so the schema module stays the single source. ``python -m manifests.reference > FILE``.
"""

from __future__ import annotations

import ast
import inspect

from manifests import schema
from manifests.schema import MEDIA_SCHEMA, SCHEMA_VERSION, TABLES


def _attribute_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _media_paragraph() -> str:
    """The schema module's paragraph on media shards (found by what it names, not by position)."""
    paragraphs = (schema.__doc__ or "").split("\n\n")
    return next(p.strip() for p in paragraphs if "``MEDIA_SCHEMA``" in p)


def render_reference() -> str:
    """The whole reference page as Markdown."""
    lines = [
        "# Manifest reference",
        "",
        f"Generated from `manifests/schema.py` (schema version {SCHEMA_VERSION}) by "
        "`python -m manifests.reference`; do not edit by hand.",
        "",
    ]
    for spec in TABLES.values():
        cls = spec.record_type
        docs = _attribute_docs(cls)
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        lines += [f"## `{spec.name}` ({cls.__name__})", "", summary, ""]
        lines += ["| column | Arrow type | nullable | meaning |", "| --- | --- | --- | --- |"]
        for f in spec.schema:
            meaning = docs.get(f.name, "")
            if f.name in spec.enums:
                values = ", ".join(f"`{m.value}`" for m in spec.enums[f.name])
                meaning = (meaning + " " if meaning else "") + f"One of {values}."
            arrow = "enum (dictionary)" if f.name in spec.enums else str(f.type)
            lines.append(f"| `{f.name}` | {arrow} | {'yes' if f.nullable else 'no'} | {meaning} |")
        lines += ["", f"Sorted by {', '.join(f'`{k}`' for k in spec.sort_keys)} when read.", ""]
    lines += [
        "## Media shards (`media/<shard>.arrow`)",
        "",
        _media_paragraph(),
    ]
    lines += ["", "| column | Arrow type |", "| --- | --- |"]
    lines += [f"| `{f.name}` | {f.type} |" for f in MEDIA_SCHEMA]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
