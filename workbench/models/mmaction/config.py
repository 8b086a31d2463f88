"""Read an MMAction2 training config from a checkpoint's `meta.cfg` text, without running it.

mmengine stores the config's `pretty_text`: Python source of plain assignments whose values are
literals and `dict(...)` calls. It is parsed with `ast` and evaluated by a small literal evaluator
(constants, lists, tuples, dicts, `dict(...)`, unary minus, names assigned earlier); anything else
(a call, an attribute, an import) is refused, so a crafted config cannot run code.
"""

from __future__ import annotations

import ast
from typing import Any

from ...errors import CheckpointError


class ConfigError(ValueError):
    """The text is not a config this reader understands (says which line)."""


def _value(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e, names) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ConfigError(f"line {node.lineno}: ** in a dict literal")
        return {_value(k, names): _value(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        result: dict[Any, Any] = {}
        for arg in node.args:  # dict({166: 167, ...}) as pretty_text writes int-keyed dicts
            positional = _value(arg, names)
            if not isinstance(positional, dict):
                raise ConfigError(f"line {node.lineno}: dict() of a non-dict")
            result.update(positional)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ConfigError(f"line {node.lineno}: ** in dict()")
            result[keyword.arg] = _value(keyword.value, names)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, names)
        if not isinstance(operand, (int, float)):
            raise ConfigError(f"line {node.lineno}: sign of a non-number")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Name):
        if node.id in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[node.id]
        if node.id in names:
            return names[node.id]
        raise ConfigError(f"line {node.lineno}: unknown name {node.id!r}")
    raise ConfigError(f"line {getattr(node, 'lineno', '?')}: {type(node).__name__} is not a literal")


def parse_config(text: str) -> dict[str, Any]:
    """Top-level assignments of a config text as plain data; ConfigError if it holds anything else."""
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ConfigError(f"line {err.lineno}: {err.msg}") from None
    names: dict[str, Any] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise ConfigError(f"line {statement.lineno}: not a plain assignment")
        names[statement.targets[0].id] = _value(statement.value, names)
    return names


def checkpoint_config(data: dict, name: str) -> dict[str, Any] | None:
    """The training config stored in an mmengine checkpoint (`meta.cfg`; MMAction2 0.x: `meta.config`),
    None when the file has none; CheckpointError when it has one that cannot be read."""
    meta = data.get("meta")
    text = None
    if isinstance(meta, dict):
        text = next((meta[k] for k in ("cfg", "config") if isinstance(meta.get(k), str)), None)
    if text is None:
        return None
    try:
        config = parse_config(text)
    except ConfigError as err:
        raise CheckpointError(f"cannot load {name!r}: its meta.cfg is not a config text this reader "
                              f"understands ({err})") from None
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"cannot load {name!r}: its meta.cfg has no model = dict(...)")
    return config
