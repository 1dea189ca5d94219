"""Monitoring building blocks: binning, statistics, grading, webhook signing and retries."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gateway.monitoring import stats
from gateway.monitoring.alerts import Webhook, sign, verify
from gateway.monitoring.checks import grade
from gateway.monitoring.fairness import fairness_results
from gateway.monitoring.layout import (
    MISSING,
    UNSEEN,
    GroupLayout,
    VersionLayout,
    decile_counts,
    numeric_layout,
)
from gateway.monitoring.schema import settings
from gateway.training import numeric_profile
from tests.monitoring_helpers import webhook_receiver

# --- hostile values first -------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, MISSING),
        (float("nan"), MISSING),
        ("12", None),  # a numeric string still bins (a rejected request's raw value)
        ("twelve", UNSEEN),
        (True, UNSEEN),
        ([1, 2], UNSEEN),
        ({"$pii": "x"}, UNSEEN),
        (float("inf"), None),
        (-1e300, 0),
    ],
)
def test_numeric_bin_of_hostile_values(value: Any, expected: int | None) -> None:
    layout = numeric_layout("x", 0, numeric_profile(pd.Series(np.arange(1.0, 101.0))))
    got = layout.bin(value)
    if expected is None:
        assert 0 <= got <= len(layout.fine_edges)
    else:
        assert got == expected


def test_categorical_bin_of_unknown_and_odd_values() -> None:
    layout = VersionLayout.from_metadata(
        "m",
        1,
        {
            "features": [{"name": "c", "type": "categorical", "categories": ["a", "b"]}],
            "reference_profile": {"features": {"c": {"counts": {"a": 3, "b": 1}}}},
        },
    ).features[0]
    got = [layout.bin(v) for v in ("a", "b", "z", None, 1, "")]
    assert got == [0, 1, UNSEEN, MISSING, UNSEEN, UNSEEN]


def test_settings_reject_nothing_silently() -> None:
    merged = settings({"monitoring": {"drift": {"psi": {"alert": 0.3}}}})
    assert merged["drift"]["psi"] == {"warn": 0.1, "alert": 0.3}
    assert merged["drift"]["ks"]["alert"] == 0.1
    assert settings({})["alerts"]["webhooks"] == []


# --- binning ------------------------------------------------------------------------


def test_fine_bins_map_exactly_onto_the_deciles() -> None:
    rng = np.random.default_rng(7)
    train = pd.Series(np.round(rng.lognormal(8, 0.7, 3000)))  # ties, like credit amounts
    layout = numeric_layout("amount", 0, numeric_profile(train))
    window = np.round(rng.lognormal(8.2, 0.7, 5000))
    fine = np.bincount([layout.bin(x) for x in window], minlength=len(layout.fine_edges) + 1)
    direct = np.bincount(
        np.searchsorted(np.array(layout.edges), window, side="left"),
        minlength=len(layout.edges) + 1,
    )
    assert decile_counts(layout, fine).tolist() == direct.tolist()


def test_old_versions_without_fine_edges_fall_back_to_deciles() -> None:
    profile = numeric_profile(pd.Series(np.arange(100.0)))
    old = {k: v for k, v in profile.items() if not k.startswith("fine_")}
    layout = numeric_layout("x", 0, old)
    assert layout.fine_edges == layout.edges
    assert list(layout.to_decile) == list(range(len(layout.edges) + 1))


def test_protected_groups_use_values_not_aliases() -> None:
    class Spec:
        aliases = {"A93": "male : single"}

    class Validator:
        fields = {"sex": Spec()}

    class Pipeline:
        validators = (Validator(),)

        def input_schema(self) -> dict[str, Any]:
            return {
                "properties": {
                    "sex": {
                        "anyOf": [
                            {"type": "string", "enum": ["female", "male : single", "A93"]},
                            {"type": "null"},
                        ],
                        "x-class": "protected",
                    },
                    "age": {"type": "integer", "x-class": "personal"},
                }
            }

    groups = GroupLayout.from_pipeline(Pipeline())
    assert groups.fields == ("sex",)
    assert groups.values == (("female", "male : single"),)
    assert [groups.code(0, v) for v in ("female", "A93", "male : single", None, "x")] == [
        0,
        1,
        1,
        MISSING,
        UNSEEN,
    ]


# --- statistics ------------------------------------------------------------------------


def test_psi_is_zero_for_equal_shares_and_known_for_a_shift() -> None:
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    assert stats.psi([50, 50], [25, 75]) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert np.isfinite(stats.psi([10, 0], [0, 10]))  # empty bins floored at epsilon


def test_binned_ks_and_js() -> None:
    assert stats.ks_binned([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0
    assert stats.ks_binned([1, 0], [0, 1]) == 1.0
    assert stats.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.js_distance([0, 0], [1, 1]) == 0.0
    assert stats.chi2_pvalue([50, 50], [500, 500]) == pytest.approx(1.0)
    assert stats.chi2_pvalue([50, 50], [900, 100]) < 1e-6


def test_auc_ks_brier_on_known_scores() -> None:
    p = np.array([0.1, 0.2, 0.8, 0.9])
    assert stats.auc(p, np.array([0, 0, 1, 1])) == 1.0
    assert stats.auc(p, np.array([1, 1, 0, 0])) == 0.0
    assert stats.auc(p, np.array([0, 0, 0, 0])) is None
    assert stats.ks_separation(p, np.array([0, 0, 1, 1])) == 1.0
    assert stats.brier(p, np.array([0, 0, 1, 1])) == pytest.approx(0.025)


def test_grade_levels() -> None:
    levels = {"warn": 0.1, "alert": 0.2}
    assert grade("x", "psi", 0.05, levels) is None
    assert grade("x", "psi", 0.1, levels).severity == "warn"  # type: ignore[union-attr]
    assert grade("x", "psi", 0.5, levels).severity == "alert"  # type: ignore[union-attr]
    assert grade("x", "psi", None, levels) is None
    assert grade("x", "r", 0.7, {"alert": 0.8}, below=True).severity == "alert"  # type: ignore[union-attr]


def test_four_fifths_rule_with_a_minimum_group_size() -> None:
    groups = GroupLayout(("sex",), (("a", "b", "c"),))
    counts = {
        "g0": {
            0: {"approve": 600, "decline": 400},  # 0.60
            1: {"approve": 450, "refer": 50, "decline": 500},  # 0.45 / 0.60 = 0.75 < 0.8
            2: {"approve": 1, "decline": 20},  # too small to grade
            MISSING: {"approve": 5},
        }
    }
    results, findings = fairness_results(
        groups, counts, 2100, {"min_group_size": 100, "ratio": 0.8}
    )
    assert [(f.subject, f.severity) for f in findings] == [("sex=b", "alert")]
    rows = {g["group"]: g for g in results["attributes"][0]["groups"]}
    assert rows["b"]["ratio"] == pytest.approx(0.75)
    assert rows["c"]["graded"] is False and rows["(missing)"]["known"] is False


# --- webhooks ----------------------------------------------------------------------------


def test_signature_covers_body_and_timestamp() -> None:
    secret, body = b"k", b'{"a":1}'
    ts = str(int(time.time()))
    sig = sign(secret, ts, body)
    assert verify(secret, ts, body, sig)
    assert not verify(secret, ts, body + b" ", sig)
    assert not verify(b"other", ts, body, sig)
    assert not verify(secret, str(int(ts) + 1), body, sig)
    assert not verify(secret, ts, body, sig, now=int(ts) + 3600)  # a replay, an hour later
    assert not verify(secret, "not-a-time", body, sig)


def _hook(url: str, **over: Any) -> Webhook:
    config = {
        "name": "t",
        "url": url,
        "secret_env": "LOANGATE_TEST_HOOK",
        "timeout_seconds": 2.0,
        "max_attempts": 3,
        "backoff_ms": 1.0,
        "max_backoff_ms": 2.0,
        **over,
    }
    return Webhook(config)


def test_webhook_retries_server_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANGATE_TEST_HOOK", "k")
    with webhook_receiver(b"k", fail_first=2) as (url, received):
        delivery = _hook(url).send({"alerts": []})
    assert delivery.delivered and delivery.attempts == 3
    assert len(received.posts) == 3 and all(p["valid"] for p in received.posts)
    # one delivery id over its retries, so a receiver can drop duplicates
    assert len({p["headers"]["X-Loangate-Delivery"] for p in received.posts}) == 1


def test_webhook_does_not_retry_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANGATE_TEST_HOOK", "wrong")  # the receiver expects "k": 401
    with webhook_receiver(b"k") as (url, received):
        delivery = _hook(url).send({"alerts": []})
    assert not delivery.delivered and delivery.status == 401
    assert len(received.posts) == 1


def test_webhook_unreachable_and_unset_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOANGATE_TEST_HOOK", raising=False)
    assert _hook("http://127.0.0.1:9/").send({}).error == (
        "environment variable LOANGATE_TEST_HOOK is not set"
    )
    monkeypatch.setenv("LOANGATE_TEST_HOOK", "k")
    delivery = _hook("http://127.0.0.1:9/", max_attempts=2).send({})
    assert not delivery.delivered and delivery.attempts == 2 and delivery.status is None
