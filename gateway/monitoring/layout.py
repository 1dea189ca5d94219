"""Where each model feature's bin goes in a ``decision_monitoring`` row, and how it is binned.

A :class:`VersionLayout` is built once per model version from its training
``reference_profile`` and reused for every decision that version scores:

- a numeric feature gets the index of its *fine* bin: ``bisect_left(fine_edges, x)``,
  right-closed bins like the profile's deciles. ``fine_edges`` are the training
  percentiles (the deciles among them); a version registered before they existed falls
  back to its decile ``edges``. Each fine bin lies inside exactly one decile bin
  (:attr:`FeatureLayout.to_decile`), so PSI on deciles is exact and KS is measured on
  the fine bins' CDFs;
- a categorical feature gets the index of its category in the version's category list.

Negative codes are signals of their own: :data:`MISSING` (absent, null, or imputed by a
validator), :data:`UNSEEN` (a category the model never saw, or a value that is no
number) and :data:`NOT_COMPUTED` (a rejected request stopped before the feature existed,
e.g. a derived feature: left out of that feature's statistics).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from gateway.tables import MONITORING_GROUPS, MONITORING_SLOTS

MISSING = -1
UNSEEN = -2
NOT_COMPUTED = -3


def slot_column(slot: int) -> str:
    """The column holding feature slot ``slot`` (``f00`` ..)."""
    return f"f{slot:02d}"


def group_column(slot: int) -> str:
    """The column holding protected-group slot ``slot`` (``g0`` ..)."""
    return f"g{slot}"


@dataclass(frozen=True)
class FeatureLayout:
    """One monitored feature of a version: its slot, binning and reference counts."""

    name: str
    slot: int
    kind: str  # numeric | categorical
    #: numeric: fine bin edges (right-closed bins), as a list for :func:`bisect_left`
    fine_edges: tuple[float, ...] = ()
    #: numeric: the reference's decile edges
    edges: tuple[float, ...] = ()
    #: numeric: the decile bin of each fine bin
    to_decile: tuple[int, ...] = ()
    #: numeric: training counts per decile bin and per fine bin
    ref_counts: tuple[int, ...] = ()
    ref_fine_counts: tuple[int, ...] = ()
    #: categorical: the categories in slot order, and their training counts
    categories: tuple[str, ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)
    ref_null_rate: float = 0.0

    @property
    def column(self) -> str:
        return slot_column(self.slot)

    @property
    def bins(self) -> int:
        """How many bins of 0 and above a value can fall in."""
        return len(self.fine_edges) + 1 if self.kind == "numeric" else len(self.categories)

    def bin(self, value: Any) -> int:
        """The bin of ``value`` (a negative code for a missing or unseen one)."""
        kind = type(value)  # fast paths first: this runs for every feature of every decision
        if kind is str and self.index:
            return self.index.get(value, UNSEEN)
        if (kind is int or kind is float) and self.fine_edges:
            return MISSING if value != value else bisect_left(self.fine_edges, value)
        if value is None:
            return MISSING
        if self.kind == "categorical":
            return self.index.get(value if isinstance(value, str) else str(value), UNSEEN)
        if isinstance(value, bool):
            return UNSEEN
        try:
            x = float(value)
        except (TypeError, ValueError):
            return UNSEEN
        if math.isnan(x):
            return MISSING
        return bisect_left(self.fine_edges, x)


def numeric_layout(name: str, slot: int, profile: Mapping[str, Any]) -> FeatureLayout:
    """The layout of a numeric feature from its profile (decile edges if no fine ones)."""
    edges = [float(e) for e in profile.get("edges") or ()]
    counts = [int(c) for c in profile.get("counts") or ()]
    fine = [float(e) for e in profile.get("fine_edges") or edges]
    fine_counts = [int(c) for c in profile.get("fine_counts") or ()] or counts
    if len(fine_counts) != len(fine) + 1:  # fine edges without counts: use the deciles
        fine, fine_counts = edges, counts
    # Fine bin j is (fine[j-1], fine[j]]; its decile bin is that of its upper edge, and the
    # open last bin is the last decile bin. Exact when every decile edge is a fine edge.
    to_decile = [bisect_left(edges, e) for e in fine] + [len(edges)]
    return FeatureLayout(
        name=name,
        slot=slot,
        kind="numeric",
        fine_edges=tuple(fine),
        edges=tuple(edges),
        to_decile=tuple(to_decile),
        ref_counts=tuple(counts),
        ref_fine_counts=tuple(fine_counts),
        ref_null_rate=float(profile.get("null_rate") or 0.0),
    )


def categorical_layout(
    name: str, slot: int, categories: Sequence[str], profile: Mapping[str, Any]
) -> FeatureLayout:
    """The layout of a categorical feature: its categories in the version's order."""
    counts = profile.get("counts") or {}
    cats = tuple(str(c) for c in categories) or tuple(str(c) for c in counts)
    return FeatureLayout(
        name=name,
        slot=slot,
        kind="categorical",
        categories=cats,
        index={c: i for i, c in enumerate(cats)},
        ref_counts=tuple(int(counts.get(c, 0)) for c in cats),
        ref_null_rate=float(profile.get("null_rate") or 0.0),
    )


@dataclass(frozen=True)
class VersionLayout:
    """The monitored features of one model version, in slot order, and its score bins."""

    model_name: str
    model_version: int
    features: tuple[FeatureLayout, ...]
    score: FeatureLayout | None
    #: training figures (``metadata["metrics"]``) the performance runs compare with
    metrics: Mapping[str, Any]
    #: features beyond the row's slots, not monitored
    skipped: tuple[str, ...] = ()

    @classmethod
    def from_metadata(cls, name: str, version: int, metadata: Mapping[str, Any]) -> VersionLayout:
        profile = metadata.get("reference_profile") or {}
        profiles = profile.get("features") or {}
        features: list[FeatureLayout] = []
        specs = list(metadata.get("features") or ())
        for slot, spec in enumerate(specs[:MONITORING_SLOTS]):
            fname = str(spec["name"])
            fprofile = profiles.get(fname) or {}
            if spec.get("type") == "categorical":
                features.append(
                    categorical_layout(fname, slot, spec.get("categories") or (), fprofile)
                )
            else:
                features.append(numeric_layout(fname, slot, fprofile))
        score = profile.get("score")
        return cls(
            model_name=name,
            model_version=int(version),
            features=tuple(features),
            score=numeric_layout("score", -1, score) if score else None,
            metrics=dict(metadata.get("metrics") or {}),
            skipped=tuple(str(s["name"]) for s in specs[MONITORING_SLOTS:]),
        )

    @cached_property
    def features_by_name(self) -> dict[str, FeatureLayout]:
        return {f.name: f for f in self.features}


@dataclass(frozen=True)
class GroupLayout:
    """A pipeline's protected attributes (``g0`` ..) and the index of each allowed value.

    Values are the schema's allowed values in its order; a legacy alias of one (e.g. a
    German credit code) counts as the value it stands for.
    """

    fields: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> GroupLayout:
        """From a pipeline's input schema: fields of class ``protected`` with their values."""
        properties = (pipeline.input_schema() or {}).get("properties") or {}
        aliases = input_aliases(pipeline)
        fields, values = [], []
        for name, spec in properties.items():
            if spec.get("x-class") == "protected":
                known = aliases.get(name, {})
                fields.append(str(name))
                values.append(tuple(str(v) for v in _enum(spec) if v not in known))
        return cls(tuple(fields[:MONITORING_GROUPS]), tuple(values[:MONITORING_GROUPS]), aliases)

    def code(self, slot: int, value: Any) -> int:
        """The index of ``value`` among slot ``slot``'s values (-1 null, -2 unknown)."""
        if value is None:
            return MISSING
        text = str(value)
        text = self.aliases.get(self.fields[slot], {}).get(text, text)
        try:
            return self.values[slot].index(text)
        except ValueError:
            return UNSEEN


def _enum(spec: Mapping[str, Any]) -> list[Any]:
    """The allowed values of a field's JSON schema (also when it may be null: ``anyOf``)."""
    if spec.get("enum"):
        return list(spec["enum"])
    for option in spec.get("anyOf") or ():
        if isinstance(option, Mapping) and option.get("enum"):
            return list(option["enum"])
    return []


def input_aliases(pipeline: Any) -> dict[str, Mapping[str, str]]:
    """Per input field, the legacy aliases its validators accept for a category."""
    out: dict[str, Mapping[str, str]] = {}
    for validator in getattr(pipeline, "validators", ()):
        for name, spec in (getattr(validator, "fields", None) or {}).items():
            aliases = getattr(spec, "aliases", None)
            if isinstance(aliases, Mapping) and aliases:
                out.setdefault(str(name), aliases)
    return out


def decile_counts(layout: FeatureLayout, fine_counts: np.ndarray) -> np.ndarray:
    """Counts per decile bin from counts per fine bin (exact: see the module docstring)."""
    out = np.zeros(len(layout.ref_counts), dtype=np.int64)
    np.add.at(out, np.asarray(layout.to_decile, dtype=np.int64), fine_counts)
    return out
