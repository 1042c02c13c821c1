#!/usr/bin/env python3
"""Renders the monitoring mixin (mixin/build.jsonnet) into the files it generates,
or, with --check, fails when a committed file differs from what the mixin renders.
Uses the jsonnet pinned in requirements-test.txt (the PyPI bindings, installed into
.venv by `make venv`), so the check cannot flap between jsonnet versions."""

import difflib
import json
import os
import sys

import _jsonnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# requirements-test.txt pins this version; another one may render differently.
JSONNET = "v0.22.0"


def render():
    if _jsonnet.version != JSONNET:
        sys.exit(f"jsonnet {_jsonnet.version} found, the mixin is rendered with {JSONNET} (make venv)")
    out = _jsonnet.evaluate_file(os.path.join(ROOT, "mixin", "build.jsonnet"))
    return json.loads(out)


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for path, content in sorted(render().items()):
        full = os.path.join(ROOT, path)
        if check:
            try:
                with open(full, encoding="utf-8") as f:
                    committed = f.read()
            except FileNotFoundError:
                committed = ""
            if committed != content:
                stale.append(path)
                diff = difflib.unified_diff(
                    committed.splitlines(True), content.splitlines(True), path, path + " (mixin)", n=1
                )
                sys.stderr.writelines(list(diff)[:40])
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(content)
            print(f"wrote {path}")
    if stale:
        sys.exit(f"not what the mixin renders: {', '.join(stale)}; run `make mixin` and commit the result")


if __name__ == "__main__":
    main()
