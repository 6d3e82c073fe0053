"""The role mixins of ElasticsearchMLHook (hooks/parts.py): what a mixin declares it uses of the hook, for type
checkers only, exists on the hook at run time (a type checker accepts a declared name that no class defines)."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

from airflow_esml.hooks import capacity, infer, parts, stats, targets, updates
from airflow_esml.hooks.ml import ElasticsearchMLHook

MODULES = (parts, targets, stats, updates, infer, capacity)


def declared(module: ModuleType) -> dict[str, set[str]]:
    """Class name -> the names its ``if TYPE_CHECKING:`` block declares, in ``module``."""
    found: dict[str, set[str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for block in node.body:
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
                for item in block.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        found.setdefault(node.name, set()).add(item.target.id)
                    elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        found.setdefault(node.name, set()).add(item.name)
    return found


def test_every_mixin_is_part_of_the_hook() -> None:
    mixins = [getattr(m, name) for m in MODULES[1:] for name in dir(m) if name.endswith("Mixin")]
    assert {m.__module__ for m in mixins} == {m.__name__ for m in MODULES[1:]}
    assert all(issubclass(m, parts.HookPart) and issubclass(ElasticsearchMLHook, m) for m in mixins)


def test_what_a_mixin_declares_the_hook_defines() -> None:
    found = {f"{m.__name__}.{cls}": names for m in MODULES for cls, names in declared(m).items()}
    assert {"airflow_esml.hooks.parts.HookPart", "airflow_esml.hooks.targets.TargetMixin"} <= set(found)
    hook = ElasticsearchMLHook("esml_test")  # builds no client: the connection is looked up on first use
    missing = {
        cls: sorted(n for n in names if not hasattr(type(hook), n) and n not in vars(hook))
        for cls, names in found.items()
    }
    assert {cls: names for cls, names in missing.items() if names} == {}
