from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldmesh.cli import build_parser
from kernel.settings import Settings


@pytest.mark.integration
def test_train_command_saves_and_records_a_version_with_its_metrics(
    test_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = test_settings.with_overrides(state_dir=tmp_path)
    args = build_parser().parse_args(
        ["train", "failure", "--assets", "80", "--days", "40", "--name", "f7-cli-test"]
    )
    assert args.func(args, settings) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["name"] == "f7-cli-test"
    assert set(out["metrics"]) == {"precision", "recall", "f1"}
    assert Path(out["artifact"]).is_file()
    assert Path(out["artifact"]).is_relative_to(tmp_path)

    args = build_parser().parse_args(["models", "f7-cli-test"])
    assert args.func(args, settings) == 0
    listing = capsys.readouterr().out
    assert f"* {out['version']}" in listing


def test_training_on_too_little_data_is_refused_with_the_reason(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = settings.with_overrides(state_dir=tmp_path)
    args = build_parser().parse_args(
        ["train", "anomaly", "--assets", "3", "--days", "5", "--no-db"]
    )
    assert args.func(args, local) == 1
    assert "healthy samples to learn normal behaviour" in capsys.readouterr().out


@pytest.mark.integration
def test_active_live_detectors_load_as_monitors_per_equipment_model(
    test_settings: Settings, tmp_path: Path
) -> None:
    import psycopg

    from insights.maintenance import training

    trained = training.train_anomaly_live(
        "compressor-c80",
        state_dir=tmp_path,
        dsn=test_settings.dsn,
        n_assets=3,
        hours=12,
        interval_s=60,
    )
    assert trained.card.params["equipment_model"] == "compressor-c80"
    with psycopg.connect(test_settings.dsn) as conn:
        monitors = training.load_live_monitors(conn)
    monitor = monitors["compressor-c80"]
    assert monitor.detector.card.version == trained.card.version
    assert monitor.metrics == (
        "temperature_c",
        "vibration_mm_s",
        "pressure_bar",
        "current_a",
    )
