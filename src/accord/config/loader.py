"""Reading a project folder: every problem is collected and reported at once.

A problem names its file and line (from ruamel's round-trip parser, which keeps them)
and, where we can guess it, a hint such as the key the user probably meant.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from accord import expressions
from accord.config.matching import StandaloneSettings
from accord.config.models import LinkedMappingConfig, MappingConfig, ProjectConfig, Rule
from accord.digest import canonical_json
from accord.errors import NotFound, Problem, ProjectInvalid
from accord.model.customer import FIELDS_BY_NAME, FieldType

M = typing.TypeVar("M", bound=BaseModel)

PROJECT_FILE = "accord.yaml"
SETTINGS_HINT = "fix each one listed, then run `accord match run` again"
MAPPINGS_DIR = "mappings"
MAX_PROJECT_FILE_BYTES = 1_048_576


@dataclass(frozen=True)
class Mapping:
    """One system's mapping, with the version stamped on every record it produces."""

    config: MappingConfig
    path: Path
    version: str
    project_rules: tuple[Rule, ...] = ()  # accord.yaml's rules, judged before the mapping's

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every business rule this system's records must pass."""
        return (*self.project_rules, *self.config.rules)


@dataclass(frozen=True)
class LinkedMapping:
    """How one system's linked records of one kind are read (docs/linked-records.md);
    `name` is the file's stem, and the version is stamped on every record it maps."""

    config: LinkedMappingConfig
    path: Path
    version: str

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Project:
    root: Path
    config: ProjectConfig
    mappings: dict[str, Mapping]
    digest: str  # sha256 over every project file: the project's version
    linked: dict[str, LinkedMapping] = dataclasses.field(default_factory=dict)  # by file stem

    def mapping(self, system: str) -> Mapping:
        if system not in self.config.systems:
            known = ", ".join(sorted(self.config.systems))
            raise NotFound(
                f"no system named {system!r} in {self.root / PROJECT_FILE}",
                hint=f"known systems: {known}",
            )
        if system not in self.mappings:
            raise NotFound(
                f"system {system!r} has no mapping",
                hint=f"write {self.root / MAPPINGS_DIR / (system + '.yaml')}",
            )
        return self.mappings[system]

    def linked_mapping(self, system: str, kind: str) -> LinkedMapping:
        """The mapping of `system`'s linked records of `kind`; NotFound naming those
        there are."""
        if system not in self.config.systems:
            self.mapping(system)  # raises, naming the known systems
        for linked in self.linked.values():
            if (linked.config.system, linked.config.kind) == (system, kind):
                return linked
        known = sorted(m.config.kind for m in self.linked.values() if m.config.system == system)
        raise NotFound(
            f"system {system!r} has no mapping for linked records of kind {kind!r}",
            hint=f"its linked-record kinds: {', '.join(known)}"
            if known
            else f"write {self.root / MAPPINGS_DIR / (system + '_' + kind + 's.yaml')} "
            "(docs/linked-records.md)",
        )

    def linked_of_version(self, version: str) -> LinkedMapping | None:
        """The linked-record mapping a mapping version (`name@digest`, as a load records
        it) was made by, if it is one and the project still has it."""
        return self.linked.get(version.partition("@")[0])

    def as_document(self) -> dict[str, Any]:
        """The project as plain data, for storing each applied version."""
        document = {
            "config": self.config.model_dump(mode="json", by_alias=True),
            "mappings": {
                name: m.config.model_dump(mode="json", by_alias=True)
                for name, m in sorted(self.mappings.items())
            },
        }
        if self.linked:  # absent without any: earlier versions' documents stay the same
            document["linked"] = {
                name: m.config.model_dump(mode="json", by_alias=True)
                for name, m in sorted(self.linked.items())
            }
        return document


def load_project(root: Path) -> Project:
    """Read and check a project folder; raises ProjectInvalid listing every problem."""
    problems: list[Problem] = []
    root = root.resolve()
    project_path = root / PROJECT_FILE
    if not project_path.is_file():
        raise ProjectInvalid(
            [
                Problem(
                    str(project_path),
                    "no accord.yaml here",
                    "create a project with `accord init DIR`",
                )
            ]
        )
    digest = hashlib.sha256()
    raw_project = _read_yaml(project_path, problems, digest)
    config = _validate(ProjectConfig, raw_project, project_path, problems)
    # Project rules judge every system's records: a change to them is a new version of
    # every mapping, so each canonical record names the rules it passed.
    project_rules = (
        canonical_json([rule.model_dump() for rule in config.rules]).encode()
        if config is not None and config.rules
        else b""
    )

    mappings: dict[str, Mapping] = {}
    linked: dict[str, LinkedMapping] = {}
    mapping_nodes: dict[str, tuple[Path, Any]] = {}
    linked_nodes: dict[str, tuple[Path, Any]] = {}
    mapping_dir = root / MAPPINGS_DIR
    for path in sorted(mapping_dir.glob("*.yaml")) if mapping_dir.is_dir() else []:
        file_digest = hashlib.sha256()
        raw = _read_yaml(path, problems, file_digest, digest)
        if raw is not None and "kind" in raw:  # a linked-record mapping (orders, invoices)
            linked_nodes[path.stem] = (path, raw)
            linked_config = _validate(LinkedMappingConfig, raw, path, problems)
            if linked_config is not None:
                version = f"{path.stem}@{file_digest.hexdigest()[:12]}"
                linked[path.stem] = LinkedMapping(linked_config, path, version)
            continue
        mapping_config = _validate(MappingConfig, raw, path, problems)
        if raw is not None:
            mapping_nodes[path.stem] = (path, raw)
        if mapping_config is None:
            continue
        if mapping_config.system != path.stem:
            problems.append(
                Problem(
                    _where(path, raw, "system"),
                    f"file {path.name} declares system {mapping_config.system!r}",
                    f"name the file {mapping_config.system}.yaml or set system: {path.stem}",
                )
            )
            continue
        if project_rules:
            file_digest.update(b"\0project rules\0" + project_rules)
        version = f"{path.stem}@{file_digest.hexdigest()[:12]}"
        rules = tuple(config.rules) if config is not None else ()
        mappings[path.stem] = Mapping(mapping_config, path, version, rules)

    if config is not None:
        _check_project(config, raw_project, project_path, problems)
    for path, raw in mapping_nodes.values():
        _check_mapping(config, raw, path, problems)
    for path, raw in linked_nodes.values():
        _check_linked_mapping(config, raw, path, problems)
    _check_linked_kinds(linked, problems)
    if problems or config is None:
        raise ProjectInvalid(problems)
    return Project(root, config, mappings, digest.hexdigest(), linked)


def load_match_settings(path: Path) -> StandaloneSettings:
    """Read the settings file of `accord match run`; raises ProjectInvalid listing every
    problem with its line."""
    problems: list[Problem] = []
    if not path.is_file():
        problems.append(Problem(str(path), "no such settings file"))
    else:
        raw = _read_yaml(path, problems)
        settings = _validate(StandaloneSettings, raw, path, problems)
        if not problems and settings is not None:
            return settings
    raise ProjectInvalid(problems, what="the settings file", hint=SETTINGS_HINT)


def _read_yaml(path: Path, problems: list[Problem], *digests: Any) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_PROJECT_FILE_BYTES:
            problems.append(
                Problem(str(path), f"file is {size:,} bytes; project files are at most 1 MiB")
            )
            return None
        content = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read: {exc.strerror}"))
        return None
    for digest in digests:
        digest.update(path.name.encode())
        digest.update(content)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), f"not UTF-8 (byte {exc.start})", "save it as UTF-8"))
        return None
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problems.append(Problem(f"{path}{line}", f"not valid YAML: {exc.problem or exc}"))
        return None
    if data is None:
        problems.append(Problem(str(path), "file is empty"))
        return None
    if not isinstance(data, CommentedMap):
        problems.append(Problem(f"{path}:1", "expected a mapping of keys to values at the top"))
        return None
    return data


def _validate(model: type[M], raw: Any, path: Path, problems: list[Problem]) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate(_plain(raw))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.append(
                Problem(_where(path, raw, *loc), _describe(error, loc), _hint(model, error, loc))
            )
        return None


def _describe(error: Any, loc: tuple[Any, ...]) -> str:
    place = ".".join(str(part) for part in loc) or "(top)"
    if error["type"] == "extra_forbidden":
        return f"unknown key {place!r}"
    if error["type"] == "missing":
        return f"{place}: required, but missing"
    return f"{place}: {error['msg']}"


def _hint(model: type[BaseModel], error: Any, loc: tuple[Any, ...]) -> str | None:
    if error["type"] != "extra_forbidden" or not loc:
        return None
    allowed = _allowed_keys(model, loc[:-1])
    if not allowed:
        return None
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed here: " + ", ".join(sorted(allowed))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at `loc`, found by walking the type annotations."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part)) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _where(path: Path, node: Any, *loc: Any) -> str:
    """`path:line` of the deepest part of `loc` that exists in the YAML tree."""
    line = 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedMap | CommentedSeq):
            line = node.lc.line + 1
            break
        else:
            break
    return f"{path}:{line}"


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def _unknown_field(
    name: str, where: str, problems: list[Problem], what: str = "canonical field"
) -> bool:
    if name in FIELDS_BY_NAME:
        return False
    close = difflib.get_close_matches(name, list(FIELDS_BY_NAME), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see docs/canonical-model.md"
    problems.append(Problem(where, f"{name!r} is not a {what} of customer", hint))
    return True


def _check_project(config: ProjectConfig, raw: Any, path: Path, problems: list[Problem]) -> None:
    systems = set(config.systems)
    claimed: dict[str, str] = {}
    for name, system in config.systems.items():
        for i, field in enumerate(system.authority):
            where = _where(path, raw, "systems", name, "authority", i)
            if _unknown_field(field, where, problems):
                continue
            if field in claimed:
                problems.append(
                    Problem(
                        where,
                        f"{field!r} already has {claimed[field]!r} as its authority",
                        "a field has at most one authoritative system",
                    )
                )
            claimed[field] = name
        for i, field in enumerate(system.proposes or []):
            where = _where(path, raw, "systems", name, "proposes", i)
            if not _unknown_field(field, where, problems) and FIELDS_BY_NAME[field].input_only:
                problems.append(
                    Problem(
                        where,
                        f"{field!r} is read from records but not kept on golden records",
                        "list fields a golden record holds (see docs/canonical-model.md)",
                    )
                )
        region = system.default_region
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            problems.append(
                Problem(
                    _where(path, raw, "systems", name, "default_region"),
                    f"{region!r} is not a region phone numbers know",
                    "use an ISO 3166 alpha-2 code such as DE, GB or US",
                )
            )
    survivorship = config.survivorship
    priorities: list[tuple[tuple[str, ...], list[str]]] = [
        (("survivorship", "default_priority"), survivorship.default_priority)
    ]
    for field, rule in survivorship.fields.items():
        known = not _unknown_field(
            field, _where(path, raw, "survivorship", "fields", field), problems
        )
        if known and rule.priority is not None:
            priorities.append((("survivorship", "fields", field, "priority"), rule.priority))
    for loc, priority in priorities:
        for i, system_name in enumerate(priority):
            if system_name not in systems:
                problems.append(
                    Problem(
                        _where(path, raw, *loc, i),
                        f"{system_name!r} is not a system of this project",
                        "known systems: " + ", ".join(sorted(systems)),
                    )
                )
    from accord.match.features import FEATURES  # noqa: PLC0415  (config loads before match)
    from accord.match.settings_check import column_problems  # noqa: PLC0415

    problems.extend(
        Problem(
            _where(path, raw, "match", *problem.loc),
            f"match.{'.'.join(map(str, problem.loc))}: {problem.message}",
            problem.hint,
        )
        for problem in column_problems(config.match, {*FEATURES, "kind"})
    )
    names = [rule.name for rule in config.match.rules]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append(
                Problem(_where(path, raw, "match", "rules", i), f"rule {name!r} appears twice")
            )
    _check_rules(raw, path, problems)


def _check_rules(raw: Any, path: Path, problems: list[Problem]) -> None:
    """Business rules (in accord.yaml or a mapping): names unique, every expression
    compiles and reads only `record`; checked on the raw YAML, before any data."""
    rules = raw.get("rules")
    if not isinstance(rules, list):
        return
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        name = rule.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    Problem(_where(path, raw, "rules", i), f"rule {name!r} appears twice")
                )
            seen.add(name)
        for key in ("when", "check"):
            text = rule.get(key)
            if isinstance(text, str):
                _check_expression(
                    text,
                    expressions.RULE_VARIABLES,
                    _where(path, raw, "rules", i, key),
                    f"rule {name or i!s} `{key}`",
                    problems,
                )


def _check_expression(
    text: str, allowed: frozenset[str], where: str, what: str, problems: list[Problem]
) -> None:
    try:
        expressions.compile_expression(text, allowed)
    except expressions.ExpressionError as exc:
        shown = text if len(text) <= 120 else text[:117] + "..."
        problems.append(
            Problem(
                where,
                f"{what}: {exc} in {shown!r}",
                "CEL expressions are described in docs/mappings.md",
            )
        )


def _check_mapping(
    config: ProjectConfig | None, raw: Any, path: Path, problems: list[Problem]
) -> None:
    """Cross-checks of one mapping, on the raw YAML, so that they run even when the
    file also has type errors: every problem is reported in one go."""
    system = raw.get("system")
    if config is not None and isinstance(system, str) and system not in config.systems:
        problems.append(
            Problem(
                _where(path, raw, "system"),
                f"system {system!r} is not declared in accord.yaml",
                "add it under `systems:` in accord.yaml",
            )
        )
    _check_rules(raw, path, problems)
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        return
    if "kind" not in fields:
        problems.append(
            Problem(
                _where(path, raw, "fields"),
                "no mapping for `kind` (person or organization)",
                "map a source field with translate, or set `kind: {value: person}`",
            )
        )
    for name, spec in fields.items():
        where = _where(path, raw, "fields", name)
        if _unknown_field(str(name), where, problems) or not isinstance(spec, dict):
            continue
        field = FIELDS_BY_NAME[str(name)]
        if isinstance(spec.get("compute"), str):
            _check_expression(
                spec["compute"],
                expressions.COMPUTE_VARIABLES,
                _where(path, raw, "fields", name, "compute"),
                f"field {name} `compute`",
                problems,
            )
        if "formats" in spec and field.type not in (FieldType.DATE, FieldType.TIMESTAMP):
            problems.append(Problem(where, f"`formats` only applies to dates; {name} is not one"))
        if field.type is FieldType.VOCABULARY:
            translate = spec.get("translate")
            targets = list(translate.values()) if isinstance(translate, dict) else []
            targets += [spec[k] for k in ("value", "default") if spec.get(k) is not None]
            problems.extend(
                Problem(
                    where,
                    f"{target!r} is not in the vocabulary of {name}",
                    "allowed: " + ", ".join(field.vocabulary),
                )
                for target in targets
                if target not in field.vocabulary
            )


def _check_linked_mapping(
    config: ProjectConfig | None, raw: Any, path: Path, problems: list[Problem]
) -> None:
    """Cross-checks of a linked-record mapping, on the raw YAML: its systems are
    declared, its file is not named like a system (that name is a customer mapping's),
    and its fields use only what a linked record's fields take."""
    systems = set(config.systems) if config is not None else set()
    if path.stem in systems:
        problems.append(
            Problem(
                _where(path, raw, "kind"),
                f"{path.name} is named like system {path.stem!r}, whose customer mapping "
                "it would be; a linked-record mapping needs a name of its own",
                f"rename it {path.stem}_{raw.get('kind')}s.yaml",
            )
        )
    for key in ("system", "customer_system"):
        name = raw.get(key)
        if config is not None and isinstance(name, str) and name not in systems:
            problems.append(
                Problem(
                    _where(path, raw, key),
                    f"{key} {name!r} is not declared in accord.yaml",
                    "known systems: " + ", ".join(sorted(systems)),
                )
            )
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        return
    for name, spec in fields.items():
        if not isinstance(spec, dict):
            continue
        problems.extend(
            Problem(
                _where(path, raw, "fields", name, key),
                f"`{key}` is for customer mappings; a linked record's {name} takes "
                "`from`, `value`, `default`, `translate`, `formats` and `on_invalid`",
            )
            for key in ("compute", "only_for")
            if key in spec
        )
        if "formats" in spec and name != "occurred_at":
            problems.append(
                Problem(
                    _where(path, raw, "fields", name),
                    f"`formats` only applies to occurred_at; {name} is not a date",
                )
            )


def _check_linked_kinds(linked: dict[str, LinkedMapping], problems: list[Problem]) -> None:
    """One mapping per system and kind: `accord load --linked KIND` must know which."""
    seen: dict[tuple[str, str], LinkedMapping] = {}
    for mapping in linked.values():
        key = (mapping.config.system, mapping.config.kind)
        if key in seen:
            problems.append(
                Problem(
                    f"{mapping.path}:1",
                    f"{seen[key].path.name} maps {key[0]}'s {key[1]} records already",
                    "keep one mapping per system and kind",
                )
            )
        else:
            seen[key] = mapping
