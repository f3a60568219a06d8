"""The committed manifest reference is the one the schema module generates."""

from pathlib import Path

from manifests.reference import render_reference
from manifests.schema import TABLES


def test_reference_doc_is_current():
    doc = Path(__file__).parents[2] / "docs" / "manifest_reference.md"
    assert doc.read_text() == render_reference(), "run: python -m manifests.reference > " + str(doc)


def test_reference_lists_every_column():
    text = render_reference()
    for spec in TABLES.values():
        for f in spec.schema:
            assert f"| `{f.name}` |" in text
