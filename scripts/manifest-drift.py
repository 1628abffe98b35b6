#!/usr/bin/env python3
"""Fail when deploy/ (kustomize) and the Helm chart (default values) drift apart.

    manifest-drift.py KUSTOMIZE_OUTPUT.yaml HELM_TEMPLATE_OUTPUT.yaml

Both renders must contain the same objects (kind, namespace, name), and each
object must be identical once the parts that legitimately differ are removed:
labels and annotations (Helm adds its own), and the label selectors built from
them. Everything else is compared: container images, args, env, ports, mounts,
security contexts, resources, volumes, RBAC rules, the CSIDriver spec...

Documented exceptions (objects allowed on one side only):
  * Namespace dcs-csi: kustomize creates it; Helm does not create the release
    namespace (use `helm install --create-namespace`).
  * The chart's store Secret and StorageClass exist only when credentials /
    storageClass.create are set; both are off by default, so they never appear
    in the default render. (deploy/secret.example.yaml is not in the base.)
"""
import sys

import yaml

ONLY_IN_KUSTOMIZE = {("Namespace", "", "dcs-csi")}
ONLY_IN_HELM: set = set()

# Paths removed before comparing (labels differ by design).
STRIP = [
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec", "selector"),
    ("spec", "template", "metadata", "labels"),
]


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    objs = {}
    for d in docs:
        key = (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        if key in objs:
            sys.exit(f"{path}: duplicate object {key}")
        for p in STRIP:
            node = d
            for part in p[:-1]:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node.pop(p[-1], None)
        objs[key] = d
    if not objs:
        sys.exit(f"{path}: no objects rendered")
    return objs


def diff(a, b, path=""):
    """Yields human-readable differences between two YAML trees."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}"
            if k not in a:
                yield f"{p}: only in helm: {b[k]!r}"
            elif k not in b:
                yield f"{p}: only in kustomize: {a[k]!r}"
            else:
                yield from diff(a[k], b[k], p)
    elif isinstance(a, list) and isinstance(b, list):
        # Lists of named items (containers, env, volumes...) compare by name.
        if all(isinstance(x, dict) and "name" in x for x in a + b):
            yield from diff({x["name"]: x for x in a}, {x["name"]: x for x in b}, path)
        elif len(a) != len(b):
            yield f"{path}: kustomize {a!r} != helm {b!r}"
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                yield from diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: kustomize {a!r} != helm {b!r}"


def main():
    kust, helm = load(sys.argv[1]), load(sys.argv[2])
    problems = []
    for key in sorted(set(kust) - set(helm) - ONLY_IN_KUSTOMIZE):
        problems.append(f"{'/'.join(key)}: only in deploy/ (kustomize)")
    for key in sorted(set(helm) - set(kust) - ONLY_IN_HELM):
        problems.append(f"{'/'.join(key)}: only in the chart (helm template)")
    for key in sorted(set(kust) & set(helm)):
        for d in diff(kust[key], helm[key]):
            problems.append(f"{'/'.join(k for k in key if k)}{d}")
    common = len(set(kust) & set(helm))
    if problems:
        print(f"drift: {len(problems)} difference(s):")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"drift: {common} objects identical (ignoring labels/selectors); "
          f"exceptions: {sorted('/'.join(k for k in e if k) for e in ONLY_IN_KUSTOMIZE | ONLY_IN_HELM)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
