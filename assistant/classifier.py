"""The trained fallback: intent from text when no rule's cue fires.

TF-IDF over character n-grams (robust to typos and unseen names) and word n-grams, with
a linear SVM calibrated to probabilities that say how sure it is; below `threshold` the
answer is out_of_scope (the honest answer to an unknown request). It trains in well under
a second on the seed corpus shipped in assistant/data, on one core.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import joblib  # type: ignore[import-untyped]  # no stubs
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

DATA = Path(__file__).resolve().parent / "data"


class IntentModel:
    def __init__(self, texts: Sequence[str], intents: Sequence[str], threshold: float = 0.35):
        self.threshold = threshold
        features = FeatureUnion(
            [
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1
                    ),
                ),
                ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
            ]
        )
        # A linear SVM (liblinear: a fraction of a second) calibrated by 3-fold sigmoid fits.
        model = CalibratedClassifierCV(LinearSVC(C=1.0), cv=3, method="sigmoid")
        self.pipe = Pipeline([("f", features), ("clf", model)])
        self.pipe.fit([t.casefold() for t in texts], list(intents))
        self.classes: list[str] = [str(c) for c in self.pipe.classes_]

    def predict(self, text: str) -> tuple[str, float]:
        probs = self.pipe.predict_proba([text.casefold()])[0]
        best = int(probs.argmax())
        p = float(probs[best])
        if p < self.threshold:
            return "out_of_scope", p
        return self.classes[best], p


def read_corpus(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    intents: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                intents.append(row["intent"])
    return texts, intents


_CACHED: IntentModel | None = None


def default_model(cache_dir: Path | None = None) -> IntentModel:
    """The model trained on the shipped seed corpus, built once per process; with a
    `cache_dir` (the state dir's), fitted once per corpus and library version and loaded
    from there by every later process: an API worker starting up then spends a tenth of a
    second instead of seconds of CPU beside the requests it already serves."""
    global _CACHED
    if _CACHED is not None:
        return _CACHED
    paths = sorted(DATA.glob("*.jsonl"))
    if cache_dir is None:
        _CACHED = IntentModel(*read_corpus(paths))
        return _CACHED
    digest = hashlib.sha256(metadata.version("scikit-learn").encode())
    for path in paths:
        digest.update(path.read_bytes())
    file = cache_dir / f"assistant-intents-{digest.hexdigest()[:16]}.joblib"
    try:
        model = joblib.load(file)
        if isinstance(model, IntentModel):
            _CACHED = model
            return model
    except (OSError, EOFError, ValueError, AttributeError, ImportError, pickle.PickleError):
        pass  # absent or unreadable: fit it again
    model = IntentModel(*read_corpus(paths))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    joblib.dump(model, tmp)
    tmp.replace(file)  # atomic: workers starting together never read half a file
    _CACHED = model
    return model
