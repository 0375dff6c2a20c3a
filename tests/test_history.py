"""The history store (dscbench/history/, ``dscbench history``): runs added to an embedded
SQLite file and, where one is running, a PostgreSQL server (DSCBENCH_TEST_POSTGRES; CI starts
one and sets DSCBENCH_REQUIRE_POSTGRES, so there they cannot skip)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dscbench import results
from dscbench.cli import app
from dscbench.errors import SpecError
from dscbench.history import fingerprint as fp
from dscbench.history import queries, record, store

from .test_compare import synthetic
from .test_report import chromium, png_size

cli = CliRunner()
POSTGRES_VARIABLE = "DSCBENCH_TEST_POSTGRES"  # e.g. postgresql://postgres@localhost/dscbench


def _drop_all(url: str) -> None:
    engine = sa.create_engine(store.parse_url(url))
    with engine.begin() as conn:
        store.metadata.drop_all(conn)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """A history database URL, empty: a file, or the PostgreSQL server's tables dropped."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    url = os.environ.get(POSTGRES_VARIABLE)
    if not url:
        if os.environ.get("DSCBENCH_REQUIRE_POSTGRES"):
            pytest.fail(f"{POSTGRES_VARIABLE} is not set, and this run requires PostgreSQL")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_VARIABLE} (.ci/run starts one)")
    _drop_all(url)
    request.addfinalizer(lambda: _drop_all(url))
    return url


def run_of(seed: int = 0, *, cpu: str = "Test CPU", started: str = "2026-12-01T10:00:00+00:00",
           **kwargs) -> results.ResultSet:  # fmt: skip
    rs = synthetic(seed=seed, cpu=cpu, **kwargs)
    rs.meta.update(started_at=started, host="ci-1", configurations_sha256="c" * 64,
                   status="complete", harness={"measure": "time"})  # fmt: skip
    rs.meta["environment"]["libraries"] = {"torch": "2.13.0+cpu"}
    rs.meta["environment"]["cpu_count"] = 2
    return rs


def counts(engine: sa.Engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (store.runs, store.rows, store.units, store.fingerprints)
        )


def test_a_run_is_stored_row_by_row_with_its_estimates_and_process_values(db):
    rs = run_of()
    with store.opened(db) as engine:
        added = record.add(engine, rs, "a1b2c3d4", "main")
        assert (added.rows, added.failed, added.series) == (len(rs.results), 0, len(rs.results))
        n_runs, n_rows, n_units, n_prints = counts(engine)
        assert (n_runs, n_rows, n_prints) == (1, len(rs.results), 1)
        # five rounds in one process: the rounds are the units, one value each per row
        assert n_units == 5 * len(rs.results)
        summary = queries.series_summary(engine)
    assert len(summary) == len(rs.results) and (summary.runs == 1).all()
    table = rs.results.set_index(["config_id", "variant"])
    for r in summary.itertuples():
        # the estimate is the trimmed mean of the rounds' log medians: near the median latency
        assert r.latest == pytest.approx(table.at[(r.config_id, r.variant), "latency_median_s"],
                                         rel=0.02)  # fmt: skip
    with store.opened(db) as engine:
        points = queries.series_points(engine, summary.series.iloc[0])
    p = points.iloc[0]
    assert p.commit == "a1b2c3d4" and p.branch == "main" and p.status == "ok"
    assert p.low < p.value < p.high and p.metric == "latency_s"


def test_a_run_added_twice_is_refused_and_nothing_changes(db):
    with store.opened(db) as engine:
        record.add(engine, run_of(), "a1b2c3d4")
        before = counts(engine)
        with pytest.raises(store.HistoryError, match=r"in the history already: added .* a1b2c3d4"):
            record.add(engine, run_of(), "ffff0000")
        assert counts(engine) == before


def test_an_error_half_way_leaves_nothing_written(db):
    # the fingerprint's unknown fact is found at the first row, after the run's own line
    with store.opened(db) as engine:
        with pytest.raises(SpecError, match="unknown fact 'gpu_vendor'"):
            record.add(engine, run_of(), "a1b2c3d4", facts=("cpu_model", "gpu_vendor"))
        assert counts(engine) == (0, 0, 0, 0)


def test_failed_rows_are_stored_as_failed_without_a_value(db):
    rs = run_of()
    first = rs.results.index[0]
    rs.results.loc[first, ["status", "error"]] = ["runtime_error", "boom"]
    with store.opened(db) as engine:
        added = record.add(engine, rs, "a1b2c3d4")
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(store.rows).where(store.rows.c.status != "ok")
            ).mappings().one()  # fmt: skip
    assert added.failed == 1
    assert (row["status"], row["error"], row["value"], row["low"]) == ("runtime_error", "boom",
                                                                      None, None)  # fmt: skip


def test_runs_on_other_hardware_never_share_a_series_unless_asked(db):
    with store.opened(db) as engine:
        record.add(engine, run_of(0), "aaaa1111")
        record.add(
            engine, run_of(1, cpu="Other CPU", started="2026-12-02T10:00:00+00:00"), "bbbb2222"
        )
        assert len(queries.series_summary(engine)) == 2 * len(run_of().results)
    # the same two runs with a fingerprint that leaves the CPU model out: one series each row
    other = _fresh(db)
    with store.opened(other) as engine:
        facts = ("cpu_count", "torch")
        record.add(engine, run_of(0), "aaaa1111", facts=facts)
        record.add(engine, run_of(1, cpu="Other CPU", started="2026-12-02T10:00:00+00:00"),
                  "bbbb2222", facts=facts)  # fmt: skip
        summary = queries.series_summary(engine)
    assert len(summary) == len(run_of().results) and (summary.runs == 2).all()


def _fresh(url: str) -> str:
    """The same kind of database, emptied (a new file beside a SQLite one)."""
    if url.startswith("sqlite"):
        return url.replace("history.sqlite", "other.sqlite")
    _drop_all(url)
    return url


def test_a_fingerprint_is_the_rows_facts_and_a_typo_is_one_line():
    meta = {"environment": {"cpu_model": "X", "cpu_count": 2, "machine": "x86_64",
                            "libraries": {"torch": "2.13.0"}}}  # fmt: skip
    row = {"device_name": "X", "env": ""}
    facts = fp.facts_of(meta, row, fp.DEFAULT_FACTS)
    assert facts == {"cpu_model": "X", "cpu_count": "2", "machine": "x86_64", "device_name": "X",
                     "torch": "2.13.0", "onnxruntime": ""}  # fmt: skip
    assert fp.key_of(facts) == fp.key_of(dict(reversed(facts.items())))  # order-free
    assert fp.parse_facts("torch, cpu_model") == ("cpu_model", "torch")
    with pytest.raises(SpecError, match="unknown fact 'cpu_modle'"):
        fp.facts_of(meta, row, ("cpu_modle",))
    # an interleaved run's environments each have their own libraries
    meta["environments"] = {"head": {"environment": {"libraries": {"torch": "2.14.0"}}}}
    assert fp.facts_of(meta, {"env": "head"}, ("torch",)) == {"torch": "2.14.0"}


def test_a_database_from_a_newer_dscbench_is_refused(db):
    with store.opened(db) as engine, engine.begin() as conn:
        conn.execute(sa.update(store.info).values(value=str(store.SCHEMA_VERSION + 1)))
    with pytest.raises(store.HistoryError, match="written by a newer dscbench"), store.opened(db):
        pass


def test_unusable_databases_are_one_line(tmp_path):
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    with (
        pytest.raises(store.HistoryError, match="cannot open the database"),
        store.opened(unreachable),
    ):
        pass
    with pytest.raises(store.HistoryError, match="not a database URL"):
        store.parse_url("postgresql://:bad:port")
    missing = str(tmp_path / "missing.sqlite")
    with (
        pytest.raises(store.HistoryError, match="no history database at"),
        store.opened(missing, create=False),
    ):
        pass


def _write(rs: results.ResultSet, path: Path) -> Path:
    path.mkdir(parents=True)
    results.write_run(path, rs.results, rs.samples, rs.meta)
    return path


def test_the_command_adds_refuses_twice_and_shows_a_series(tmp_path, db):
    run = _write(run_of(), tmp_path / "run")
    url = db
    done = cli.invoke(app, ["history", "add", str(run), "--commit", "A1B2C3D", "--db", url,
                            "--branch", "main"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"added {run}: {len(run_of().results)} rows (0 failed)" in done.output
    again = cli.invoke(app, ["history", "add", str(run), "--commit", "a1b2c3d", "--db", url])
    assert again.exit_code == 2 and "in the history already" in again.output
    assert len(again.output.strip().splitlines()) == 1
    listed = cli.invoke(app, ["history", "show", "--db", url])
    assert listed.exit_code == 0 and "n1_c8-8" in listed.output
    with store.opened(url) as engine:
        key = queries.series_summary(engine).series.iloc[0]
    one = cli.invoke(app, ["history", "show", "--db", url, "--series", key])
    assert one.exit_code == 0 and "a1b2c3d" in one.output and "main" in one.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commit", "not-a-sha"], "--commit 'not-a-sha': not a commit id"),
        (["--commit", "abcd1234", "--fingerprint", ","], "--fingerprint ',': name at least one"),
        (["--commit", "abcd1234", "--db", "postgresql://nobody@127.0.0.1:1/none"],
         "cannot open the database"),
    ],
)  # fmt: skip
def test_bad_input_to_history_add_is_one_line_and_exit_2(tmp_path, args, message):
    run = _write(run_of(), tmp_path / "run")
    db_args = [] if "--db" in args else ["--db", str(tmp_path / "h.sqlite")]
    res = cli.invoke(app, ["history", "add", str(run), *args, *db_args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_run_from_a_newer_schema_is_refused_before_the_database_is_touched(tmp_path):
    run = _write(run_of(), tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(meta, schema_version=99)))
    res = cli.invoke(app, ["history", "add", str(run), "--commit", "abcd1234", "--db",
                           str(tmp_path / "h.sqlite")])  # fmt: skip
    assert res.exit_code == 2 and "99" in res.output
    assert not (tmp_path / "h.sqlite").exists()


def _history_of_runs(url: str, runs: int, slower_from: int | None) -> str:
    """A history at ``url`` of ``runs`` synthetic runs an hour apart, commits c000.., the
    16-channel standard conv 30% slower from run ``slower_from`` on."""
    with store.opened(url) as engine:
        for r in range(runs):
            slow = slower_from is not None and r >= slower_from
            rs = run_of(r, started=f"2026-12-01T{r:02d}:00:00+00:00",
                        scale=lambda c, v, slow=slow: 1.3 if slow and c == 16 and v == "standard"
                        else 1.0)  # fmt: skip
            record.add(engine, rs, f"c{r:03d}" + "0" * 5, "main")
    return url


def test_history_check_finds_the_commit_where_a_row_got_slower(db):
    url = _history_of_runs(db, 12, slower_from=7)
    res = cli.invoke(app, ["history", "check", "--db", url, "--format", "json"])
    assert res.exit_code == 0, res.output  # the change is not the newest commit's
    doc = json.loads(res.output)
    assert doc["runs"] == 12 and doc["newest_commit"] == "c01100000" and doc["regressions"] == 0
    (change,) = doc["changes"]
    assert (change["config_id"], change["variant"]) == ("n1_c16-16_8x8_k3s1_float32_inference_t1",
                                                        "standard")  # fmt: skip
    assert (change["before_commit"], change["after_commit"]) == ("c00600000", "c00700000")
    assert change["direction"] == "slower" and change["low"] < 1.3 < change["high"]
    table = cli.invoke(app, ["history", "check", "--db", url])
    assert table.exit_code == 0 and "c00600000..c00700000" in table.output


def test_history_check_fails_when_the_newest_commit_starts_a_slowdown(db):
    url = _history_of_runs(db, 10, slower_from=9)
    res = cli.invoke(app, ["history", "check", "--db", url, "--format", "markdown"])
    assert res.exit_code == 1, res.output
    assert "REGRESSION: it starts 1 slowdown(s) beyond 5%" in res.output
    assert (
        "| n1_c16-16_8x8_k3s1_float32_inference_t1 standard fake | slower (newest runs)"
        in res.output
    )
    # a threshold above the slowdown lets it pass; --since before the change's runs too
    assert cli.invoke(app, ["history", "check", "--db", url, "--threshold", "50%"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': not a date"),
        (["--threshold", "lots"], "--threshold 'lots': not a number"),
    ],
)
def test_bad_input_to_history_check_is_one_line(tmp_path, args, message):
    url = _history_of_runs(f"sqlite:///{tmp_path / 'h.sqlite'}", 1, slower_from=None)
    res = cli.invoke(app, ["history", "check", "--db", url, *args])
    assert res.exit_code == 2 and message in res.output and len(res.output.splitlines()) == 1
    missing = cli.invoke(app, ["history", "check", "--db", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 2 and "no history database at" in missing.output


def test_a_stored_run_comes_back_as_compare_reads_it(db):
    rs = run_of()
    with store.opened(db) as engine:
        added = record.add(engine, rs, "a1b2c3d4")
        back = queries.load_run(engine, added.run_id)
    assert back.results.config_id.tolist() == rs.results.config_id.tolist()
    assert back.results.latency_median_s.tolist() == rs.results.latency_median_s.tolist()
    assert len(back.samples) == len(rs.samples) and back.meta["started_at"] == rs.meta["started_at"]


def test_an_older_database_is_migrated_when_opened(tmp_path):
    # a database as history schema 1 wrote it: no run_files table
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in (store.info, store.runs, store.fingerprints, store.rows, store.units):
            table.create(conn)
        conn.execute(sa.insert(store.info).values(name="schema_version", value="1"))
    engine.dispose()
    with store.opened(url) as engine:
        assert sa.inspect(engine).has_table("run_files")
        with engine.connect() as conn:
            version = conn.execute(sa.select(store.info.c.value)).scalar_one()
        assert version == str(store.SCHEMA_VERSION) == "2"
        added = record.add(engine, run_of(), "a1b2c3d4")
        assert queries.load_run(engine, added.run_id).results.shape[0] == added.rows


def test_compare_history_judges_a_run_against_the_stored_run_of_a_commit(tmp_path, db):
    url = db
    with store.opened(url) as engine:
        record.add(engine, run_of(0), "base1234" + "0" * 32, "main")
        record.add(engine, run_of(2, started="2026-12-01T11:00:00+00:00"), "other5678", "main")
    slower = run_of(1, started="2026-12-01T12:00:00+00:00",
                    scale=lambda c, v: 1.3 if c == 16 and v == "standard" else 1.0)  # fmt: skip
    run = _write(slower, tmp_path / "head")
    res = cli.invoke(app, ["compare", "--history", "--baseline-commit", "base1234", str(run),
                           "--db", url])  # fmt: skip
    assert res.exit_code == 1, res.output
    assert "baseline: the history's newest run of commit base12340000" in res.output
    same = _write(run_of(3, started="2026-12-01T13:00:00+00:00"), tmp_path / "same")
    ok = cli.invoke(app, ["compare", "--history", "--baseline-commit", "base1234", str(same),
                          "--db", url])  # fmt: skip
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline-commit", "feed"], "--baseline-commit feed: not in the history"),
        (["--baseline-commit", "base"], "--baseline-commit base: ambiguous"),
        (["--history"], "--history and --baseline-commit go together"),
        (["--baseline-commit", "base1234", "--cpu-other"], "another machine or stack"),
    ],
)
def test_bad_input_to_compare_history_is_one_line(tmp_path, args, message):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with store.opened(url) as engine:
        record.add(engine, run_of(0), "base1234", "main")
        record.add(engine, run_of(1, started="2026-12-01T11:00:00+00:00"), "base9999", "main")
    other = "--cpu-other" in args
    args = [a for a in args if a != "--cpu-other"]
    candidate = run_of(2, cpu="Other CPU" if other else "Test CPU",
                       started="2026-12-01T12:00:00+00:00")  # fmt: skip
    run = _write(candidate, tmp_path / "head")
    history = [] if "--history" in args else ["--history"]
    res = cli.invoke(app, ["compare", *history, *args, str(run), "--db", url])
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_history_report_writes_a_site_with_a_page_per_series(tmp_path, db):
    url = _history_of_runs(db, 10, slower_from=5)
    site = tmp_path / "site"
    res = cli.invoke(app, ["history", "report", "--db", url, "-o", str(site)])
    assert res.exit_code == 0, res.output
    pages = sorted((site / "series").glob("*.html"))
    assert len(pages) == len(run_of().results) and (site / "index.html").exists()
    index = (site / "index.html").read_text()
    # every series linked, the one that changed first, with its size and commit range
    links = [line.split('href="')[1].split('"')[0] for line in index.split("<tr ")[1:]]
    assert sorted(links) == sorted(f"series/{p.name}" for p in pages)
    first = index.split("<tr ")[1]
    assert "n1_c16-16_8x8_k3s1_float32_inference_t1 standard fake" in first
    assert "slower x1.3" in first and "<code>c00400000</code> and <code>c00500000</code>" in first
    assert 'data-filter="backend"' in index and 'data-filter="config"' in index
    changed = (site / links[0]).read_text()
    assert changed.count("<svg") == 1 and "x1.3" in changed and "c00500000" in changed
    assert 'src="http' not in index + changed and "<link" not in index + changed


def test_history_report_of_an_empty_history_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with store.opened(url):
        pass
    res = cli.invoke(app, ["history", "report", "--db", url, "-o", str(tmp_path / "site")])
    assert res.exit_code == 2 and "holds no measured rows" in res.output


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium here (CI installs Debian's)")
def test_the_dashboard_renders_in_headless_chromium(tmp_path):
    url = _history_of_runs(f"sqlite:///{tmp_path / 'h.sqlite'}", 10, slower_from=5)
    site = tmp_path / "site"
    assert cli.invoke(app, ["history", "report", "--db", url, "-o", str(site)]).exit_code == 0
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    for page in (site / "index.html", next((site / "series").glob("*.html"))):
        logged = subprocess.run(
            [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert logged.returncode == 0, logged.stderr[-2000:]
        assert 'data-ready="yes"' in logged.stdout and 'data-sortable="ready"' in logged.stdout
        console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line]
        assert not [line for line in console if "rror" in line], console
    shot = tmp_path / "shot.png"
    page = (site / "index.html").as_uri()
    command = [*base, f"--screenshot={shot}", "--window-size=1280,900", page]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    assert png_size(shot) == (1280, 900) and shot.stat().st_size > 20_000
