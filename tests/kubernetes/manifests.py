#!/usr/bin/env python3
"""Kubernetes manifests for tests/it/kubernetes.rs, run with the Python of
target/k8s-validate-venv (PyYAML and jsonschema come with kubernetes-validate).

  manifests.py json FILE...    every YAML document of the files as one JSON list
                               of {"file", "doc"} (the Rust test reads it)
  manifests.py custom FILE...  validate the custom resources among them (kinds
                               that kubernetes-validate has no schema for)
                               against the CRD schemas vendored in crds/
  manifests.py vendor CRDS.yaml REPOSITORY TAG PATH [--kind KIND] [--version V] [--prune DOTTED.PATH]...
                               vendor a CRD's schema into crds/ (--kind: the CRD
                               of a file of several; --version: that version
                               only, else every served one)

How a custom resource is validated, in the API server's order: the
openAPIV3Schema of the CRD version it names, as the projects publish it,
checked with jsonschema (Draft 4, the dialect OpenAPI 3.0 schemas follow) after
two additions that make it behave as the API server does with strict field
validation (kubectl's default): every object schema that lists its properties
refuses unknown ones (unless it says x-kubernetes-preserve-unknown-fields), and
metadata is checked against Kubernetes' own ObjectMeta schema (from
kubernetes-validate). Then the schema's defaults are filled in and every CEL
rule (x-kubernetes-validations) on a field that is present is evaluated with
`self` bound to it (common-expression-language: standard CEL, not Kubernetes'
extra CEL libraries; a rule that cannot be evaluated is an error, not a pass;
transition rules, which compare with oldSelf, apply to updates only and are
skipped). Not checked: string formats.

Vendoring keeps the schema and drops the descriptions (most of a CRD's size).
A --prune'd subtree (a part of a large CRD that keygate's examples do not use)
becomes a schema that refuses every value: a manifest that starts using it
fails until that part is vendored too, so nothing passes unchecked.
"""

import copy
import hashlib
import json
import os
import sys

import cel
import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CRDS = os.path.join(HERE, "crds")
PRUNED = "x-keygate-pruned"


def documents(paths):
    out = []
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    out.append({"file": path, "doc": doc})
    return out


# === vendoring ===


def strip_descriptions(node):
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def prune(schema, dotted):
    node = schema
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node["properties"][part]
    if parts[-1] not in node["properties"]:
        raise SystemExit(f"--prune {dotted}: no such property")
    node["properties"][parts[-1]] = {"not": {}, PRUNED: f"{dotted} is not vendored"}


def vendor(crd_path, repository, tag, path, kind, only, prunes):
    with open(crd_path, "rb") as f:
        raw = f.read()
    crds = [
        d
        for d in yaml.safe_load_all(raw)
        if d and d.get("kind") == "CustomResourceDefinition"
        and (kind is None or d["spec"]["names"]["kind"] == kind)
    ]
    if len(crds) != 1:
        raise SystemExit(f"{crd_path}: {len(crds)} CRDs match, expected one (use --kind)")
    crd = crds[0]
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        if not version.get("served") or only not in (None, version["name"]):
            continue
        schema = strip_descriptions(version["schema"]["openAPIV3Schema"])
        for dotted in prunes:
            prune(schema, dotted)
        out = {
            "apiVersion": f"{group}/{version['name']}",
            "kind": kind,
            "source": {
                "repository": repository,
                "tag": tag,
                "path": path,
                "sha256": hashlib.sha256(raw).hexdigest(),
            },
            "changes": "descriptions removed" + "".join(f"; {p} pruned" for p in prunes),
            "schema": schema,
        }
        name = f"{kind.lower()}.{group}.{version['name']}.json"
        with open(os.path.join(CRDS, name), "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"wrote crds/{name}")


# === validation ===


def vendored():
    schemas = {}
    for name in sorted(os.listdir(CRDS)):
        with open(os.path.join(CRDS, name)) as f:
            entry = json.load(f)
        schemas[(entry["apiVersion"], entry["kind"])] = entry
    return schemas


def strict(node):
    """Unknown fields refused wherever the schema lists the known ones."""
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def object_meta_validator():
    """Kubernetes' ObjectMeta (strict), from kubernetes-validate's newest schemas
    and resolved the way kubernetes-validate resolves them."""
    import kubernetes_validate.utils as kv
    from referencing import Registry, Resource

    version = kv.latest_version()
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = kv.schema_contents(f"{folder}/objectmeta-meta-v1.json", version)
    defs = kv.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(defs) @ Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def children(node, schema):
    """(child value, its schema) for the fields of node that the schema describes."""
    if isinstance(node, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in node.items():
            if key in props:
                yield key, value, props[key]
            elif isinstance(extra, dict):
                yield key, value, extra
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(node):
            yield i, value, schema["items"]


def apply_defaults(node, schema):
    """The API server's structural defaulting: a missing field with a default
    gets it, wherever its parent object is present."""
    if isinstance(node, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
    for _, value, sub in children(node, schema):
        apply_defaults(value, sub)


def cel_errors(node, schema, path):
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        try:
            holds = cel.evaluate(rule["rule"], {"self": node})
        except Exception as e:  # the library's errors have no common base
            holds = f"cannot be evaluated ({e})"
        if holds is not True:
            why = rule.get("message") or rule["rule"]
            extra = f": {holds}" if isinstance(holds, str) else ""
            yield path or "(top)", f"CEL rule fails: {why}{extra}"
    for key, value, sub in children(node, schema):
        yield from cel_errors(value, sub, f"{path}.{key}" if path else str(key))


def validate_custom(paths):
    schemas = vendored()
    meta = object_meta_validator()
    failed = 0
    for item in documents(paths):
        doc = item["doc"]
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in schemas:
            continue
        entry = schemas[key]
        schema = strict(entry["schema"])
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        what = f"{item['file']} {doc['kind']}/{doc.get('metadata', {}).get('name')}"
        source = entry["source"]
        against = f"{source['repository']} {source['tag']} {source['path']}"
        errors = list(jsonschema.Draft4Validator(schema).iter_errors(doc))
        if isinstance(doc.get("metadata"), dict):
            for e in meta.iter_errors(doc["metadata"]):
                e.path.appendleft("metadata")
                errors.append(e)
        problems = []
        for e in sorted(errors, key=lambda e: [str(p) for p in e.path]):
            where = ".".join(str(p) for p in e.path) or "(top)"
            hint = ""
            if isinstance(e.schema, dict) and PRUNED in e.schema:
                hint = f" ({e.schema[PRUNED]}: vendor it, see tests/kubernetes/README.md)"
            problems.append(f"{where}: {e.message}{hint}")
        if not problems:
            defaulted = copy.deepcopy(doc)
            apply_defaults(defaulted, entry["schema"])
            problems = [f"{where}: {msg}" for where, msg in cel_errors(defaulted, entry["schema"], "")]
        if not problems:
            print(f"OK {what} against {against}")
            continue
        failed += 1
        for problem in problems:
            print(f"ERROR {what}: {problem}")
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "json":
        json.dump(documents(argv[2:]), sys.stdout)
        return 0
    if len(argv) >= 2 and argv[1] == "custom":
        return validate_custom(argv[2:])
    if len(argv) >= 6 and argv[1] == "vendor":
        options, prunes, rest = {}, [], argv[6:]
        while rest:
            if len(rest) < 2 or rest[0] not in ("--kind", "--version", "--prune"):
                raise SystemExit(__doc__)
            if rest[0] == "--prune":
                prunes.append(rest[1])
            else:
                options[rest[0]] = rest[1]
            rest = rest[2:]
        vendor(*argv[2:6], options.get("--kind"), options.get("--version"), prunes)
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
