"""Predict, then prove: from the manifests alone, what each fault will do to users and why
(issue 19); every drill records the prediction and judges it against what it measured."""

from failover_drill.predict.check import judge
from failover_drill.predict.faults import Context, predict
from failover_drill.predict.model import Bound, Finding, Prediction

__all__ = ["Bound", "Context", "Finding", "Prediction", "judge", "predict"]
