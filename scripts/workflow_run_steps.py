#!/usr/bin/env python3
"""Writes each `run:` step of a GitHub Actions workflow to its own bash
file, for shellcheck: `${{ ... }}` expressions (GitHub substitutes them
before the shell runs) become a plain word, and each file starts the way
the runner runs it (`bash -e`).

    workflow_run_steps.py WORKFLOW OUTDIR   # prints the files written
"""
import os
import re
import sys

import yaml  # PyYAML

EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def main() -> None:
    workflow, out = sys.argv[1], sys.argv[2]
    with open(workflow, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for job_id, job in (doc.get("jobs") or {}).items():
        for n, step in enumerate(job.get("steps") or []):
            script = step.get("run")
            if script is None:
                continue
            path = os.path.join(out, f"{job_id}-{n}.sh")
            with open(path, "w", encoding="utf-8") as f:
                f.write("#!/usr/bin/env bash\nset -e\n")
                f.write(EXPRESSION.sub("GITHUB_EXPRESSION", script))
            print(path)


if __name__ == "__main__":
    main()
