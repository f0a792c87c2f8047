"""Pipeline tests: read ``*.test.json`` files, run the cases, check assertions, report.

A test file (the earlier product's format, plus cassettes and stage checks)::

    {
      "name": "blog writer",
      "pipeline": "blog.pipeline.json",          # relative to the test file
      "cassette": "blog.cassette.json",          # optional: model calls replayed from here
      "tests": [
        {
          "name": "writes about owls",
          "input": {"topic": "owls"},
          "cassette": "owls.cassette.json",      # optional, per case
          "assertions": [
            {"path": "content", "type": "contains", "value": "owl"},
            {"stage": "review", "path": "score", "type": "range", "min": 0, "max": 1},
            {"stage": "fallback", "type": "status", "value": "skipped"},
            {"type": "json-schema", "schema": {"type": "object", "required": ["content"]}}
          ],
          "expect_error": "optional: true, or text the error must contain",
          "skip": false, "only": false
        }
      ]
    }

An assertion checks the pipeline's output, or with ``stage`` that stage's
output; ``path`` walks into it (``a.b.0.c``; empty means the whole value).
Types: equals, notEquals, contains, notContains, matches (regex search),
json-schema, range (``min``/``max``, inclusive), lessThan, greaterThan,
exists, notExists, type, lengthEquals, lengthLessThan, lengthGreaterThan,
and status (of a stage: completed, failed, skipped). Names are accepted in
camelCase, kebab-case or snake_case.

With a cassette the run is deterministic and offline (replay); ``record``
mode makes the real calls and saves them; ``update`` records only what is
missing. Pipelines run through ``kernel.executor.run_pipeline`` with a
listener that collects every stage's status and output, which also feeds
per-stage coverage: executed / failed / skipped / not covered, per
pipeline file, written as JSON for editors.
"""
from __future__ import annotations

import json
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from flowmason.kernel.errors import ExitCode, FlowMasonError

COVERAGE_VERSION = 1
_MISSING = object()


class TestFileError(FlowMasonError):
    """A test file is unreadable or not in the test-file format."""

    __test__ = False  # not a pytest test class
    code = "test_file"
    exit_code = ExitCode.USAGE  # a missing or malformed file is the caller's input, as in `fm run` and `fm validate`


@dataclass
class AssertionResult:
    __test__ = False
    description: str
    passed: bool
    message: str = ""
    expected: Any = None
    actual: Any = None


@dataclass
class CaseResult:
    __test__ = False
    name: str
    status: str  # passed | failed | error | skipped
    duration_ms: float = 0.0
    assertions: list[AssertionResult] = field(default_factory=list)
    error: str | None = None
    output: Any = None
    stages: dict[str, str] = field(default_factory=dict)  # stage id -> completed/failed/skipped/cancelled
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileResult:
    __test__ = False
    path: Path
    name: str
    pipeline_path: Path | None = None
    pipeline_name: str | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)  # id, name, component_type of every stage
    cases: list[CaseResult] = field(default_factory=list)
    error: str | None = None  # the file itself could not run

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)


# -- discovery and loading --

def discover(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob("*.test.json") if ".flowmason" not in x.parts))
        elif p.exists():
            found.append(p)
        else:
            raise TestFileError(f"no such file or folder: {p}", hint="give test files or folders holding *.test.json")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def load_test_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TestFileError(f"cannot read {path}: {exc.strerror}", pipeline=str(path)) from None
    except json.JSONDecodeError as exc:
        raise TestFileError(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", pipeline=str(path),
                            hint="fix the JSON syntax at that position") from None
    if not isinstance(data, dict):
        raise TestFileError("a test file is a JSON object", pipeline=str(path), hint='{"pipeline": ..., "tests": [...]}')
    if not isinstance(data.get("pipeline"), str) or not data["pipeline"]:
        raise TestFileError("'pipeline' (the path of the pipeline file) is missing", pipeline=str(path), field="pipeline",
                            hint='add "pipeline": "my.pipeline.json", relative to the test file')
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise TestFileError("'tests' must be a non-empty list of test cases", pipeline=str(path), field="tests")
    for i, case in enumerate(tests):
        if not isinstance(case, dict):
            raise TestFileError(f"test #{i} is not an object", pipeline=str(path), field=f"tests.{i}")
        case.setdefault("name", f"test {i + 1}")
        inputs = case.get("input", case.get("inputs", {}))
        if not isinstance(inputs, dict):
            raise TestFileError(f"test '{case['name']}': 'input' must be an object", pipeline=str(path),
                                field=f"tests.{i}.input")
        case["input"] = inputs
        asserts = case.get("assertions") or []
        if not isinstance(asserts, list) or not all(isinstance(a, dict) for a in asserts):
            raise TestFileError(f"test '{case['name']}': 'assertions' must be a list of objects", pipeline=str(path),
                                field=f"tests.{i}.assertions")
        for j, a in enumerate(asserts):
            kind = _kind(a.get("type", "exists"))
            if kind not in _CHECKS:
                raise TestFileError(
                    f"test '{case['name']}': unknown assertion type '{a.get('type')}'", pipeline=str(path),
                    field=f"tests.{i}.assertions.{j}.type", hint="use one of: " + ", ".join(sorted(_NAMES)))
    return data


# -- assertions --

def _kind(name: Any) -> str:
    return re.sub(r"[-_ ]", "", str(name)).lower()


def walk(value: Any, path: str | None) -> Any:
    """Follow a dotted path (``a.b.0``); ``_MISSING`` when it leads nowhere."""
    if path in (None, "", "$"):
        return value
    current = value
    for part in str(path).removeprefix("$.").split("."):
        if isinstance(current, dict):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return _MISSING
        else:
            return _MISSING
    return current


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return str(expected) in actual
    if isinstance(actual, (list, dict)):
        return expected in actual
    return False


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _range(actual: Any, a: dict[str, Any]) -> tuple[bool, str]:
    if not _number(actual):
        return False, "is not a number"
    lo, hi = a.get("min"), a.get("max")
    if lo is not None and actual < lo:
        return False, f"is below {lo}"
    if hi is not None and actual > hi:
        return False, f"is above {hi}"
    return True, ""


def _schema(actual: Any, a: dict[str, Any]) -> tuple[bool, str]:
    from flowmason.kernel.schemas import compile_schema

    schema = a.get("schema", a.get("value"))
    if not isinstance(schema, dict):
        return False, "the assertion has no 'schema' object"
    try:
        err = compile_schema(schema).first_error(actual)
    except ValueError as exc:
        return False, str(exc)
    return err is None, err or ""


_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool, "object": dict, "array": list,
          "null": type(None)}


def _type(actual: Any, a: dict[str, Any]) -> tuple[bool, str]:
    want = a.get("expected_type", a.get("value"))
    py = _TYPES.get(str(want))
    if py is None:
        return False, f"unknown type '{want}'"
    ok = isinstance(actual, py) and not (want in ("number", "integer") and isinstance(actual, bool))
    return ok, "" if ok else f"is a {type(actual).__name__}"


def _length(op: str) -> Any:
    def check(actual: Any, a: dict[str, Any]) -> tuple[bool, str]:
        if not hasattr(actual, "__len__"):
            return False, "has no length"
        n, v = len(actual), a.get("value")
        ok = {"eq": n == v, "lt": v is not None and n < v, "gt": v is not None and n > v}[op]
        return ok, "" if ok else f"has length {n}"
    return check


def _matches(actual: Any, a: dict[str, Any]) -> tuple[bool, str]:
    if not isinstance(actual, str):
        return False, "is not a string"
    try:
        return bool(re.search(str(a.get("value")), actual)), ""
    except re.error as exc:
        return False, f"bad regular expression: {exc}"


_CHECKS: dict[str, Any] = {
    "exists": lambda v, a: (v is not None, ""),
    "notexists": lambda v, a: (v is None, ""),
    "equals": lambda v, a: (v == a.get("value"), ""),
    "notequals": lambda v, a: (v != a.get("value"), ""),
    "contains": lambda v, a: (_contains(v, a.get("value")), ""),
    "notcontains": lambda v, a: (not _contains(v, a.get("value")) and isinstance(v, (str, list, dict)), ""),
    "matches": _matches,
    "jsonschema": _schema,
    "schema": _schema,
    "range": _range,
    "between": _range,
    "lessthan": lambda v, a: (_number(v) and v < a.get("less_than", a.get("value")), ""),
    "greaterthan": lambda v, a: (_number(v) and v > a.get("greater_than", a.get("value")), ""),
    "type": _type,
    "lengthequals": _length("eq"),
    "lengthlessthan": _length("lt"),
    "lengthgreaterthan": _length("gt"),
    "status": None,  # handled by evaluate(): it looks at the stage's status, not a value
}
_NAMES = ["equals", "notEquals", "contains", "notContains", "matches", "json-schema", "range", "lessThan",
          "greaterThan", "exists", "notExists", "type", "lengthEquals", "lengthLessThan", "lengthGreaterThan", "status"]


def evaluate(a: dict[str, Any], output: Any, stages: dict[str, str], outputs: dict[str, Any]) -> AssertionResult:
    kind = _kind(a.get("type", "exists"))
    stage = a.get("stage")
    path = a.get("path")
    where = (f"stage '{stage}' output" if stage else "output") + (f" at '{path}'" if path else "")
    desc = f"{where} {a.get('type', 'exists')}"
    expected = a.get("value", a.get("schema"))
    if "min" in a or "max" in a:
        expected = {"min": a.get("min"), "max": a.get("max")}
    if kind == "status":
        actual = stages.get(stage, "not run") if stage else None
        if not stage:
            return AssertionResult(desc, False, "a status assertion needs 'stage'", expected)
        ok = actual == a.get("value") or (a.get("value") == "executed" and actual == "completed")
        return AssertionResult(desc, ok, "" if ok else a.get("message") or f"stage status is '{actual}'", expected, actual)
    if stage:
        if stage not in outputs:
            return AssertionResult(desc, False, f"stage '{stage}' {'did not run' if stage not in stages else 'has no output'}"
                                   f" (status: {stages.get(stage, 'not run')})", expected)
        base = outputs[stage]
    else:
        base = output
    actual = walk(base, path)
    if actual is _MISSING:
        ok = kind == "notexists"
        return AssertionResult(desc, ok, "" if ok else f"path '{path}' not found", expected)
    ok, why = _CHECKS[kind](actual, a)
    ok = bool(ok)
    if not ok and not why:
        why = f"got {_short(actual)}" + (f", expected {_short(expected)}" if expected is not None else "")
    return AssertionResult(desc, ok, "" if ok else (a.get("message") or why), expected, actual)


def _short(value: Any, n: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return repr(text[:n] + ("..." if len(text) > n else "")) if isinstance(value, str) else text[:n]


# -- running --

class _Collector:
    """The run listener: every stage's final status and output (foreach iterations fold into their stage)."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.outputs: dict[str, Any] = {}

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        if stage is None or kind not in ("stage.finished", "stage.failed", "stage.skipped", "stage.cancelled"):
            return
        status = kind.split(".", 1)[1]
        status = "completed" if status == "finished" else status
        sid = stage.id
        iteration = getattr(data, "iteration", None)
        if iteration is None or self.status.get(sid) != "failed":  # a failed loop iteration sticks
            self.status[sid] = status
        if status in ("completed", "failed") and (iteration is None or sid not in self.outputs):
            self.outputs[sid] = getattr(data, "output", None)


async def run_case(pipeline: Any, loader: Any, case: dict[str, Any], cassette: Any) -> CaseResult:
    from flowmason.plugins.cassettes import use_cassette
    from flowmason.kernel.runner import Runner

    name = str(case.get("name"))
    if case.get("skip"):
        return CaseResult(name, "skipped")
    collector = _Collector()
    t0 = time.perf_counter()
    error: BaseException | None = None
    output = None
    usage: dict[str, Any] = {}
    try:
        if cassette is not None:
            with use_cassette(cassette):
                run = await Runner().run(pipeline, dict(case["input"]), listeners=[collector], loader=loader)
        else:
            run = await Runner().run(pipeline, dict(case["input"]), listeners=[collector], loader=loader)
        output = run.output
        usage = dict(run.usage or {})
    except FlowMasonError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - an engine or plugin bug is a test error, not a crash of `fm test`
        error = exc
    ms = (time.perf_counter() - t0) * 1000
    result = CaseResult(name, "passed", ms, output=output, stages=dict(collector.status), usage=usage)
    expect = case.get("expect_error")
    if error is not None:
        text = str(error)
        if expect is True or (isinstance(expect, str) and expect in text):
            pass  # the failure was the point; stage assertions still apply
        elif expect:
            result.status, result.error = "failed", f"expected an error containing {expect!r}, got: {text}"
            return result
        else:
            result.status = "error"
            result.error = text if isinstance(error, FlowMasonError) else "".join(
                traceback.format_exception_only(type(error), error)).strip()
            return result
    elif expect:
        result.status, result.error = "failed", "expected the run to fail, but it completed"
        return result
    for a in case.get("assertions") or []:
        result.assertions.append(evaluate(a, output, collector.status, collector.outputs))
    if any(not r.passed for r in result.assertions):
        result.status = "failed"
    return result


async def run_file(path: Path, *, mode: str = "replay", name_filter: str | None = None) -> FileResult:
    """Run every case of one test file; problems with the file itself land in ``FileResult.error``."""
    from flowmason.plugins.cassettes import Cassette

    result = FileResult(path=path, name=path.name)
    try:
        doc = load_test_file(path)
        result.name = str(doc.get("name") or path.name)
        pipeline_path = (path.parent / doc["pipeline"]).resolve()
        result.pipeline_path = pipeline_path
        from flowmason.kernel.runner import Runner

        pipeline, loader = Runner().load(pipeline_path)
        result.pipeline_name = pipeline.name
        result.stages = [{"id": s.id, "name": s.name, "component_type": s.component_type} for s in pipeline.stages]
    except FlowMasonError as exc:
        result.error = str(exc)
        return result
    cases = doc["tests"]
    if any(c.get("only") for c in cases):
        cases = [c for c in cases if c.get("only")]
    if name_filter:
        cases = [c for c in cases if name_filter.lower() in str(c.get("name")).lower()]
    cassettes: dict[Path, Any] = {}  # one object per file, so cases that share a cassette add to one recording
    for case in cases:
        ref = case.get("cassette", doc.get("cassette"))
        cassette = None
        if ref and not case.get("skip"):
            cpath = (path.parent / ref).resolve()
            if cpath not in cassettes:
                try:
                    cassettes[cpath] = Cassette(cpath, mode)
                except FlowMasonError as exc:
                    result.cases.append(CaseResult(str(case.get("name")), "error", error=str(exc)))
                    continue
            cassette = cassettes[cpath]
        result.cases.append(await run_case(pipeline, loader, case, cassette))
    return result


async def run_all(files: list[Path], *, mode: str = "replay", name_filter: str | None = None) -> list[FileResult]:
    return [await run_file(f, mode=mode, name_filter=name_filter) for f in files]


# -- reports --

def totals(results: list[FileResult]) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for r in results:
        if r.error:
            out["error"] += 1
        for c in r.cases:
            out[c.status] += 1
    return out


def coverage(results: list[FileResult]) -> dict[str, Any]:
    """Per pipeline file, per stage: how many cases executed / failed / skipped it, and a status for editors."""
    pipelines: dict[str, Any] = {}
    for r in results:
        if r.pipeline_path is None or not r.stages:
            continue
        key = str(r.pipeline_path)
        entry = pipelines.setdefault(key, {"pipeline": r.pipeline_name, "file": key, "test_files": [], "stages": {}})
        entry["test_files"].append(str(r.path.resolve()))
        for st in r.stages:
            s = entry["stages"].setdefault(st["id"], {**st, "status": "not_covered", "executed": 0, "failed": 0,
                                                      "skipped": 0, "tests": []})
            for case in r.cases:
                status = case.stages.get(st["id"])
                if status is None:
                    continue
                bucket = {"completed": "executed", "failed": "failed", "skipped": "skipped"}.get(status)
                if bucket:
                    s[bucket] += 1
                    s["tests"].append(case.name)
    grand = {"total": 0, "executed": 0, "failed": 0, "skipped": 0, "not_covered": 0}
    for entry in pipelines.values():
        summary = {"total": 0, "executed": 0, "failed": 0, "skipped": 0, "not_covered": 0}
        for s in entry["stages"].values():
            s["status"] = ("failed" if s["failed"] else "executed" if s["executed"] else
                           "skipped" if s["skipped"] else "not_covered")
            summary["total"] += 1
            summary[s["status"]] += 1
        reached = summary["executed"] + summary["failed"]
        summary["coverage_percent"] = round(100.0 * reached / summary["total"], 1) if summary["total"] else 0.0
        entry["summary"] = summary
        for k in grand:
            grand[k] += summary[k]
    reached = grand["executed"] + grand["failed"]
    grand["coverage_percent"] = round(100.0 * reached / grand["total"], 1) if grand["total"] else 0.0  # type: ignore[assignment]
    return {"version": COVERAGE_VERSION, "tool": "flowmason", "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pipelines": pipelines, "summary": grand}


def junit_xml(results: list[FileResult]) -> str:
    t = totals(results)
    root = ET.Element("testsuites", name="fm test", tests=str(sum(len(r.cases) for r in results) + sum(1 for r in results if r.error)),
                      failures=str(t["failed"]), errors=str(t["error"]), skipped=str(t["skipped"]),
                      time=f"{sum(c.duration_ms for r in results for c in r.cases) / 1000:.3f}")
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.name, file=str(r.path),
                              tests=str(len(r.cases) or 1), failures=str(r.count("failed")),
                              errors=str(r.count("error") + (1 if r.error else 0)), skipped=str(r.count("skipped")),
                              time=f"{sum(c.duration_ms for c in r.cases) / 1000:.3f}")
        if r.error:
            case = ET.SubElement(suite, "testcase", classname=r.path.name, name="(load)", time="0")
            ET.SubElement(case, "error", message=r.error).text = r.error
            continue
        for c in r.cases:
            case = ET.SubElement(suite, "testcase", classname=r.path.name, name=c.name, time=f"{c.duration_ms / 1000:.3f}")
            if c.status == "skipped":
                ET.SubElement(case, "skipped")
            elif c.status == "error":
                ET.SubElement(case, "error", message=c.error or "error").text = c.error
            elif c.status == "failed":
                lines = [c.error] if c.error else []
                lines += [f"{a.description}: {a.message}" for a in c.assertions if not a.passed]
                ET.SubElement(case, "failure", message=lines[0] if lines else "failed").text = "\n".join(lines)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def text_report(results: list[FileResult]) -> list[str]:
    lines: list[str] = []
    marks = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
    for r in results:
        lines.append(f"{r.path}")
        if r.error:
            lines.append(f"  ERROR  {r.error}")
            continue
        for c in r.cases:
            lines.append(f"  {marks[c.status]:5}  {c.name} ({c.duration_ms:.0f} ms)")
            if c.error:
                lines.append(f"         {c.error}")
            for a in c.assertions:
                if not a.passed:
                    lines.append(f"         {a.description}: {a.message}")
    t = totals(results)
    lines.append(f"{t['passed']} passed, {t['failed']} failed, {t['error']} errors, {t['skipped']} skipped")
    return lines
