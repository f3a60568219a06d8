"""Manifest tables for tools that do not know avforge's conventions (pure functions, no I/O).

- :func:`plain_table`: dictionary-encoded enum columns (``split``, ``status``, ``reason``, ``kind``,
  ``task``) decoded to plain strings, for tools without Arrow dictionary support (Hugging Face
  ``datasets``, CSV writers); values and row order are unchanged.
- :func:`media_path`: where a manifest row's media shard lives in a corpus folder.
"""

from __future__ import annotations

import pyarrow as pa

from manifests.io import media_file


def plain_table(table: pa.Table) -> pa.Table:
    """``table`` with every dictionary column cast to its value type (strings for avforge's enums).

    Example::

        datasets.Dataset(plain_table(manifests.read_clips("corpus")))
    """
    fields = []
    for f in table.schema:
        kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        fields.append(pa.field(f.name, kind, nullable=f.nullable, metadata=f.metadata))
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def media_path(corpus: str, media_shard: str) -> str:
    """Path (or URL) of media shard ``media_shard`` of ``corpus`` (``corpus/media/<media_shard>``)."""
    return media_file(str(corpus), media_shard)
