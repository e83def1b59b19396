"""The benchmark-table directive's row selection and formatting, without running Sphinx.

Also the files it reads: ``benchmarks/_results.py`` writes them, and every table of
every page of ``docs/`` must find its file, its rows and its columns there.
"""

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pytest.importorskip("sphinx")
bt = _module("ksdnumba_benchmarks", ROOT / "docs" / "sphinxext" / "ksdnumba_benchmarks.py")
results = _module("_results", ROOT / "benchmarks" / "_results.py")

ROWS = [
    {"part": "bound", "gemm_float64": 108.4},
    {
        "part": "products",
        "kernel": "gaussian",
        "n": 20000,
        "B": 256,
        "seconds": 1.234,
        "fraction": 0.8123,
        "ok": True,
    },
    {
        "part": "products",
        "kernel": "imq",
        "n": 5000,
        "B": 1024,
        "seconds": 0.0345,
        "fraction": 0.55,
        "ok": False,
    },
    {
        "part": "products",
        "kernel": "imq",
        "n": 20000,
        "B": 256,
        "seconds": None,
        "fraction": 0.7,
        "ok": True,
    },
    {"part": "column", "kernel": "gaussian", "n": 100000, "seconds": 2.5e-4},
]
DATA = {
    "machine": {
        "cpu": "AMD EPYC 7B13",
        "cores": 2,
        "numba_threads": 2,
        "python": "3.11.7",
        "numpy": "2.4.6",
        "numba": "0.68.1",
        "revision": "abc1234",
        "dirty": False,
        "date": "2026-12-07T11:44:39+00:00",
        "blas": [
            {"internal_api": "openblas", "version": "0.3.31"},
            {"internal_api": "openmp", "version": None},
        ],
    },
    "command": "python benchmarks/bench_stein_matrix.py --sizes 20000",
    "meta": {"load_average_before": [0.42, 0.5, 0.6]},
    "rows": ROWS,
}


# -- selection -----------------------------------------------------------------------


def test_where_selects_a_part():
    rows = bt.select(ROWS, "part=products")
    assert [r["kernel"] for r in rows] == ["gaussian", "imq", "imq"]


def test_where_conditions_all_hold_and_compare_numbers_as_numbers():
    assert bt.select(ROWS, "part=products, kernel=imq, n>=20000") == [ROWS[3]]
    assert bt.select(ROWS, "part = products, n<20000") == [ROWS[2]]
    assert bt.select(ROWS, "n=2e4") == [ROWS[1], ROWS[3]]
    assert bt.select(ROWS, "n>5000, n<=100000") == [ROWS[1], ROWS[3], ROWS[4]]


def test_where_alternatives_negation_and_missing_keys():
    assert bt.select(ROWS, "kernel=gaussian|imq") == ROWS[1:]
    # A row without the key fails "=" and passes "!=".
    assert bt.select(ROWS, "kernel!=imq") == [ROWS[0], ROWS[1], ROWS[4]]
    assert bt.select(ROWS, "kernel!=imq|gaussian") == [ROWS[0]]
    assert bt.select(ROWS, "B>0") == ROWS[1:4]
    assert bt.select(ROWS, "seconds>0, part=products") == [ROWS[1], ROWS[2]]


def test_where_booleans():
    assert bt.select(ROWS, "ok=true") == [ROWS[1], ROWS[3]]
    assert bt.select(ROWS, "ok=no") == [ROWS[2]]
    with pytest.raises(bt.BenchmarkTableError, match="not a boolean"):
        bt.select(ROWS, "ok=maybe")


def test_where_without_conditions_keeps_every_row():
    assert bt.select(ROWS, None) == ROWS
    assert bt.select(ROWS, "  ") == ROWS


@pytest.mark.parametrize("bad", ["part", "=products", "n >> 3", "kernel ~ imq"])
def test_bad_condition_is_an_error(bad):
    with pytest.raises(bt.BenchmarkTableError, match="bad condition"):
        bt.parse_where(bad)


def test_sort_ascending_descending_and_missing_last():
    rows = bt.select(ROWS, "part=products", sort="n, kernel")
    assert [(r["n"], r["kernel"]) for r in rows] == [
        (5000, "imq"),
        (20000, "gaussian"),
        (20000, "imq"),
    ]
    rows = bt.select(ROWS, "part=products", sort="-seconds")
    assert [r["seconds"] for r in rows] == [1.234, 0.0345, None]


# -- columns and formats -------------------------------------------------------------


def test_parse_columns_keys_factors_and_formats():
    cols = bt.parse_columns('kernel, "n:,", seconds*1e3:.1f, fraction:.0%, seconds:time')
    assert cols == [
        ("kernel", 1.0, ""),
        ("n", 1.0, ","),
        ("seconds", 1000.0, ".1f"),
        ("fraction", 1.0, ".0%"),
        ("seconds", 1.0, "time"),
    ]


def test_default_columns_are_the_keys_but_part():
    cols = bt.parse_columns(None, bt.select(ROWS, "part=column"))
    assert [c[0] for c in cols] == ["kernel", "n", "seconds"]


@pytest.mark.parametrize(
    "bad, match", [("n:q", "bad format"), ("n*x:.1f", "bad factor"), ("n:.1f extra:", "bad format")]
)
def test_bad_columns_are_errors(bad, match):
    with pytest.raises(bt.BenchmarkTableError, match=match):
        bt.parse_columns(bad)


@pytest.mark.parametrize(
    "value, factor, spec, text",
    [
        (None, 1.0, "", "—"),
        (float("nan"), 1.0, ".2f", "—"),
        (math.inf, 1.0, "", "—"),
        (True, 1.0, "", "yes"),
        (False, 1.0, "", "no"),
        (20000, 1.0, "", "20,000"),
        (0.812345, 1.0, "", "0.812"),
        (1234.6, 1.0, "", "1,235"),
        (1.5e-5, 1.0, "", "1.5e-05"),
        (0.8123, 1.0, ".0%", "81%"),
        (1.234, 1.0, ".2f", "1.23"),
        (0.0345, 1e3, ".1f", "34.5"),
        (20000.0, 1.0, ",", "20,000"),
        (3, 1.0, ".2f", "3.00"),
        (1.88, 1.0, "time", "1.88 s"),
        (0.0345, 1.0, "time", "34.5 ms"),
        (0.59, 1.0, "time", "590 ms"),
        (2.5e-5, 1.0, "time", "25.0 µs"),
        (34.0, 1e-3, "time", "34.0 ms"),
        ("gaussian", 1.0, "", "gaussian"),
        ([1, 2], 1.0, "", "[1, 2]"),
    ],
)
def test_format_value(value, factor, spec, text):
    assert bt.format_value(value, factor, spec) == text


def test_format_value_missing_text():
    assert bt.format_value(None, missing="n/a") == "n/a"


def test_table_cells():
    keys, body = bt.table_cells(
        DATA,
        where="part=products, kernel=imq",
        columns="n, B, seconds:time, fraction:.0%",
        sort="n",
    )
    assert keys == ["n", "B", "seconds", "fraction"]
    assert body == [["5,000", "1,024", "34.5 ms", "55%"], ["20,000", "256", "—", "70%"]]


def test_table_cells_unknown_column_names_the_keys():
    with pytest.raises(bt.BenchmarkTableError, match=r"column 'secs' is in none.*'seconds'"):
        bt.table_cells(DATA, where="part=products", columns="n, secs")


def test_table_cells_no_match_gives_no_rows():
    keys, body = bt.table_cells(DATA, where="part=matvec", columns="n")
    assert keys == ["n"] and body == []


# -- the caption ---------------------------------------------------------------------


def test_caption_names_machine_revision_date_load_and_command():
    text, command, name = bt.caption(DATA, "stein_matrix.json")
    assert text == (
        "Measured on AMD EPYC 7B13 (2 cores, 2 Numba threads), Python 3.11.7, NumPy 2.4.6, "
        "Numba 0.68.1, OpenBLAS 0.3.31, at revision abc1234 on 2026-12-07 "
        "(load average 0.4 before the run)"
    )
    assert command == DATA["command"]
    assert name == "stein_matrix.json"


def test_caption_says_when_the_tree_was_dirty_and_names_a_gpu():
    data = {
        "machine": {"cpu": "x", "revision": "abc1234", "dirty": True, "gpu": "NVIDIA H100"},
        "meta": {},
        "rows": [],
    }
    text, command, _ = bt.caption(data, "gpu.json")
    assert "(NVIDIA H100)" in text
    assert text.endswith("at revision abc1234 with uncommitted changes")
    assert command is None


# -- files ---------------------------------------------------------------------------


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(bt.BenchmarkTableError, match=r"not found: .*nothing\.json"):
        bt.load(tmp_path / "nothing.json")


def test_bad_files_are_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(bt.BenchmarkTableError, match="not valid JSON"):
        bt.load(tmp_path / "bad.json")
    (tmp_path / "norows.json").write_text('{"machine": {}}')
    with pytest.raises(bt.BenchmarkTableError, match="no list of rows"):
        bt.load(tmp_path / "norows.json")


def test_results_write_round_trip(tmp_path):
    rows = [
        {
            "part": "a",
            "n": np.int64(5),
            "t": np.float64(0.5),
            "bad": float("nan"),
            "ok": np.bool_(True),
            "v": np.arange(2),
        }
    ]
    path = results.write("x", rows, meta={"sizes": [5]}, path=tmp_path / "x.json")
    data = bt.load(path)
    assert data["rows"] == [{"part": "a", "n": 5, "t": 0.5, "bad": None, "ok": True, "v": [0, 1]}]
    assert data["meta"]["sizes"] == [5]
    assert len(data["meta"]["load_average_before"]) == 3
    assert data["meta"]["wall_s"] >= 0
    for key in (
        "cpu",
        "cores",
        "revision",
        "dirty",
        "date",
        "python",
        "numpy",
        "numba",
        "numba_threads",
        "blas",
    ):
        assert key in data["machine"], key
    assert data["command"].startswith("python ")
    json.loads(path.read_text())  # strict JSON: no NaN


def test_results_write_skips_quick_runs_and_no_json(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    assert results.write("x", [], meta={"quick": True}) is None
    assert results.write("x", [], path=False) is None
    assert not list(tmp_path.iterdir())
    # An explicit path is honoured for a quick run.
    assert results.write("x", [], meta={"quick": True}, path=tmp_path / "q.json").is_file()


def test_results_report_of_sections():
    rows, meta, extra = results.sections_to_rows(
        {
            "machine": {"gpu": "H100"},
            "check": [{"ok": True}],
            "kernels": [{"n": 1}, {"n": 2}],
            "lbfgs": {"n": 10, "seconds": 1.5},
            "bw": 0.1,
            "sizes": [1, 2],
            "empty": [],
        }
    )
    assert rows == [
        {"part": "check", "ok": True},
        {"part": "kernels", "n": 1},
        {"part": "kernels", "n": 2},
        {"part": "lbfgs", "n": 10, "seconds": 1.5},
    ]
    assert meta == {"bw": 0.1, "sizes": [1, 2], "empty": []}
    assert extra == {"gpu": "H100"}


def test_results_json_arguments():
    import argparse

    parser = results.add_arguments(argparse.ArgumentParser(), "x")
    assert parser.parse_args([]).json is None
    assert parser.parse_args(["--json", "a.json"]).json == "a.json"
    assert parser.parse_args(["--no-json"]).json is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--json", "a.json", "--no-json"])


# -- the pages' tables ---------------------------------------------------------------

DIRECTIVE = re.compile(r"^\.\. benchmark-table:: *(\S+)\n((?:[ \t]+:.*\n|[ \t]{6,}.*\n)*)", re.M)


def page_tables(page):
    """``(file, {option: value})`` of each benchmark-table of an rst page."""
    tables = []
    for match in DIRECTIVE.finditer(page.read_text()):
        options, key = {}, None
        for line in match.group(2).splitlines():
            head = re.match(r"\s+:([\w-]+):\s*(.*)$", line)
            if head:
                key = head.group(1)
                options[key] = head.group(2)
            elif key:
                options[key] += " " + line.strip()
        tables.append((match.group(1), options))
    return tables


PAGES = sorted((ROOT / "docs").glob("*.rst"))
# Every benchmark-table of every page (the directive works on any of them).
TABLES = [(page.stem, name, options) for page in PAGES for name, options in page_tables(page)]


def test_the_benchmarks_page_has_tables():
    assert len(page_tables(ROOT / "docs" / "benchmarks.rst")) >= 10


@pytest.mark.parametrize(
    "page, name, options", TABLES, ids=[f"{t[0]}:{t[1]}:{i}" for i, t in enumerate(TABLES)]
)
def test_every_table_finds_its_file_and_rows(page, name, options):
    # What the Sphinx build would stop on, said here where it is quicker to see.
    path = ROOT / "benchmarks" / "results" / name
    assert path.is_file(), f"docs/{page}.rst needs benchmarks/results/{name}: run its script"
    data = bt.load(path)
    keys, body = bt.table_cells(
        data, where=options.get("where"), columns=options.get("columns"), sort=options.get("sort")
    )
    assert body or "empty" in options, f"{name}: no row meets {options.get('where')!r}"
    if "headers" in options:
        assert len(bt._split(options["headers"])) == len(keys)
