"""Predictive maintenance: remaining-useful-life and anomaly models.

Modules, along the data flow:

- `cmapss.py`: reads run-to-failure trajectories (NASA C-MAPSS text format).
- `features.py`: pure numpy: operating-regime normalisation, sensor selection, causal
  trailing-window features per unit.
- `rul.py`: the remaining-useful-life model (scikit-learn), its metrics and model card.
- `anomaly.py`: an anomaly detector per equipment model trained on healthy telemetry.
- `registry.py`: saves and loads model versions with their cards.

scikit-learn is imported only in `rul.py` and `anomaly.py`.
"""
