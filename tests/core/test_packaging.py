"""`pip install .` gives one `mailcall` package and a working command, nothing else at top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from .conftest import REPO


def test_wheel_holds_only_the_mailcall_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mailcall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mailcall", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for module in ("core", "agi", "sieve", "plugins", "deposit"):
        assert f"mailcall/{module}/__init__.py" in names
    assert "mailcall/core/data/defaults.toml" in names
    assert "mailcall/core/data/small-company.toml" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mailcall = mailcall.core.cli:main" in entry_points
    assert "rules = mailcall.plugins.rules" in entry_points


def test_fresh_venv_install_works(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(REPO)], check=True, capture_output=True,
                   timeout=600)
    out = subprocess.run([str(venv / "bin" / "mailcall"), "check",
                          str(REPO / "contrib" / "policies" / "small-company.toml")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "policy OK" in out.stdout
    imports = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import mailcall.core, mailcall.agi, mailcall.sieve, "
                              "mailcall.plugins, mailcall.deposit, importlib.util as u; "
                              "print(u.find_spec('core'), u.find_spec('agi'))"],
                             capture_output=True, text=True, cwd=tmp_path, check=True)
    assert imports.stdout.strip() == "None None"
