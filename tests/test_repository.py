"""The repository stands alone: nothing in it points to files outside it."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if name == "tests/test_repository.py" or not path.is_file() or \
                path.suffix in (".png", ".pdf", ".parquet", ".pt"):
            continue
        text = path.read_text(errors="ignore")
        for needle in ("DESIGN" + ".md", "../" + "shared"):
            if needle in text:
                offenders.append(f"{name}: {needle}")
    assert not offenders, offenders


def _hflow_imports() -> dict[str, set[str]]:
    """Every hflow module -> the hflow modules it imports anywhere in its text (top level,
    inside functions, under TYPE_CHECKING alike)."""
    import ast

    files = {}
    for path in (ROOT / "hflow").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                          for a in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def test_hflow_has_no_import_cycle():
    graph = _hflow_imports()
    assert len(graph) > 20 and "hflow.resolve" in graph["hflow.cli"]  # the walk sees imports
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            # a module importing from its own package (__init__) is not a cycle
            if module.startswith(dep + "."):
                continue
            assert state.get(dep) != 1, " -> ".join([*path, module, dep])
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_config_is_plain_data():
    """hflow.config imports no other part of hflow than its error type: not the presets, not
    the envs (MuJoCo), not torch; resolution lives above it, in hflow.resolve."""
    assert _hflow_imports()["hflow.config"] <= {"hflow"}
    code = ("import sys, hflow.config; bad = {'torch', 'mujoco', 'hflow.agents', 'hflow.envs'}"
            " & set(sys.modules); assert not bad, bad")
    subprocess.run(["python", "-c", code], cwd=ROOT, check=True)


def test_the_readmes_rollout_example_runs_on_a_fresh_clone(tmp_path):
    """The policies the README shows travel in git: `hflow rollout` on them works in a clone
    of the committed repository, with no DVC remote."""
    import re
    import sys

    commands = re.findall(r"hflow rollout (results/\S+) -o ([^\s`]+)",  # inline or a block
                          (ROOT / "README.md").read_text())
    assert commands, "the README shows no hflow rollout command on a shipped run"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for seed_dir, picture in commands:
        assert (clone / seed_dir / "policy.pt").is_file(), f"{seed_dir}/policy.pt not in git"
        done = subprocess.run([sys.executable, "-m", "hflow.cli", "rollout", seed_dir, "-o",
                               picture, "--episodes", "1"], cwd=clone, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        assert (clone / picture).read_bytes()[:4] == b"\x89PNG"
