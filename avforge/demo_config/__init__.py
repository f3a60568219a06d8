"""The demo's sizes and configs (``avforge demo``), and its final table.

- :mod:`avforge.demo_config.configs`: :class:`DemoSize` (full and ``--quick``) and the YAML configs the
  demo writes into ``OUT/configs/`` for the public commands (cluster, curate, mixing, RIRs, training);
- :mod:`avforge.demo_config.summary`: the numbers of a finished demo, read back from its outputs
  (manifests, the evaluation's ``summary.json``, the videos' ground truth), and the table printed last.
"""

from avforge.demo_config.configs import (
    FULL,
    QUICK,
    DemoConfigs,
    DemoSize,
    demo_config_dicts,
    write_demo_configs,
)
from avforge.demo_config.summary import DemoSummary, StepTiming, format_table, summarize_demo

__all__ = [
    "FULL",
    "QUICK",
    "DemoConfigs",
    "DemoSize",
    "DemoSummary",
    "StepTiming",
    "demo_config_dicts",
    "format_table",
    "summarize_demo",
    "write_demo_configs",
]
