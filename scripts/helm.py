#!/usr/bin/env python3
"""Lints or renders the Helm chart with Helm's own engine (PyPI helm-python-sdk,
pinned in requirements-test.txt and installed into .venv by `make venv`): Debian has
no `helm`. Used by tests/chart.rs and `make chart`.

  helm.py lint   CHART [-f VALUES]...
  helm.py render CHART [-f VALUES]... [--name NAME] [--namespace NS]

`render` prints the manifests as one YAML stream, in template order, each after a
`# Source:` line as `helm template` prints them (NOTES.txt is left out). Errors
(schema, template, lint) go to stderr with exit status 1."""

import argparse
import sys

import helm_python
import yaml

# requirements-test.txt pins this version; the tests are about this engine.
SDK = "0.2.2"


def values_from(files):
    merged = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            merged = merge(merged, yaml.safe_load(f) or {})
    return merged


def merge(base, over):
    """As Helm merges several -f files: maps deeply, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def lint(chart, values):
    report = helm_python.lint(chart, values, strict=True)
    for m in report["messages"]:
        print(f"[{severity(m['severity'])}] {m['path']}: {m['error'].strip()}")
    if report["errors"]:
        sys.exit(f"{chart}: lint found {len(report['errors'])} error(s)")
    print(f"{report['total_charts_linted']} chart(s) linted, 0 errors")


def severity(level):
    return {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(level, str(level))


def render(chart, values, name, namespace):
    loaded = helm_python.Chart.load(chart)
    try:
        out = loaded.render(values, name=name, namespace=namespace, is_install=True)
    finally:
        loaded.close()
    docs = []
    for path, manifest in sorted(out.items()):
        if path.endswith("NOTES.txt") or not manifest.strip():
            continue
        docs.append(f"# Source: {path}\n{manifest.strip()}\n")
    sys.stdout.write("---\n".join(docs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lint", "render"])
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--name", default="ses-identity-exporter")
    parser.add_argument("--namespace", default="monitoring")
    args = parser.parse_args()
    version = getattr(helm_python, "__version__", None)
    if version is not None and version != SDK:
        sys.exit(f"helm-python-sdk {version} found, the chart is tested with {SDK} (make venv)")
    values = values_from(args.values)
    try:
        if args.command == "lint":
            lint(args.chart, values)
        else:
            render(args.chart, values, args.name, args.namespace)
    except helm_python.HelmError as err:
        sys.exit(f"{args.chart}: {err}")


if __name__ == "__main__":
    main()
