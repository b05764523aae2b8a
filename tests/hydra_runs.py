"""Composing train.py's Hydra config in tests and reading the record a run leaves."""

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]


def compose_run(overrides: list[str], output_dir: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def read_record(output_dir: Path) -> dict:
    return json.loads((output_dir / "metrics.json").read_text())
