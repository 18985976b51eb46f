"""Every Python snippet of the README runs as a script, in order, on the demo's synthetic products, as a new user
would run it (a fresh GMSDASK_HOME, products in ``products/``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from gmsdask.demo import seed_sixs_cache, write_demo_products

from .conftest import REPO

SNIPPETS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme_user")
    home = folder / "home"
    write_demo_products(home / "archive")
    (folder / "products").symlink_to(home / "archive", target_is_directory=True)
    seed_sixs_cache(home / "cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(GMSDASK_HOME=str(home), PYTHONWARNINGS="ignore")
    return folder, env


def test_the_readme_has_its_snippets():
    assert len(SNIPPETS) == 4, "update this test when README snippets are added or removed"


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs_as_a_script(user_folder, index):
    folder, env = user_folder
    script = folder / f"snippet_{index}.py"
    script.write_text(SNIPPETS[index])
    done = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"README snippet {index} failed:\n{SNIPPETS[index]}\n{done.stderr[-4000:]}"
    expected = [r"\d{4}-\d{2}-\d{2}T", r"L2C", r"done", r"EPSG:326"][index]
    assert re.search(expected, done.stdout), done.stdout[-2000:]
