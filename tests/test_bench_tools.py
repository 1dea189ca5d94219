"""The benchmark's own logic: the growth filler's ids and the targets' verdicts.

The filler is PostgreSQL SQL (``generate_series``), so its test runs on PostgreSQL only.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import ids
from gateway.integrity.sealer import id_floor, id_time
from tests.conftest import PG_URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import growth  # a bench module, not a package
import targets


def test_filler_ids_are_ulids_that_sort_before_the_template(pg_available: bool) -> None:
    if not pg_available:
        pytest.skip("PostgreSQL not reachable (a failure in CI)")
    template = ids.new_id()
    t0_ms = int(id_time(template).timestamp() * 1000)
    n = 300
    columns = ["id", "received_at", "idempotency_key"]
    select = growth.filler_select(columns, "true", 1).format(table="(SELECT 1 AS one) AS tpl")
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(select + " ORDER BY f.g"), {"t0_ms": t0_ms, "n": n, "first": 1, "last": n}
            ).all()
    finally:
        engine.dispose()
    filler_ids = [r[0] for r in rows]
    assert len(filler_ids) == n
    assert all(ids.is_valid(i) for i in filler_ids)
    assert filler_ids == sorted(filler_ids)  # one millisecond apart, in order
    assert filler_ids[-1] < template  # the real ids that follow sort after the filler
    for g, (filler_id, received_at, _) in enumerate(rows, start=1):
        expected_ms = t0_ms - n - 1 + g
        assert int(id_time(filler_id).timestamp() * 1000) == expected_ms
        assert received_at == datetime.fromtimestamp(expected_ms / 1000, UTC)
    assert filler_ids[0] >= id_floor(datetime.fromtimestamp((t0_ms - n - 1) / 1000, UTC))
    assert len({r[2] for r in rows}) == n


def test_targets_say_by_how_much_each_is_met_or_missed() -> None:
    short = targets.Check("throughput", ">=", 0.5, [0.2, 0.3])
    assert not short.met
    assert short.margin() == "missed: 2.0x short"
    over = targets.Check("p50", "<=", 2.0, [4.0])
    assert not over.met
    assert over.margin() == "missed: 2.0x over"
    spare = targets.Check("p99", "<=", 15, [10.0], " ms")
    assert spare.met
    assert spare.margin() == "met with 1.50x to spare"
    assert "| p99 | ≤ 15 ms | 10.00 ms | yes |" in spare.row()
