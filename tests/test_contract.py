"""Contract loading and validation (docs/design.md §2): every bad input is one ContractError naming
file, line and field; valid files give frozen contracts with the documented defaults."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcontract.contract import (
    HEALTH_METHODS,
    Contract,
    LadderConfig,
    LevelCounts,
    LevelThresholds,
    ModuleContract,
    OrcaOptions,
)
from memcontract.errors import ContractError
from memcontract.v1 import memcontract_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "contracts").glob("*.yaml"))
FIXTURES = Path(__file__).resolve().parent / "contracts"


@pytest.fixture(autouse=True, scope="module")
def _no_module_env() -> Iterator[None]:
    # Module scope (not monkeypatch) so the Hypothesis tests may rely on it too.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MEMCONTRACT_MODULE", raising=False)
        yield


def error_of(text: str, **kwargs: str) -> ContractError:
    with pytest.raises(ContractError) as info:
        Contract.from_yaml(text, path="c.yaml", **kwargs)
    return info.value


# --- valid files ------------------------------------------------------------------------------


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/contracts/*.yaml is empty"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    contract = Contract.load(path)
    assert contract.path == str(path)
    assert contract.module in contract.modules
    assert contract.to_proto().modules[0].name == contract.module.name


def test_sample_contract_is_all_defaults() -> None:
    contract = Contract.load(ROOT / "examples" / "contracts" / "memory_contract.yaml")
    assert contract.version == "v1.2"
    assert contract.module == ModuleContract(name="transaction-processor")


def test_seed_contract_takes_defaults() -> None:
    contract = Contract.load(ROOT / "examples" / "contracts" / "seed.yaml")
    assert contract.version == "v1"
    module = contract.module
    assert module == ModuleContract(name="transaction-processor")
    assert module.max_heap_bytes == 1800 * 1024 * 1024
    assert module.gc_pause_objective_ms == 5.0
    assert module.sample_interval == 0.5


def test_full_fixture_reads_every_field() -> None:
    module = Contract.load(FIXTURES / "full.yaml").module
    assert module == ModuleContract(
        name="api",
        max_heap_mb=512.0,
        alloc_rate_mb_per_sec=4.0,
        gc_trigger_ratio=0.6,
        required_gc_pauses_ms="<=2.5",
        core_methods=(HEALTH_METHODS, "/shop.Checkout/*"),
        sample_interval_ms=250,
        ladder=LadderConfig(
            heap=LevelThresholds(0.7, 0.85, 1.0),
            alloc_rate=LevelThresholds(2.0, 3.0, 4.5),
            confirm=LevelCounts(2, 3, 4),
            recover_after=10,
        ),
        noncritical_loggers=("urllib3", "shop.audit"),
        retry_pushback_ms=0,
        dry_run=True,
        on_stuck="recycle",
        orca=OrcaOptions(application_utilization="none", rates="calls"),
        max_fail_fast_ms=5000,
    )
    assert not module.orca.reports_memory
    assert module.gc_pause_objective_ms == 2.5
    assert module.core_matcher().fullmatch("/shop.Checkout/Pay")
    assert not module.core_matcher().fullmatch("/shop.Cart/Add")


def test_ints_become_floats_and_stay_ints_where_declared() -> None:
    module = Contract.from_yaml("modules: [{name: a, max_heap_mb: 512}]").module
    assert type(module.max_heap_mb) is float
    assert type(module.sample_interval_ms) is int
    assert module.max_heap_bytes == 512 * 1024 * 1024


def test_plain_exponent_is_a_number() -> None:
    # YAML 1.2 (and the Go loader) read 1e3 as a number; PyYAML alone would read a string.
    assert Contract.from_yaml("modules: [{name: a, max_heap_mb: 1e3}]").module.max_heap_mb == 1000


def test_partial_ladder_keeps_defaults() -> None:
    module = Contract.load(FIXTURES / "multi.yaml", module="worker").module
    assert module.ladder.heap == LevelThresholds(0.80, 0.90, 0.99)
    assert module.ladder.alloc_rate == LadderConfig().alloc_rate


@pytest.mark.parametrize("objective", ["<5", "<=5", "5", "<2.5", "< 5", "<= 0.5"])
def test_pause_objectives(objective: str) -> None:
    text = f'modules: [{{name: a, required_gc_pauses_ms: "{objective}"}}]'
    module = Contract.from_yaml(text).module
    assert module.gc_pause_objective_ms == float(objective.lstrip("<= "))


def test_uint32_bounds_are_inclusive() -> None:
    text = "modules: [{name: a, sample_interval_ms: 4294967295, retry_pushback_ms: 0}]"
    assert Contract.from_yaml(text).module.sample_interval_ms == 2**32 - 1


def test_contract_is_frozen() -> None:
    contract = Contract.from_yaml("modules: [{name: a}]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.module.max_heap_mb = 1.0  # type: ignore[misc]
    assert contract.path is None


def test_utf8_bom_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfmodules: [{name: caf\xc3\xa9}]\n")
    assert Contract.load(path).module.name == "café"


# --- module selection -------------------------------------------------------------------------

MULTI = "modules: [{name: api}, {name: worker}, {name: batch}]"


def test_only_module_is_selected() -> None:
    assert Contract.from_yaml("modules: [{name: solo}]").module.name == "solo"


def test_module_argument_selects() -> None:
    contract = Contract.from_yaml(MULTI, module="worker")
    assert contract.module.name == "worker"
    assert [m.name for m in contract.modules] == ["api", "worker", "batch"]


def test_env_selects_and_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMCONTRACT_MODULE", "batch")
    assert Contract.from_yaml(MULTI).module.name == "batch"
    assert Contract.from_yaml(MULTI, module="api").module.name == "api"


def test_several_modules_need_a_selection() -> None:
    err = error_of(MULTI)
    assert (err.line, err.field) == (1, "modules")
    assert "api, worker, batch" in err.message


def test_unknown_module_suggests() -> None:
    err = error_of(MULTI, module="wroker")
    assert "did you mean 'worker'" in err.message


def test_unknown_module_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMCONTRACT_MODULE", "nope")
    err = error_of("modules: [{name: api}]")
    assert "$MEMCONTRACT_MODULE" in err.message
    assert "api" in err.message


# --- bad input --------------------------------------------------------------------------------

M = "modules:\n  - name: a\n"  # a module whose fields start on line 3

BAD = [
    # (yaml, line, field, part of the message)
    (
        "modules:\n  - name: a\n    orca:\n      application_utilization: cpu\n",
        4,
        "modules[0].orca.application_utilization",
        "expected one of memory, none, got 'cpu'",
    ),
    (
        "modules:\n  - name: a\n    orca: {application_utilization: 1}\n",
        3,
        "modules[0].orca.application_utilization",
        "expected one of memory, none",
    ),
    (
        "modules: [{name: a, orca: {utilization: none}}]",
        1,
        "modules[0].orca.utilization",
        "unknown key",
    ),
    ("modules: [{name: a, orca: memory}]", 1, "modules[0].orca", "expected a mapping"),
    (
        "modules: [{name: a, orca: {rates: qps}}]",
        1,
        "modules[0].orca.rates",
        "expected one of calls, headroom, got 'qps'",
    ),
    ("[1, 2]", 1, None, "top level must be a mapping"),
    ("just text", 1, None, "top level must be a mapping"),
    ("version: v1\n", 1, "modules", "missing required key 'modules'"),
    ("modules: []", 1, "modules", "at least one module"),
    ("modules: {name: a}", 1, "modules", "expected a list"),
    ("modules:\n  - max_heap_mb: 5\n", 2, "modules[0].name", "missing required key 'name'"),
    ("modules: [{name: ''}]", 1, "modules[0].name", "non-empty"),
    ("modules: [{name: 7}]", 1, "modules[0].name", "expected a string"),
    ("modulez: []", 1, "modulez", "did you mean 'modules'"),
    ("version: 1.2\nmodules: [{name: a}]", 1, "version", "expected a string"),
    ("version: 'v 1'\nmodules: [{name: a}]", 1, "version", "must match"),
    ("version: '" + "x" * 33 + "'\nmodules: [{name: a}]", 1, "version", "must match"),
    (M + "    max_heap: 5\n", 3, "modules[0].max_heap", "did you mean 'max_heap_mb'"),
    (M + "    max_heap_mb: true\n", 3, "modules[0].max_heap_mb", "expected a number"),
    (M + "    max_heap_mb: '512'\n", 3, "modules[0].max_heap_mb", "expected a number"),
    (M + "    max_heap_mb: -1\n", 3, "modules[0].max_heap_mb", "greater than 0"),
    (M + "    max_heap_mb: 0\n", 3, "modules[0].max_heap_mb", "greater than 0"),
    (M + "    max_heap_mb: .nan\n", 3, "modules[0].max_heap_mb", "finite"),
    (M + "    max_heap_mb: .inf\n", 3, "modules[0].max_heap_mb", "finite"),
    (M + "    max_heap_mb: 1.0e300\n", 3, "modules[0].max_heap_mb", "less than"),
    (M + "    max_heap_mb: " + "9" * 400 + "\n", 3, "modules[0].max_heap_mb", "too large"),
    (M + "    max_heap_mb:\n", 3, "modules[0].max_heap_mb", "got null"),
    (M + "    alloc_rate_mb_per_sec: 0\n", 3, "modules[0].alloc_rate_mb_per_sec", "greater"),
    (M + "    gc_trigger_ratio: 1.5\n", 3, "modules[0].gc_trigger_ratio", "at most 1"),
    (M + "    gc_trigger_ratio: 0\n", 3, "modules[0].gc_trigger_ratio", "greater than 0"),
    (M + "    required_gc_pauses_ms: fast\n", 3, "modules[0].required_gc_pauses_ms", "<5"),
    (M + "    required_gc_pauses_ms: '<0'\n", 3, "modules[0].required_gc_pauses_ms", "<5"),
    (M + "    required_gc_pauses_ms: 5\n", 3, "modules[0].required_gc_pauses_ms", "string"),
    (M + "    core_methods: /a/*\n", 3, "modules[0].core_methods", "expected a list"),
    (M + "    core_methods: [/a/*, 3]\n", 3, "modules[0].core_methods[1]", "expected a string"),
    (M + "    core_methods: ['a/*']\n", 3, "modules[0].core_methods[0]", 'starting with "/"'),
    (M + "    noncritical_loggers: [[x]]\n", 3, "modules[0].noncritical_loggers[0]", "string"),
    (M + "    noncritical_loggers: ['']\n", 3, "modules[0].noncritical_loggers[0]", "non-empty"),
    (M + "    sample_interval_ms: 0\n", 3, "modules[0].sample_interval_ms", "between 1"),
    (M + "    sample_interval_ms: 2.5\n", 3, "modules[0].sample_interval_ms", "integer"),
    (M + "    sample_interval_ms: true\n", 3, "modules[0].sample_interval_ms", "integer"),
    (M + "    sample_interval_ms: 4294967296\n", 3, "modules[0].sample_interval_ms", "4294967295"),
    (M + "    retry_pushback_ms: -1\n", 3, "modules[0].retry_pushback_ms", "between 0"),
    (M + "    max_fail_fast_ms: -1\n", 3, "modules[0].max_fail_fast_ms", "between 0"),
    (M + "    max_fail_fast_ms: 1.5\n", 3, "modules[0].max_fail_fast_ms", "integer"),
    (
        M + "    max_fail_fast: 10\n",
        3,
        "modules[0].max_fail_fast",
        "did you mean 'max_fail_fast_ms'",
    ),
    (M + "    dry_run: 1\n", 3, "modules[0].dry_run", "true or false"),
    (M + "    dry_run: 'false'\n", 3, "modules[0].dry_run", "true or false"),
    (M + "    on_stuck: restart\n", 3, "modules[0].on_stuck", "half_open, recycle, got 'restart'"),
    (M + "    on_stuck: recycel\n", 3, "modules[0].on_stuck", "did you mean 'recycle'"),
    (M + "    on_stuck: true\n", 3, "modules[0].on_stuck", "expected one of half_open, recycle"),
    (M + "    ladder: []\n", 3, "modules[0].ladder", "expected a mapping"),
    (M + "    ladder:\n      hep: {}\n", 4, "modules[0].ladder.hep", "did you mean 'heap'"),
    (
        M + "    ladder:\n      heap: {level1: 0.9, level2: 0.8}\n",
        4,
        "modules[0].ladder.heap.level2",
        "must increase",
    ),
    (
        M + "    ladder:\n      heap:\n        level1: 0.96\n",
        5,
        "modules[0].ladder.heap.level1",
        "must increase",
    ),
    (
        M + "    ladder:\n      heap: {level3: 1.01}\n",
        4,
        "modules[0].ladder.heap.level3",
        "at most 1",
    ),
    (
        M + "    ladder:\n      alloc_rate: {level1: 0}\n",
        4,
        "modules[0].ladder.alloc_rate.level1",
        "greater than 0",
    ),
    (
        M + "    ladder:\n      alloc_rate: {level2: 2.0}\n",
        4,
        "modules[0].ladder.alloc_rate.level2",
        "must increase",
    ),
    (
        M + "    ladder:\n      confirm: {level2: 0}\n",
        4,
        "modules[0].ladder.confirm.level2",
        "between 1",
    ),
    (
        M + "    ladder:\n      confirm: {level3: 4294967296}\n",
        4,
        "modules[0].ladder.confirm.level3",
        "4294967295",
    ),
    (
        M + "    ladder:\n      recover_after: 0\n",
        4,
        "modules[0].ladder.recover_after",
        "between 1",
    ),
    (M + "    name: b\n", 3, "modules[0].name", "duplicate key 'name'"),
    ("modules:\n  - name: a\n  - name: a\n", 3, "modules[1].name", "duplicate module name"),
    (M + "    <<: {max_heap_mb: 5}\n", 3, "modules[0]", "merge keys"),
    (M + "    ? [x]\n    : 1\n", 3, "modules[0]", "keys must be strings"),
    (M + "    1: x\n", 3, "modules[0]", "keys must be strings"),
    (M + "    dry_run: 2024-01-01\n", 3, "modules[0].dry_run", "unsupported"),
    (M + "    max_heap_mb: !!int ''\n", 3, "modules[0].max_heap_mb", "unreadable"),
    (
        M + "    max_heap_mb: !!python/name:os.system ''\n",
        3,
        "modules[0].max_heap_mb",
        "unsupported",
    ),
    ("modules: !!set {a}\n", 1, "modules", "unsupported"),
    ("modules: [{name: a}\n", 2, None, "invalid YAML"),
    ("modules:\n  - name: a\n   bad: indent\n", 3, None, "invalid YAML"),
    ("modules: [{name: a}]\n---\nmodules: []\n", 2, None, "invalid YAML"),
    ("a: \x00\n", 1, None, "invalid YAML"),
    ("a: &x [1]\nmodules: [{name: a}]\n", 1, None, "aliases are not allowed"),
    ("x: " + "[" * 100 + "]" * 100 + "\n", 1, None, "nested deeper"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD)
def test_bad_input(text: str, line: int | None, field: str | None, message: str) -> None:
    err = error_of(text)
    assert (err.line, err.field) == (line, field), str(err)
    assert message in err.message, str(err)
    assert err.path == "c.yaml"
    assert str(err).startswith(f"c.yaml:{line}: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_document(text: str) -> None:
    assert "empty" in error_of(text).message


def test_alias_bomb_is_refused_fast() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    err = error_of("\n".join(lines) + "\nmodules: [{name: a}]\n")
    assert "aliases are not allowed" in err.message
    assert err.line == 1


def test_error_str_names_file_line_field() -> None:
    err = error_of(M + "    max_heap_mb: -5\n")
    assert str(err) == "c.yaml:3: modules[0].max_heap_mb: must be greater than 0, got -5"


FIXTURE_ERRORS = {
    "bad_unknown_key.yaml": (6, "modules[0].ladder.heap.levl2", "did you mean 'level2'"),
    "bad_type.yaml": (4, "modules[0].sample_interval_ms", "expected an integer"),
    "bad_thresholds.yaml": (6, "modules[0].ladder.alloc_rate.level2", "must increase"),
    "bad_yaml.yaml": (4, None, "invalid YAML"),
    "bad_alias.yaml": (1, None, "aliases are not allowed"),
    "bad_duplicate.yaml": (4, "modules[2].name", "first at line 2"),
    "bad_pause.yaml": (3, "modules[0].required_gc_pauses_ms", "pause objective"),
    "bad_budget.yaml": (3, "modules[0].max_heap_mb", "greater than 0"),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_ERRORS))
def test_bad_fixture(name: str) -> None:
    line, field, message = FIXTURE_ERRORS[name]
    path = FIXTURES / name
    with pytest.raises(ContractError) as info:
        Contract.load(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert message in err.message


def test_every_bad_fixture_is_listed() -> None:
    assert {p.name for p in FIXTURES.glob("bad_*.yaml")} == set(FIXTURE_ERRORS)


# --- files ------------------------------------------------------------------------------------


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ContractError) as info:
        Contract.load(path)
    assert info.value.path == str(path)
    assert "cannot read" in info.value.message


def test_directory_is_not_a_contract(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="cannot read"):
        Contract.load(tmp_path)


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(8 * 1024**3)  # sparse: reading it all would take seconds and 8 GiB
    with pytest.raises(ContractError, match="larger than 1 MiB"):
        Contract.load(path)


def test_just_over_one_mib_is_refused(tmp_path: Path) -> None:
    text = "modules: [{name: a}]\n" + "#" * (1024 * 1024)
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(ContractError, match="larger than 1 MiB"):
        Contract.load(path)
    with pytest.raises(ContractError, match="larger than 1 MiB"):
        Contract.from_yaml(text)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"modules:\n  - name: caf\xe9\n")
    with pytest.raises(ContractError) as info:
        Contract.load(path)
    assert info.value.line == 2
    assert "UTF-8" in info.value.message


# --- proto ------------------------------------------------------------------------------------


def test_to_proto_fills_defaults_for_all_modules() -> None:
    message = Contract.load(FIXTURES / "multi.yaml", module="api").to_proto()
    assert message.version == "v3"
    assert [m.name for m in message.modules] == ["api", "worker"]
    api = message.modules[0]
    assert api.max_heap_mb == 512.0
    assert api.alloc_rate_mb_per_sec == 12.5
    assert api.gc_trigger_ratio == 0.75
    assert api.required_gc_pauses_ms == "<5"
    assert list(api.core_methods) == [HEALTH_METHODS]
    assert api.sample_interval_ms == 500
    assert api.retry_pushback_ms == 1000
    assert api.max_fail_fast_ms == 30000
    assert api.ladder.heap == pb.LevelThresholds(level1=0.8, level2=0.9, level3=0.95)
    assert api.ladder.alloc_rate == pb.LevelThresholds(level1=1.0, level2=1.5, level3=2.0)
    assert api.ladder.confirm == pb.LevelCounts(level1=1, level2=2, level3=3)
    assert api.ladder.recover_after == 5
    assert message.modules[1].ladder.heap.level3 == 0.99


@pytest.mark.parametrize("name", ["full.yaml", "memory_contract.yaml"])
def test_to_proto_equals_protojson_of_a_fully_written_file(name: str) -> None:
    # What the Go loader does (yaml -> JSON -> protojson) for a file that writes every field:
    # it proves the YAML and proto field names agree.
    path = FIXTURES / name if (FIXTURES / name).exists() else ROOT / "examples/contracts" / name
    expected = json_format.ParseDict(yaml.safe_load(path.read_text()), pb.Contract())
    assert Contract.load(path).to_proto() == expected


def test_to_proto_does_not_import_grpc() -> None:
    code = (
        "import sys; from memcontract.contract import Contract; "
        "Contract.from_yaml('modules: [{name: a}]').to_proto(); "
        "assert 'grpc' not in sys.modules, 'grpc imported'"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- fuzzing ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["<5", "<=2.5", "/a/*", "v1", "level1", "heap", "name", "1e3", "0x10"]),
)
trees = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [f.name for f in dataclasses.fields(ModuleContract)]
LEVELS = ["level1", "level2", "level3"]
levels = st.dictionaries(st.sampled_from(["level1", "level2", "level3", "level4"]), scalars | trees)
ladders = st.dictionaries(
    st.sampled_from(["heap", "alloc_rate", "confirm", "recover_after", "hep"]),
    levels | scalars,
    max_size=4,
)
module_values = st.one_of(scalars, trees, ladders, st.lists(st.sampled_from(["/a/*", "x", ""])))
thresholds = st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3, unique=True).map(sorted)
VALID = {
    "max_heap_mb": st.floats(1, 1e6) | st.integers(1, 10**6),
    "alloc_rate_mb_per_sec": st.floats(0.1, 1e3),
    "gc_trigger_ratio": st.floats(0.01, 1.0),
    "required_gc_pauses_ms": st.sampled_from(["<5", "<=2.5", "10"]),
    "core_methods": st.lists(st.sampled_from(["/a/*", "/b.C/D", "/[x"])),
    "sample_interval_ms": st.integers(1, 2**32 - 1),
    "ladder": st.fixed_dictionaries(
        {}, optional={"heap": thresholds.map(lambda t: dict(zip(LEVELS, t, strict=True)))}
    ),
    "noncritical_loggers": st.lists(st.sampled_from(["a", "b.c"])),
    "retry_pushback_ms": st.integers(0, 2**32 - 1),
    "dry_run": st.booleans(),
    "on_stuck": st.sampled_from(["half_open", "recycle"]),
    "orca": st.fixed_dictionaries(
        {},
        optional={
            "application_utilization": st.sampled_from(["memory", "none", "cpu"]),
            "rates": st.sampled_from(["calls", "headroom", "qps"]),
        },
    ),
    "max_fail_fast_ms": st.integers(0, 2**32 - 1),
}
# Mostly valid values (so that deep checks run), sometimes anything at all.
modules = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["a", "b"]), scalars)},
    optional={k: st.one_of(VALID[k], VALID[k], module_values) for k in KEYS[1:]},
)
contracts = st.fixed_dictionaries(
    {"modules": st.one_of(st.lists(modules, min_size=1, max_size=3), trees)},
    optional={"version": st.one_of(st.sampled_from(["v1.2", "2", "x" * 40]), scalars)},
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_never_crashes(text: str) -> None:
    try:
        contract = Contract.from_yaml(text, path="fuzz.yaml")
    except ContractError as err:
        assert err.path == "fuzz.yaml"
        return
    assert isinstance(contract, Contract)
    assert contract.module in contract.modules
    contract.to_proto()
    contract.module.core_matcher()
    assert contract.module.gc_pause_objective_ms > 0


@FUZZ
@given(contracts, st.booleans())
def test_fuzz_contract_shaped_yaml(data: dict[str, object], flow: bool) -> None:
    check_never_crashes(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True))


@FUZZ
@given(trees)
def test_fuzz_any_yaml(data: object) -> None:
    check_never_crashes(yaml.safe_dump(data))


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_any_text(text: str) -> None:
    check_never_crashes(text)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_any_bytes(data: bytes) -> None:
    fd, name = tempfile.mkstemp(suffix=".yaml")
    try:
        os.write(fd, data)
        os.close(fd)
        try:
            Contract.load(name)
        except ContractError as err:
            assert err.path == name
    finally:
        os.unlink(name)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=1e-3, max_value=1e6),
    st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=3, max_size=3, unique=True),
    st.integers(min_value=1, max_value=2**32 - 1),
)
def test_fuzz_valid_contracts_load(budget: float, heap: list[float], interval: int) -> None:
    heap.sort()
    data = {
        "version": "v9",
        "modules": [
            {
                "name": "m",
                "max_heap_mb": budget,
                "sample_interval_ms": interval,
                "ladder": {"heap": dict(zip(["level1", "level2", "level3"], heap, strict=True))},
            }
        ],
    }
    module = Contract.from_yaml(yaml.safe_dump(data)).module
    assert module.max_heap_mb == budget
    assert module.sample_interval_ms == interval
    assert module.ladder.heap == LevelThresholds(*heap)
