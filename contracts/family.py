"""What a model family is, declared once: :class:`FamilyDeclaration` and the registry.

Each family's declaration lives beside its schemas (``contracts.classifier.CLASSIFIER``,
``contracts.ddpm.DDPM``, ...) and is registered by the list in ``contracts/__init__.py``.
The API validates and answers from a declaration (which params schema a train job takes,
whether a family is judged, which forget scopes it accepts), ``core`` reads its deletion
policy defaults, and ``GET /api/v1/families`` publishes :meth:`FamilyDeclaration.describe`
so the dashboard builds its forms without family rules of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import BaseModel

from contracts.common import SCOPE_KINDS, ScopeKind

# What a family's datasets hold: images (with labels), text records, or nothing it reads.
FamilyData = Literal["images", "text", "none"]
# The kinds of job a family's worker runtime runs.
JobKind = Literal["train", "unlearn", "evaluate", "generate", "tune", "shadows"]
JOB_KINDS: tuple[JobKind, ...] = get_args(JobKind)
# The job kinds whose params a family declares a schema for.
ParamsKind = Literal["train", "generate", "evaluate"]
PARAMS_KINDS: tuple[ParamsKind, ...] = get_args(ParamsKind)


class UnknownFamily(LookupError):
    """No family is declared under this name; the message names the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown model family {name!r}; known: {', '.join(known)}")


@dataclass(frozen=True)
class FamilyDeclaration:
    """One model family as every side sees it (the worker's runtime is declared apart,
    in ``workers.families``, and must run exactly :attr:`job_kinds`)."""

    name: str
    title: str
    summary: str
    data: FamilyData
    # The architecture names offered (classifier: ``architecture.name``; a family with a
    # single architecture names it after itself).
    architectures: tuple[str, ...]
    architecture_schema: type[BaseModel]
    # Job kind -> the params model its job body's ``params`` is validated with.
    params: Mapping[ParamsKind, type[BaseModel]]
    job_kinds: tuple[JobKind, ...]
    scopes: tuple[ScopeKind, ...]
    judged: bool
    # The deletion policy's fields that differ from ``DeletionPolicy``'s own defaults.
    policy_defaults: Mapping[str, Any]
    docs: str
    # Checkpoint formats ``POST /models/{id}/versions`` accepts, each with what it is.
    uploadable: Mapping[str, str] = field(default_factory=dict)
    judge_schema: type[BaseModel] | None = None
    # Its unlearn job trains shadow models for the strong per-sample membership test
    # (LiRA) that a deletion verdict on samples or subjects runs (``core.deletion.shadows``).
    membership_shadows: bool = False

    def __post_init__(self) -> None:
        # Frozen, and the mappings with it: a declaration is shared by every request.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "policy_defaults", MappingProxyType(dict(self.policy_defaults)))
        object.__setattr__(self, "uploadable", MappingProxyType(dict(self.uploadable)))
        problems: list[str] = [k for k in self.params if k not in PARAMS_KINDS]
        problems += [
            f"{k} (params of a kind it does not run)"
            for k in self.params
            if k not in self.job_kinds
        ]
        problems += [k for k in self.job_kinds if k not in JOB_KINDS]
        problems += [s for s in self.scopes if s not in SCOPE_KINDS]
        if self.judged != (self.judge_schema is not None):
            problems.append("judged and judge_schema must go together")
        if problems:
            raise TypeError(f"family {self.name!r} declares {', '.join(problems)}")

    def runs(self, kind: str) -> bool:
        """Whether this family's worker runs ``kind`` jobs."""
        return kind in self.job_kinds

    def takes(self, scope: str) -> bool:
        """Whether a forget scope of this kind can be asked of this family's models."""
        return scope in self.scopes

    def params_schema(self, kind: ParamsKind) -> type[BaseModel] | None:
        """The params model of a ``kind`` job, None when the family has none."""
        return self.params.get(kind)

    @property
    def prompted(self) -> bool:
        """Forgets concepts named by prompts (and generates from prompts)."""
        return "concept" in self.scopes

    @property
    def methods(self) -> list[str]:
        """Names of the unlearning methods that apply (the method registry's answer)."""
        return _method_names(self.name)

    def describe(self) -> dict[str, Any]:
        """The JSON ``GET /api/v1/families`` publishes: schemas as JSON Schema."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "data": self.data,
            "architectures": list(self.architectures),
            "architecture_schema": self.architecture_schema.model_json_schema(),
            "params_schemas": {
                kind: model.model_json_schema() for kind, model in self.params.items()
            },
            "job_kinds": list(self.job_kinds),
            "scopes": list(self.scopes),
            "judged": self.judged,
            "judge_schema": (
                self.judge_schema.model_json_schema() if self.judge_schema is not None else None
            ),
            "policy_defaults": dict(self.policy_defaults),
            "methods": self.methods,
            "docs": self.docs,
            "uploadable": [
                {"format": name, "description": what} for name, what in self.uploadable.items()
            ],
        }


_REGISTRY: dict[str, FamilyDeclaration] = {}


def _no_methods(family: str) -> list[str]:
    raise LookupError("no method registry was given to contracts.family.register")


# The method registry's names per family: the family registry is told where it is
# (``register(..., method_names=...)``) instead of importing it, since method
# declarations may import family schemas.
_method_names: Callable[[str], list[str]] = _no_methods


def register(
    *declarations: FamilyDeclaration, method_names: Callable[[str], list[str]] | None = None
) -> None:
    """Add families to the registry (``contracts/__init__.py`` registers every one, and
    names the method registry their methods come from)."""
    global _method_names
    if method_names is not None:
        _method_names = method_names
    for declaration in declarations:
        if declaration.name in _REGISTRY:
            raise TypeError(f"model family {declaration.name!r} is declared twice")
        _REGISTRY[declaration.name] = declaration


def get_family(name: str) -> FamilyDeclaration:
    """The declaration of ``name``; :class:`UnknownFamily` naming the known ones if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFamily(name, family_names()) from None


def family_names() -> list[str]:
    """Every registered family, in registration order."""
    return list(_REGISTRY)


def families() -> list[FamilyDeclaration]:
    """Every registered declaration, in registration order."""
    return list(_REGISTRY.values())


def families_where(**properties: Any) -> tuple[str, ...]:
    """Names of the families whose attributes equal ``properties`` (``judged=True``)."""
    return tuple(
        d.name for d in _REGISTRY.values()
        if all(getattr(d, key) == value for key, value in properties.items())
    )
