"""Interop: avforge corpora in and out of the tools speech engineers already use.

- :mod:`avforge.interop.lhotse_export`: clips -> Lhotse recordings / supervisions / cuts (jsonl.gz) with
  per-clip audio files and the face track as a 25 fps temporal array (``avforge export lhotse``);
- :mod:`avforge.interop.lhotse_import`: a Lhotse cuts or recordings manifest -> audio-only clips or
  noise recordings in a corpus (``avforge import lhotse``);
- :mod:`avforge.interop.avspeech_csv`: kept clips -> AVSpeech CSV rows ``youtube_id,start,end,x,y``
  that ``avforge curate`` reads back (``avforge export avspeech-csv``);
- :func:`plain_table`: a manifest table with enum columns as plain strings (for Hugging Face
  ``datasets`` and other tools without Arrow dictionary support). pandas, polars and DuckDB read the
  manifests directly: docs/interop.md has an example for each.

The two Lhotse modules import ``lhotse`` (the ``interop`` extra) and are not imported here, so this
package, and the command line, load without it.
"""

from avforge.interop.avspeech_csv import (
    AvspeechExport,
    AvspeechRow,
    avspeech_rows,
    export_avspeech_csv,
    format_avspeech_csv,
    video_of,
)
from avforge.interop.naming import hash_split, safe_name
from avforge.interop.tables import media_path, plain_table

__all__ = [
    "AvspeechExport",
    "AvspeechRow",
    "avspeech_rows",
    "export_avspeech_csv",
    "format_avspeech_csv",
    "hash_split",
    "media_path",
    "plain_table",
    "safe_name",
    "video_of",
]
