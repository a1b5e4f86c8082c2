"""The memory contract: ``memory_contract.yaml`` loaded, validated and frozen.

>>> c = Contract.from_yaml("modules: [{name: api, max_heap_mb: 512}]")
>>> c.module.max_heap_bytes
536870912
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import yaml

from . import _contract_yaml as _y
from .errors import did_you_mean
from .pressure import MIB, Level

if TYPE_CHECKING:
    from .v1 import memcontract_pb2

HEALTH_METHODS = "/grpc.health.v1.Health/*"
#: The pressure services (``add_pressure_services``): always core, like health, so balancers
#: and ``memcontract top`` keep reading a process at level 3.
OUT_OF_BAND_METHODS = (
    "/xds.service.orca.v3.OpenRcaService/*",
    "/memcontract.v1.MemoryPressureService/*",
)
#: Server reflection (v1 and v1alpha): always core, so grpcurl and ghz, which ask it for a
#: method's descriptors before every call, keep working when an operator needs them most.
REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/*",
    "/grpc.reflection.v1alpha.ServerReflection/*",
)
#: Environment variable naming the module in force when ``module=`` is not given.
MODULE_ENV = "MEMCONTRACT_MODULE"
#: ``on_stuck`` values: what level 3 does when usage stops falling with nothing growing.
ON_STUCK_HALF_OPEN = "half_open"
ON_STUCK_RECYCLE = "recycle"
ON_STUCK_CHOICES = (ON_STUCK_HALF_OPEN, ON_STUCK_RECYCLE)


@dataclass(frozen=True, slots=True)
class LevelThresholds:
    """Thresholds of levels 1, 2 and 3 (strictly increasing)."""

    level1: float
    level2: float
    level3: float

    def at(self, level: Level | int) -> float:
        """The threshold of ``level`` (1..3)."""
        return (self.level1, self.level2, self.level3)[int(level) - 1]


@dataclass(frozen=True, slots=True)
class LevelCounts:
    """Consecutive-sample counts for levels 1, 2 and 3 (each >= 1)."""

    level1: int = 1
    level2: int = 2
    level3: int = 3

    def at(self, level: Level | int) -> int:
        """The count of ``level`` (1..3)."""
        return (self.level1, self.level2, self.level3)[int(level) - 1]


@dataclass(frozen=True, slots=True)
class LadderConfig:
    """Thresholds of the breach ladder (docs/design.md §4)."""

    heap: LevelThresholds = LevelThresholds(0.80, 0.90, 0.95)
    alloc_rate: LevelThresholds = LevelThresholds(1.0, 1.5, 2.0)
    confirm: LevelCounts = LevelCounts(1, 2, 3)
    recover_after: int = 5


@dataclass(frozen=True, slots=True)
class OrcaOptions:
    """What the ORCA load report carries for balancers (docs/design.md §10).

    ``application_utilization``: ``"memory"`` sends the memory usage ratio (what gRPC's
    ``weighted_round_robin`` and Envoy's client-side WRR weigh backends by); ``"none"`` leaves
    it out, so those balancers fall back to ``cpu_utilization``. ``rates``: what
    ``rps_fractional`` and ``eps`` carry, ``"headroom"`` (the default) or ``"calls"``; see
    :meth:`reported_rates`.
    """

    application_utilization: str = "memory"
    rates: str = "headroom"

    @property
    def reports_memory(self) -> bool:
        """Whether ``application_utilization`` carries the memory usage ratio."""
        return self.application_utilization == "memory"

    def reported_rates(self, rps: float, eps: float, usage_ratio: float) -> tuple[float, float]:
        """``rps_fractional`` and ``eps`` to report for measured calls and errors per second.

        ``rates: headroom`` (the default) reports the memory headroom ``h = max(1 - usage,
        0.01)`` and ``h`` times the error ratio: WRR's weight ``rps / (utilization + eps / rps *
        penalty)`` is then ``h / (usage + error ratio * penalty)``, memory and errors only.
        ``rates: calls`` reports them as measured; but memory usage, unlike CPU, does not fall
        with the traffic a backend gets, so with measured rates the weights keep whatever split
        the balancer last made once usages are equal.
        """
        if self.rates == "calls":
            return rps, eps
        headroom = max(1.0 - usage_ratio, MIN_HEADROOM) if math.isfinite(usage_ratio) else 1.0
        return headroom, (headroom * eps / rps if rps > 0 else 0.0)


#: The least headroom ``rates: headroom`` reports: a zero rate would make balancers ignore the
#: report (and let the backend's weight expire to the mean).
MIN_HEADROOM = 0.01
ORCA_UTILIZATION_CHOICES = ("memory", "none")
ORCA_RATES_CHOICES = ("calls", "headroom")


@dataclass(frozen=True, slots=True)
class ModuleContract:
    """The contract of one module; units are in the field names (MiB, ms, ratios 0-1)."""

    name: str
    max_heap_mb: float = 1800.0
    alloc_rate_mb_per_sec: float = 12.5
    gc_trigger_ratio: float = 0.75
    required_gc_pauses_ms: str = "<5"
    core_methods: tuple[str, ...] = (HEALTH_METHODS,)
    sample_interval_ms: int = 500
    ladder: LadderConfig = field(default_factory=LadderConfig)
    noncritical_loggers: tuple[str, ...] = ()
    retry_pushback_ms: int = 1000
    dry_run: bool = False
    on_stuck: str = ON_STUCK_HALF_OPEN
    orca: OrcaOptions = OrcaOptions()
    max_fail_fast_ms: int = 30000

    @property
    def max_heap_bytes(self) -> int:
        """The memory budget in bytes."""
        return int(self.max_heap_mb * MIB)

    @property
    def alloc_rate_bytes_per_sec(self) -> float:
        """The promised growth-rate ceiling in bytes per second."""
        return self.alloc_rate_mb_per_sec * MIB

    @property
    def sample_interval(self) -> float:
        """The sampling interval in seconds."""
        return self.sample_interval_ms / 1000.0

    @property
    def gc_pause_objective_ms(self) -> float:
        """The GC pause objective as a number of milliseconds (``"<5"`` gives 5.0)."""
        return float(self.required_gc_pauses_ms.lstrip("<= "))

    def core_matcher(self) -> re.Pattern[str]:
        """One compiled pattern for all core-method globs (health, the pressure services and
        server reflection are always core)."""
        globs = {*self.core_methods, HEALTH_METHODS, *OUT_OF_BAND_METHODS, *REFLECTION_METHODS}
        return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in sorted(globs)))


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract file: its version, its modules and the module in force (``module``)."""

    version: str
    modules: tuple[ModuleContract, ...]
    module: ModuleContract
    path: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], module: str | None = None) -> Contract:
        """Load and validate a contract file; raise :class:`ContractError` naming file, line, field.

        The module in force is ``module``, else ``$MEMCONTRACT_MODULE``, else the only module.
        Files larger than 1 MiB, unreadable files and non-UTF-8 files are ContractErrors too.
        """
        name = os.fspath(path)
        return cls.from_yaml(_y.read_file(name), path=name, module=module)

    @classmethod
    def from_yaml(cls, text: str, *, path: str = "<string>", module: str | None = None) -> Contract:
        """Parse and validate contract YAML text (``path`` only names it in errors)."""
        walker, version, modules, modules_key = _parse_text(text, path)
        selected = _select(walker, modules, modules_key, module)
        return cls(version, modules, selected, None if path == "<string>" else path)

    @staticmethod
    def check_file(path: str | os.PathLike[str]) -> tuple[ModuleContract, ...]:
        """Validate a contract file without selecting a module; return its modules.

        The errors are :meth:`load`'s, except that a file of several modules needs no
        ``module=`` (``memcontract lint`` checks every contract file it finds this way).
        """
        name = os.fspath(path)
        return _parse_text(_y.read_file(name), name)[2]

    def to_proto(self) -> memcontract_pb2.Contract:
        """The contract as a ``memcontract.v1.Contract`` message, defaults filled in."""
        from .v1 import memcontract_pb2 as pb

        return pb.Contract(version=self.version, modules=[_module_proto(m) for m in self.modules])


# --- YAML schema ------------------------------------------------------------------------------
# Everything below turns a composed YAML tree into the frozen dataclasses above. Nothing is
# built until the whole file has been checked, so a bad file never yields a half contract.

_VERSION = re.compile(r"[A-Za-z0-9._-]{1,32}")
# "<5", "<=5", "5", "<2.5": the forms ModuleContract.gc_pause_objective_ms can read.
_PAUSE_OBJECTIVE = re.compile(r" *(?:<=?)? *[0-9]+(?:\.[0-9]+)? *")
# capacity_bytes is a uint64 on the wire: the budget in bytes must stay below 2**64.
_MAX_MB = float(2**44)
_ROOT_KEYS = ("version", "modules")
_MODULE_KEYS = tuple(f.name for f in fields(ModuleContract))
_LADDER_KEYS = tuple(f.name for f in fields(LadderConfig))
_LEVEL_KEYS = ("level1", "level2", "level3")
_ORCA_KEYS = tuple(f.name for f in fields(OrcaOptions))

_Parser = Callable[[_y.Walker, yaml.Node, str], object]


def _parse_text(
    text: str, path: str
) -> tuple[_y.Walker, str, tuple[ModuleContract, ...], yaml.Node]:
    _y.check_text_size(text, path)
    walker = _y.Walker(path)
    root = _y.compose(text, path)
    if root is None or _is_blank(root):
        walker.fail("the file is empty; expected a mapping with a 'modules' list", None, None)
    return (walker, *_parse_root(walker, root))


def _is_blank(root: yaml.Node) -> bool:
    # "---" alone is a document holding an empty plain scalar: as empty as an empty file.
    return isinstance(root, yaml.ScalarNode) and root.value == "" and root.style is None


def _parse_root(
    walker: _y.Walker, root: yaml.Node
) -> tuple[str, tuple[ModuleContract, ...], yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        walker.fail("the top level must be a mapping with 'version' and 'modules'", root, None)
    entries = walker.mapping(root, None, _ROOT_KEYS)
    version = _version(walker, entries["version"]) if "version" in entries else "v1"
    if "modules" not in entries:
        walker.fail("missing required key 'modules'", root, "modules")
    modules_node = entries["modules"]
    items = walker.sequence(modules_node, "modules")
    if not items:
        walker.fail("must list at least one module", modules_node, "modules")
    parsed = [_parse_module(walker, item, f"modules[{i}]") for i, item in enumerate(items)]
    _check_unique_names(walker, parsed)
    # Selection errors point at the `modules:` key, not at the first item of the list.
    modules_key = next(k for k, v in root.value if v is modules_node)
    return version, tuple(m for m, _ in parsed), modules_key


def _version(walker: _y.Walker, node: yaml.Node) -> str:
    value = walker.string(node, "version", what='a string such as "v1.2" (quote numbers)')
    if not _VERSION.fullmatch(value):
        walker.fail(f"must match [A-Za-z0-9._-]{{1,32}}, got {value!r}", node, "version")
    return value


def _check_unique_names(walker: _y.Walker, parsed: list[tuple[ModuleContract, yaml.Node]]) -> None:
    seen: dict[str, yaml.Node] = {}
    for i, (module, name_node) in enumerate(parsed):
        if module.name in seen:
            first = _y.line_of(seen[module.name])
            message = f"duplicate module name {module.name!r} (first at line {first})"
            walker.fail(message, name_node, f"modules[{i}].name")
        seen[module.name] = name_node


def _parse_module(
    walker: _y.Walker, node: yaml.Node, field_: str
) -> tuple[ModuleContract, yaml.Node]:
    entries = walker.mapping(node, field_, _MODULE_KEYS)
    if "name" not in entries:
        walker.fail("missing required key 'name'", node, _y.join(field_, "name"))
    # Each parser returns the type of its dataclass field (the table below pairs them).
    values: dict[str, Any] = {
        key: _MODULE_FIELDS[key](walker, value, _y.join(field_, key))
        for key, value in entries.items()
    }
    return ModuleContract(**values), entries["name"]


def _name(walker: _y.Walker, node: yaml.Node, field_: str) -> str:
    value = walker.string(node, field_)
    if not value.strip():
        walker.fail("must be a non-empty string", node, field_)
    return value


def _pause_objective(walker: _y.Walker, node: yaml.Node, field_: str) -> str:
    value = walker.string(node, field_, what='a string such as "<5" (milliseconds)')
    if not _PAUSE_OBJECTIVE.fullmatch(value) or float(value.lstrip("<= ")) <= 0:
        walker.fail(
            f'expected a pause objective such as "<5" or "<=2.5", got {value!r}', node, field_
        )
    return value


def _core_methods(walker: _y.Walker, node: yaml.Node, field_: str) -> tuple[str, ...]:
    globs = walker.strings(node, field_)
    for i, (item, glob) in enumerate(globs):
        if not glob.startswith("/"):
            message = f'must be a full method glob starting with "/", got {glob!r}'
            walker.fail(message, item, _y.join(field_, i))
    return tuple(glob for _, glob in globs)


def _loggers(walker: _y.Walker, node: yaml.Node, field_: str) -> tuple[str, ...]:
    names = walker.strings(node, field_)
    for i, (item, name) in enumerate(names):
        if not name:
            walker.fail("logger names must be non-empty", item, _y.join(field_, i))
    return tuple(name for _, name in names)


def _choice(walker: _y.Walker, node: yaml.Node, field_: str, choices: tuple[str, ...]) -> str:
    value = walker.string(node, field_, what=f"one of {', '.join(choices)}")
    if value not in choices:
        hint = did_you_mean(value, choices)
        walker.fail(f"expected one of {', '.join(choices)}, got {value!r}{hint}", node, field_)
    return value


def _ladder(walker: _y.Walker, node: yaml.Node, field_: str) -> LadderConfig:
    entries = walker.mapping(node, field_, _LADDER_KEYS)
    default = LadderConfig()

    def sub(key: str) -> str:
        return _y.join(field_, key)

    heap, alloc, confirm = default.heap, default.alloc_rate, default.confirm
    if "heap" in entries:
        heap = _thresholds(walker, entries["heap"], sub("heap"), heap, at_most=1.0)
    if "alloc_rate" in entries:
        alloc = _thresholds(walker, entries["alloc_rate"], sub("alloc_rate"), alloc)
    if "confirm" in entries:
        confirm = _counts(walker, entries["confirm"], sub("confirm"), confirm)
    recover = default.recover_after
    if "recover_after" in entries:
        recover = walker.integer(entries["recover_after"], sub("recover_after"), low=1)
    return LadderConfig(heap, alloc, confirm, recover)


def _thresholds(
    walker: _y.Walker,
    node: yaml.Node,
    field_: str,
    default: LevelThresholds,
    *,
    at_most: float = float("inf"),
) -> LevelThresholds:
    """Partial maps allowed: a missing level keeps its default; the result must increase."""
    entries = walker.mapping(node, field_, _LEVEL_KEYS)
    values = [default.at(i + 1) for i in range(3)]
    for i, key in enumerate(_LEVEL_KEYS):
        if key in entries:
            values[i] = walker.number(entries[key], _y.join(field_, key), at_most=at_most)
    for i in (1, 2):
        if values[i] <= values[i - 1]:
            # Blame the level the user wrote, preferring the higher one.
            pair = (_LEVEL_KEYS[i], _LEVEL_KEYS[i - 1])
            blame = next((k for k in pair if k in entries), None)
            shown = ", ".join(f"{v:g}" for v in values)
            message = f"level thresholds must increase (level1 < level2 < level3), got {shown}"
            blamed = entries[blame] if blame else node
            walker.fail(message, blamed, _y.join(field_, blame) if blame else field_)
    return LevelThresholds(*values)


def _counts(walker: _y.Walker, node: yaml.Node, field_: str, default: LevelCounts) -> LevelCounts:
    entries = walker.mapping(node, field_, _LEVEL_KEYS)
    values = [default.at(i + 1) for i in range(3)]
    for i, key in enumerate(_LEVEL_KEYS):
        if key in entries:
            values[i] = walker.integer(entries[key], _y.join(field_, key), low=1)
    return LevelCounts(*values)


def _orca(walker: _y.Walker, node: yaml.Node, field_: str) -> OrcaOptions:
    entries = walker.mapping(node, field_, _ORCA_KEYS)
    values: dict[str, str] = {}
    for key, choices in (
        ("application_utilization", ORCA_UTILIZATION_CHOICES),
        ("rates", ORCA_RATES_CHOICES),
    ):
        if key in entries:
            values[key] = _choice(walker, entries[key], _y.join(field_, key), choices)
    return OrcaOptions(**values)


_MODULE_FIELDS: dict[str, _Parser] = {
    "name": _name,
    "max_heap_mb": lambda w, n, f: w.number(n, f, below=_MAX_MB),
    "alloc_rate_mb_per_sec": lambda w, n, f: w.number(n, f, below=_MAX_MB),
    "gc_trigger_ratio": lambda w, n, f: w.number(n, f, at_most=1.0),
    "required_gc_pauses_ms": _pause_objective,
    "core_methods": _core_methods,
    "sample_interval_ms": lambda w, n, f: w.integer(n, f, low=1),
    "ladder": _ladder,
    "noncritical_loggers": _loggers,
    "retry_pushback_ms": lambda w, n, f: w.integer(n, f, low=0),
    "dry_run": lambda w, n, f: w.boolean(n, f),
    "on_stuck": lambda w, n, f: _choice(w, n, f, ON_STUCK_CHOICES),
    "orca": _orca,
    "max_fail_fast_ms": lambda w, n, f: w.integer(n, f, low=0),
}


def _select(
    walker: _y.Walker,
    modules: tuple[ModuleContract, ...],
    modules_key: yaml.Node,
    requested: str | None,
) -> ModuleContract:
    """The module in force: ``requested``, else ``$MEMCONTRACT_MODULE``, else the only one."""
    source = ""
    if requested is None and os.environ.get(MODULE_ENV):
        requested, source = os.environ[MODULE_ENV], f" (from ${MODULE_ENV})"
    names = [m.name for m in modules]
    if requested is None:
        if len(modules) == 1:
            return modules[0]
        message = (
            f"the file declares {len(names)} modules ({', '.join(names)}); select one with "
            f"module=NAME, --module NAME or ${MODULE_ENV}"
        )
        walker.fail(message, modules_key, "modules")
    for module in modules:
        if module.name == requested:
            return module
    hint = did_you_mean(requested, names)
    message = f"no module named {requested!r}{source}{hint}; modules: {', '.join(names)}"
    walker.fail(message, modules_key, "modules")


# --- proto ------------------------------------------------------------------------------------


def _module_proto(module: ModuleContract) -> memcontract_pb2.ModuleContract:
    from .v1 import memcontract_pb2 as pb

    ladder = module.ladder
    return pb.ModuleContract(
        name=module.name,
        max_heap_mb=float(module.max_heap_mb),
        alloc_rate_mb_per_sec=float(module.alloc_rate_mb_per_sec),
        gc_trigger_ratio=float(module.gc_trigger_ratio),
        required_gc_pauses_ms=module.required_gc_pauses_ms,
        core_methods=list(module.core_methods),
        sample_interval_ms=module.sample_interval_ms,
        ladder=pb.Ladder(
            heap=_thresholds_proto(ladder.heap),
            alloc_rate=_thresholds_proto(ladder.alloc_rate),
            confirm=pb.LevelCounts(
                level1=ladder.confirm.level1,
                level2=ladder.confirm.level2,
                level3=ladder.confirm.level3,
            ),
            recover_after=ladder.recover_after,
        ),
        noncritical_loggers=list(module.noncritical_loggers),
        retry_pushback_ms=module.retry_pushback_ms,
        dry_run=module.dry_run,
        on_stuck=module.on_stuck,
        orca=pb.OrcaOptions(
            application_utilization=module.orca.application_utilization, rates=module.orca.rates
        ),
        max_fail_fast_ms=module.max_fail_fast_ms,
    )


def _thresholds_proto(t: LevelThresholds) -> memcontract_pb2.LevelThresholds:
    from .v1 import memcontract_pb2 as pb

    return pb.LevelThresholds(
        level1=float(t.level1), level2=float(t.level2), level3=float(t.level3)
    )
