"""The sdist and the wheel carry what a release needs, and pass ``twine check``.

Built the way ``make dist`` builds them: ``python -m build --no-isolation`` with the environment's
hatchling, so the test needs no network.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LOGO = "airflow_esml/integration-logos/Elasticsearch-ML.svg"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def sdist_names(dist: Path) -> list[str]:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


def test_wheel_carries_license_notice_changelog_marker_and_logo(dist):
    names = wheel_names(dist)
    info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    for needed in (
        f"{info}/licenses/LICENSE",
        f"{info}/licenses/NOTICE",
        f"{info}/extra_metadata/CHANGELOG.md",
        "airflow_esml/py.typed",
        LOGO,
        "airflow_esml/get_provider_info.py",
    ):
        assert needed in names, needed
    assert not [name for name in names if name.startswith(("tests/", "example_dags/")) or "__pycache__" in name]


def test_sdist_carries_license_notice_changelog_marker_and_logo(dist):
    names = sdist_names(dist)
    for needed in ("LICENSE", "NOTICE", "CHANGELOG.md", "README.md", "pyproject.toml", "airflow_esml/py.typed", LOGO):
        assert needed in names, needed
    assert not [name for name in names if "__pycache__" in name or name.startswith((".venv", "dist/"))]


def test_metadata_names_the_license_and_project_urls(dist):
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        entry_points = archive.read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "License-Expression: Apache-2.0" in text
    for label in ("Homepage", "Documentation", "Changelog", "Issues"):
        assert f"Project-URL: {label}, https://" in text, label
    assert "airflow_esml.get_provider_info:get_provider_info" in entry_points


def test_license_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_twine_check_passes(dist):
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout
