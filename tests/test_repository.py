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
