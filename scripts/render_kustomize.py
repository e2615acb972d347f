"""Render a kustomization offline, for the gate (no kustomize binary ships on PyPI or npm).

Only the kustomize features our k8s/ files use are supported, and anything else is refused
rather than ignored: `resources` (files and directories), `patches` (strategic merge, by kind
and name), `images`, `namespace`, `nameSuffix`, `configMapGenerator` with `files`, and
`generatorOptions` (`labels`, `disableNameSuffixHash: true`). The deploy workflow renders with
the real kustomize; tests/core/test_deploy.py keeps this renderer honest on our files.

    python scripts/render_kustomize.py k8s/overlays/eks > rendered.yaml
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "images",
    "namespace",
    "nameSuffix",
    "configMapGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterIssuer",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not support, or is inconsistent."""


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(doc: Manifest) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def strategic_merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for our files: maps merge, `null` deletes a key,
    lists of named maps (containers, volumes, ports) merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        result = [
            strategic_merge(item, next((p for p in patch if p["name"] == item["name"]), {}))
            for item in base
        ]
        result += [copy.deepcopy(p) for p in patch if p["name"] not in by_name]
        return result
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _pod_specs(doc: Manifest) -> list[Manifest]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template") or {}
    return [template["spec"]] if "spec" in template else []


def _set_image(doc: Manifest, images: list[Manifest]) -> None:
    for pod in _pod_specs(doc):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            image: str = container["image"]
            name = image.split("@", 1)[0]
            if ":" in name.rsplit("/", 1)[-1]:
                name = name.rsplit(":", 1)[0]
            for rule in images:
                if rule["name"] != name:
                    continue
                unknown = set(rule) - {"name", "newName", "newTag", "digest"}
                if unknown:
                    raise KustomizeError(f"unsupported images fields {sorted(unknown)}")
                new = rule.get("newName", name)
                if "digest" in rule:
                    new += f"@{rule['digest']}"
                elif "newTag" in rule:
                    new += f":{rule['newTag']}"
                elif image != name:
                    new += image[len(name) :]
                container["image"] = new


def _generate_configmaps(directory: Path, config: Manifest) -> list[Manifest]:
    options = config.get("generatorOptions") or {}
    if not config.get("configMapGenerator"):
        return []
    if set(options) - {"labels", "disableNameSuffixHash"} or not options.get(
        "disableNameSuffixHash", False
    ):
        raise KustomizeError("generatorOptions: only labels and disableNameSuffixHash: true")
    generated = []
    for generator in config.get("configMapGenerator") or []:
        if set(generator) - {"name", "files"}:
            raise KustomizeError(f"configMapGenerator: unsupported fields in {generator}")
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        metadata: Manifest = {"name": generator["name"]}
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        generated.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    return generated


def render(directory: Path) -> list[Manifest]:
    """The manifests `kustomize build directory` would produce, for the features above."""
    config = load_documents(directory / "kustomization.yaml")[0]
    unknown = set(config) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    docs: list[Manifest] = []
    for resource in config.get("resources") or []:
        path = (directory / resource).resolve()
        docs += render(path) if path.is_dir() else load_documents(path)
    docs += _generate_configmaps(directory, config)

    index = {_key(doc): i for i, doc in enumerate(docs)}
    if len(index) != len(docs):
        raise KustomizeError(f"{directory}: two resources share a kind and name")
    for patch_ref in config.get("patches") or []:
        if set(patch_ref) != {"path"}:
            raise KustomizeError(f"{directory}: only file patches are supported: {patch_ref}")
        for patch in load_documents(directory / patch_ref["path"]):
            if _key(patch) not in index:
                raise KustomizeError(f"{directory}: patch {_key(patch)} matches no resource")
            i = index[_key(patch)]
            docs[i] = strategic_merge(docs[i], patch)

    for doc in docs:
        if "namespace" in config and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = config["namespace"]
        if "nameSuffix" in config:
            doc["metadata"]["name"] += config["nameSuffix"]
        _set_image(doc, config.get("images") or [])
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render_kustomize.py DIRECTORY", file=sys.stderr)
        return 2
    try:
        docs = render(Path(argv[0]))
    except (KustomizeError, OSError, KeyError, yaml.YAMLError) as exc:
        print(f"render_kustomize: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
