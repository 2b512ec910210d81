"""Safe YAML in and out, and atomic file writes, for the on-disk store.

Only the safe loader and dumper are used (libyaml's when it is installed), so a document can
never construct Python objects. The dumper is a private subclass, so PyYAML's global classes are
left alone: it writes ``FlowList`` (header pairs) as ``[Name, value]`` on one line and multi-line
strings in literal block style.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from wiretape.errors import StoreError
from wiretape.store.emit import CannotEmit, emit

try:
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

TMP_PREFIX = ".tmp-"


class FlowList(list[Any]):
    """A list dumped on one line, e.g. a header pair ``[Content-Type, text/plain]``."""


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


class _LeanResolver(yaml.resolver.Resolver):
    """Tag resolution for libyaml's dumper and loader, with less Python per node.

    No path resolvers are registered, so the per-node bookkeeping calls are no-ops; and a short
    scalar (a key, a header name, a small value) repeats, so its tag is remembered. The tag of
    a scalar depends on its text and on how it was written (plain or quoted), nothing else.
    """

    _resolved: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode or len(value) > 40:
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        key = (value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if len(self._resolved) < 4096:
                self._resolved[key] = tag
        return tag


class Dumper(_LeanResolver, _BaseDumper):
    """The safe dumper with a lean path for the plain types our documents are made of.

    The result is the same as the safe representer's (insertion order, no aliases); skipping
    its generic dispatch makes dumping a test about twice as fast.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_data(self, data: Any) -> yaml.Node:
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR, data, style="|" if "\n" in data else None)
        if kind is dict:
            pairs = [(self.represent_data(k), self.represent_data(v)) for k, v in data.items()]
            return yaml.MappingNode(_MAP, pairs, flow_style=False)
        if kind is list or kind is tuple or kind is FlowList:
            items = [self.represent_data(item) for item in data]
            return yaml.SequenceNode(_SEQ, items, flow_style=kind is FlowList)
        if kind is int:
            return yaml.ScalarNode(_INT, str(data))
        if kind is bool:
            return yaml.ScalarNode(_BOOL, "true" if data else "false")
        if data is None:
            return yaml.ScalarNode(_NULL, "null")
        node: yaml.Node = super().represent_data(data)
        return node


_FLOAT = "tag:yaml.org,2002:float"


class _NotPlain(Exception):
    """A node the plain builder leaves to PyYAML's constructor."""


class Loader(_LeanResolver, _BaseLoader):
    """The safe loader, with a lean builder for the plain documents the store writes.

    PyYAML's constructor is generic (tags, anchors, merge keys, recursion bookkeeping) and
    takes most of a load. Mappings, sequences and str, int, float, bool and null scalars are
    built directly here, the scalars by the safe constructor's own methods; a document with
    anything else (another tag, a merge key, a node reached twice through an alias, an
    unhashable key, nesting too deep) is built by PyYAML's constructor instead, so the result,
    or the error, is always the safe loader's.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            return self._build(node, set())
        except (_NotPlain, RecursionError):
            return super().construct_document(node)

    def _build(self, node: yaml.Node, seen: set[int]) -> Any:
        tag = node.tag
        if tag == _STR and type(node) is yaml.ScalarNode:
            return node.value
        if tag == _MAP and type(node) is yaml.MappingNode:
            if id(node) in seen:
                raise _NotPlain
            seen.add(id(node))
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._build(key_node, seen)
                if type(key) in (dict, list):
                    raise _NotPlain
                mapping[key] = self._build(value_node, seen)
            return mapping
        if tag == _SEQ and type(node) is yaml.SequenceNode:
            if id(node) in seen:
                raise _NotPlain
            seen.add(id(node))
            return [self._build(item, seen) for item in node.value]
        if type(node) is yaml.ScalarNode:
            if tag == _INT:
                return self.construct_yaml_int(node)
            if tag == _NULL:
                return None
            if tag == _BOOL:
                return self.construct_yaml_bool(node)
            if tag == _FLOAT:
                return self.construct_yaml_float(node)
        raise _NotPlain


def store_error(where: str, problem: str, hint: str) -> StoreError:
    """A StoreError that says where, what happened and what to do."""
    return StoreError(f"{where}: {problem}\n  hint: {hint}")


def dump(doc: Mapping[str, Any]) -> str:
    try:
        return emit(doc, FlowList)
    except CannotEmit:
        pass  # a value the fast emitter does not handle: PyYAML writes (or refuses) it as before
    try:
        return yaml.dump(
            doc,
            Dumper=Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=120,
        )
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise store_error(
            "document",
            f"a string holds a character YAML cannot store ({exc.reason}: {bad!r})",
            "lone surrogates cannot be written; decode header bytes as latin-1",
        ) from exc


def round_trip(value: Any) -> Any:
    """``value`` dumped and loaded back, to check that it survives YAML unchanged.

    Raises ValueError when it cannot be dumped or loaded at all.
    """
    try:
        text = yaml.dump(value, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)
        return yaml.load(text, Loader=Loader)
    except (yaml.YAMLError, UnicodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc


def load(text: str | bytes, *, source: str) -> Any:
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        context = exc.context
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (from line {exc.context_mark.line + 1})"
        problem = " ".join(p for p in (context, exc.problem) if p)
        raise store_error(
            where,
            f"not valid YAML: {problem}",
            "fix the file by hand (only plain YAML is allowed, no tags) or record the set again",
        ) from exc
    except yaml.YAMLError as exc:
        raise store_error(source, f"not valid YAML: {exc}", "fix the file or record again") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
    """Write ``path`` so that readers see the old file or the whole new one, never a part.

    The data goes to a temporary file in the same directory that is then renamed over ``path``.
    A killed process leaves at most a ``.tmp-*`` file behind, which readers ignore.
    With ``fsync`` the file and its directory are also flushed to the device.
    """
    atomic_write_parts(path, (data,), fsync=fsync)


def atomic_write_parts(path: Path, parts: Iterable[bytes | str], *, fsync: bool = False) -> None:
    """``atomic_write`` of the concatenated ``parts``, written as they come: a file far larger
    than what is held in memory at once."""
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
    try:
        with open(tmp, "xb") as fh:
            for part in parts:
                fh.write(part.encode("utf-8") if isinstance(part, str) else part)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)
