"""Result files: schema, incremental writes, version handling, derived counts, provenance."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from convbench.problem import ConvProblem
from convbench.cells import cell_label
from convbench.config import SweepConfig
from convbench.flops import problem_counts
from convbench.results import (READABLE_VERSIONS, SAMPLE_COLUMNS, SCHEMA_VERSION, SUMMARY_COLUMNS, ResultsError,
                               ResultWriter, load_meta, load_samples, load_summary, new_meta, write_meta)

DATA = Path(__file__).parent / "data"


def _meta(version=SCHEMA_VERSION):
    return {"tool": "convbench", "schema_version": version, "convbench_version": "x", "config": {}}


def test_rows_are_on_disk_as_soon_as_written(tmp_path):
    w = ResultWriter(tmp_path)
    w.summary({"problem": "p", "backend": "b", "status": "passed", "time_median_s": 1.5e-3})
    # read back while the writer is still open: the row was flushed whole
    rows = list(csv.reader((tmp_path / "summary.csv").open()))
    assert rows[0] == SUMMARY_COLUMNS and len(rows) == 2
    assert rows[1][SUMMARY_COLUMNS.index("time_median_s")] == "0.0015"
    w.samples(("p", 1.0, 1, "hot"), "b", 7, [1e-3, 2e-3])
    smp = list(csv.reader((tmp_path / "samples.csv").open()))
    assert smp[0] == SAMPLE_COLUMNS and smp[1:] == [["p", "1.0", "b", "0", "7", "0.001", "1", "hot"],
                                                   ["p", "1.0", "b", "1", "7", "0.002", "1", "hot"]]
    w.close()


def test_unknown_column_is_refused(tmp_path):
    w = ResultWriter(tmp_path)
    with pytest.raises(KeyError, match="unknown result columns"):
        w.summary({"problem": "p", "backend": "b", "status": "passed", "speed": 3})
    w.close()


def test_appending_to_a_file_of_another_schema_is_refused(tmp_path):
    (tmp_path / "summary.csv").write_text("problem,backend,status\np,b,passed\n")
    with pytest.raises(ResultsError, match="columns differ from this convbench's schema"):
        ResultWriter(tmp_path)


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, 99, None, "2"])
def test_schema_versions_it_cannot_read_are_refused_by_number(tmp_path, version):
    write_meta(tmp_path, _meta(version))
    with pytest.raises(ResultsError, match=f"schema version {version!r} is not one this convbench reads"):
        load_meta(tmp_path)


def test_readable_versions_and_foreign_files(tmp_path):
    assert SCHEMA_VERSION in READABLE_VERSIONS and 1 in READABLE_VERSIONS
    write_meta(tmp_path, _meta(1))
    assert load_meta(tmp_path)["schema_version"] == 1
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not readable JSON"):
        load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"tool": "asv"}))
    with pytest.raises(ResultsError, match="not written by convbench"):
        load_meta(tmp_path)
    with pytest.raises(ResultsError, match="no meta.json"):
        load_meta(tmp_path / "nowhere")


def test_v1_directory_gains_the_derived_counts_on_load(tmp_path):
    d = tmp_path / "old"
    shutil.copytree(DATA / "aa1", d)
    df = load_summary(d)
    row = df[df.problem.str.startswith("mb1ic16ih28oc16kh3ph1")].iloc[0]
    p = ConvProblem.parse(row.problem)
    counts = problem_counts(p)
    assert row.flops_dense == counts["flops_dense"] == 2 * 16 * 16 * 28 * 28 * 9
    assert row.params_fully_connected == (16 * 28 * 28) ** 2
    assert row.params_locally_connected == counts["params_locally_connected"]
    assert row.bytes_io == 4 * (16 * 28 * 28 * 2 + 16 * 16 * 9)
    assert row.flops_direct == counts["flops_direct"]  # stored in v1 already: unchanged
    assert set(df.cell) == set(df.problem)  # no pruned cells in this run


def test_problem_counts_on_literal_problems():
    p = ConvProblem.parse("mb2ic4ih6oc3kh3")  # no padding: every tap is on input
    c = problem_counts(p)
    assert c["flops_direct"] == c["flops_dense"] == 2 * 2 * 3 * 4 * 4 * 4 * 9
    assert c["params"] == 3 * 4 * 9 and c["params_locally_connected"] == 3 * 4 * 16 * 9
    assert c["params_fully_connected"] == (3 * 16) * (4 * 36)
    assert c["bytes_io"] == 4 * (2 * 4 * 36 + 3 * 4 * 9 + 2 * 3 * 16)
    padded = problem_counts(ConvProblem.parse("mb1ic1ih4oc1kh3ph1"))
    assert padded["flops_direct"] < padded["flops_dense"]  # padding taps are not counted


def test_cell_label():
    assert cell_label("p", 1.0) == "p" and cell_label("p", 0.1) == "p @density 0.1"
    assert cell_label("p", float("nan")) == "p"


def test_samples_load_with_cells(tmp_path):
    w = ResultWriter(tmp_path)
    w.samples(("p", 0.5, 1, "hot"), "b", 1, [1.0, 2.0])
    w.close()
    smp = load_samples(tmp_path)
    assert list(smp.cell.unique()) == ["p @density 0.5"] and list(smp.time_s) == [1.0, 2.0]


def test_new_meta_records_provenance():
    meta = new_meta(argv=["convbench", "run", "--sizes", "8"], config=SweepConfig(backends=("im2col_blas",)),
                    coretype={"requested": "auto"})
    assert meta["schema_version"] == SCHEMA_VERSION and meta["argv"] == ["convbench", "run", "--sizes", "8"]
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["blas"]["libraries"]
    assert meta["peaks"]["sgemm_gflops"] > 0 and meta["threads"]["requested"] >= 1
    assert "fftw_wisdom" not in meta  # no FFT backend in this run
    assert SweepConfig.from_record(meta["config"]) == SweepConfig(backends=("im2col_blas",))  # read back as is


# ---------------------------------------------------------------------------- crash safety
def _two_cells(tmp_path):
    w = ResultWriter(tmp_path)
    for b in ("a", "b"):
        w.samples(("p", 1.0, 1, "hot"), b, 1, [1e-3, 2e-3, 3e-3])
        w.summary({"problem": "p", "backend": b, "status": "passed", "rounds": 3, "weight_density": 1.0,
                   "time_median_s": 2e-3})
    w.close()


def test_resume_drops_a_partial_last_line(tmp_path):
    from convbench.results import repair_for_resume
    _two_cells(tmp_path)
    with open(tmp_path / "summary.csv", "a") as f:
        f.write("p,,,fwd,float32,1,1,8")  # a row cut mid-way (crash, disk full)
    done, msgs = repair_for_resume(tmp_path)
    assert done == {("p", 1.0, 1, "hot", "a"), ("p", 1.0, 1, "hot", "b")}
    assert len(msgs) == 1 and "dropped a partial last line" in msgs[0]
    assert (tmp_path / "summary.csv").read_text().endswith("\n")
    assert len(load_summary(tmp_path)) == 2
    w = ResultWriter(tmp_path)  # appending afterwards starts on a clean line
    w.summary({"problem": "q", "backend": "a", "status": "skipped"})
    w.close()
    assert list(load_summary(tmp_path).problem) == ["p", "p", "q"]


def test_resume_remeasures_cells_whose_rounds_are_incomplete(tmp_path):
    from convbench.results import repair_for_resume
    _two_cells(tmp_path)
    lines = (tmp_path / "samples.csv").read_text().splitlines()
    (tmp_path / "samples.csv").write_text("\n".join(lines[:-1]) + "\n")  # b lost its last round
    done, msgs = repair_for_resume(tmp_path)
    assert done == {("p", 1.0, 1, "hot", "a")}
    assert any("p / b claims 3 rounds but samples.csv holds 2; it will be measured again" in m for m in msgs)
    assert list(load_summary(tmp_path).backend) == ["a"]
    assert set(load_samples(tmp_path).backend) == {"a"}  # b's rounds go too: no duplicates later


def test_a_damaged_middle_line_is_an_error(tmp_path):
    from convbench.results import repair_for_resume
    _two_cells(tmp_path)
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    lines.insert(1, "garbage,line")
    (tmp_path / "summary.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"summary.csv:2: 2 fields where .* are expected"):
        repair_for_resume(tmp_path)


def test_a_failed_write_rolls_back_and_names_the_file(tmp_path, monkeypatch):
    from convbench import results
    w = ResultWriter(tmp_path)
    w.summary({"problem": "p", "backend": "a", "status": "passed"})
    size = (tmp_path / "summary.csv").stat().st_size
    real = os.write

    def half_then_full(fd, data):
        real(fd, data[:len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(results.os, "write", half_then_full)
    with pytest.raises(results.ResultsWriteError, match="cannot write .*summary.csv: No space left on device"):
        w.summary({"problem": "q", "backend": "a", "status": "passed"})
    monkeypatch.setattr(results.os, "write", real)
    assert (tmp_path / "summary.csv").stat().st_size == size  # the half record was cut off again
    w.close()
    assert list(load_summary(tmp_path).problem) == ["p"]


def test_run_lock_refuses_a_second_writer(tmp_path):
    from convbench.results import RunLock
    with RunLock(tmp_path):
        # another process holding the lock: flock is per open file description, so a second
        # lock from this process on a new descriptor is refused the same way
        with pytest.raises(ResultsError, match=f"another convbench run \\(pid {os.getpid()}\\) is writing"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released when the first run ended
        pass


def test_non_numeric_values_are_named_by_file_column_and_line(tmp_path):
    _two_cells(tmp_path)
    text = (tmp_path / "summary.csv").read_text().replace("0.002", "abc", 1)
    (tmp_path / "summary.csv").write_text(text)
    with pytest.raises(ResultsError, match=r"summary.csv:2: column 'time_median_s' holds 'abc', not a number"):
        load_summary(tmp_path)
