"""The old import paths of moved modules: each warns once naming its new module and hands out the very same
objects, renamed names resolve where they live now, unknown names fail; and the deprecated or lazy names of
``airflow_esml.leases``."""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from types import ModuleType

import pytest

from airflow_esml._moved import MOVED, RENAMED
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import DeploymentStatus


def fresh_import(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``name`` anew (the previous module, if any, is put back after the test)."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def quiet_import(name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(name)


def public_names(module: ModuleType) -> list[str]:
    """The names a module defines or imports for use, without private names, submodules and ``annotations``."""
    return [
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and n != "annotations" and not isinstance(v, ModuleType)
    ]


def targets(old: str) -> tuple[str, ...]:
    """The module(s) that hold the code of ``old`` now (one name, or several for a module that was split)."""
    new = MOVED[old]
    return (new,) if isinstance(new, str) else tuple(new)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_naming_the_new_module(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} is deprecated") as caught:
        module = fresh_import(old, monkeypatch)
    message = str(caught[0].message)
    assert f"import from {targets(old)[0]}" in message
    assert all(new in message for new in targets(old))
    assert module.__name__ == old
    assert sys.modules[old] is module


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_gives_the_very_same_objects(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning):
        module = fresh_import(old, monkeypatch)
    news = [importlib.import_module(new) for new in targets(old)]
    for new in news:
        names = public_names(new)
        assert names, f"{new.__name__} has no public names"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # only the import warns, not every name
            for name in names:
                holder = next(m for m in news if hasattr(m, name))  # a split module's parts are searched in order
                assert getattr(module, name) is getattr(holder, name), name
        assert set(names) <= set(dir(module))


@pytest.mark.parametrize("old", sorted(MOVED))
def test_from_an_old_path_import_works(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    new = importlib.import_module(targets(old)[0])
    name = public_names(new)[0]
    monkeypatch.delitem(sys.modules, old, raising=False)
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=re.escape(new.__name__)):
        exec(f"from {old} import {name} as found", namespace)
    assert namespace["found"] is getattr(new, name)


@pytest.mark.parametrize(("key", "where"), sorted(RENAMED.items()))
def test_a_renamed_name_resolves_to_the_named_object(key: tuple[str, str], where: str) -> None:
    old, name = key
    module_name, _, attribute = where.partition(":")
    module = quiet_import(old)
    assert getattr(module, name) is getattr(importlib.import_module(module_name), attribute)
    assert name in dir(module)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_unknown_name_of_an_old_path_is_an_attribute_error(old: str) -> None:
    module = quiet_import(old)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        module.__no_such_dunder__  # noqa: B018
    assert not hasattr(module, "__wrapped__")
    with pytest.raises(ImportError):
        exec(f"from {old} import no_such_name", {})


def test_a_path_that_never_existed_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow_esml.no_such_module")


def test_the_plan_modules_desired_settings_is_settings() -> None:
    assert quiet_import("airflow_esml.plan").DesiredSettings is Settings


def test_leases_update_body_warns_and_gives_the_settings_body() -> None:
    import airflow_esml.leases

    status = DeploymentStatus("my-e5", "my-e5", "started", 1, 1, "fully_allocated")
    with pytest.warns(DeprecationWarning, match=r"Settings\.update_body"):
        update_body = airflow_esml.leases.update_body
    for goal in (Settings(3), Settings(1), Settings(2)):
        assert update_body(goal, status) == goal.update_body(status)
    assert update_body(Settings(3), status) == {"number_of_allocations": 3}
    assert update_body(Settings(1), status) is None


def test_leases_names_import_and_the_store_is_the_stores() -> None:
    from airflow_esml.leases import LeaseDoc, LeaseOutcome, LeaseStore, model, store
    from airflow_esml.leases import Settings as LeasesSettings

    assert LeasesSettings is Settings
    assert LeaseDoc is model.LeaseDoc
    assert LeaseStore is store.LeaseStore and LeaseOutcome is store.LeaseOutcome


#: the names ``airflow_esml.leases.model`` defined before it was split, by their new module
MODEL_NAMES = {
    "lease": ("Lease", "Lock", "lease_id_for", "with_installation", "when"),
    "reaped": (
        "REAPED_HISTORY",
        "REAPED_MAX_AGE",
        "Reaped",
        "keep_reaped",
        "find_reaped",
        "RenewalState",
        "Renewal",
        "missing_lease",
    ),
    "shares": ("held_floor", "capacity_shares"),
    "document": ("LeaseDoc",),
    "decisions": (
        "DRIFT_HISTORY",
        "goal_settings",
        "adaptive_refusal",
        "held_by_leases",
        "Drift",
        "Decision",
        "decide",
    ),
}


def test_the_lease_models_names_still_import_from_it() -> None:
    model = importlib.import_module("airflow_esml.leases.model")
    for module, names in MODEL_NAMES.items():
        home = importlib.import_module(f"airflow_esml.leases.{module}")
        for name in names:
            assert getattr(model, name) is getattr(home, name), name
    with pytest.raises(AttributeError, match="no_such_name"):
        model.no_such_name  # noqa: B018


def test_leases_unknown_name_is_an_attribute_error() -> None:
    import airflow_esml.leases

    with pytest.raises(AttributeError, match="no_such_name"):
        airflow_esml.leases.no_such_name  # noqa: B018


def forget(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make the next import of each module run it anew; the modules as they were come back after the test."""
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)


def test_leases_loads_the_store_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    forget(monkeypatch, "airflow_esml.leases", "airflow_esml.leases.store")
    leases = importlib.import_module("airflow_esml.leases")
    assert leases.Settings is Settings and leases.LeaseDoc.__module__ == "airflow_esml.leases.document"
    assert "airflow_esml.leases.store" not in sys.modules
    lease_store = leases.LeaseStore
    assert "airflow_esml.leases.store" in sys.modules
    assert lease_store is sys.modules["airflow_esml.leases.store"].LeaseStore


def test_old_paths_import_nothing_until_used(monkeypatch: pytest.MonkeyPatch) -> None:
    forget(monkeypatch, "airflow_esml.lease_store", "airflow_esml.leases.store")
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("airflow_esml.lease_store")
    assert "airflow_esml.leases.store" not in sys.modules
    lease_store = old.LeaseStore
    assert "airflow_esml.leases.store" in sys.modules
    assert lease_store is sys.modules["airflow_esml.leases.store"].LeaseStore
