"""The feature table: loading versions, refusing bad rows, point-in-time lookups, the enricher."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import create_app
from gateway.config import DEFAULT_CONFIG_FILE
from gateway.errors import ConfigError
from gateway.features import BadRows, FeatureSchema, FeatureStore, RowError, read_chunks
from tests.conftest import bearer, gateway_overrides, register_demo_model
from tests.helpers import body

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples" / "features"
CSV = EXAMPLES / "crm-profile.csv"
SCHEMA = FeatureSchema.from_file(EXAMPLES / "crm-profile.schema.yaml")
PIPELINE = "credit-risk-crm-profile"
HEADER = "customer_id,valid_from,tenure_months,segment,avg_balance,products_held\n"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(tmp_path: Path, rows: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


# --- loading --------------------------------------------------------------------------


def test_bad_rows_are_named_by_row_and_column_and_nothing_is_stored(
    engine: sa.Engine, tmp_path: Path
) -> None:
    hostile = write(
        tmp_path,
        "C-1,2026-01-01,abc,retail,1.5,1\n"  # not an integer
        ",2026-01-01,1,retail,1,1\n"  # no key
        "C-2,yesterday,1,retail,1,1\n"  # not a date
        "C-3,2026-01-01,-4,gold,nan,1\n"  # below minimum, not in enum, not finite
        "C-4,2026-01-01,,retail,1,1\n"  # required feature empty
        "C-5,2026-01-01,1,retail,1,1\n"
        "C-5,2026-01-01T00:00:00+00:00,2,retail,1,1\n"  # same key and instant as row 6
        + ("K" * 201 + ",2026-01-01,1,retail,1,1\n")
        + "C-\x00,2026-01-01,1,retail,1,1\n",
    )
    store = FeatureStore(engine)
    with pytest.raises(BadRows) as refused:
        store.load("crm", read_chunks(hostile, 3), SCHEMA)
    assert refused.value.errors == [
        RowError(1, "tenure_months", "not an integer"),
        RowError(2, "customer_id", "the entity key is required"),
        RowError(3, "valid_from", "Invalid isoformat string: 'yesterday'"),
        RowError(4, "tenure_months", "below the minimum 0"),
        RowError(4, "segment", "not one of ['retail', 'premium', 'small-business']"),
        RowError(4, "avg_balance", "not a finite number"),
        RowError(5, "tenure_months", "is required"),
        RowError(7, "valid_from", "same key and valid-from as row 6"),
        RowError(8, "customer_id", "longer than 200 characters or holds a NUL character"),
        RowError(9, "customer_id", "longer than 200 characters or holds a NUL character"),
    ]
    assert "row 7, column 'valid_from'" in str(refused.value)
    assert store.versions("crm") == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM feature_values")).scalar() == 0


def test_a_missing_column_is_refused_before_any_row(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("customer_id,valid_from,tenure_months\nC-1,2026-01-01,3\n")
    with pytest.raises(BadRows) as refused:
        FeatureStore(engine).load("crm", read_chunks(path, 10), SCHEMA)
    assert [str(e) for e in refused.value.errors] == [
        "header, column 'segment': no such column in the file",
        "header, column 'avg_balance': no such column in the file",
        "header, column 'products_held': no such column in the file",
    ]


def test_bad_schema_file_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"features/tenure/type"):
        FeatureSchema.from_dict({"features": {"tenure": {"type": "date"}}})


def test_each_load_is_a_new_version_and_lookups_use_the_one_asked(
    engine: sa.Engine, tmp_path: Path
) -> None:
    store = FeatureStore(engine)
    chunks_seen: list[int] = []
    first = store.load("crm", read_chunks(CSV, 2), SCHEMA, progress=chunks_seen.append)
    assert (first.version, first.rows) == (1, 7)
    assert chunks_seen == [2, 2, 2, 1]  # chunked as asked
    changed = write(tmp_path, "C-1001,2026-01-01,31,premium,1,1\n")
    second = store.load("crm", read_chunks(changed, 2), SCHEMA, source_name="changed.csv")
    assert second.version == 2
    assert [(v["version"], v["row_count"]) for v in store.versions("crm")] == [(2, 1), (1, 7)]

    when = at("2026-06-01")
    latest = store.lookup("crm", "C-1001", when)
    pinned = store.lookup("crm", "C-1001", when, version=1)
    assert latest is not None and latest.version == 2 and latest.values is not None
    assert latest.values["segment"] == "premium"
    assert pinned is not None and pinned.version == 1 and pinned.values is not None
    assert (pinned.values["segment"], pinned.valid_from) == ("retail", at("2026-01-01"))
    gone = store.lookup("crm", "C-1002", when)  # not in version 2
    assert gone is not None and (gone.version, gone.values) == (2, None)
    assert store.lookup("crm", "C-1001", when, version=3) is None
    assert store.lookup("other", "C-1001", when) is None
    for hostile in ("C-1001\x00", "C" * 5000, ""):  # never stored: no row, and no error
        found = store.lookup("crm", hostile, when)
        assert found is not None and (found.version, found.values) == (2, None)
    with pytest.raises(ConfigError, match="feature set name"):
        store.load("x" * 101, read_chunks(CSV, 2), SCHEMA)


def test_parquet_exports_load_with_their_native_types(engine: sa.Engine, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(CSV)
    frame["valid_from"] = pd.to_datetime(frame["valid_from"], utc=True, format="ISO8601")
    frame.to_parquet(tmp_path / "crm.parquet")
    store = FeatureStore(engine)
    result = store.load("crm", read_chunks(tmp_path / "crm.parquet", 4), SCHEMA)
    assert result.rows == 7
    found = store.lookup("crm", "C-1003", at("2026-12-01"))
    assert found is not None and found.valid_from == at("2026-10-01")
    assert found.values == {
        "tenure_months": 11,
        "segment": "retail",
        "avg_balance": None,  # NaN in the frame, null in the file
        "products_held": 1,
    }
    frame.loc[2, "tenure_months"] = -1
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(BadRows, match=r"row 3, column 'tenure_months': below the minimum 0"):
        store.load("crm", read_chunks(tmp_path / "bad.parquet", 4), SCHEMA)


def test_inferred_schema_types_columns_from_the_first_chunk(
    engine: sa.Engine, tmp_path: Path
) -> None:
    store = FeatureStore(engine)
    result = store.load("crm", read_chunks(CSV, 100), None, key="customer_id")
    assert result.rows == 7
    schema = yaml.safe_load(store.versions("crm")[0]["schema_json"])
    assert schema["features"] == {
        "tenure_months": {"type": "integer"},
        "segment": {"type": "string"},
        "avg_balance": {"type": "number"},
        "products_held": {"type": "integer"},
    }


histories = st.dictionaries(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 10_000)),
    st.integers(-1000, 1000),
    min_size=1,
    max_size=40,
)
_set_names = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, probes=st.lists(st.integers(-100, 10_100), min_size=1, max_size=10))
def test_lookup_returns_the_latest_row_at_or_before_the_time(
    engine: sa.Engine, history: dict[tuple[str, int], int], probes: list[int]
) -> None:
    epoch = at("2026-01-01")
    schema = FeatureSchema("k", "t", {"v": {"type": "integer", "required": True}})
    rows = [{"k": k, "t": epoch + timedelta(minutes=m), "v": v} for (k, m), v in history.items()]
    name = f"prop-{next(_set_names)}"
    store = FeatureStore(engine)
    store.load(name, [rows[i : i + 7] for i in range(0, len(rows), 7)], schema)
    for entity, minute in itertools.product("ABC", probes):
        found = store.lookup(name, entity, epoch + timedelta(minutes=minute))
        assert found is not None and found.version == 1
        earlier = [m for (k, m) in history if k == entity and m <= minute]
        if not earlier:
            assert found.values is None
        else:
            assert found.values == {"v": history[(entity, max(earlier))]}
            assert found.valid_from == epoch + timedelta(minutes=max(earlier))


def test_cli_loads_with_progress_and_refuses_bad_files(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli import main as cli

    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    runner = CliRunner()
    args = ["features", "load", str(CSV), "--set", "crm", "--schema", str(SCHEMA_FILE)]
    done = runner.invoke(cli, [*args, "--chunk-size", "3"])
    assert done.exit_code == 0, done.output
    assert "loaded crm v1: 7 rows" in done.output
    assert "loading crm-profile.csv" in done.stderr
    bad = write(tmp_path, "C-1,2026-01-01,x,retail,1,1\n")
    refused = runner.invoke(cli, ["features", "load", str(bad), "--set", "crm", "--key", "nope"])
    assert refused.exit_code == 1
    assert "nothing loaded" in refused.output and "column 'nope'" in refused.output
    no_key = runner.invoke(cli, ["features", "load", str(bad), "--set", "crm"])
    assert no_key.exit_code == 2 and "--key" in no_key.output
    listed = runner.invoke(cli, ["features", "list", "--set", "crm"])
    assert listed.output.startswith("crm\tv1\t7 rows\tcrm-profile.csv")


SCHEMA_FILE = EXAMPLES / "crm-profile.schema.yaml"


# --- the enricher, through the app ---------------------------------------------------------


def commented_pipeline() -> dict[str, Any]:
    """The commented-out feature-table pipeline of config/gateway.yaml."""
    lines = DEFAULT_CONFIG_FILE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  # {PIPELINE}:")
    kept = list(itertools.takewhile(lambda line: line.startswith("  #"), lines[start:]))
    return dict(yaml.safe_load("\n".join(line[4:] for line in kept))[PIPELINE])


@pytest.fixture
def gateway(db_url: str, tmp_path: Path, trained_model: Any) -> Iterator[Any]:
    register_demo_model(db_url, tmp_path / "models", trained_model)
    overrides = {
        **gateway_overrides(db_url, tmp_path / "models"),
        "pipelines": {PIPELINE: commented_pipeline()},
    }
    app = create_app(overrides, instance_path=tmp_path / "instance")
    yield app
    app.extensions["loangate"].engine.dispose()


def decide(app: Any, **fields: Any) -> dict[str, Any]:
    auth = app.extensions["loangate"].extras["auth"]
    client = app.test_client()
    token = auth.mint_token("c", ["decisions:create", "decisions:read"])
    made = client.post(
        f"/v1/pipelines/{PIPELINE}/decisions", json=body(1, **fields), headers=bearer(token)
    )
    assert made.status_code == 201, made.get_json()
    record = client.get(made.headers["Location"], headers=bearer(token)).get_json()
    return dict(record)


def source_of(record: dict[str, Any], field: str) -> str:
    return str(next(e["source"] for e in record["enrichments"] if e["field"] == field))


def test_enricher_records_the_version_and_row_used(gateway: Any, tmp_path: Path) -> None:
    store = FeatureStore(gateway.extensions["loangate"].engine)
    store.load("crm-profile", read_chunks(CSV, 3), SCHEMA)
    record = decide(gateway, customer_id="C-1001")
    # C-1001's row valid from 2026-09-01 is in force at any time after it.
    source = "features:crm-profile@v1 valid_from=2026-09-01T08:00:00Z"
    assert {"field": "crm_tenure_months", "value": 38, "source": source} in record["enrichments"]
    assert {"field": "crm_segment", "value": "premium", "source": source} in record["enrichments"]
    assert record["features"]["crm_segment"] == "premium"
    assert "enricher:feature-lookup" in record["timings_ms"]

    unknown = decide(gateway, customer_id="C-9999")
    missing = "features:crm-profile@v1 missing(no row for the entity at decision time)"
    assert {"field": "crm_segment", "value": None, "source": missing} in unknown["enrichments"]
    hostile = decide(gateway, customer_id="C-1001\x00")  # PostgreSQL refuses NUL in text
    assert {"field": "crm_segment", "value": None, "source": missing} in hostile["enrichments"]
    anonymous = decide(gateway)
    no_key = "features:crm-profile@latest missing(no customer_id)"
    assert {"field": "crm_segment", "value": None, "source": no_key} in anonymous["enrichments"]
    assert anonymous["outcome"] in {"approve", "refer", "decline"}

    # A second load becomes the latest; the records say which version each used.
    newer = write(tmp_path, "C-1001,2026-01-01,1,retail,,\n")
    store.load("crm-profile", read_chunks(newer, 3), SCHEMA)
    again = decide(gateway, customer_id="C-1001")
    assert {
        "field": "crm_segment",
        "value": "retail",
        "source": "features:crm-profile@v2 valid_from=2026-01-01T00:00:00Z",
    } in again["enrichments"]


def test_a_pinned_version_is_used_after_newer_loads(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    register_demo_model(db_url, tmp_path / "models", trained_model)
    pipeline = commented_pipeline()
    pipeline["enrichers"][1]["config"]["version"] = 1
    app = create_app(
        {**gateway_overrides(db_url, tmp_path / "models"), "pipelines": {PIPELINE: pipeline}},
        instance_path=tmp_path / "instance",
    )
    store = FeatureStore(app.extensions["loangate"].engine)
    try:
        first = source_of(decide(app, customer_id="C-1001"), "crm_segment")
        assert first == "features:crm-profile@v1 missing(version not loaded)"
        store.load("crm-profile", read_chunks(CSV, 100), SCHEMA)
        newer = write(tmp_path, "C-1001,2026-01-01,1,retail,,\n")
        store.load("crm-profile", read_chunks(newer, 3), SCHEMA)
        record = decide(app, customer_id="C-1001")
        assert source_of(record, "crm_segment").startswith("features:crm-profile@v1 ")
        assert record["features"]["crm_segment"] == "premium"
    finally:
        app.extensions["loangate"].engine.dispose()


def test_the_example_pipeline_uses_the_core_banking_schema() -> None:
    pipeline = commented_pipeline()
    schema_file = pipeline["validators"][0]["config"]["schema"]
    fields = yaml.safe_load((DEFAULT_CONFIG_FILE.parent / schema_file).read_text(encoding="utf-8"))[
        "fields"
    ]
    assert fields["customer_id"]["missing"] == "allow"
    assert pipeline["enrichers"][1]["config"]["key_field"] == "customer_id"
