#!/usr/bin/env python3
"""Generate src/patch/merge_keys.rs: the strategic-merge schema of the built-in Kubernetes kinds.

kustomize's strategic merge (kyaml merge2) merges a list element by element only where the OpenAPI
schema gives the list `x-kubernetes-patch-strategy: merge`; the element keys are the list's
`x-kubernetes-list-map-keys` when present, else its `x-kubernetes-patch-merge-key`, else none (a
list of scalars such as `finalizers`). Every other list is replaced wholesale and never walked into.

The table keeps only what that decision needs: for every top-level kind, the object types from which
such a list can be reached, each with just the fields on the way. Everything else is a leaf.

Sources (Go modules, fetched with `go mod download`):
- k8s.io/kubernetes@v1.37.2 api/openapi-spec/swagger.json: the kinds of today's API;
- k8s.io/kubernetes@v1.21.2, whose spec kustomize v5.5 embeds: only for the kinds that were removed
  since (extensions/v1beta1 Ingress, rbac v1beta1, admissionregistration v1beta1, ...), so old
  manifests merge as kustomize merges them.

Usage: hack/gen-merge-keys.py            rewrite src/patch/merge_keys.rs
       hack/gen-merge-keys.py --check    exit 1 if the committed file is stale
Exits 2 when a spec cannot be had (no Go, or the module neither cached nor downloadable).
"""

import json
import os
import subprocess
import sys

CURRENT = "v1.37.2"
LEGACY = "v1.21.2"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "patch", "merge_keys.rs")

# Kinds that are not objects one would patch: API machinery envelopes.
NOT_RESOURCES = {"DeleteOptions", "WatchEvent", "Status", "APIGroup", "APIGroupList", "APIResourceList",
                 "APIVersions", "EphemeralContainers"}


class SpecUnavailable(Exception):
    pass


def swagger(version):
    try:
        out = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                             check=True, capture_output=True, text=True).stdout
        path = os.path.join(json.loads(out)["Dir"], "api", "openapi-spec", "swagger.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)["definitions"]
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as e:
        raise SpecUnavailable(f"cannot read the OpenAPI spec of k8s.io/kubernetes@{version}: {e}") from e


def ref_name(schema):
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def kinds(definitions):
    """(apiVersion, kind) -> definition name, for every resource kind of a spec."""
    out = {}
    for name, d in definitions.items():
        for gvk in d.get("x-kubernetes-group-version-kind") or []:
            kind = gvk["kind"]
            if kind.endswith("List") or kind in NOT_RESOURCES:
                continue
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            out[(api_version, kind)] = name
    return out


def merge_list(prop):
    """(strategy, keys) of an array property whose patch strategy includes merge, else None."""
    if prop.get("type") != "array":
        return None
    strategy = prop.get("x-kubernetes-patch-strategy")
    if not strategy or "merge" not in strategy.split(","):
        return None
    keys = prop.get("x-kubernetes-list-map-keys")
    if not keys:
        keys = [prop["x-kubernetes-patch-merge-key"]] if "x-kubernetes-patch-merge-key" in prop else []
    return strategy, tuple(keys)


class Graph:
    """Schema nodes of one spec, reduced to what a strategic merge walks through."""

    def __init__(self, tag, definitions):
        self.tag = tag
        self.defs = definitions

    def children(self, name):
        """field -> ("object", def) | ("list", strategy, keys, items def or None); "*" = any key."""
        out = {}
        d = self.defs.get(name, {})
        for field, prop in (d.get("properties") or {}).items():
            child = self.child(prop)
            if child:
                out[field] = child
        extra = d.get("additionalProperties")
        if isinstance(extra, dict):
            child = self.child(extra)
            if child:
                out["*"] = child
        return out

    @staticmethod
    def child(prop):
        merge = merge_list(prop)
        if merge:
            return ("list", merge[0], merge[1], ref_name(prop.get("items") or {}))
        ref = ref_name(prop)
        return ("object", ref) if ref else None


def interesting(graphs_and_roots):
    """The (graph, def) nodes from which a merge list can be reached."""
    nodes = {}
    todo = [(g, r) for g, roots in graphs_and_roots for r in roots]
    while todo:
        node = todo.pop()
        if node in nodes:
            continue
        g, name = node
        nodes[node] = g.children(name)
        for child in nodes[node].values():
            target = child[1] if child[0] == "object" else child[3]
            if target:
                todo.append((g, target))
    useful = set()
    changed = True
    while changed:
        changed = False
        for (g, name), kids in nodes.items():
            if (g, name) in useful:
                continue
            for child in kids.values():
                if child[0] == "list" or (g, child[1]) in useful:
                    useful.add((g, name))
                    changed = True
                    break
    return nodes, useful


def minimise(nodes, useful):
    """Partition the useful nodes into classes of identical shape (like DFA minimisation)."""
    def shape(node, cls):
        g, _ = node
        out = []
        for field, child in sorted(nodes[node].items()):
            if child[0] == "list":
                items = (g, child[3]) if child[3] else None
                out.append((field, "list", child[1], child[2], cls.get(items)))
            elif (g, child[1]) in useful:
                out.append((field, "object", cls[(g, child[1])]))
        return tuple(out)

    cls = {n: 0 for n in useful}
    while True:
        shapes = {}
        new = {}
        for n in sorted(useful, key=lambda n: (n[0].tag, n[1])):
            new[n] = shapes.setdefault(shape(n, cls), len(shapes))
        if len(set(new.values())) == len(set(cls.values())):
            return new, {c: s for s, c in shapes.items()}
        cls = new


def rust_str(s):
    return json.dumps(s)


def generate():
    current = Graph("current", swagger(CURRENT))
    legacy = Graph("legacy", swagger(LEGACY))
    current_kinds = kinds(current.defs)
    legacy_kinds = {k: v for k, v in kinds(legacy.defs).items() if k not in current_kinds}
    all_kinds = {k: (current, v) for k, v in current_kinds.items()}
    all_kinds.update({k: (legacy, v) for k, v in legacy_kinds.items()})

    nodes, useful = interesting([(current, current_kinds.values()), (legacy, legacy_kinds.values())])
    cls, shapes = minimise(nodes, useful)

    # Number the classes in a stable order: by the first definition name (current spec first).
    first = {}
    members = {}
    for n in sorted(useful, key=lambda n: (n[0].tag != "current", n[1])):
        first.setdefault(cls[n], n[1])
        members.setdefault(cls[n], set()).add(n[1])
    order = sorted(first, key=lambda c: first[c])
    index = {c: i for i, c in enumerate(order)}

    lines = []
    w = lines.append
    w("// @generated by hack/gen-merge-keys.py from the Kubernetes OpenAPI specs of")
    w(f"// k8s.io/kubernetes@{CURRENT} (every kind) and @{LEGACY} (kinds removed since, as kustomize")
    w("// v5.5 still knows them). Do not edit: run `hack/gen-merge-keys.py` to regenerate and")
    w("// `hack/gen-merge-keys.py --check` to verify.")
    w("")
    w("use super::schema::{Field, ListSchema, ObjectSchema, Schema};")
    w("")
    w(f"pub(super) static OBJECTS: [ObjectSchema; {len(order)}] = [")
    for c in order:
        others = len(members[c] - {first[c]})
        w(f"    // {first[c]}" + (f" (and {others} more of this shape)" if others else ""))
        w("    ObjectSchema {")
        fields = [f for f in shapes[c] if f[0] != "*"]
        extra = [f for f in shapes[c] if f[0] == "*"]
        w("        fields: &[")
        for f in fields:
            w(f"            Field {{ name: {rust_str(f[0])}, schema: {schema_expr(f, index)} }},")
        w("        ],")
        w(f"        additional: {('Some(' + schema_expr(extra[0], index) + ')') if extra else 'None'},")
        w("    },")
    w("];")
    w("")
    kinds_sorted = sorted(all_kinds.items())
    w("/// (apiVersion, kind, index into OBJECTS), sorted by apiVersion then kind.")
    w(f"pub(super) static KINDS: [(&str, &str, u16); {len(kinds_sorted)}] = [")
    for (api_version, kind), node in kinds_sorted:
        w(f"    ({rust_str(api_version)}, {rust_str(kind)}, {index[cls[node]]}),")
    w("];")
    return "\n".join(lines) + "\n"


def schema_expr(f, index):
    if f[1] == "object":
        return f"Schema::Object({index[f[2]]})"
    items = f"Schema::Object({index[f[4]]})" if f[4] is not None else "Schema::Leaf"
    keys = ", ".join(rust_str(k) for k in f[3])
    return (f"Schema::List(&ListSchema {{ strategy: {rust_str(f[2])}, keys: &[{keys}], "
            f"items: {items} }})")


def main():
    try:
        text = generate()
    except SpecUnavailable as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1:] == ["--check"]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("src/patch/merge_keys.rs is stale: run hack/gen-merge-keys.py")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
