"""Tables built from the JSON files of ``benchmarks/results/``.

Each benchmark script writes ``benchmarks/results/<name>.json`` (see
``benchmarks/_results.py``): the machine, the command line, the run's parameters
and one flat dict per row. The ``benchmark-table`` directive turns the rows of one
file into a table followed by a line that names where and when they were measured,
so that no figure on the benchmarks page is typed by hand::

    .. benchmark-table:: stein_matrix.json
       :where: part=products, kernel=gaussian|imq, n>=1000
       :columns: kernel, "n:,", B, seconds_float64:time, fraction_float64:.0%
       :headers: kernel, :math:`n`, B, time, "of the bound, float64"
       :sort: kernel, n
       :title: H @ W against the GEMM bound

Options (all optional):

``:where:``
    Comma-separated conditions, all of which a row must meet: ``key=value``
    (``|`` between alternatives), ``key!=value``, ``key<value``, ``<=``, ``>``,
    ``>=``. Numbers compare as numbers, ``true``/``false`` as booleans. A row
    without the key fails ``=`` and the orderings, and passes ``!=``.
``:columns:``
    Comma-separated (CSV quoting for a comma inside) ``key[*factor][:format]``:
    the value times ``factor``, formatted by ``format`` (a Python format spec
    such as ``.2f``, ``,``, ``.0%``, or ``time``, seconds in s, ms or µs with
    three significant digits). Without a format: integers with thousands
    separators, floats to three significant digits (whole numbers from 1,000).
    Default: every key of the selected rows but ``part``.
``:headers:``
    Comma-separated (CSV) column headers, inline reStructuredText; default: the keys.
``:sort:``
    Comma-separated keys, ``-key`` for descending; default: the file's order.
``:title:``
    The table's title.
``:empty:``
    Text shown in place of the table when no row matches; without it, no match
    is an error (a filter that the next run would silently empty).
``:missing:``
    Text for a value that is absent, null or not finite (default ``—``).

A file that does not exist, a bad option, an unknown column or (without
``:empty:``) no matching row is an error at the directive's line, naming the
file; the documentation is built with ``-W``, which makes it fail the build.

The results folder is ``benchmark_results_dir`` in ``conf.py``, relative to the
folder of ``conf.py`` (default ``../benchmarks/results``).
"""

import csv
import json
import math
import operator
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

__all__ = [
    "BenchmarkTableError",
    "caption",
    "format_value",
    "load",
    "parse_columns",
    "parse_where",
    "select",
    "setup",
    "table_cells",
]

MISSING = "—"
_BLAS_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}
_OPERATORS = {
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([^\s=!<>]+)\s*(!=|>=|<=|==|=|>|<)\s*([^\s=!<>].*?)\s*$")
_COLUMN = re.compile(r"^\s*([^\s*:]+)\s*(?:\*\s*([^:\s]+)\s*)?(?::(.*))?$")


class BenchmarkTableError(ValueError):
    """A results file or a table's options that cannot give a table."""


def _split(text):
    """Comma-separated fields, CSV quoting, surrounding spaces dropped."""
    if text is None or not text.strip():
        return []
    text = " ".join(line.strip() for line in text.splitlines())
    (fields,) = list(csv.reader([text], skipinitialspace=True))
    return [field.strip() for field in fields]


def load(path):
    """The results file at ``path`` as a dict with ``machine``, ``command``, ``meta``, ``rows``."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkTableError(
            f"benchmark results file not found: {path} (each script of benchmarks/ writes "
            "its file under benchmarks/results/; run the script this page names)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchmarkTableError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise BenchmarkTableError(
            f"{path} has no list of rows: not a file written by benchmarks/_results.py"
        )
    data.setdefault("machine", {})
    data.setdefault("meta", {})
    return data


def _coerce(text, like):
    """``text`` as the type of ``like``: bool, number or string."""
    if isinstance(like, bool):
        low = text.lower()
        if low not in ("true", "false", "yes", "no", "1", "0"):
            raise BenchmarkTableError(f"{text!r} is not a boolean")
        return low in ("true", "yes", "1")
    if isinstance(like, (int, float)):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def parse_where(text):
    """``[(key, op, [values])]`` from ``"part=products, n>=1000"``."""
    conditions = []
    for field in _split(text):
        match = _CONDITION.match(field)
        if not match:
            raise BenchmarkTableError(
                f"bad condition {field!r} in :where: (key=value, key!=value, key<value, ...)"
            )
        key, op, value = match.groups()
        op = "=" if op == "==" else op
        values = value.split("|") if op in ("=", "!=") else [value]
        conditions.append((key, op, [v.strip() for v in values]))
    return conditions


def _holds(row, key, op, values):
    if key not in row or row[key] is None:
        return op == "!="
    have = row[key]
    wanted = [_coerce(v, have) for v in values]
    if op == "=":
        return any(have == w for w in wanted)
    if op == "!=":
        return all(have != w for w in wanted)
    (w,) = wanted
    try:
        return _OPERATORS[op](have, w)
    except TypeError:
        return False


def select(rows, where=None, sort=None):
    """The rows that meet every condition of ``where``, ordered by ``sort``.

    ``where``: the text of ``:where:`` or a list from :func:`parse_where`; ``sort``:
    comma-separated keys, ``-key`` descending (missing values last).
    """
    conditions = parse_where(where) if isinstance(where, str) or where is None else where
    out = [r for r in rows if all(_holds(r, *c) for c in conditions)]
    for key in reversed(_split(sort) if isinstance(sort, str) else list(sort or [])):
        descending = key.startswith("-")
        key = key.lstrip("-")
        present = [r for r in out if r.get(key) is not None]
        absent = [r for r in out if r.get(key) is None]
        try:
            present.sort(key=lambda r: r[key], reverse=descending)
        except TypeError:
            present.sort(key=lambda r: str(r[key]), reverse=descending)
        out = present + absent
    return out


def parse_columns(text, rows=()):
    """``[(key, factor, format)]`` from ``:columns:``; every key of ``rows`` when empty."""
    if not _split(text):
        keys = []
        for row in rows:
            keys += [k for k in row if k != "part" and k not in keys]
        return [(k, 1.0, "") for k in keys]
    columns = []
    for field in _split(text):
        match = _COLUMN.match(field)
        if not match:
            raise BenchmarkTableError(f"bad column {field!r} in :columns: (key[*factor][:format])")
        key, factor, spec = match.groups()
        try:
            factor = 1.0 if factor is None else float(factor)
        except ValueError:
            raise BenchmarkTableError(f"bad factor {factor!r} in column {field!r}") from None
        spec = (spec or "").strip()
        if spec and spec != "time":
            try:
                format(1.5, spec)
            except ValueError:
                try:
                    format(1, spec)
                except ValueError:
                    raise BenchmarkTableError(f"bad format {spec!r} in column {field!r}") from None
        columns.append((key, factor, spec))
    return columns


def _time(seconds):
    """Seconds in s, ms or µs, three significant digits: ``1.88 ms``, ``34.0 ms``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            value = seconds / scale
            digits = max(0, 2 - int(math.floor(math.log10(abs(value))))) if value else 0
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def format_value(value, factor=1.0, spec="", missing=MISSING):
    """One cell's text: ``value * factor`` through ``spec`` (see the module's docstring)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        value = value * factor if factor != 1.0 else value
        if isinstance(value, float) and value.is_integer() and spec in ("", ",", "d", ",d"):
            value = int(value)  # a count that went through a float
        if spec == "time":
            return _time(float(value))
        if spec:
            try:
                return format(value, spec)
            except ValueError:
                # An integer spec (",", "d") on a float, or the other way round.
                if isinstance(value, float) and value.is_integer():
                    return format(int(value), spec)
                return format(float(value), spec)
        if isinstance(value, int):
            return f"{value:,}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def table_cells(data, *, where=None, columns=None, sort=None, missing=MISSING):
    """``(keys, rows of cell texts)`` of the table that the options select from ``data``.

    Raises :class:`BenchmarkTableError` when a column is absent from every selected row.
    """
    rows = select(data["rows"], where, sort)
    cols = parse_columns(columns, rows)
    for key, _, _ in cols:
        if rows and all(key not in r for r in rows):
            known = sorted({k for r in rows for k in r})
            raise BenchmarkTableError(
                f"column {key!r} is in none of the selected rows (their keys: {known})"
            )
    body = [[format_value(r.get(k), f, s, missing) for k, f, s in cols] for r in rows]
    return [k for k, _, _ in cols], body


def _load_text(load_average):
    if not load_average:
        return None
    first = load_average[0] if isinstance(load_average, (list, tuple)) else load_average
    return f"{first:.1f}" if isinstance(first, (int, float)) else None


def caption(data, filename):
    """The line under a table: machine, versions, revision, date, load, command, file."""
    m, meta = data.get("machine", {}), data.get("meta", {})
    cpu = m.get("cpu") or m.get("processor") or "an unnamed CPU"
    details = []
    if m.get("cores"):
        details.append(f"{m['cores']} cores")
    if m.get("numba_threads"):
        details.append(f"{m['numba_threads']} Numba threads")
    if m.get("gpu"):
        details.append(str(m["gpu"]))
    versions = [
        f"{label} {m[key]}"
        for label, key in (("Python", "python"), ("NumPy", "numpy"), ("Numba", "numba"))
        if m.get(key)
    ]
    blas = [b for b in m.get("blas") or [] if b.get("internal_api") not in (None, "openmp")]
    if blas:
        name = _BLAS_NAMES.get(blas[0]["internal_api"], blas[0]["internal_api"])
        versions.append(f"{name} {blas[0].get('version') or ''}".strip())
    text = f"Measured on {cpu}"
    if details:
        text += f" ({', '.join(details)})"
    if versions:
        text += f", {', '.join(versions)}"
    revision = m.get("revision")
    if revision:
        text += f", at revision {revision}"
        if m.get("dirty"):
            text += " with uncommitted changes"
    date = str(m.get("date") or "")[:10]
    if date:
        text += f" on {date}"
    load_average = _load_text(meta.get("load_average_before"))
    if load_average is not None:
        text += f" (load average {load_average} before the run)"
    command = data.get("command")
    return text, command, filename


class BenchmarkTable(Directive):
    """``.. benchmark-table:: FILE``: see the module's docstring."""

    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec = {
        "where": directives.unchanged,
        "columns": directives.unchanged,
        "headers": directives.unchanged,
        "sort": directives.unchanged,
        "title": directives.unchanged,
        "empty": directives.unchanged,
        "missing": directives.unchanged,
        "class": directives.class_option,
    }

    def _fail(self, message):
        # An ERROR at the directive's line: the build (run with -W) fails on it.
        raise self.error(f"benchmark-table: {message}")

    def _inline(self, text):
        parsed, messages = self.state.inline_text(text, self.lineno)
        return parsed + messages

    def run(self):
        env = self.state.document.settings.env
        folder = Path(env.app.confdir, env.config.benchmark_results_dir).resolve()
        filename = self.arguments[0]
        path = folder / filename
        env.note_dependency(str(path))
        missing = self.options.get("missing", MISSING)
        try:
            data = load(path)
            keys, body = table_cells(
                data,
                where=self.options.get("where"),
                columns=self.options.get("columns"),
                sort=self.options.get("sort"),
                missing=missing,
            )
            headers = _split(self.options.get("headers")) or keys
            if len(headers) != len(keys):
                raise BenchmarkTableError(
                    f"{len(headers)} headers for {len(keys)} columns ({keys})"
                )
        except BenchmarkTableError as exc:
            self._fail(str(exc))
        out = []
        if body:
            out.append(self._table(headers, body))
        elif "empty" in self.options:
            para = nodes.paragraph(classes=["benchmark-empty"])
            para += self._inline(self.options["empty"])
            out.append(para)
        else:
            self._fail(
                f"no row of {filename} meets :where: {self.options.get('where')!r} "
                "(give :empty: if that can happen)"
            )
        text, command, name = caption(data, filename)
        para = nodes.paragraph(classes=["benchmark-caption"])
        para += nodes.emphasis(text=text)
        if command:
            para += nodes.Text(", by ")
            para += nodes.literal(text=command)
        para += nodes.Text(": ")
        para += nodes.literal(text=f"benchmarks/results/{name}")
        para += nodes.Text(".")
        out.append(para)
        return out

    def _table(self, headers, body):
        classes = ["numbers", "benchmark-table"] + self.options.get("class", [])
        table = nodes.table(classes=classes)
        if self.options.get("title"):
            title = nodes.title()
            title += self._inline(self.options["title"])
            table += title
        group = nodes.tgroup(cols=len(headers))
        table += group
        for _ in headers:
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        row = nodes.row()
        for text in headers:
            entry = nodes.entry()
            para = nodes.paragraph()
            para += self._inline(text)
            entry += para
            row += entry
        head += row
        tbody = nodes.tbody()
        group += tbody
        for cells in body:
            row = nodes.row()
            for text in cells:
                entry = nodes.entry()
                entry += nodes.paragraph(text=text)
                row += entry
            tbody += row
        return table


def setup(app):
    app.add_config_value("benchmark_results_dir", "../benchmarks/results", "env")
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
