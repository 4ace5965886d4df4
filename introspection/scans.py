"""Offline introspection in the app: slice scans, boundary maps, stress sweeps and the
moved-problem check, between the stored objects and the numeric core.

The numbers come from ``boundary`` (plain functions, no Django): ``scan``, ``maps``,
``sweeps`` and ``neighbourhood``, with the rows of every slice from ``slices.mask``, its text
from ``slices.describe`` and every prediction from ``predict`` (in chunks of
``settings.PREDICT_CHUNK_ROWS`` rows when that is set). This module checks requests before
they are queued (in the web process: no artifact is ever loaded there), does the work inside
the background tasks (``introspection.tasks``: load the artifact once, hash checked, in a
child process of the worker as reruns do; read the dataset once, hash checked; predict once)
and turns results into findings and probes.

A crafted artifact that crashes or exhausts memory while loading or predicting ends its
model's process, not the worker: the job fails with ModelCrashed's reason (the signal, or
the memory limit) and the worker goes on to the next one.

Sensitive columns (``Dataset.columns[*]["sensitive"]``) take part in every computation
but never appear row by row: a scan leaves out a sensitive categorical column that has
values shared by fewer rows than the scan's minimum support or SENSITIVE_MIN_ROWS,
whichever is larger (a slice on it could name single people), and never reports a candidate
whose slice involves a sensitive column and covers fewer than SENSITIVE_MIN_ROWS rows,
whatever minimum support it was asked for; a boundary map over a sensitive axis draws no
points, and the values it holds constant withhold the sensitive ones; a counterfactual sweep
of a sensitive column uses its frequent categories or its 5th-95th percentile range only.
"""

from __future__ import annotations

import base64
import math
import zlib
from io import BytesIO

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from boundary import maps, neighbourhood, predict, slices, sweeps
from boundary.artifacts import check_feature_columns
from boundary.frames import py_scalar
from boundary.scan import find_weak_slices, overlaps, slice_key
from catalog.choices import RiskCategory, Severity
from catalog.models import Finding, Tag
from core.audit import acting_as
from probes.choices import ProbeKind, Trigger
from probes.evaluation import load_isolated_model
from probes.models import Probe, Rerun

from .models import ScanDismissal, SweepKind

NOISE_SCALES = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)
NOISE_REPEATS = 5
COUNTERFACTUAL_POINTS = 20
MAX_CATEGORIES = 30
MARGIN = 0.1
MAP_RESOLUTION = 100
# Row-set Jaccard at or above which a candidate is the same problem as a finding's slice
# (known) or a dismissed slice (left out).
SAME_PROBLEM_JACCARD = 0.5
# At most this many extra candidates are searched for, to stand in for dismissed ones.
MAX_STAND_INS = 20


# --------------------------------------------------------------------------------------
# Checks before queuing (web process)
# --------------------------------------------------------------------------------------


def _int(value, field, low, high, *, allow_none=False):
    if value in (None, "") and allow_none:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError({field: f"{field} must be a whole number."}) from None
    if not low <= number <= high:
        raise ValidationError({field: f"{field} must be between {low} and {high}."})
    return number


def scan_params(dataset, *, top_k=5, max_predicates=2, min_support=None):
    """The scan's parameters, checked; a ValidationError names the bad one."""
    top_k = _int(top_k, "top_k", 1, 20)
    max_predicates = _int(max_predicates, "max_predicates", 1, 3)
    min_support = _int(min_support, "min_support", 5, max(5, dataset.row_count), allow_none=True)
    if dataset.target_column not in dataset.column_names:
        raise ValidationError({"dataset": f"{dataset} has no target column to score against."})
    if min_support is None:  # the scan's own default, made explicit for the record
        min_support = default_min_support(dataset.row_count)
    return {"top_k": top_k, "max_predicates": max_predicates, "min_support": min_support}


def default_min_support(rows):
    """30 rows or 0.5% of the dataset, whichever is larger (find_weak_slices' default)."""
    return max(30, math.ceil(0.005 * rows))


def numeric_features(dataset):
    """The dataset's numeric model-feature columns (candidate map axes)."""
    kinds = dataset.schema
    return [c for c in dataset.feature_columns if kinds.get(c) == "numeric"]


def default_map_axes(finding):
    """Two numeric features for a finding's map: the slice's own first, then the others
    in dataset order. None when the dataset has fewer than two numeric features."""
    if finding.dataset is None:
        return None
    numeric = numeric_features(finding.dataset)
    chosen = []
    for pred in finding.slice or []:
        if pred.get("feature") in numeric and pred["feature"] not in chosen:
            chosen.append(pred["feature"])
    chosen += [c for c in numeric if c not in chosen]
    return tuple(chosen[:2]) if len(chosen) >= 2 else None


def check_map_axes(finding, feature_x, feature_y):
    dataset = finding.dataset
    if dataset is None:
        raise ValidationError("This finding names no dataset; a boundary map needs one.")
    numeric = numeric_features(dataset)
    for field, name in (("feature_x", feature_x), ("feature_y", feature_y)):
        if name not in dataset.column_names:
            raise ValidationError({field: f"Column '{name}' is not in {dataset}."})
        if name not in dataset.feature_columns:
            raise ValidationError(
                {field: f"Column '{name}' is not a model feature (it is the target or ignored)."}
            )
        if name not in numeric:
            raise ValidationError(
                {field: f"Column '{name}' is not numeric; a boundary map needs numeric axes."}
            )
    if feature_x == feature_y:
        raise ValidationError({"feature_y": "Choose two different features."})


def check_sweep(finding, kind, version, feature):
    """The sweep's parameters, checked before it is queued."""

    if kind not in SweepKind.values:
        raise ValidationError({"kind": f"Unknown sweep kind '{kind}'."})
    if finding.dataset is None:
        raise ValidationError("This finding names no dataset; a sweep needs one.")
    finding.ml_model.check_owns(version)
    if kind == SweepKind.NOISE:
        if not numeric_features(finding.dataset):
            raise ValidationError("A noise sweep needs numeric features; the dataset has none.")
        return {"scales": list(NOISE_SCALES), "repeats": NOISE_REPEATS, "seed": 0}
    if not feature:
        raise ValidationError({"feature": "Choose the feature to sweep."})
    if feature not in finding.dataset.feature_columns:
        raise ValidationError(
            {"feature": f"Column '{feature}' is not a model feature of {finding.dataset}."}
        )
    return {"feature": feature}


# --------------------------------------------------------------------------------------
# Worker side: artifact, table, predictions
# --------------------------------------------------------------------------------------


class Workbench:
    """One model version's artifact and one dataset, loaded once for a task; a context
    manager: leaving it ends the model's process (the bench's data stays readable).

    1. The artifact is loaded in a child process of the worker, as for reruns
       (``probes.evaluation.load_isolated_model``: sha256 checked before the load, skops
       allow-list, ``ARTIFACT_MEMORY_LIMIT_BYTES``); ``model`` stands for it, and every
       prediction (of the dataset, a map's grid or a sweep's changed copies) is made there.
       A child that crashes or runs out of memory raises ModelCrashed, saying which.
    2. The dataset is read after its sha256 is checked; its columns must match the model's.
    3. ``X`` holds the model's feature columns (``predict.model_features``: in the model's
       order); ``predict()`` predicts once (``predict.predict``, in chunks of
       ``settings.PREDICT_CHUNK_ROWS`` rows when that is set) and keeps the result.
    """

    def __init__(self, version, dataset, *, frame=None):
        self.version, self.dataset = version, dataset
        self.model = load_isolated_model(version)
        try:
            # Another bench's frame (same dataset, already hash-checked) saves a second read.
            self.frame = dataset.read() if frame is None else frame
            check_feature_columns(self.model, dataset.feature_columns)
            self.X = predict.model_features(
                self.model, self.frame, dataset.target_column, dataset.ignored_columns
            )
        except BaseException:
            self.close()
            raise
        self.y = self.frame[dataset.target_column]
        self.sensitive = set(dataset.sensitive_columns)
        self._predictions = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """End the model's process."""
        self.model.close()

    def predict(self):
        if self._predictions is None:
            self._predictions = predict.predict(
                self.model, self.X, chunk_rows=settings.PREDICT_CHUNK_ROWS
            )
        return self._predictions

    def lineage(self):
        return {
            "artifact_sha256": self.version.artifact_sha256,
            "dataset_sha256": self.dataset.sha256,
        }


# --------------------------------------------------------------------------------------
# Slice scans
# --------------------------------------------------------------------------------------


def _floor3(x):
    return math.floor(x * 1000) / 1000


def _ceil3(x):
    return math.ceil(x * 1000 - 1e-9) / 1000


def suggested_threshold(slice_value, overall_value):
    """A pass threshold that the slice fails now and passes once it is back to normal:
    halfway between the slice's value and the whole dataset's, rounded down to 3 decimals
    (so the measured value stays above it). When the slice is not worse than the whole
    dataset, the whole dataset's value, rounded up: the probe guards it stays that way."""
    if slice_value > overall_value:
        return _floor3((slice_value + overall_value) / 2)
    return _ceil3(overall_value)


def sensitive_floor(min_support):
    """The fewest rows a reported slice on a sensitive column covers: the scan's minimum
    support, and never fewer than SENSITIVE_MIN_ROWS (DESIGN.md, "Sensitive columns")."""
    return max(int(min_support), int(settings.SENSITIVE_MIN_ROWS))


def scan_columns(bench, min_support):
    """The columns to scan and the ones left out (with the reason)."""
    kinds = bench.dataset.schema
    floor = sensitive_floor(min_support)
    columns, skipped = [], []
    for name in bench.X.columns:
        if name in bench.sensitive and kinds.get(name) != "numeric":
            counts = bench.X[name].value_counts(dropna=True)
            if len(counts) and int(counts.min()) < floor:
                skipped.append(
                    {
                        "column": name,
                        "reason": f"sensitive, with values shared by fewer than {floor} rows",
                    }
                )
                continue
        columns.append(name)
    return columns, skipped


def reportable(candidate, sensitive, min_support):
    """False for a candidate whose slice involves a sensitive column and covers fewer rows
    than sensitive_floor: a scan leaves it out without a trace, as if it had not been
    found (a small slice on a sensitive column could single people out)."""
    involved = {p["feature"] for p in candidate["slice"]} & set(sensitive)
    return not involved or candidate["support"] >= sensitive_floor(min_support)


def check_may_dismiss(user):
    """Dismissing a scan candidate (or restoring it) is a contributor's decision, the
    counterpart of logging it as a finding."""
    if not user.has_perm("catalog.add_finding"):
        raise PermissionDenied("Dismissing a scan candidate needs the contributor role.")


def dismissal_of(candidate):
    """The dismissal in force made from this stored candidate, or None."""
    pk = candidate.get("dismissal")
    if not pk:
        return None
    return ScanDismissal.objects.active().filter(pk=pk).first()


def known_findings(frame, masks, findings, cache):
    """Per candidate mask: the finding whose slice's rows on ``frame`` overlap it most,
    when that row-set Jaccard is at least SAME_PROBLEM_JACCARD, as
    ``{"finding", "title", "status", "jaccard"}``; else None. A finding whose slice does
    not fit the table (a column it lacks) matches nothing."""
    table = overlaps(frame, masks, [f.slice for f in findings], cache)
    known = []
    for row in table:
        scored = [(j, k) for k, j in enumerate(row) if j is not None]
        best = max(scored, default=(0.0, -1))
        if best[0] >= SAME_PROBLEM_JACCARD:
            finding = findings[best[1]]
            known.append(
                {
                    "finding": finding.pk,
                    "title": finding.title,
                    "status": finding.status,
                    "jaccard": round(best[0], 4),
                }
            )
        else:
            known.append(None)
    return known


def dismissed_matches(frame, candidates, masks, dismissals, cache):
    """Per candidate: the dismissal that hides it, or None.

    A candidate is hidden by a dismissal in force when its slice is the dismissed slice
    (``boundary.scan.slice_key``: the same predicates in any order, however written), or
    else when its rows overlap the dismissed slice's rows on ``frame`` with Jaccard at
    least SAME_PROBLEM_JACCARD (the same problem found with other thresholds). Returns
    ``{"dismissal", "match" ("slice" or "rows"), "jaccard", "why"}``.
    """
    keys = [slice_key(d.slice, frame) for d in dismissals]
    table = overlaps(frame, masks, [d.slice for d in dismissals], cache)
    matches = []
    for cand, row in zip(candidates, table, strict=True):
        key = slice_key(cand["slice"], frame)
        same = next((k for k, other in enumerate(keys) if key and other == key), None)
        if same is not None:
            d = dismissals[same]
            matches.append(
                {
                    "dismissal": d.pk,
                    "match": "slice",
                    "jaccard": 1.0,
                    "why": f"the same slice as dismissal #{d.pk}",
                }
            )
            continue
        scored = [(j, k) for k, j in enumerate(row) if j is not None]
        best = max(scored, default=(0.0, -1))
        if best[0] >= SAME_PROBLEM_JACCARD:
            d = dismissals[best[1]]
            matches.append(
                {
                    "dismissal": d.pk,
                    "match": "rows",
                    "jaccard": round(best[0], 4),
                    "why": (
                        f"its rows overlap those of dismissed slice {d.description or d.slice} "
                        f"(#{d.pk}) with Jaccard {best[0]:.2f}"
                    ),
                }
            )
        else:
            matches.append(None)
    return matches


def run_scan(scan, report):
    """Compute a scan's candidates (worker). `report(percent, text)` shows progress.

    1. Predict once; scan the columns that may be scanned.
    2. Leave out candidates that a dismissal in force for this ML model and dataset hides
       (dismissed_matches); more are searched for to stand in for them. The hidden ones are
       kept on the scan (``dismissed_candidates``) with the dismissal and why.
    3. Mark the rest "known" when a finding of the same ML model covers them
       (known_findings), and measure them.
    """
    report(5, "Loading the model artifact")
    with Workbench(scan.model_version, scan.dataset) as bench:
        n = len(bench.X)
        report(25, f"Predicting on {n} rows")
        pred = bench.predict()
    y = bench.y.to_numpy()
    wrong = np.asarray(pred.pred != y, dtype=bool)
    params = scan.params or {}
    min_support = params.get("min_support") or default_min_support(n)
    top_k = params.get("top_k", 5)
    dismissals = list(ScanDismissal.objects.active().for_scan(scan))
    columns, skipped = scan_columns(bench, min_support)
    report(45, f"Scanning {len(columns)} columns for weak slices")
    found = find_weak_slices(
        bench.X,
        y,
        pred.pred,
        top_k=top_k + min(len(dismissals), MAX_STAND_INS),
        min_support=min_support,
        max_predicates=params.get("max_predicates", 2),
        columns=columns,
    )
    report(85, "Measuring the candidates")
    uncertain = pred.margin < MARGIN
    overall = {
        "rows": n,
        "errors": int(wrong.sum()),
        "error_rate": float(wrong.mean()) if n else 0.0,
        "margin_density": float(uncertain.mean()) if n else 0.0,
        "min_support": int(min_support),
    }
    # Findings' slices may name any column of the dataset: rows come from the whole table.
    frame = bench.frame
    cache = {}  # slices.mask's encoded columns of the frame, shared by every slice below
    found = [cand for cand in found if reportable(cand, bench.sensitive, min_support)]
    masks = [slices.mask(frame, cand["slice"], cache) for cand in found]
    hidden_by = dismissed_matches(frame, found, masks, dismissals, cache)
    kept = [k for k, match in enumerate(hidden_by) if match is None][:top_k]
    findings = list(
        Finding.objects.filter(ml_model_id=scan.model_version.ml_model_id).only(
            "pk", "title", "status", "slice"
        )
    )
    known = known_findings(frame, [masks[k] for k in kept], findings, cache)
    candidates = []
    for k, cand_known in zip(kept, known, strict=True):
        mask = masks[k]
        density = float(uncertain[mask].mean()) if mask.any() else 0.0
        cand = dict(found[k], margin_density=density)
        cand["suggested"] = {
            "slice_error_rate": suggested_threshold(cand["error_rate"], overall["error_rate"]),
            "margin_density": suggested_threshold(density, overall["margin_density"]),
        }
        cand["sensitive_features"] = sorted({p["feature"] for p in cand["slice"]} & bench.sensitive)
        if cand_known:
            cand["known"] = cand_known
        candidates.append(cand)
    hidden = [
        {
            "slice": found[k]["slice"],
            "description": found[k]["description"],
            "support": found[k]["support"],
            "error_rate": found[k]["error_rate"],
            **match,
        }
        for k, match in enumerate(hidden_by)
        if match is not None
    ]
    # Stored here: the job runner stores the fields it knows once the scan is done.
    scan.dismissed_candidates = hidden
    type(scan).objects.filter(pk=scan.pk).update(dismissed_candidates=hidden)
    return {
        "overall": overall,
        "candidates": candidates,
        "dismissed_candidates": hidden,
        "skipped_columns": skipped,
        "lineage": dict(bench.lineage(), scanned_columns=columns),
    }


def suggested_severity(candidate):
    lift = candidate.get("lift") or 1.0
    if lift >= 3:
        return "high"
    if lift >= 1.5:
        return "medium"
    return "low"


def suggested_title(candidate):
    return f"High error rate where {candidate['description']}"[:200]


def suggested_summary(scan, candidate):
    return (
        f"{scan.model_version} errs on {candidate['error_rate']:.0%} of the "
        f"{candidate['support']} rows where {candidate['description']}, against "
        f"{candidate['overall_error_rate']:.0%} overall ({candidate['lift']:.1f}×)."
    )[:500]


def candidate_evidence(scan, candidate):
    return {
        "error_rate": round(candidate["error_rate"], 4),
        "ci_95": [round(candidate["ci_low"], 4), round(candidate["ci_high"], 4)],
        "support": candidate["support"],
        "errors": candidate["errors"],
        "overall_error_rate": round(candidate["overall_error_rate"], 4),
        "lift": round(candidate["lift"], 2),
        "error_share": round(candidate["error_share"], 4),
        "margin_density": round(candidate["margin_density"], 4),
        # As text: pages print floats in full, and this one may be 1e-90.
        "p_value": f"{candidate['p_value']:.2g}",
        "found_by": f"slice scan #{scan.pk} of {scan.model_version} on {scan.dataset}",
    }


def _threshold(value, field, default):
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({field: "Enter a number between 0 and 1."}) from None
    if not 0 <= number <= 1 or math.isnan(number):
        raise ValidationError({field: "Enter a number between 0 and 1."})
    return number


def log_candidate_as_finding(
    scan,
    candidate,
    *,
    by,
    title="",
    severity="",
    risk_category="",
    summary="",
    error_threshold=None,
    margin_threshold=None,
):
    """See SliceScan.log_finding."""

    if not (by.has_perm("catalog.add_finding") and by.has_perm("probes.add_probe")):
        raise PermissionDenied("Logging a finding with probes needs the contributor role.")
    severity = severity or suggested_severity(candidate)
    if severity not in Severity.values:
        raise ValidationError({"severity": f"Unknown severity '{severity}'."})
    risk_category = risk_category or "reliability"
    if risk_category not in RiskCategory.values:
        raise ValidationError({"risk_category": f"Unknown risk category '{risk_category}'."})
    thresholds = candidate["suggested"]
    error_threshold = _threshold(error_threshold, "error_threshold", thresholds["slice_error_rate"])
    margin_threshold = _threshold(
        margin_threshold, "margin_threshold", thresholds["margin_density"]
    )
    version, dataset = scan.model_version, scan.dataset
    with transaction.atomic():
        locked = type(scan).objects.select_for_update().get(pk=scan.pk)
        index = next(
            (i for i, c in enumerate(locked.candidates) if c["slice"] == candidate["slice"]), None
        )
        if index is None:
            raise ValidationError({"candidate": "The candidate is no longer in this scan."})
        logged = locked.candidates[index].get("finding")
        if logged:
            raise ValidationError(
                {"candidate": f"This candidate is already logged as finding #{logged}."}
            )
        finding = Finding(
            title=(title or "").strip()[:200] or suggested_title(candidate),
            summary=(summary or "").strip()[:500] or suggested_summary(scan, candidate),
            description=(
                f"Found by a slice scan of {version} on {dataset} (scan #{scan.pk}). "
                f"The model errs on {candidate['errors']} of the {candidate['support']} rows "
                f"where {candidate['description']} ({candidate['error_rate']:.1%}, 95% CI "
                f"{candidate['ci_low']:.1%}–{candidate['ci_high']:.1%}) against "
                f"{candidate['overall_error_rate']:.1%} on the whole dataset; "
                f"{candidate['margin_density']:.0%} of its decisions have a margin below "
                f"{MARGIN:g}."
            ),
            ml_model=version.ml_model,
            model_version=version,
            dataset=dataset,
            slice=candidate["slice"],
            evidence=candidate_evidence(scan, candidate),
            severity=severity,
            risk_category=risk_category,
            owner=by,
            reporter=by,
        )
        finding.full_clean(exclude=["search_vector"])
        with acting_as(by):
            finding.save()
            finding.tags.set(Tag.from_names(["slice-scan"]))
            probes = [
                Probe(
                    finding=finding,
                    dataset=dataset,
                    kind=ProbeKind.SLICE_ERROR_RATE,
                    slice=finding.slice,
                    params={},
                    comparator="<=",
                    threshold=error_threshold,
                    created_by=by,
                ),
                Probe(
                    finding=finding,
                    dataset=dataset,
                    kind=ProbeKind.MARGIN_DENSITY,
                    slice=finding.slice,
                    params={"margin": MARGIN},
                    comparator="<=",
                    threshold=margin_threshold,
                    created_by=by,
                ),
            ]
            for probe in probes:
                probe.full_clean()
                probe.save()
        locked.candidates[index] = dict(locked.candidates[index], finding=finding.pk)
        type(scan).objects.filter(pk=scan.pk).update(candidates=locked.candidates)
        scan.candidates = locked.candidates
        # The new probes start their history on the version the problem was seen on.
        Rerun.queue(
            version,
            trigger=Trigger.MANUAL,
            by=by,
            probes=probes,
            label=f"baseline of the probes of scan #{scan.pk}",
        )
    return finding


# --------------------------------------------------------------------------------------
# Boundary maps
# --------------------------------------------------------------------------------------


def pack_grid(pred):
    """A grid of class indices as compact text (zlib + base64) for comparing versions."""
    data = np.asarray(pred, dtype=np.uint8)
    return {
        "shape": list(data.shape),
        "data": base64.b64encode(zlib.compress(data.tobytes(), 9)).decode(),
    }


def unpack_grid(packed):
    if not packed:
        return None
    raw = zlib.decompress(base64.b64decode(packed["data"]))
    return np.frombuffer(raw, dtype=np.uint8).reshape(packed["shape"])


def changed_share(a, b):
    """Share of map cells whose predicted class differs between two maps' summaries."""
    ga, gb = unpack_grid(a.get("pred_grid")), unpack_grid(b.get("pred_grid"))
    if ga is None or gb is None or ga.shape != gb.shape:
        return None
    return float(np.mean(ga != gb))


def draw_map(boundary_map):
    """Render a map (worker): the PNG bytes and its summary numbers."""
    with Workbench(boundary_map.model_version, boundary_map.dataset) as bench:
        fx, fy = boundary_map.feature_x, boundary_map.feature_y
        # Points are rows: over a sensitive axis they would show its values one by one.
        points = not ({fx, fy} & bench.sensitive)
        features = list(bench.X.columns)
        frame = bench.frame
        slice_ = boundary_map.slice or None
        buffer = BytesIO()
        summary = maps.render_boundary_map(
            bench.model,
            frame,
            bench.y,
            fx,
            fy,
            slice=slice_,
            margin=boundary_map.margin,
            title=f"{boundary_map.model_version}: {fy} against {fx}",
            sensitive_columns=sorted(bench.sensitive),
            path_or_buffer=buffer,
            feature_columns=features,
            resolution=MAP_RESOLUTION,
            max_points=2000 if points else 0,
            chunk_rows=settings.PREDICT_CHUNK_ROWS,
        )
        grid = maps.boundary_grid(
            bench.model,
            frame,
            fx,
            fy,
            slice=slice_,
            margin=boundary_map.margin,
            feature_columns=features,
            resolution=MAP_RESOLUTION,
            chunk_rows=settings.PREDICT_CHUNK_ROWS,
        )
    summary = {
        "uncertain_share": summary["uncertain_share"],
        "positive_share": summary["positive_share"],
        "error_rate": summary["error_rate"],
        "n_misclassified": summary["n_misclassified"],
        "slice_support": summary["slice_support"],
        "slice_box": summary["slice_box"],
        "points_shown": points,
        "n_plotted": summary["n_plotted"],
        "pred_grid": pack_grid(grid["pred"]),
        **bench.lineage(),
    }
    return buffer.getvalue(), summary


# --------------------------------------------------------------------------------------
# Stress sweeps
# --------------------------------------------------------------------------------------


def _nice_grid(lo, hi, points, integer):
    values = np.linspace(lo, hi, points)
    if integer:
        return sorted({int(round(v)) for v in values})
    step = (hi - lo) / max(1, points - 1)
    decimals = max(0, 1 - math.floor(math.log10(step))) if step > 0 else 0
    return sorted({round(float(v), decimals) for v in values})


def counterfactual_values(frame, feature, kind, sensitive, min_count):
    """The settings a counterfactual sweep tries for `feature`.

    Numeric: 20 round values across the observed range (5th-95th percentile for a
    sensitive column), or the distinct values when there are at most 20 (not for a
    sensitive column). Otherwise the most frequent categories (at most 30; for a
    sensitive column only those shared by at least `min_count` rows).
    """
    s = frame[feature]
    if kind == "numeric":
        v = s.to_numpy(dtype=float, na_value=np.nan)
        v = v[~np.isnan(v)]
        if not len(v):
            raise ValueError(f"column '{feature}' has no values")
        uniq = np.unique(v)
        integer = bool(np.all(uniq == np.round(uniq))) and s.dtype.kind in "iu"
        if len(uniq) <= COUNTERFACTUAL_POINTS and not sensitive:
            return [int(u) if integer else float(u) for u in uniq]
        lo, hi = np.quantile(v, [0.05, 0.95]) if sensitive else (uniq[0], uniq[-1])
        return _nice_grid(float(lo), float(hi), COUNTERFACTUAL_POINTS, integer)
    counts = s.value_counts(dropna=True)
    if sensitive:
        counts = counts[counts >= min_count]
    values = [py_scalar(v) for v in counts.index[:MAX_CATEGORIES]]
    if not values:
        raise ValueError(f"column '{feature}' has no value frequent enough to sweep")
    return values


def run_sweep(sweep):
    """Compute a sweep's points (worker), each with a suggested probe threshold."""

    with Workbench(sweep.model_version, sweep.dataset) as bench:
        features = list(bench.X.columns)
        mask = slices.mask(bench.frame, sweep.slice or [])
        if not mask.any():
            raise ValueError("slice is empty")
        params = dict(sweep.params or {})
        if sweep.kind == SweepKind.NOISE:
            kinds = sweep.dataset.schema
            noisy = [c for c in features if kinds.get(c) == "numeric"]
            points = sweeps.noise_sweep(
                bench.model,
                bench.frame,
                features,
                mask,
                scales=params["scales"],
                repeats=params["repeats"],
                seed=params["seed"],
                features=noisy,
                chunk_rows=settings.PREDICT_CHUNK_ROWS,
            )
            params["features"] = noisy
        else:
            feature = sweep.feature
            values = counterfactual_values(
                bench.frame,
                feature,
                sweep.dataset.schema.get(feature),
                feature in bench.sensitive,
                default_min_support(len(bench.frame)),
            )
            points = sweeps.counterfactual_sweep(
                bench.model,
                bench.frame,
                features,
                mask,
                feature,
                values=values,
                chunk_rows=settings.PREDICT_CHUNK_ROWS,
            )
            params["values"] = values
    for point in points:
        point["suggested_threshold"] = max(0.01, _floor3(point["flip_rate"] / 2))
    return params, points


def probe_from_sweep_point(sweep, point, *, by, threshold=None):
    """See StressSweep.save_point_as_probe."""

    if not by.has_perm("probes.add_probe"):
        raise PermissionDenied("Saving a probe needs the contributor role.")
    threshold = _threshold(threshold, "threshold", point["suggested_threshold"])
    params = sweep.params or {}
    if sweep.kind == SweepKind.NOISE:
        kind = ProbeKind.PERTURBATION_FLIP_RATE
        probe_params = {
            "scale": point["scale"],
            "repeats": params["repeats"],
            "seed": params["seed"],
        }
    else:
        kind = ProbeKind.COUNTERFACTUAL_FLIP_RATE
        probe_params = {"changes": {sweep.feature: {"set": point["value"]}}}
    finding = sweep.finding
    with transaction.atomic():
        probe = Probe(
            finding=finding,
            dataset=sweep.dataset,
            kind=kind,
            slice=sweep.slice,
            params=probe_params,
            comparator="<=",
            threshold=threshold,
            created_by=by,
        )
        probe.full_clean()
        with acting_as(by):
            probe.save()
        probe.start_history(by)
    return probe


# --------------------------------------------------------------------------------------
# Moved-problem check
# --------------------------------------------------------------------------------------


def moved_problem_check(version, dataset, slice_, *, baseline=None):
    """Did the slice's errors move next door on `version`? (worker)

    1. The neighbourhood of the slice (thresholds widened and shifted, other predicates
       dropped) is scanned with neighbourhood.neighbourhood_check on `version`.
    2. The worst neighbour (outside the slice) is measured on `baseline` too (the version
       the finding was discovered on): errors next door count as moved there only if the
       neighbour is now significantly worse than it was (its 95% lower bound above the
       baseline's rate); a neighbour that was as bad before is an older, nearby problem.
    3. The verdict: moved (slice fixed, neighbour worse than before), spread (slice still
       bad, neighbour worse than before), nearby (slice fixed, neighbour bad as before),
       persists (slice still significantly worse than overall), or clear.

    Each version's model runs in its own child process (Workbench), one at a time; a crash
    raises ModelCrashed (tasks.check_moved_problem records it as a check that could not run).
    """
    with Workbench(version, dataset) as bench:
        pred = bench.predict()
    y = bench.y.to_numpy()
    result = neighbourhood.neighbourhood_check(bench.frame, y, pred.pred, slice_)
    neighbour = result["neighbour_slice"]
    before = None
    if baseline is not None and baseline.pk != version.pk and neighbour:
        with Workbench(baseline, dataset, frame=bench.frame) as base:
            wrong = np.asarray(base.predict().pred != y, dtype=bool)
        cache = {}  # slices.mask's encoded columns of bench.frame
        inside = slices.mask(bench.frame, slice_, cache)
        ring = slices.mask(bench.frame, neighbour, cache) & ~inside
        before = {
            "version": str(baseline),
            "neighbour_error_rate": float(wrong[ring].mean()) if ring.any() else None,
            "slice_error_rate": float(wrong[inside].mean()) if inside.any() else None,
        }
    elif baseline is not None and baseline.pk == version.pk and neighbour:
        # A fix on the discovery version itself: next door is as it was on the baseline.
        before = {
            "version": str(baseline),
            "neighbour_error_rate": result["neighbour_error_rate"],
            "slice_error_rate": result["slice_error_rate"],
        }
    worse_than_before = result["neighbour_significant"] and (
        before is None
        or before["neighbour_error_rate"] is None
        or result["neighbour_ci_low"] > before["neighbour_error_rate"]
    )
    slice_bad = result["slice_ci_low"] > result["overall_error_rate"]
    where = slices.describe(neighbour) if neighbour else ""
    rate, overall = result["neighbour_error_rate"], result["overall_error_rate"]
    if result["neighbour_significant"] and worse_than_before and not slice_bad:
        verdict = "moved"
        text = (
            f"The errors moved next door: {where} (outside the slice) errs on "
            f"{rate:.0%} against {overall:.0%} overall"
            + (
                f", up from {before['neighbour_error_rate']:.0%} on {before['version']}."
                if before and before["neighbour_error_rate"] is not None
                else "."
            )
        )
    elif result["neighbour_significant"] and worse_than_before:
        verdict = "spread"
        text = (
            f"The slice still errs on {result['slice_error_rate']:.0%} and the errors "
            f"reach next door: {where} (outside the slice) errs on {rate:.0%}"
            + (
                f", up from {before['neighbour_error_rate']:.0%} on {before['version']}."
                if before and before["neighbour_error_rate"] is not None
                else "."
            )
        )
    elif result["neighbour_significant"] and not slice_bad:
        verdict = "nearby"
        text = (
            f"The slice is no longer worse than overall. Next door, {where} errs on "
            f"{rate:.0%} against {overall:.0%} overall, but it did so on "
            f"{before['version']} too ({before['neighbour_error_rate']:.0%}): an older "
            "neighbouring problem, not one the fix created."
        )
    elif slice_bad:
        verdict = "persists"
        text = (
            f"The slice still errs on {result['slice_error_rate']:.0%} against "
            f"{overall:.0%} overall; its neighbourhood got no worse."
        )
    else:
        verdict = "clear"
        text = "No neighbourhood of the slice is significantly worse than the whole dataset."
    return {
        "verdict": verdict,
        "text": text,
        "moved": verdict == "moved",
        "spread": verdict == "spread",
        "slice_error_rate": result["slice_error_rate"],
        "slice_support": result["slice_support"],
        "overall_error_rate": overall,
        "neighbour_error_rate": rate,
        "neighbour_ci_low": result["neighbour_ci_low"],
        "neighbour_support": result["neighbour_support"],
        "neighbour_slice": neighbour,
        "neighbour_significant": result["neighbour_significant"],
        "baseline": before,
        "dataset": dataset.pk,
        **bench.lineage(),
    }


# --------------------------------------------------------------------------------------
# Privacy: sensitive marks
# --------------------------------------------------------------------------------------


def mark_sensitive(dataset, names, *, by):
    """Set which columns of a dataset are sensitive (metadata; the file is untouched).

    Every name must be a column of the dataset; the change is an audited update.
    """

    if not by.has_perm("registry.add_dataset"):
        raise PermissionDenied("Changing sensitive columns needs the contributor role.")
    names = [str(n) for n in names]
    unknown = sorted(set(names) - set(dataset.column_names))
    if unknown:
        raise ValidationError(
            {"sensitive_columns": f"{dataset} has no column(s) {', '.join(unknown)}."}
        )
    chosen = set(names)
    columns = [dict(c, sensitive=c["name"] in chosen) for c in dataset.columns]
    if columns == dataset.columns:
        return False
    with transaction.atomic():
        locked = type(dataset).objects.select_for_update().get(pk=dataset.pk)
        locked.columns = [dict(c, sensitive=c["name"] in chosen) for c in locked.columns]
        with acting_as(by):
            locked.save(update_fields=["columns"])
    dataset.columns = locked.columns
    return True
