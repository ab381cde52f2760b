"""Runs what a user would type from README.md, as printed, with the
placeholder /path/to/pyalloc replaced by this checkout:

  1. the set-up table's main job, in the checkout;
  2. every ```sh block, each in a fresh shell that starts in one work folder
     (outside the checkout), in order;
  3. every ```python block, with the main job's interpreter (.venv, which
     has pyalloc installed); a block that is a file of the example (its
     setup.py) is compared with that file instead, which step 2 builds.

The test command is the other row of the set-up table: it is what runs
this. Cargo's target directory is shared between the blocks, so that
pyalloc is compiled once per configuration.

    python scripts/readme_commands.py
"""

import os
import re
import subprocess
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "/path/to/pyalloc"
TIMEOUT = 1800


def readme():
    return (CHECKOUT / "README.md").read_text(encoding="utf-8")


def main_job(text):
    row = next(line for line in text.splitlines() if line.startswith("| main job"))
    return re.findall(r"`([^`]+)`", row)[-1]


def blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def run(label, command, cwd, env):
    print(f"--- {label} (in {cwd})\n{command}", flush=True)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    tail = "\n".join(result.stdout.splitlines()[-25:])
    print(tail, flush=True)
    if result.returncode != 0:
        raise SystemExit(f"README: {label} failed with exit status {result.returncode}")


def main():
    text = readme()
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(CHECKOUT / "target" / "readme"))
    run("the main job", main_job(text), CHECKOUT, env)
    with tempfile.TemporaryDirectory(prefix="pyalloc-readme-") as work:
        for number, block in enumerate(blocks(text, "sh"), 1):
            run(f"sh block {number}", block.replace(PLACEHOLDER, str(CHECKOUT)), work, env)
    for number, block in enumerate(blocks(text, "python"), 1):
        files = [path for path in (CHECKOUT / "examples").rglob("*.py") if path.read_text() == block]
        if files:
            print(f"--- python block {number}: {files[0].relative_to(CHECKOUT)}, as the shell blocks built it")
            continue
        python = CHECKOUT / ".venv" / "bin" / "python"
        run(f"python block {number}", f"{python} - <<'PYTHON'\n{block}PYTHON", CHECKOUT, env)
    print("README: every command ran")


if __name__ == "__main__":
    main()
