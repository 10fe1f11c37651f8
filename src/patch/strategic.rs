//! Strategic merge patch with kustomize's semantics (kyaml `merge2`, lists prepended).
//!
//! kyaml merges two YAML node trees in place, and several of its observable behaviours come from
//! nodes being shared and mutated while the walk goes on (a list element's `$patch: replace` is
//! undone, matched elements take the patch's order, elements without a merge key reorder the
//! list). To reproduce them, the merge runs over an arena of nodes addressed by index, a faithful
//! port of `kyaml/yaml/walk` and `kyaml/yaml/merge2`, and converts back to a `Value` at the end.

use serde_json::{Map, Value};

use super::schema::Schema;
use super::{MAX_DEPTH, NodeKind, PatchError, is_nil_or_empty, nests_deeper_than};

/// The `$patch` key of strategic merge directives.
const DIRECTIVE: &str = "$patch";

/// Merges `patch` into `target` as kustomize's strategic merge does (kyaml `merge2.Merge` with
/// list elements prepended); `Ok(None)` when the patch deletes the whole object.
///
/// The schema of lists comes from the `apiVersion`/`kind` of `target` (else of `patch`); nested
/// maps the schema does not describe may name their own `apiVersion`/`kind`. Lists the schema
/// does not give a merge strategy, and every list of a custom resource, are replaced wholesale.
/// This is the bare merge: [`apply_strategic_merge_patch`] adds what kustomize does around it.
pub fn strategic_merge(target: &Value, patch: &Value) -> Result<Option<Value>, PatchError> {
    merge_marked(target, &[], patch)
}

/// [`strategic_merge`], where `written_empty` lists the paths of the target's fields that were
/// written as nothing (`key:`, see [`crate::render::yaml::parse_manifest`]): the merge drops them,
/// as kyaml drops a null it read from empty text, and keeps the target's other nulls.
fn merge_marked(
    target: &Value,
    written_empty: &[Vec<String>],
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    if nests_deeper_than(target, MAX_DEPTH) || nests_deeper_than(patch, MAX_DEPTH) {
        return Err(PatchError::TooDeep { limit: MAX_DEPTH });
    }
    let mut tree = Tree::default();
    let dest = if written_empty.is_empty() {
        tree.insert(target)
    } else {
        tree.insert_marking(target, &mut Vec::new(), written_empty)
    };
    let origin = tree.insert(patch);
    let mut walk = Walk {
        tree,
        path: Vec::new(),
    };
    // kustomize keeps the target's node, merged in place, and only looks at the merge's result
    // to see whether it deleted the object: so a document-level `$patch: replace`, whose result
    // is the patch itself, leaves the target as it was.
    let merged = walk.walk(None, Some(dest), Some(origin))?;
    Ok(merged.map(|_| walk.tree.to_value(dest)))
}

/// What a kustomize `patches` entry's `options` allow a strategic merge patch to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmpOptions {
    /// `allowNameChange`: keep the patch's `metadata.name`.
    pub allow_name_change: bool,
    /// `allowKindChange`: keep the patch's `kind`.
    pub allow_kind_change: bool,
}

/// Applies a strategic merge patch to one resource as kustomize does; `Ok(None)` when the
/// resource is deleted (`$patch: delete`, or nothing left).
///
/// Around [`strategic_merge`], kustomize gives the patch the target's `apiVersion`, and after the
/// merge puts back the target's `metadata.namespace` (always) and its `kind` and `metadata.name`
/// (unless `options` allow the change). Recording the previous name for name references is the
/// caller's job.
pub fn apply_strategic_merge_patch(
    target: &Value,
    patch: &Value,
    options: SmpOptions,
) -> Result<Option<Value>, PatchError> {
    apply_strategic_merge_patch_marked(target, &[], patch, options)
}

/// [`apply_strategic_merge_patch`], where `written_empty` lists the paths of the target's fields
/// written as nothing (`key:`), which the merge drops (kyaml keeps only explicit nulls).
pub fn apply_strategic_merge_patch_marked(
    target: &Value,
    written_empty: &[Vec<String>],
    patch: &Value,
    options: SmpOptions,
) -> Result<Option<Value>, PatchError> {
    let mut patch = patch.clone();
    if let Value::Object(p) = &mut patch {
        let api_version = target.get("apiVersion").map_or(String::new(), scalar_text);
        p.insert("apiVersion".to_owned(), Value::String(api_version));
    }
    let Some(mut merged) = merge_marked(target, written_empty, &patch)? else {
        return Ok(None);
    };
    if is_nil_or_empty(&merged) {
        return Ok(None);
    }
    let Value::Object(object) = &mut merged else {
        return Ok(Some(merged));
    };
    if !options.allow_kind_change {
        let kind = target.get("kind").map_or(String::new(), scalar_text);
        object.insert("kind".to_owned(), Value::String(kind));
    }
    let namespace = target
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .map_or(String::new(), scalar_text);
    if !options.allow_name_change {
        let name = target
            .get("metadata")
            .and_then(|m| m.get("name"))
            .map_or(String::new(), scalar_text);
        if let Some(metadata) = metadata_mut(object) {
            metadata.insert("name".to_owned(), Value::String(name));
        }
    }
    if namespace.is_empty() {
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("namespace");
        }
    } else if let Some(metadata) = metadata_mut(object) {
        metadata.insert("namespace".to_owned(), Value::String(namespace));
    }
    Ok(Some(merged))
}

/// `metadata` of an object, made a map if it is missing or not one (as kyaml's `SetMapField`).
fn metadata_mut(object: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    if !matches!(object.get("metadata"), Some(Value::Object(_))) {
        object.insert("metadata".to_owned(), Value::Object(Map::new()));
    }
    object.get_mut("metadata").and_then(Value::as_object_mut)
}

/// The text of a scalar as kyaml compares it (`yaml.Node.Value`); empty for maps and lists.
pub(super) fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Object(_) | Value::Array(_) => String::new(),
    }
}

type Id = usize;

/// A YAML node of the arena. `Null` is a scalar tagged `!!null`; `keep` marks the null kyaml
/// keeps on purpose (a null the target had and the patch did not touch).
#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, Id)>),
    Seq(Vec<Id>),
    Scalar(Value),
    Null { keep: bool },
}

#[derive(Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
    /// Target nulls that were written as nothing (`key:`), which kyaml does not keep.
    written_empty: Vec<Id>,
}

impl Tree {
    fn push(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Inserts `value`, at `path` in its document, noting the nulls `written_empty` lists.
    fn insert_marking(
        &mut self,
        value: &Value,
        path: &mut Vec<String>,
        written_empty: &[Vec<String>],
    ) -> Id {
        let node = match value {
            Value::Null => {
                let id = self.push(Node::Null { keep: false });
                if written_empty.iter().any(|p| p == path) {
                    self.written_empty.push(id);
                }
                return id;
            }
            Value::Object(m) => Node::Map(
                m.iter()
                    .map(|(k, v)| {
                        path.push(k.clone());
                        let id = self.insert_marking(v, path, written_empty);
                        path.pop();
                        (k.clone(), id)
                    })
                    .collect(),
            ),
            Value::Array(a) => Node::Seq(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        path.push(i.to_string());
                        let id = self.insert_marking(v, path, written_empty);
                        path.pop();
                        id
                    })
                    .collect(),
            ),
            scalar => Node::Scalar(scalar.clone()),
        };
        self.push(node)
    }

    fn insert(&mut self, value: &Value) -> Id {
        let node = match value {
            Value::Null => Node::Null { keep: false },
            Value::Object(m) => {
                Node::Map(m.iter().map(|(k, v)| (k.clone(), self.insert(v))).collect())
            }
            Value::Array(a) => Node::Seq(a.iter().map(|v| self.insert(v)).collect()),
            scalar => Node::Scalar(scalar.clone()),
        };
        self.push(node)
    }

    fn to_value(&self, id: Id) -> Value {
        match self.node(id) {
            Node::Map(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.to_value(*v)))
                    .collect(),
            ),
            Node::Seq(items) => Value::Array(items.iter().map(|v| self.to_value(*v)).collect()),
            Node::Scalar(v) => v.clone(),
            Node::Null { .. } => Value::Null,
        }
    }

    fn node(&self, id: Id) -> &Node {
        // Ids only come from `push`, so they are always in range.
        &self.nodes[id]
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[id]
    }

    /// kyaml's `IsMissingOrNull`.
    fn missing_or_null(&self, id: Option<Id>) -> bool {
        id.is_none_or(|id| matches!(self.node(id), Node::Null { .. }))
    }

    /// kyaml's `IsEmptyMap`: missing, null or `{}`.
    fn empty_map(&self, id: Option<Id>) -> bool {
        self.missing_or_null(id)
            || id.is_some_and(|id| matches!(self.node(id), Node::Map(f) if f.is_empty()))
    }

    /// kyaml's `IsNilOrEmpty` of a field value: null, `{}` or `[]`.
    fn nil_or_empty(&self, id: Id) -> bool {
        match self.node(id) {
            Node::Null { .. } => true,
            Node::Map(f) => f.is_empty(),
            Node::Seq(i) => i.is_empty(),
            Node::Scalar(_) => false,
        }
    }

    fn kind(&self, id: Id) -> NodeKind {
        match self.node(id) {
            Node::Map(_) => NodeKind::Map,
            Node::Seq(_) => NodeKind::List,
            Node::Scalar(_) | Node::Null { .. } => NodeKind::Scalar,
        }
    }

    fn is_map(&self, id: Id) -> bool {
        matches!(self.node(id), Node::Map(_))
    }

    /// `yaml.Node.Value`: the scalar's text, empty for maps and lists.
    fn text(&self, id: Id) -> String {
        match self.node(id) {
            Node::Scalar(v) => scalar_text(v),
            Node::Null { .. } => "null".to_owned(),
            Node::Map(_) | Node::Seq(_) => String::new(),
        }
    }

    /// The value of field `name` of a map node; `None` for other nodes.
    fn field(&self, id: Id, name: &str) -> Option<Id> {
        match self.node(id) {
            Node::Map(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v),
            _ => None,
        }
    }

    fn field_names(&self, id: Id) -> Vec<String> {
        match self.node(id) {
            Node::Map(fields) => fields.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }

    fn items(&self, id: Id) -> Vec<Id> {
        match self.node(id) {
            Node::Seq(items) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn set_items(&mut self, id: Id, new_items: Vec<Id>) {
        if let Node::Seq(items) = self.node_mut(id) {
            *items = new_items;
        }
    }

    /// kyaml's `FieldSetter`: sets field `name` of map `id`, or clears it when `value` is missing
    /// or a null not marked to keep.
    fn set_field(&mut self, id: Id, name: &str, value: Option<Id>) {
        let value = value.filter(|v| !matches!(self.node(*v), Node::Null { keep: false }));
        let Node::Map(fields) = self.node_mut(id) else {
            return;
        };
        match (fields.iter().position(|(k, _)| k == name), value) {
            (Some(i), Some(v)) => {
                if let Some(field) = fields.get_mut(i) {
                    field.1 = v;
                }
            }
            (Some(i), None) => {
                fields.remove(i);
            }
            (None, Some(v)) => fields.push((name.to_owned(), v)),
            (None, None) => {}
        }
    }

    fn remove_field(&mut self, id: Id, name: &str) {
        if let Node::Map(fields) = self.node_mut(id) {
            fields.retain(|(k, _)| k != name);
        }
    }
}

/// A strategic merge directive (`$patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

/// One merge: the arena and the path of the node being walked (for errors).
struct Walk {
    tree: Tree,
    path: Vec<String>,
}

impl Walk {
    fn path(&self) -> String {
        if self.path.is_empty() {
            return "the document root".to_owned();
        }
        let mut out = String::new();
        for part in &self.path {
            if !out.is_empty() && !part.starts_with('[') {
                out.push('.');
            }
            out.push_str(part);
        }
        out
    }

    /// kyaml `Walker.Walk` over the sources `[dest, origin]`.
    fn walk(
        &mut self,
        schema: Option<Schema>,
        dest: Option<Id>,
        origin: Option<Id>,
    ) -> Result<Option<Id>, PatchError> {
        let schema = schema.or_else(|| self.schema_of_type(dest, origin));
        let first = [dest, origin]
            .into_iter()
            .flatten()
            .find(|id| !self.tree.missing_or_null(Some(*id)));
        let Some(first) = first else {
            return self.walk_map(schema, dest, origin);
        };
        let kind = self.tree.kind(first);
        for id in [dest, origin].into_iter().flatten() {
            if !self.tree.missing_or_null(Some(id)) && self.tree.kind(id) != kind {
                return Err(PatchError::NodeKindMismatch {
                    path: self.path(),
                    target: kind,
                    patch: self.tree.kind(id),
                });
            }
        }
        match kind {
            NodeKind::Map => self.walk_map(schema, dest, origin),
            NodeKind::List => match schema.and_then(Schema::merge_keys) {
                Some(keys) => self.walk_associative_list(schema, keys, dest, origin),
                // Replaced wholesale: the patch's list when it has one.
                None => Ok(origin.or(dest)),
            },
            NodeKind::Scalar => Ok(origin.or(dest)),
        }
    }

    /// kyaml `Walker.GetSchema` without a schema from the parent: a map naming a built-in
    /// `apiVersion` and `kind` (the target's first, then the patch's).
    fn schema_of_type(&self, dest: Option<Id>, origin: Option<Id>) -> Option<Schema> {
        [dest, origin].into_iter().flatten().find_map(|id| {
            let api_version = self
                .tree
                .field(id, "apiVersion")
                .filter(|v| !self.tree.nil_or_empty(*v))?;
            let kind = self
                .tree
                .field(id, "kind")
                .filter(|v| !self.tree.nil_or_empty(*v))?;
            let (api_version, kind) = (self.tree.text(api_version), self.tree.text(kind));
            if api_version.is_empty() || kind.is_empty() {
                return None;
            }
            Schema::for_kind(&api_version, &kind)
        })
    }

    /// kyaml `walkMap`: the visit decides the new destination, then every field of either side
    /// is walked (in sorted order) and set on it.
    fn walk_map(
        &mut self,
        schema: Option<Schema>,
        dest: Option<Id>,
        origin: Option<Id>,
    ) -> Result<Option<Id>, PatchError> {
        let Some(dest) = self.visit_map(dest, origin)? else {
            return Ok(None);
        };
        let mut names = self.tree.field_names(dest);
        if let Some(origin) = origin {
            names.extend(self.tree.field_names(origin));
        }
        names.sort();
        names.dedup();
        for name in names {
            let child_schema = schema.map(|s| s.field(&name));
            let dest_field = self.tree.field(dest, &name);
            let origin_field = origin.and_then(|o| self.tree.field(o, &name));
            self.path.push(name.clone());
            let value = self.walk(child_schema, dest_field, origin_field);
            self.path.pop();
            let value = value?;
            self.tree.set_field(dest, &name, value);
        }
        Ok(Some(dest))
    }

    /// kyaml `Merger.VisitMap`.
    fn visit_map(
        &mut self,
        dest: Option<Id>,
        origin: Option<Id>,
    ) -> Result<Option<Id>, PatchError> {
        if self.tree.missing_or_null(dest) {
            // A directive on a map the target lacks still applies (and an invalid one is ignored).
            if let Ok(Directive::Delete) = self.directive(origin) {
                return Ok(None);
            }
            if origin.is_none()
                && let Some(dest) = dest
                && !self.tree.written_empty.contains(&dest)
            {
                // A null the target had, untouched by the patch, is kept (unless it was written
                // as nothing).
                return Ok(Some(self.tree.push(Node::Null { keep: true })));
            }
            return Ok(origin);
        }
        if origin.is_some_and(|o| matches!(self.tree.node(o), Node::Null { .. })) {
            return Ok(None);
        }
        Ok(match self.directive(origin)? {
            Directive::Delete => None,
            Directive::Replace => origin,
            Directive::Merge => dest,
        })
    }

    /// kyaml `determineSmpDirective`: reads the patch node's directive and removes it.
    fn directive(&mut self, origin: Option<Id>) -> Result<Directive, PatchError> {
        let Some(origin) = origin else {
            return Ok(Directive::Merge);
        };
        match self.tree.node(origin) {
            Node::Map(_) => {
                let Some(value) = self.tree.field(origin, DIRECTIVE) else {
                    return Ok(Directive::Merge);
                };
                let directive = self.parse_directive(value)?;
                self.tree.remove_field(origin, DIRECTIVE);
                Ok(directive)
            }
            Node::Seq(items) => {
                // The first element carrying `$patch` decides; it is a list directive only if
                // `$patch` is its only key (else it is an element's own directive).
                let element = items
                    .iter()
                    .copied()
                    .find(|e| self.tree.field(*e, DIRECTIVE).is_some());
                let Some(element) = element else {
                    return Ok(Directive::Merge);
                };
                if self.tree.field_names(element).len() > 1 {
                    return Ok(Directive::Merge);
                }
                let Some(value) = self.tree.field(element, DIRECTIVE) else {
                    return Ok(Directive::Merge);
                };
                let text = self.tree.text(value);
                let directive = self.parse_directive(value)?;
                let keys = [DIRECTIVE.to_owned()];
                self.element_setter(origin, None, &keys, &[text])?;
                Ok(directive)
            }
            // kyaml has no directive for a scalar; a merge never asks for one.
            Node::Scalar(_) | Node::Null { .. } => {
                Err(self.element_kind_error(NodeKind::Map, origin))
            }
        }
    }

    fn parse_directive(&self, value: Id) -> Result<Directive, PatchError> {
        match self.tree.text(value).as_str() {
            "merge" => Ok(Directive::Merge),
            "replace" => Ok(Directive::Replace),
            "delete" => Ok(Directive::Delete),
            other => Err(PatchError::UnknownDirective {
                path: self.path(),
                value: other.to_owned(),
            }),
        }
    }

    /// kyaml `walkAssociativeSequence` with `ListIncreaseDirection: Prepend`.
    fn walk_associative_list(
        &mut self,
        schema: Option<Schema>,
        keys: &[&str],
        dest: Option<Id>,
        origin: Option<Id>,
    ) -> Result<Option<Id>, PatchError> {
        // kyaml `Merger.VisitList` for an associative list.
        let dest = if self.tree.missing_or_null(dest) {
            origin
        } else if origin.is_some_and(|o| matches!(self.tree.node(o), Node::Null { .. })) {
            None
        } else {
            match self.directive(origin)? {
                Directive::Delete => None,
                Directive::Replace => origin,
                Directive::Merge => dest,
            }
        };
        let Some(dest) = dest else {
            return Ok(None);
        };
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let elements = schema.map(Schema::elements);
        let values = self.element_values(&keys, dest, origin);
        if !values.is_empty() || !keys.is_empty() {
            return self.set_associative_elements(values, &keys, dest, origin, elements);
        }
        let values = self.primitive_values(dest, origin);
        self.set_associative_elements(values, &[String::new()], dest, origin, elements)
    }

    /// kyaml `elementValues`: the key tuples of every element, the patch's first, without
    /// repeats.
    fn element_values(&self, keys: &[String], dest: Id, origin: Option<Id>) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for source in [origin, Some(dest)].into_iter().flatten() {
            if !matches!(self.tree.node(source), Node::Seq(_)) {
                continue;
            }
            for element in self.tree.items(source) {
                let tuple: Vec<String> = keys
                    .iter()
                    .map(|key| match self.tree.field(element, key) {
                        Some(v) if !self.tree.nil_or_empty(v) => self.tree.text(v),
                        _ => String::new(),
                    })
                    .collect();
                if !tuple.is_empty() && !out.contains(&tuple) {
                    out.push(tuple);
                }
            }
        }
        out
    }

    /// kyaml `elementPrimitiveValues`: the distinct scalar texts of a list of scalars.
    fn primitive_values(&self, dest: Id, origin: Option<Id>) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for source in [origin, Some(dest)].into_iter().flatten() {
            for item in self.tree.items(source) {
                let text = vec![self.tree.text(item)];
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
        out
    }

    /// kyaml `setAssociativeSequenceElements`: merges the elements key by key into a new list,
    /// then lays the target's elements over it (`appendListNode`).
    fn set_associative_elements(
        &mut self,
        mut values_list: Vec<Vec<String>>,
        keys: &[String],
        dest: Id,
        origin: Option<Id>,
        element_schema: Option<Schema>,
    ) -> Result<Option<Id>, PatchError> {
        let items_to_add = self.tree.push(Node::Seq(Vec::new()));
        if keys.len() > 1 {
            merge_values(&mut values_list);
        }
        let mut valid_keys: Vec<String> = Vec::new();
        let mut valid_values: Vec<String>;
        for values in &values_list {
            if values.is_empty() {
                continue;
            }
            (valid_keys, valid_values) = validate_keys(&values_list, values, keys);
            let (lookup_keys, lookup_values) = validate_keys(
                std::slice::from_ref(&valid_values),
                &valid_values,
                &valid_keys,
            );
            let dest_element = self.element_list(Some(dest), &lookup_keys, &lookup_values);
            let origin_element = self.element_list(origin, &lookup_keys, &lookup_values);
            self.path.push(element_label(&valid_keys, &valid_values));
            let merged = self.walk(element_schema, dest_element, origin_element);
            self.path.pop();
            let merged = merged?;

            let mut deleted = false;
            for (i, key) in valid_keys.iter().enumerate() {
                match merged {
                    Some(m) if !self.tree.empty_map(Some(m)) => {
                        let value = valid_values.get(i).cloned().unwrap_or_default();
                        if self.tree.field(m, key).is_none() && !value.is_empty() {
                            let scalar = self.tree.push(Node::Scalar(Value::String(value)));
                            self.tree.set_field(m, key, Some(scalar));
                        }
                    }
                    _ => {
                        self.element_setter(dest, None, &valid_keys, &valid_values)?;
                        deleted = true;
                    }
                }
            }
            if deleted {
                continue;
            }
            if let Some(merged) = merged {
                self.element_setter(items_to_add, Some(merged), &valid_keys, &valid_values)?;
            }
        }
        if values_list.is_empty() {
            return Ok(Some(dest));
        }
        self.append_list_node(items_to_add, dest, &valid_keys)?;
        Ok(Some(items_to_add))
    }

    /// kyaml `appendListNode(dst, src, keys)`: puts every element of `src` into `dst`, replacing
    /// the elements with the same keys.
    fn append_list_node(&mut self, dst: Id, src: Id, keys: &[String]) -> Result<(), PatchError> {
        for element in self.tree.items(src) {
            if keys.first().is_none_or(String::is_empty) {
                let text = self.tree.text(element);
                self.element_setter(dst, Some(element), &[String::new()], &[text])?;
                continue;
            }
            let mut values = Vec::new();
            for key in keys {
                match self.get_field(element, key)? {
                    None => {
                        if let Node::Seq(items) = self.tree.node_mut(dst) {
                            items.push(element);
                        }
                    }
                    Some(v) => values.push(self.tree.text(v)),
                }
            }
            if keys.len() > 1 {
                self.element_setter(dst, None, keys, &values)?;
            }
            self.element_setter(dst, Some(element), keys, &values)?;
        }
        Ok(())
    }

    /// kyaml `Get(key)` (a `FieldMatcher` by name only): errors on anything but a map or null.
    fn get_field(&self, element: Id, key: &str) -> Result<Option<Id>, PatchError> {
        match self.tree.node(element) {
            Node::Null { .. } => Ok(None),
            Node::Map(_) => Ok(self.tree.field(element, key)),
            _ => Err(self.element_kind_error(NodeKind::Map, element)),
        }
    }

    /// kyaml `ElementList` / `ElementMatcher`: the first element of `list` whose `keys` have
    /// exactly the texts `values`.
    fn element_list(&self, list: Option<Id>, keys: &[String], values: &[String]) -> Option<Id> {
        let list = list?;
        if !matches!(self.tree.node(list), Node::Seq(_)) {
            return None;
        }
        let empty = [String::new()];
        let keys = if keys.is_empty() { &empty[..] } else { keys };
        let values = if values.is_empty() {
            &empty[..]
        } else {
            values
        };
        let items = self.tree.items(list);
        if keys.first().is_none_or(String::is_empty) {
            let wanted = values.first().map_or("", String::as_str);
            return items.into_iter().find(|i| self.tree.text(*i) == wanted);
        }
        if keys.len() != values.len() {
            return None;
        }
        items.into_iter().find(|element| {
            self.tree.is_map(*element)
                && keys.iter().zip(values).all(|(key, value)| {
                    self.tree
                        .field(*element, key)
                        .is_some_and(|v| self.tree.text(v) == *value)
                })
        })
    }

    /// kyaml `ElementSetter`: rebuilds `list` without null and empty-map elements, replacing
    /// (or, when `element` is `None`, deleting) the elements matching `keys`/`values`, and
    /// appends `element` if none matched.
    fn element_setter(
        &mut self,
        list: Id,
        element: Option<Id>,
        keys: &[String],
        values: &[String],
    ) -> Result<(), PatchError> {
        let empty = [String::new()];
        let keys = if keys.is_empty() { &empty[..] } else { keys };
        let mapping_setter = keys.first().is_some_and(|k| !k.is_empty())
            && values.first().is_some_and(|v| !v.is_empty());
        let mut new_items = Vec::new();
        let mut found_any = false;
        for item in self.tree.items(list) {
            if self.tree.empty_map(Some(item)) {
                continue;
            }
            if mapping_setter && !self.tree.is_map(item) {
                new_items.push(item);
                continue;
            }
            let mut found = true;
            let mut matched = None;
            for (j, key) in keys.iter().enumerate() {
                if let Some(value) = values.get(j) {
                    matched = self.field_matcher(item, key, value)?;
                }
                if matched.is_none() {
                    found = false;
                    break;
                }
            }
            if !found {
                if !values.is_empty() {
                    new_items.push(item);
                }
                continue;
            }
            found_any = true;
            if let Some(element) = element {
                new_items.push(element);
            }
        }
        self.tree.set_items(list, new_items);
        if let Some(element) = element
            && !self.tree.missing_or_null(Some(element))
            && !found_any
            && let Node::Seq(items) = self.tree.node_mut(list)
        {
            items.push(element);
        }
        Ok(())
    }

    /// kyaml `FieldMatcher{Name: key, StringValue: value}`: the field `key` of a map element
    /// (with text `value` unless `value` is empty), or for an empty key the scalar element itself
    /// if its text is `value`.
    fn field_matcher(&self, item: Id, key: &str, value: &str) -> Result<Option<Id>, PatchError> {
        if key.is_empty() {
            return match self.tree.node(item) {
                Node::Map(_) | Node::Seq(_) => Err(self.element_kind_error(NodeKind::Scalar, item)),
                _ => Ok((self.tree.text(item) == value).then_some(item)),
            };
        }
        if !self.tree.is_map(item) {
            return Err(self.element_kind_error(NodeKind::Map, item));
        }
        Ok(self
            .tree
            .field(item, key)
            .filter(|v| value.is_empty() || self.tree.text(*v) == value))
    }

    fn element_kind_error(&self, expected: NodeKind, item: Id) -> PatchError {
        PatchError::NodeKindMismatch {
            path: self.path(),
            target: expected,
            patch: self.tree.kind(item),
        }
    }
}

/// The path label of a list element: `[name=web]`, `[containerPort=80,protocol=TCP]`, `[=x]`.
fn element_label(keys: &[String], values: &[String]) -> String {
    let pairs: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("[{}]", pairs.join(","))
}

/// kyaml `validateKeys`: the keys that have a value in some element (all keys if none has), and
/// this element's values for them.
fn validate_keys(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut valid: Vec<&String> = Vec::new();
    for vs in values_list {
        for (i, v) in vs.iter().enumerate() {
            if let Some(key) = keys.get(i)
                && !v.is_empty()
                && !valid.contains(&key)
            {
                valid.push(key);
            }
        }
    }
    if valid.is_empty() {
        return (keys.to_vec(), values.to_vec());
    }
    let valid_keys = keys.iter().filter(|k| valid.contains(k)).cloned().collect();
    let valid_values = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || keys.get(*i).is_some_and(|k| valid.contains(&k)))
        .map(|(_, v)| v.clone())
        .collect();
    (valid_keys, valid_values)
}

/// kyaml `mergeValues`: key tuples that agree wherever both have a value are the same element
/// (a port with and without `protocol`).
fn merge_values(values_list: &mut [Vec<String>]) {
    for i in 0..values_list.len() {
        let first = values_list[i].clone();
        for j in 0..values_list.len() {
            if let Some(merged) = match_values(&first, &values_list[j]) {
                values_list[i] = merged.clone();
                values_list[j] = merged;
            }
        }
    }
}

/// kyaml `match`: equal length, one position equal, and the others differing only by one side
/// being empty.
fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            out.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            out.push(x.clone());
        } else {
            out.push(y.clone());
        }
    }
    common.then_some(out)
}
