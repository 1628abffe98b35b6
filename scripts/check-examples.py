#!/usr/bin/env python3
"""Cheap consistency checks of examples/ and deploy/ against the driver's
interface (the Rust manifest-driven test is the real check; this one fails
fast and offline):

  * every StorageClass / CSI PV names the driver dcs.csi.dev;
  * StorageClass parameters and PV volumeAttributes use only known keys;
  * the Secrets they name exist in examples/ with the csi-s3 keys.

    check-examples.py DIR...
The key lists mirror driver/src/config (keep them in sync).
"""
import pathlib
import sys

import yaml

DRIVER = "dcs.csi.dev"
FS_KEYS = {"uid", "gid", "fileMode", "dirMode", "metadataTTLSeconds",
           "partSizeMiB", "maxMemoryMiB", "checksum"}
SC_KEYS = FS_KEYS | {"bucket", "usePrefix", "prefix", "mounter", "bucketPrefix", "fallbackBucket"} | {
    f"csi.storage.k8s.io/{k}-secret-{f}"
    for k in ("provisioner", "node-stage") for f in ("name", "namespace")}
SECRET_KEYS = {"accessKeyID", "secretAccessKey"}


def main(dirs):
    docs = []
    for d in dirs:
        for f in sorted(pathlib.Path(d).glob("*.yaml")):
            if f.name == "kustomization.yaml":
                continue
            docs += [(f, x) for x in yaml.safe_load_all(f.read_text()) if x]
    secrets = {(x["metadata"].get("namespace"), x["metadata"]["name"]): x
               for _, x in docs if x["kind"] == "Secret"}
    errors, seen = [], 0

    def need_secret(f, ns, name):
        s = secrets.get((ns, name))
        if s is None:
            errors.append(f"{f.name}: Secret {ns}/{name} is not defined in {dirs}")
        elif not SECRET_KEYS <= set(s.get("stringData", s.get("data", {}))):
            errors.append(f"{f.name}: Secret {ns}/{name} lacks {sorted(SECRET_KEYS)}")

    for f, x in docs:
        if x["kind"] == "StorageClass":
            seen += 1
            p = x.get("parameters", {})
            if x.get("provisioner") != DRIVER:
                errors.append(f"{f.name}: provisioner {x.get('provisioner')!r} != {DRIVER}")
            if bad := set(p) - SC_KEYS:
                errors.append(f"{f.name}: unknown StorageClass parameters {sorted(bad)}")
            if p.get("usePrefix") == "true" and "bucket" not in p:
                errors.append(f"{f.name}: usePrefix \"true\" requires bucket")
            for kind in ("provisioner", "node-stage"):
                name = p.get(f"csi.storage.k8s.io/{kind}-secret-name")
                ns = p.get(f"csi.storage.k8s.io/{kind}-secret-namespace")
                if not name:
                    errors.append(f"{f.name}: no {kind} secret")
                else:
                    need_secret(f, ns, name)
        elif x["kind"] == "PersistentVolume" and "csi" in x["spec"]:
            seen += 1
            csi = x["spec"]["csi"]
            if csi["driver"] != DRIVER:
                errors.append(f"{f.name}: driver {csi['driver']!r} != {DRIVER}")
            if bad := set(csi.get("volumeAttributes", {})) - FS_KEYS:
                errors.append(f"{f.name}: unknown volumeAttributes {sorted(bad)}")
            ref = csi.get("nodeStageSecretRef")
            if not ref:
                errors.append(f"{f.name}: no nodeStageSecretRef")
            else:
                need_secret(f, ref["namespace"], ref["name"])
    for e in errors:
        print(f"  {e}")
    print(f"examples: {seen} StorageClasses/PVs checked, {len(errors)} problem(s)")
    return 1 if errors or not seen else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
