from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from insights.maintenance.errors import DataFormatError, ModelNotFoundError
from insights.maintenance.registry import ModelStore, activate, list_versions, record
from insights.maintenance.rul import RulConfig, RulModel, fit_rul

from .synthetic import degrading_fleet

SMALL = RulConfig(cap=100.0, n_models=1, max_iter=20)


def _model(seed: int, name: str = "pump-rul") -> RulModel:
    return fit_rul(degrading_fleet(6, seed=seed), SMALL, name=name, source="synthetic")


def test_saved_model_loads_back_and_predicts_the_same(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    model = _model(1)
    path = store.save(model)
    assert path.is_file()
    loaded = store.load("pump-rul")
    test = degrading_fleet(2, seed=9)
    np.testing.assert_allclose(loaded.predict_rows(test), model.predict_rows(test))
    assert store.card("pump-rul", model.card.version) == model.card


def test_latest_version_is_loaded_unless_one_is_named(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    first, second = _model(2), _model(3)
    store.save(first)
    store.save(second)
    assert store.versions("pump-rul") == sorted([first.card.version, second.card.version])
    assert store.load("pump-rul").card.version == second.card.version
    assert store.load("pump-rul", first.card.version).card.version == first.card.version


def test_missing_model_and_bad_names_are_clear_errors(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no saved versions of model 'nope'"):
        store.load("nope")
    with pytest.raises(DataFormatError, match=r"model name '\.\./etc'"):
        store.load("../etc")


@pytest.mark.integration
def test_versions_are_recorded_with_metrics_and_one_is_active(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path)
    name = f"rul-{tmp_path.name[-12:]}".replace("_", "-")
    a = _model(4, name=name)
    b = _model(5, name=name)
    for m, rmse in ((a, 14.0), (b, 11.0)):
        card = m.card.with_metrics(cv_rmse=rmse)
        record(db, card, store.save(m))
    record(db, a.card.with_metrics(cv_rmse=14.0), store.path_of(name, a.card.version))  # again
    activate(db, name, a.card.version)
    activate(db, name, b.card.version)
    db.commit()
    versions = list_versions(db, name)
    assert [c.version for c, _ in versions] == [b.card.version, a.card.version]
    assert [active for _, active in versions] == [True, False]
    assert versions[0][0].metrics == {"cv_rmse": 11.0}
    assert versions[0][0].data["units"] == 6
    with pytest.raises(ModelNotFoundError):
        activate(db, name, "19700101T000000000000Z-00000000")
