"""Keeps `docs/compliance.md` (the auditor's compliance map) from rotting.

Every backticked reference in the map is checked against the code as it is now:

* `path/to/file.py`: the file exists (any extension: `deploy/pools.yaml` too);
* `path/to/test_file.py::test_name` (or `::Class::test_name`, or `::test_name[param]`): a test
  function of that name is defined in that file, found by parsing it with `ast`;
* `path/to/file.py::symbol` (or `::Class.method`): defined at module level in that file, or the
  name a Dagster definition in that file is given (`name=...`, an `AssetCheckSpec`'s or a job's
  first argument, through module-level string constants).

The map must also have a section for every duty below, each with its enforcement table and at
least one test reference, in every subsection too. Run this module to print the test ids the map
cites (`pytest -q $(python -m repazoo_assets_tests.test_compliance_map)` runs them all).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "compliance.md"

# Each duty (as named in the audit request) and how its section heading (`## ...`) must start.
DUTIES = {
    "Twitter developer terms": r"Twitter developer terms\b",
    "Anthropic usage": r"Anthropic usage\b",
    "GDPR Art. 7": r"GDPR Art\. 7\b",
    "GDPR Art. 17": r"GDPR Art\. 17\b",
    "GDPR Art. 20": r"GDPR Art\. 20\b",
    "GDPR Art. 30": r"GDPR Art\. 30\b",
    "GDPR Art. 33": r"GDPR Art\. 33\b",
    "CCPA right to know": r"CCPA\b.*\bright to know\b",
    "CCPA right to delete": r"CCPA\b.*\bright to delete\b",
    "CCPA no sale": r"CCPA\b.*\bno sale\b",
}
TABLE_HEADER = re.compile(
    r"^\|\s*what enforces it\s*\|\s*where\s*\|\s*proven by\s*\|\s*$", re.MULTILINE | re.IGNORECASE
)

# A backticked path: directories and a file name with an extension, then optional `::name` parts.
_EXTENSIONS = "py|md|yaml|yml|toml|cfg|ini|json|txt|sh|sql"
_REFERENCE = re.compile(
    rf"`(?P<path>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\.(?:{_EXTENSIONS}))(?P<names>(?:::[^`\s:]+)*)`"
)
_PARAMS = re.compile(r"\[[^\]]*\]$")
# Dagster constructors whose first positional argument is the definition's name.
_NAMED_BY_FIRST_ARG = {
    "AssetCheckSpec", "AssetSpec", "AssetKey", "define_asset_job", "ScheduleDefinition", "SensorDefinition",
    "DynamicPartitionsDefinition", "JobDefinition",
}


@dataclass(frozen=True)
class Reference:
    path: str
    names: tuple[str, ...]  # empty: the file itself

    @property
    def is_test(self) -> bool:
        file_name = Path(self.path).name
        return bool(self.names) and self.names[-1].startswith("test") and (
            file_name.startswith("test_") or file_name.endswith("_test.py")
        )

    @property
    def node_id(self) -> str:
        return "::".join((self.path, *self.names))

    def __str__(self) -> str:
        return self.node_id


def references(text: str) -> list[Reference]:
    """Every reference in `text`, in order, without repeats."""
    found: dict[str, Reference] = {}
    for match in _REFERENCE.finditer(text):
        names = tuple(n for n in match.group("names").split("::") if n)
        ref = Reference(match.group("path"), names)
        found.setdefault(ref.node_id, ref)
    return list(found.values())


# --- what a Python file defines ---------------------------------------------------------------------
def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements of a module or class body, looking into `if`/`try`/`with` blocks at that level."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If | ast.With):
            out.extend(_top_level(node.body) + _top_level(getattr(node, "orelse", [])))
        elif isinstance(node, ast.Try):
            out.extend(_top_level(node.body + node.orelse + node.finalbody))
            for handler in node.handlers:
                out.extend(_top_level(handler.body))
    return out


def _targets(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _targets(element)]
    return []


def _defined(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names bound by definitions and assignments in a body (imports excluded)."""
    names: dict[str, ast.stmt] = {}
    for node in _top_level(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(dict.fromkeys(_targets(target), node))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names.update(dict.fromkeys(_targets(node.target), node))
    return names


def _string_constants(tree: ast.Module) -> dict[str, str]:
    constants = {}
    for node in _top_level(tree.body):
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
            continue
        if isinstance(node.value.value, str):
            for target in node.targets:
                constants.update(dict.fromkeys(_targets(target), node.value.value))
    return constants


def _dagster_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Module aliases of dagster (`dg`) and names imported from it (`asset`, ...)."""
    modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "dagster")
        elif isinstance(node, ast.ImportFrom) and node.module == "dagster":
            names.update(a.asname or a.name for a in node.names)
    return modules, names


def dagster_names(tree: ast.Module) -> set[str]:
    """Names given to Dagster definitions in a module: `name=` of any dagster call or decorator,
    and the first argument of the constructors that take the name first; string literals or
    module-level string constants."""
    constants = _string_constants(tree)
    modules, imported = _dagster_aliases(tree)

    def resolve(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
            called = func.attr
        elif isinstance(func, ast.Name) and func.id in imported:
            called = func.id
        else:
            continue
        candidates = [kw.value for kw in node.keywords if kw.arg == "name"]
        if called in _NAMED_BY_FIRST_ARG and node.args:
            candidates.append(node.args[0])
        found.update(name for name in map(resolve, candidates) if name)
    return found


def _functions_in_classes(body: list[ast.stmt], prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """test name -> the class path it is defined in, for functions inside (nested) classes."""
    out: dict[str, tuple[str, ...]] = {}
    for node in _top_level(body):
        if isinstance(node, ast.ClassDef):
            for name, where in _functions_in_classes(node.body, (*prefix, node.name)).items():
                out.setdefault(name, where)
        elif prefix and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.setdefault(node.name, prefix)
    return out


def _check_test(tree: ast.Module, ref: Reference) -> str | None:
    *classes, name = ref.names
    name = _PARAMS.sub("", name)
    body = tree.body
    for cls in classes:
        node = _defined(body).get(cls)
        if not isinstance(node, ast.ClassDef):
            return f"{ref}: no class {cls} in {ref.path}"
        body = node.body
    node = _defined(body).get(name)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    if not classes and name in (inside := _functions_in_classes(tree.body)):
        return f"{ref}: {name} is defined in class {'::'.join(inside[name])}; cite it as such"
    return f"{ref}: no test function {name} in {ref.path}"


def _check_symbol(tree: ast.Module, ref: Reference) -> str | None:
    parts = [part for name in ref.names for part in name.split(".")]
    first, rest = parts[0], parts[1:]
    defined = _defined(tree.body)
    if first not in defined:
        if not rest and first in dagster_names(tree):
            return None
        return (
            f"{ref}: {first} is not defined at module level in {ref.path}, "
            "nor named by a Dagster definition there"
        )
    node = defined[first]
    for part in rest:
        if not isinstance(node, ast.ClassDef) or part not in _defined(node.body):
            return f"{ref}: {part} is not defined in {'.'.join(parts[: parts.index(part)])} in {ref.path}"
        node = _defined(node.body)[part]
    return None


def check_reference(root: Path, ref: Reference, trees: dict[str, ast.Module]) -> str | None:
    """None when `ref` holds, else one line saying what is missing."""
    path = root / ref.path
    if not path.is_file():
        return f"{ref}: file {ref.path} does not exist"
    if not ref.names:
        return None
    if path.suffix != ".py":
        return f"{ref}: names can only be checked in Python files"
    if ref.path not in trees:
        try:
            trees[ref.path] = ast.parse(path.read_text(encoding="utf-8"), filename=ref.path)
        except SyntaxError as exc:
            return f"{ref}: {ref.path} does not parse ({exc.msg}, line {exc.lineno})"
    tree = trees[ref.path]
    return _check_test(tree, ref) if ref.is_test else _check_symbol(tree, ref)


def check_references(text: str, root: Path) -> list[str]:
    trees: dict[str, ast.Module] = {}
    return [problem for ref in references(text) if (problem := check_reference(root, ref, trees))]


# --- what the document must cover -------------------------------------------------------------------
def sections(text: str, level: int = 2) -> list[tuple[str, str]]:
    """(heading, body) of each heading of `level` (`## ` for 2), the body up to the next such heading
    or one of a higher level. Fenced code blocks are skipped."""
    out: list[tuple[str, list[str]]] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading and len(heading.group(1)) <= level:
            if len(heading.group(1)) == level:
                out.append((heading.group(2), []))
                continue
            out.append(("", []))  # a higher-level heading closes the section
            continue
        if out:
            out[-1][1].append(line)
    return [(title, "\n".join(body)) for title, body in out if title]


def _cites_a_test(body: str) -> bool:
    return any(ref.is_test for ref in references(body))


def check_coverage(text: str, duties: dict[str, str] = DUTIES) -> list[str]:
    """One line per duty without exactly one section, or whose section lacks the enforcement table
    or a test reference (in the section, and in each of its `###` subsections)."""
    problems = []
    found = sections(text)
    for duty, pattern in duties.items():
        matching = [(title, body) for title, body in found if re.match(pattern, title)]
        if len(matching) != 1:
            problems.append(f"{duty}: {len(matching)} sections whose heading matches {pattern!r} (want 1)")
            continue
        title, body = matching[0]
        if not TABLE_HEADER.search(body):
            problems.append(f"{duty}: section {title!r} has no table 'what enforces it | where | proven by'")
        if not _cites_a_test(body):
            problems.append(f"{duty}: section {title!r} references no test")
        for subtitle, subbody in sections(body, level=3):
            if not _cites_a_test(subbody):
                problems.append(f"{duty}: subsection {subtitle!r} references no test")
    return problems


def proving_test_ids(text: str) -> list[str]:
    return [ref.node_id for ref in references(text) if ref.is_test]


# --- the map as it is -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compliance_map() -> str:
    assert MAP.is_file(), f"{MAP.relative_to(ROOT)} is missing"
    return MAP.read_text(encoding="utf-8")


def test_every_reference_in_the_compliance_map_exists(compliance_map):
    refs = references(compliance_map)
    assert len([r for r in refs if r.is_test]) >= len(DUTIES)  # the parser found the references
    assert any(r.names and not r.is_test for r in refs) and any(not r.names for r in refs)
    problems = check_references(compliance_map, ROOT)
    assert not problems, "docs/compliance.md cites what no longer exists:\n" + "\n".join(problems)


def test_the_compliance_map_covers_every_duty_and_each_cites_a_test(compliance_map):
    problems = check_coverage(compliance_map)
    assert not problems, "docs/compliance.md:\n" + "\n".join(problems)


# --- the checker itself can fail --------------------------------------------------------------------
@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "guard.py").write_text(
        "import dagster as dg\n"
        "from os import path\n"
        "LIMIT = 5\n"
        "CHECK = 'no_leaks'\n"
        "class Guard:\n"
        "    def check(self): ...\n"
        "@dg.asset(name='renamed_asset', check_specs=[dg.AssetCheckSpec(CHECK, asset='renamed_asset')])\n"
        "def the_function(): ...\n"
        "job = dg.define_asset_job('the_job', selection=[the_function])\n"
        "if True:\n"
        "    def conditional(): ...\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_guard.py").write_text(
        "import pytest\n"
        "def helper(): ...\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_module_level(x): ...\n"
        "class TestGroup:\n"
        "    async def test_in_class(self): ...\n"
        "    class TestInner:\n"
        "        def test_nested(self): ...\n"
    )
    (tmp_path / "tests" / "test_broken.py").write_text("def test_x(:\n")
    (tmp_path / "deploy.yaml").write_text("a: 1\n")
    return tmp_path


GOOD = """
`pkg/guard.py` `deploy.yaml` `pkg/guard.py::LIMIT` `pkg/guard.py::Guard` `pkg/guard.py::Guard.check`
`pkg/guard.py::the_function` `pkg/guard.py::renamed_asset` `pkg/guard.py::no_leaks` `pkg/guard.py::the_job`
`pkg/guard.py::conditional` `tests/test_guard.py::test_module_level`
`tests/test_guard.py::test_module_level[1]`
`tests/test_guard.py::TestGroup::test_in_class` `tests/test_guard.py::TestGroup::TestInner::test_nested`
`tests/test_guard.py::helper`
"""


def test_the_checker_accepts_what_exists(fake_repo):
    assert check_references(GOOD, fake_repo) == []
    assert proving_test_ids(GOOD) == [
        "tests/test_guard.py::test_module_level", "tests/test_guard.py::test_module_level[1]",
        "tests/test_guard.py::TestGroup::test_in_class",
        "tests/test_guard.py::TestGroup::TestInner::test_nested",
    ]


def test_the_checker_names_each_bogus_reference(fake_repo):
    bogus = """
    | what enforces it | where | proven by |
    |---|---|---|
    | a renamed file | `pkg/gone.py` | `tests/test_gone.py::test_anything` |
    | a removed test | `pkg/guard.py::LIMIT` | `tests/test_guard.py::test_removed` |
    | a test cited without its class | | `tests/test_guard.py::test_in_class` |
    | a wrong class | | `tests/test_guard.py::TestOther::test_in_class` |
    | a removed symbol | `pkg/guard.py::MAX_LIMIT` | |
    | an import is not a definition | `pkg/guard.py::path` | |
    | a removed method | `pkg/guard.py::Guard.verify` | |
    | a name in a non-Python file | `deploy.yaml::a` | |
    | a file that no longer parses | | `tests/test_broken.py::test_x` |
    | still fine | `pkg/guard.py::no_leaks` | `tests/test_guard.py::test_module_level` |
    """
    problems = check_references(bogus, fake_repo)
    assert [p.split(": ")[0] for p in problems] == [
        "pkg/gone.py", "tests/test_gone.py::test_anything", "tests/test_guard.py::test_removed",
        "tests/test_guard.py::test_in_class", "tests/test_guard.py::TestOther::test_in_class",
        "pkg/guard.py::MAX_LIMIT", "pkg/guard.py::path", "pkg/guard.py::Guard.verify", "deploy.yaml::a",
        "tests/test_broken.py::test_x",
    ]
    assert "is defined in class TestGroup" in problems[3]
    assert "does not exist" in problems[0] and "does not parse" in problems[-1]


def test_the_checker_reports_missing_duties_tables_and_tests():
    duties = {"Duty A": r"Duty A\b", "Duty B": r"Duty B\b", "Duty C": r"Duty C\b", "Duty D": r"Duty D\b"}
    table = "| what enforces it | where | proven by |\n|---|---|---|\n"
    doc = (
        "# Map\n\n"
        f"## Duty A\n\n{table}| x | `a.py` | `tests/test_a.py::test_a` |\n\n"
        "### Part one\n\nproven by `tests/test_a.py::test_one`\n\n### Part two\n\nonly `a.py::thing`\n\n"
        f"## Duty B\n\n{table}| x | `b.py::thing` | none yet |\n\n"
        "```\n## Duty D (inside a code block: not a section)\n```\n\n"
        "## Duty C\n\nprose citing `tests/test_c.py::test_c`, but no table\n\n"
        "# Appendix\n\n`tests/test_b.py::test_b` (outside every section)\n"
    )
    assert check_coverage(doc, duties) == [
        "Duty A: subsection 'Part two' references no test",
        "Duty B: section 'Duty B' references no test",
        "Duty C: section 'Duty C' has no table 'what enforces it | where | proven by'",
        "Duty D: 0 sections whose heading matches 'Duty D\\\\b' (want 1)",
    ]


if __name__ == "__main__":
    print(" ".join(proving_test_ids(MAP.read_text(encoding="utf-8"))))
    sys.exit(0)
