"""`llmops new-flow NAME`: scaffold a flow, its config model and profiles, a test, and its
deployment (deployments/authored.yaml, rendered into prefect.yaml).

The templates (llmops/templates/new_flow/) are a working flow built from tasks/ and a data
contract, so the scaffolded test passes untouched; docs/authoring-flows.md goes from there.
"""

import keyword
import os
import re
import subprocess
import sys
from pathlib import Path
from string import Template

import yaml

from llmops.config import PROFILE_NAMES

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates" / "new_flow"
NAME = re.compile(r"[a-z][a-z0-9_]*")
AUTHORED_HEADER = (
    "# Deployments of flows scaffolded by `llmops new-flow` (keys as DEPLOYMENTS in\n"
    "# deployments/render.py: add schedules, a concurrency_limit, another pool), then run\n"
    "# `python deployments/render.py` to rewrite prefect.yaml.\n"
)


def check_name(name: str, project: Path) -> None:
    """A new flow's name must be a fresh snake_case Python identifier; say why when it is not."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a snake_case name (letters, digits, _; e.g. feed_check)")
    taken = [path for path in planned_files(name, project) if path.exists()]
    if taken:
        raise FileExistsError(f"{name!r} exists already: {', '.join(map(str, taken))}")


def planned_files(name: str, project: Path) -> dict[Path, str]:
    """Each file to write and the template it comes from."""
    files = {
        project / "flows" / f"{name}.py": "flow.py.tmpl",
        project / "tests" / "flows" / f"test_{name}.py": "test.py.tmpl",
    }
    for profile in PROFILE_NAMES:
        files[project / "profiles" / name / f"{profile}.yaml"] = "profile.yaml.tmpl"
    return files


def template_values(name: str) -> dict[str, str]:
    words = name.split("_")
    return {
        "name": name,
        "model": "".join(word.capitalize() for word in words),
        "title": " ".join(words).capitalize(),
        "flow_name": name.replace("_", "-"),
        "deployment": f"{name.replace('_', '-')}/{name.replace('_', '-')}",
    }


def add_deployment(name: str, pool: str, project: Path) -> None:
    """Append the flow's deployment to deployments/authored.yaml."""
    authored = project / "deployments" / "authored.yaml"
    entries = (yaml.safe_load(authored.read_text()) or []) if authored.exists() else []
    entries.append(
        {
            "file": name,
            "flow": name,
            "name": name.replace("_", "-"),
            "pool": pool,
            "description": f"{template_values(name)['title']}: hold data to its contract, "
            "redact PII, report every record's outcome.",
        }
    )
    authored.write_text(AUTHORED_HEADER + yaml.safe_dump(entries, sort_keys=False, width=100))


def render_prefect_yaml(project: Path) -> None:
    """Rewrite the project's prefect.yaml with its own code (the project may be a copy)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(project / "deployments" / "render.py")],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deployments/render.py failed:\n{done.stderr.strip()}")


def scaffold_flow(name: str, pool: str = "cpu", project: Path = REPO) -> list[Path]:
    """Write the flow, its profiles and test, register its deployment; return what was written."""
    check_name(name, project)
    values = template_values(name)
    written = []
    for path, template in planned_files(name, project).items():
        text = Template((TEMPLATES / template).read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.substitute(values, profile=path.stem))
        written.append(path)
    add_deployment(name, pool, project)
    render_prefect_yaml(project)
    return [*written, project / "deployments" / "authored.yaml", project / "prefect.yaml"]
