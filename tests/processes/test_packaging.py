"""A normal (non-editable) install carries everything the server needs at
run time: every module, the JSON Schemas and the SQL migrations, found
through the package rather than through the checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
# What setup.cfg builds from; copied so that the build leaves the checkout untouched.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "atomchat_server", "schemas", "migrations")

PROBE = """
import json, atomchat_server
from atomchat_server import resources
from atomchat_server.db import migrations
from atomchat_server.validation import schemas
from atomchat_server.api.web import WEB_ROOT, WebFiles

print(json.dumps({
    "package": atomchat_server.__file__,
    "schemas_dir": repr(resources.schemas_dir()),
    "migrations_dir": repr(resources.migrations_dir()),
    "migrations": [f"{m.version:04d}_{m.name}.sql" for m in migrations.available()],
    "schemas": schemas().names,
    "web_root": str(WEB_ROOT),
    "web": sorted(WebFiles.load().files),
}))
"""


def pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_wheel_install_finds_its_schemas_and_migrations(tmp_path):
    source = tmp_path / "source"
    for name in SOURCES:
        if (CHECKOUT / name).is_dir():
            shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(CHECKOUT / name, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(source), cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("atomchat-*.whl")

    modules = {
        f"atomchat_server/{p.relative_to(CHECKOUT / 'atomchat_server')}"
        for p in (CHECKOUT / "atomchat_server").rglob("*.py")
    }
    schema_files = {
        f"atomchat_server/schemas/{p.relative_to(CHECKOUT / 'schemas')}" for p in (CHECKOUT / "schemas").rglob("*.json")
    }
    migration_files = {f"atomchat_server/migrations/{p.name}" for p in (CHECKOUT / "migrations").glob("*.sql")}
    web_files = {f"atomchat_server/web/{p.name}" for p in (CHECKOUT / "atomchat_server" / "web").iterdir()}
    assert schema_files and migration_files and "atomchat_server/web/index.html" in web_files
    with zipfile.ZipFile(wheel) as archive:
        contents = set(archive.namelist())
    assert modules - contents == set(), "modules missing from the wheel (a package not listed in setup.cfg?)"
    assert schema_files - contents == set()
    assert migration_files - contents == set()
    assert web_files - contents == set(), "web client files missing from the wheel (setup.cfg package_data?)"
    assert any(name.endswith("entry_points.txt") for name in contents)

    target = tmp_path / "installed"
    pip("install", "--no-deps", "--no-compile", "--target", str(target), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)

    assert found["package"] == str(target / "atomchat_server" / "__init__.py")
    for folder in ("schemas_dir", "migrations_dir"):
        assert str(target / "atomchat_server") in found[folder] and str(CHECKOUT) not in found[folder], found[folder]
    assert found["web_root"] == str(target / "atomchat_server" / "web")
    assert found["web"] == sorted(name[len("atomchat_server/web/") :] for name in web_files)
    assert found["migrations"] == sorted(Path(name).name for name in migration_files)
    assert sorted(found["schemas"]) == sorted(
        name[len("atomchat_server/schemas/") : -len(".json")] for name in schema_files
    )
