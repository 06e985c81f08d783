//! The only code that writes into the pod or a pod template: adds the volumes, mounts and env
//! vars of cloud identity and Flyte secrets ([`apply`]), writes and restores caller identity's
//! managed annotations and env vars ([`write_managed`], [`restore_managed`]), and checks that an
//! object has the shape these edits need ([`check_shape`]).
//!
//! Rules: edit the raw JSON in place, never replace or re-serialise an array,
//! never drop a key, append in a stable order, and leave whatever the user set
//! under the same name alone. After any call there are no duplicate env
//! names, volume names or mount paths that we introduced.

use serde_json::{json, Map, Value};

/// What one provider adds to a pod: volumes, their mounts in each
/// container, env vars, and managed pod metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// Human name for warnings, e.g. "AWS IRSA".
    pub provider: String,
    /// What the provider gives, for warnings: "identity" unless set.
    pub gives: String,
    /// Whole volume objects, `name` included. Added when at least one
    /// container receives the provider, unless a volume of that name exists.
    /// When it exists and both are `secret` volumes of the same `secretName`
    /// with `items` lists, the items whose `key` and `path` are both new are
    /// appended to it (Flyte's several keys of one group); an existing
    /// secret volume without `items` already projects every key.
    pub volumes: Vec<Value>,
    /// Read-only mounts added to every container not skipped.
    pub mounts: Vec<Mount>,
    /// Env var objects (`{"name", "value"}` or `{"name", "valueFrom"}`).
    /// Each group is added whole or not at all: when a container already
    /// sets any name of a group, none of it is added (AWS's pair rule).
    pub env_groups: Vec<Vec<Value>>,
    /// Container and init container names that get nothing.
    pub skip_containers: Vec<String>,
    /// When set, the only container and init container names that may get it (the pod's
    /// opt-in list); `skip_containers` still applies within it.
    pub only_containers: Option<Vec<String>>,
    /// Pod annotations this provider owns: always set to this value, so a
    /// user-supplied one is replaced (GCP's credential configuration).
    pub managed_annotations: Vec<(String, String)>,
    /// Pod labels added when absent (EKS Pod Identity's marker).
    pub labels: Vec<(String, String)>,
    /// Pod annotations added when absent: a user-supplied one is kept
    /// (Flyte's Vault Agent annotations).
    pub default_annotations: Vec<(String, String)>,
    /// Whole init container objects appended to `spec.initContainers` before
    /// any container is edited, so they receive this injection's mounts and
    /// env like every other container (Flyte's AWS and GCP secret pull
    /// containers). One whose name the pod already has is not added: a
    /// user's init container is never replaced.
    pub init_containers: Vec<Value>,
    /// Mounts like `mounts`, but writable: written without `readOnly`
    /// (GCP's gcloud configuration directory).
    pub writable_mounts: Vec<Mount>,
    /// Groups of env names. A container that already sets at least one name
    /// of every group is configured already: it gets nothing of this
    /// injection, no env and no mount, yet counts as receiving it, so the
    /// pod still gets the volumes (the AWS webhook's rule, its
    /// `rawPodHasAll` test).
    pub complete_when: &'static [&'static [&'static str]],
    /// The env vars whose value is the identity itself (the role, the client id, the email):
    /// a container that sets one to another value carries another identity, which the
    /// validating instance reports ([`identity_mismatches`]).
    pub identity_env: &'static [&'static str],
}

/// A read-only mount of one of the injection's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub path: String,
}

impl Injection {
    /// Whether the container or init container `name` may get it: opted in (when the pod has an
    /// opt-in list) and not skipped.
    pub fn applies_to(&self, name: &str) -> bool {
        let opted_in = self
            .only_containers
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name));
        opted_in && !self.skip_containers.iter().any(|skip| skip == name)
    }

    /// An injection with nothing in it yet.
    pub fn new(provider: impl Into<String>) -> Injection {
        Injection {
            provider: provider.into(),
            gives: "identity".to_string(),
            volumes: Vec::new(),
            mounts: Vec::new(),
            env_groups: Vec::new(),
            skip_containers: Vec::new(),
            only_containers: None,
            managed_annotations: Vec::new(),
            labels: Vec::new(),
            default_annotations: Vec::new(),
            init_containers: Vec::new(),
            writable_mounts: Vec::new(),
            complete_when: &[],
            identity_env: &[],
        }
    }
}

/// `{"name": name, "value": value}`.
pub fn env_value(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// A field of the pod has a JSON type Kubernetes does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedPod {
    pub path: String,
    pub expected: &'static str,
}

impl std::fmt::Display for MalformedPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not {}", self.path, self.expected)
    }
}

/// Where a field is, for messages (`spec.containers[0].env`): formatted
/// only when a message is written, never on the way.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    path: &'a str,
    index: Option<usize>,
    field: Option<&'a str>,
}

impl<'a> At<'a> {
    const fn path(path: &'a str) -> At<'a> {
        At {
            path,
            index: None,
            field: None,
        }
    }
    const fn item(list: &'a str, index: usize) -> At<'a> {
        At {
            path: list,
            index: Some(index),
            field: None,
        }
    }
    const fn field(self, field: &'a str) -> At<'a> {
        At {
            field: Some(field),
            ..self
        }
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        if let Some(field) = self.field {
            write!(f, ".{field}")?;
        }
        Ok(())
    }
}

/// `spec.containers` or `spec.initContainers`.
fn list_path(list: &str) -> &'static str {
    if list == "containers" {
        "spec.containers"
    } else {
        "spec.initContainers"
    }
}

/// Applies the injections to the pod object. Returns whether anything
/// changed; warnings (prefixed with `pod_ref`) explain what was skipped.
pub fn apply(
    pod: &mut Value,
    injections: &[Injection],
    pod_ref: &str,
    warnings: &mut Vec<String>,
) -> Result<bool, MalformedPod> {
    let mut changed = false;
    for injection in injections {
        let spec = pod
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| malformed("spec", "an object"))?;
        if !injection.init_containers.is_empty() {
            let list = ensure_list(spec, "initContainers", At::path("spec.initContainers"))?;
            for init in &injection.init_containers {
                let name = name_of(init);
                if !list.iter().any(|c| name_of(c) == name) {
                    list.push(init.clone());
                    changed = true;
                }
            }
        }
        let mut received = false;
        for_each_container(spec, |container, at| {
            match inject_container(container, injection, at)? {
                Outcome::Skipped => {}
                Outcome::Conflict { name, volume, at } => warnings.push(format!(
                    "pod {pod_ref}: container {name:?} already mounts volume {volume:?} at {at:?}; {} {} not injected into it",
                    injection.provider, injection.gives
                )),
                Outcome::Injected { changed: c } => {
                    received = true;
                    changed |= c;
                }
            }
            Ok(())
        })?;
        // A managed annotation is the provider's, whether or not any
        // container receives the provider: a user-supplied one never stays.
        changed |= set_metadata(pod, "annotations", &injection.managed_annotations, true)?;
        if !received {
            continue;
        }
        let spec = pod
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| malformed("spec", "an object"))?;
        // An env-only injection (Flyte's ENV_VAR secrets) adds no `volumes: []`.
        let volumes = if injection.volumes.is_empty() {
            &mut Vec::new()
        } else {
            ensure_list(spec, "volumes", At::path("spec.volumes"))?
        };
        for volume in &injection.volumes {
            let name = name_of(volume);
            let at = volumes.iter().position(|v| name_of(v) == name);
            match at.and_then(|at| Some((at, volumes.get_mut(at)?))) {
                None => {
                    volumes.push(volume.clone());
                    changed = true;
                }
                Some((at, existing)) => {
                    let path = At::item("spec.volumes", at).field("secret.items");
                    changed |= merge_secret_items(existing, volume, path)?;
                }
            }
        }
        changed |= set_metadata(pod, "annotations", &injection.managed_annotations, true)?;
        changed |= set_metadata(pod, "annotations", &injection.default_annotations, false)?;
        changed |= set_metadata(pod, "labels", &injection.labels, false)?;
    }
    Ok(changed)
}

/// Appends to `existing.secret.items` the items of `wanted.secret.items`
/// whose `key` and `path` it does not have yet, when both volumes project
/// the same Secret. Anything else about the existing volume is kept.
fn merge_secret_items(
    existing: &mut Value,
    wanted: &Value,
    path: At,
) -> Result<bool, MalformedPod> {
    let secret_name = |v: &Value| {
        v.pointer("/secret/secretName")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let Some(items) = wanted.pointer("/secret/items").and_then(Value::as_array) else {
        return Ok(false);
    };
    if secret_name(wanted).is_none() || secret_name(existing) != secret_name(wanted) {
        return Ok(false);
    }
    let Some(current) = existing
        .get_mut("secret")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.get_mut("items"))
    else {
        return Ok(false);
    };
    let current = match current {
        Value::Null => return Ok(false),
        Value::Array(list) => list,
        _ => return Err(malformed(path, "a list")),
    };
    let mut changed = false;
    for item in items {
        let taken = |field: &str| {
            let value = item.get(field);
            current.iter().any(|c| c.get(field) == value)
        };
        if !taken("key") && !taken("path") {
            current.push(item.clone());
            changed = true;
        }
    }
    Ok(changed)
}

/// Sets `metadata.<field>[key] = value` for each pair; `replace` decides
/// whether an existing different value is overwritten.
fn set_metadata(
    pod: &mut Value,
    field: &str,
    pairs: &[(String, String)],
    replace: bool,
) -> Result<bool, MalformedPod> {
    if pairs.is_empty() {
        return Ok(false);
    }
    let pod = pod
        .as_object_mut()
        .ok_or_else(|| malformed("object", "an object"))?;
    let metadata = ensure_object(pod, "metadata", At::path("metadata"))?;
    let map = ensure_object(metadata, field, At::path("metadata").field(field))?;
    let mut changed = false;
    for (key, value) in pairs {
        let current = map.get(key).and_then(Value::as_str);
        if current == Some(value.as_str()) || (current.is_some() && !replace) {
            continue;
        }
        map.insert(key.clone(), Value::String(value.clone()));
        changed = true;
    }
    Ok(changed)
}

/// Writes caller identity into a pod or pod template (`metadata` + `spec`):
/// each managed annotation and env var gets exactly the given value, or is
/// removed when the value is `None` (a managed key is never left forged).
/// Env vars are set in every container and init container; a duplicate of a
/// managed name is dropped so exactly one remains.
pub fn write_managed(
    template: &mut Value,
    annotations: &[(String, Option<String>)],
    env: &[(String, Option<String>)],
) -> Result<bool, MalformedPod> {
    let root = template
        .as_object_mut()
        .ok_or_else(|| malformed("pod template", "an object"))?;
    let mut changed = false;
    if !annotations.is_empty() {
        let any_value = annotations.iter().any(|(_, v)| v.is_some());
        let has_annotations = root
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .is_some_and(|a| !a.is_null());
        if any_value || has_annotations {
            let metadata = ensure_object(root, "metadata", At::path("metadata"))?;
            let map = ensure_object(metadata, "annotations", At::path("metadata.annotations"))?;
            for (key, value) in annotations {
                match value {
                    Some(v) => {
                        if map.get(key).and_then(Value::as_str) != Some(v.as_str()) {
                            map.insert(key.clone(), Value::String(v.clone()));
                            changed = true;
                        }
                    }
                    None => changed |= map.remove(key).is_some(),
                }
            }
        }
    }
    if env.is_empty() {
        return Ok(changed);
    }
    let spec = root
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("spec", "an object"))?;
    for_each_container(spec, |container, at| {
        for (name, value) in env {
            changed |= set_env(container, name, value.as_deref(), at)?;
        }
        Ok(())
    })?;
    Ok(changed)
}

/// Calls `edit` on every container, then every init container, with where
/// it is for messages (`spec.containers[0]`).
fn for_each_container(
    spec: &mut Map<String, Value>,
    mut edit: impl FnMut(&mut Map<String, Value>, At) -> Result<(), MalformedPod>,
) -> Result<(), MalformedPod> {
    for list in ["containers", "initContainers"] {
        let Some(containers) = existing_list(spec, list, At::path(list_path(list)))? else {
            continue;
        };
        for (index, container) in containers.iter_mut().enumerate() {
            let at = At::item(list_path(list), index);
            let container = container
                .as_object_mut()
                .ok_or_else(|| malformed(at, "an object"))?;
            edit(container, at)?;
        }
    }
    Ok(())
}

/// Where a container the injection applies to sets one of its identity env vars
/// ([`Injection::identity_env`]) to another value than the injection's, one message each
/// (`container "app": AWS_ROLE_ARN is "...", not "..."`). Only reads the pod.
pub fn identity_mismatches(pod: &Value, injection: &Injection) -> Vec<String> {
    let wanted = |name: &str| {
        injection
            .env_groups
            .iter()
            .flatten()
            .find(|e| name_of(e) == Some(name))
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str)
    };
    let mut mismatches = Vec::new();
    for list in ["containers", "initContainers"] {
        let containers = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for container in containers {
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            if !injection.applies_to(name) {
                continue;
            }
            let env = container
                .get("env")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for identity in injection.identity_env {
                let (Some(expected), Some(entry)) = (
                    wanted(identity),
                    env.iter().find(|e| name_of(e) == Some(*identity)),
                ) else {
                    continue;
                };
                match entry.get("value").and_then(Value::as_str) {
                    Some(value) if value == expected => {}
                    Some(value) => mismatches.push(format!(
                        "container {name:?}: {identity} is {value:?}, not {expected:?}"
                    )),
                    None => mismatches.push(format!(
                        "container {name:?}: {identity} is not {expected:?} (set from valueFrom or empty)"
                    )),
                }
            }
        }
    }
    mismatches
}

/// Puts back exactly what `old` (the previous version of the template) had
/// under the managed annotation keys and env names: per annotation, its old
/// value or nothing; per container (matched by list and name), its old
/// managed env entries, whole (`valueFrom` included) and in their old order.
/// Nothing is written where the template already agrees with `old`.
pub fn restore_managed(
    template: &mut Value,
    old: &Value,
    annotation_keys: &[String],
    env_names: &[String],
) -> Result<bool, MalformedPod> {
    let old_annotation = |key: &str| {
        old.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let annotations: Vec<(String, Option<String>)> = annotation_keys
        .iter()
        .map(|k| (k.clone(), old_annotation(k)))
        .collect();
    let mut changed = write_managed(template, &annotations, &[])?;
    if env_names.is_empty() {
        return Ok(changed);
    }
    let managed = |e: &Value| name_of(e).is_some_and(|n| env_names.iter().any(|m| m == n));
    let root = template
        .as_object_mut()
        .ok_or_else(|| malformed("pod template", "an object"))?;
    let spec = root
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("spec", "an object"))?;
    for list in ["containers", "initContainers"] {
        let Some(containers) = existing_list(spec, list, At::path(list_path(list)))? else {
            continue;
        };
        let old_list = old
            .get("spec")
            .and_then(|s| s.get(list))
            .and_then(Value::as_array);
        for (index, container) in containers.iter_mut().enumerate() {
            let at = At::item(list_path(list), index);
            let container = container
                .as_object_mut()
                .ok_or_else(|| malformed(at, "an object"))?;
            let name = container.get("name").and_then(Value::as_str);
            let wanted: Vec<Value> = old_list
                .into_iter()
                .flatten()
                .find(|c| c.get("name").and_then(Value::as_str) == name)
                .and_then(|c| c.get("env"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| managed(e))
                .cloned()
                .collect();
            let env_path = at.field("env");
            let current: Vec<&Value> = existing_list(container, "env", env_path)?
                .map(|env| env.iter().filter(|e| managed(e)).collect())
                .unwrap_or_default();
            if current.len() == wanted.len() && current.iter().zip(&wanted).all(|(a, b)| *a == b) {
                continue;
            }
            if let Some(env) = existing_list(container, "env", env_path)? {
                env.retain(|e| !managed(e));
            }
            if !wanted.is_empty() {
                ensure_list(container, "env", env_path)?.extend(wanted);
            }
            changed = true;
        }
    }
    Ok(changed)
}

/// Makes `name` appear exactly once with `value` (or not at all).
fn set_env(
    container: &mut Map<String, Value>,
    name: &str,
    value: Option<&str>,
    at: At,
) -> Result<bool, MalformedPod> {
    let env_path = at.field("env");
    let wanted = value.map(|v| env_value(name, v));
    let Some(env) = existing_list(container, "env", env_path)? else {
        return match wanted {
            Some(entry) => {
                ensure_list(container, "env", env_path)?.push(entry);
                Ok(true)
            }
            None => Ok(false),
        };
    };
    let positions: Vec<usize> = env
        .iter()
        .enumerate()
        .filter(|(_, e)| name_of(e) == Some(name))
        .map(|(i, _)| i)
        .collect();
    match (wanted, positions.split_first()) {
        (None, _) => {
            env.retain(|e| name_of(e) != Some(name));
            Ok(!positions.is_empty())
        }
        (Some(entry), None) => {
            env.push(entry);
            Ok(true)
        }
        (Some(entry), Some((&first, rest))) => {
            let mut changed = !rest.is_empty();
            if let Some(slot) = env.get_mut(first) {
                if *slot != entry {
                    *slot = entry;
                    changed = true;
                }
            }
            let mut index = 0;
            env.retain(|_| {
                let keep = !rest.contains(&index);
                index += 1;
                keep
            });
            Ok(changed)
        }
    }
}

/// Checks, before any lookup, that every list the policy may write into has
/// the JSON type Kubernetes requires, so a malformed pod is denied (400)
/// without a host call and never half-edited.
pub fn check_shape(pod: &Value) -> Result<(), MalformedPod> {
    if let Some(metadata) = pod.get("metadata").filter(|m| !m.is_null()) {
        let metadata = metadata
            .as_object()
            .ok_or_else(|| malformed(At::path("metadata"), "an object"))?;
        for field in ["annotations", "labels"] {
            match metadata.get(field) {
                None | Some(Value::Null) | Some(Value::Object(_)) => {}
                Some(_) => return Err(malformed(At::path("metadata").field(field), "an object")),
            }
        }
    }
    let spec = pod
        .get("spec")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("spec", "an object"))?;
    let list = |value: Option<&Value>, at: At| -> Result<(), MalformedPod> {
        match value {
            None | Some(Value::Null) | Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(malformed(at, "a list")),
        }
    };
    list(spec.get("volumes"), At::path("spec.volumes"))?;
    for key in ["containers", "initContainers"] {
        list(spec.get(key), At::path(list_path(key)))?;
        let containers = spec.get(key).and_then(Value::as_array);
        for (index, container) in containers.into_iter().flatten().enumerate() {
            let at = At::item(list_path(key), index);
            let container = container
                .as_object()
                .ok_or_else(|| malformed(at, "an object"))?;
            list(container.get("env"), at.field("env"))?;
            list(container.get("volumeMounts"), at.field("volumeMounts"))?;
        }
    }
    Ok(())
}

enum Outcome {
    Skipped,
    Conflict {
        name: String,
        volume: String,
        at: String,
    },
    Injected {
        changed: bool,
    },
}

fn inject_container(
    container: &mut Map<String, Value>,
    injection: &Injection,
    at: At,
) -> Result<Outcome, MalformedPod> {
    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
    if !injection.applies_to(name) {
        return Ok(Outcome::Skipped);
    }
    let mounts_path = at.field("volumeMounts");
    let env_path = at.field("env");
    if !injection.complete_when.is_empty() {
        let env = existing_list_ref(container, "env", env_path)?;
        let sets =
            |wanted: &str| env.is_some_and(|env| env.iter().any(|e| name_of(e) == Some(wanted)));
        if injection
            .complete_when
            .iter()
            .all(|group| group.iter().any(|n| sets(n)))
        {
            return Ok(Outcome::Injected { changed: false });
        }
    }
    let mut missing_mounts = Vec::new();
    {
        let existing = existing_list_ref(container, "volumeMounts", mounts_path)?;
        let existing: &[Value] = existing.map(Vec::as_slice).unwrap_or(&[]);
        let wanted_mounts = injection.mounts.iter().map(|m| (m, true));
        let wanted_mounts =
            wanted_mounts.chain(injection.writable_mounts.iter().map(|m| (m, false)));
        for (wanted, read_only) in wanted_mounts {
            let target = trim_path(&wanted.path);
            let mut present = false;
            for mount in existing {
                let mount_name = name_of(mount).unwrap_or("");
                if mount_name == wanted.volume {
                    present = true;
                } else if mount
                    .get("mountPath")
                    .and_then(Value::as_str)
                    .map(trim_path)
                    == Some(target)
                {
                    return Ok(Outcome::Conflict {
                        name: name.to_string(),
                        volume: mount_name.to_string(),
                        at: wanted.path.clone(),
                    });
                }
            }
            if !present {
                missing_mounts.push((wanted, read_only));
            }
        }
    }
    // Validate env before writing anything, so a malformed container is left untouched.
    let groups_to_add: Vec<&Vec<Value>> = {
        let env = existing_list_ref(container, "env", env_path)?;
        env_groups_to_add(&injection.env_groups, |wanted| {
            env.is_some_and(|env| env.iter().any(|e| name_of(e) == wanted))
        })
    };
    let mut changed = false;
    if !missing_mounts.is_empty() {
        let mounts = ensure_list(container, "volumeMounts", mounts_path)?;
        for (wanted, read_only) in missing_mounts {
            let mut mount = Map::new();
            mount.insert("name".to_string(), wanted.volume.clone().into());
            mount.insert("mountPath".to_string(), wanted.path.clone().into());
            if read_only {
                mount.insert("readOnly".to_string(), Value::Bool(true));
            }
            mounts.push(Value::Object(mount));
        }
        changed = true;
    }
    if !groups_to_add.is_empty() {
        let env = ensure_list(container, "env", env_path)?;
        env.extend(groups_to_add.into_iter().flatten().cloned());
        changed = true;
    }
    Ok(Outcome::Injected { changed })
}

fn trim_path(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

/// The env groups of one injection a container receives: each whole, or none of it when the
/// container already sets one of its names (`present`, asked of the container as it was before
/// this injection: two groups of one injection never exclude each other).
fn env_groups_to_add(
    groups: &[Vec<Value>],
    present: impl Fn(Option<&str>) -> bool,
) -> Vec<&Vec<Value>> {
    groups
        .iter()
        .filter(|group| !group.iter().any(|e| present(name_of(e))))
        .collect()
}

/// An item's `name` (a container's, a volume's, a mount's, an env var's).
fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

fn malformed(at: impl std::fmt::Display, expected: &'static str) -> MalformedPod {
    MalformedPod {
        path: at.to_string(),
        expected,
    }
}

/// The list under `key`, if present; `null` counts as absent.
fn existing_list<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    at: At,
) -> Result<Option<&'a mut Vec<Value>>, MalformedPod> {
    match obj.get_mut(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(_) => Err(malformed(at, "a list")),
    }
}

/// [`existing_list`], read-only.
fn existing_list_ref<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: At,
) -> Result<Option<&'a Vec<Value>>, MalformedPod> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(_) => Err(malformed(at, "a list")),
    }
}

/// The object under `key`, created empty when absent or `null`.
fn ensure_object<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    at: At,
) -> Result<&'a mut Map<String, Value>, MalformedPod> {
    // Looked up first: the key is only copied when it is added.
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), Value::Object(Map::new()));
    }
    obj.get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(at, "an object"))
}

/// The list under `key`, created empty when absent or `null`.
fn ensure_list<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    at: At,
) -> Result<&'a mut Vec<Value>, MalformedPod> {
    // Looked up first: the key is only copied when it is added.
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), Value::Array(Vec::new()));
    }
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| malformed(at, "a list"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injection() -> Injection {
        Injection {
            volumes: vec![json!({"name": "tok", "projected": {"sources": []}})],
            mounts: vec![Mount {
                volume: "tok".to_string(),
                path: "/var/run/tok".to_string(),
            }],
            env_groups: vec![
                vec![env_value("A", "1"), env_value("B", "2")],
                vec![env_value("C", "3")],
            ],
            skip_containers: vec!["skipme".to_string()],
            ..Injection::new("Test")
        }
    }

    /// Applies `injection`, checks that a second application changes nothing, and says whether
    /// the first changed the pod.
    fn apply_idempotent(pod: &mut Value, injection: &Injection) -> bool {
        let injections = std::slice::from_ref(injection);
        let changed = apply(pod, injections, "ns/p", &mut Vec::new()).unwrap();
        assert!(
            !apply(pod, injections, "ns/p", &mut Vec::new()).unwrap(),
            "a second application changed {pod}"
        );
        changed
    }

    fn run(mut pod: Value) -> (Value, bool, Vec<String>) {
        let mut warnings = Vec::new();
        let changed = apply(&mut pod, &[injection()], "ns/p", &mut warnings).unwrap();
        (pod, changed, warnings)
    }

    #[test]
    fn adds_volume_mount_and_env_creating_missing_lists() {
        let (pod, changed, warnings) = run(json!({"spec": {"containers": [{"name": "app"}]}}));
        assert!(changed);
        assert!(warnings.is_empty());
        assert_eq!(
            pod,
            json!({"spec": {
                "containers": [{
                    "name": "app",
                    "volumeMounts": [{"name": "tok", "mountPath": "/var/run/tok", "readOnly": true}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
                }],
                "volumes": [{"name": "tok", "projected": {"sources": []}}]
            }})
        );
    }

    #[test]
    fn second_application_changes_nothing() {
        let (once, _, _) = run(
            json!({"spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "init"}]}}),
        );
        let (twice, changed, _) = run(once.clone());
        assert!(!changed);
        assert_eq!(once, twice);
    }

    #[test]
    fn env_groups_are_added_whole_or_not_at_all_against_the_container_as_it_was() {
        let groups = vec![
            vec![env_value("A", "1"), env_value("B", "2")],
            vec![env_value("C", "3")],
            // Shares a name with the first group: both are added (the container had neither).
            vec![env_value("A", "4"), env_value("D", "5")],
        ];
        fn names(added: Vec<&Vec<Value>>) -> Vec<&str> {
            added.into_iter().flatten().filter_map(name_of).collect()
        }
        assert_eq!(
            names(env_groups_to_add(&groups, |_| false)),
            ["A", "B", "C", "A", "D"]
        );
        assert_eq!(
            names(env_groups_to_add(&groups, |n| n == Some("B"))),
            ["C", "A", "D"]
        );
        assert_eq!(names(env_groups_to_add(&groups, |n| n == Some("A"))), ["C"]);
        assert!(env_groups_to_add(&groups, |_| true).is_empty());
    }

    #[test]
    fn a_group_is_skipped_whole_when_one_name_exists_and_user_values_are_kept() {
        let (pod, _, _) = run(json!({"spec": {"containers": [
            {"name": "app", "env": [{"name": "B", "value": "mine"}]}
        ]}}));
        assert_eq!(
            pod["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "mine"}, {"name": "C", "value": "3"}])
        );
    }

    #[test]
    fn existing_mount_of_same_name_is_kept_even_elsewhere() {
        let (pod, _, _) = run(json!({"spec": {"containers": [
            {"name": "app", "volumeMounts": [{"name": "tok", "mountPath": "/elsewhere"}]}
        ], "volumes": [{"name": "tok", "emptyDir": {}}]}}));
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "tok", "mountPath": "/elsewhere"}])
        );
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "tok", "emptyDir": {}}])
        );
    }

    #[test]
    fn other_volume_at_target_path_skips_container_with_warning() {
        let (pod, changed, warnings) = run(json!({"spec": {"containers": [
            {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/var/run/tok/"}]}
        ]}}));
        assert!(!changed);
        assert_eq!(pod["spec"].get("volumes"), None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("\"app\"") && warnings[0].contains("\"data\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn skipped_containers_get_nothing_and_unknown_fields_survive() {
        let (pod, _, _) = run(json!({"spec": {
            "futureField": {"x": 1},
            "containers": [{"name": "skipme"}],
            "initContainers": [{"name": "sidecar", "restartPolicy": "Always", "newKey": [1]}]
        }}));
        assert_eq!(pod["spec"]["containers"][0], json!({"name": "skipme"}));
        assert_eq!(pod["spec"]["futureField"], json!({"x": 1}));
        assert_eq!(pod["spec"]["initContainers"][0]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["initContainers"][0]["newKey"], json!([1]));
        assert_eq!(pod["spec"]["initContainers"][0]["env"][0]["name"], "A");
    }

    fn secret_volume(items: Value) -> Value {
        json!({"name": "s", "secret": {"secretName": "db", "items": items}})
    }

    #[test]
    fn secret_items_are_merged_once_and_user_volumes_kept() {
        let wanted = Injection {
            volumes: vec![secret_volume(
                json!([{"key": "a", "path": "a"}, {"key": "b", "path": "b"}]),
            )],
            ..Injection::new("Test")
        };
        let apply_to = |volumes: Value| {
            let mut pod = json!({"spec": {"containers": [{"name": "c"}], "volumes": volumes}});
            let changed = apply(
                &mut pod,
                std::slice::from_ref(&wanted),
                "ns/p",
                &mut Vec::new(),
            )
            .unwrap();
            (pod["spec"]["volumes"].clone(), changed)
        };
        // Missing items appended; an item with the same key or path is the user's.
        assert_eq!(
            apply_to(json!([secret_volume(
                json!([{"key": "a", "path": "x"}, {"key": "z", "path": "b"}])
            )])),
            (
                json!([secret_volume(
                    json!([{"key": "a", "path": "x"}, {"key": "z", "path": "b"}])
                )]),
                false
            )
        );
        assert_eq!(
            apply_to(json!([secret_volume(
                json!([{"key": "a", "path": "a", "mode": 256}])
            )])),
            (
                json!([secret_volume(
                    json!([{"key": "a", "path": "a", "mode": 256}, {"key": "b", "path": "b"}])
                )]),
                true
            )
        );
        // No items: every key is projected already. Another Secret or kind: kept as is.
        for kept in [
            json!({"name": "s", "secret": {"secretName": "db"}}),
            json!({"name": "s", "secret": {"secretName": "other", "items": []}}),
            json!({"name": "s", "emptyDir": {}}),
        ] {
            assert_eq!(apply_to(json!([kept.clone()])), (json!([kept]), false));
        }
        let mut pod =
            json!({"spec": {"containers": [{"name": "c"}], "volumes": [secret_volume(json!(3))]}});
        let err = apply(&mut pod, &[wanted], "ns/p", &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.volumes[0].secret.items is not a list"
        );
    }

    #[test]
    fn default_annotations_keep_the_users_and_env_only_adds_no_volumes() {
        let injection = Injection {
            env_groups: vec![vec![env_value("A", "1")]],
            default_annotations: vec![
                ("mine".to_string(), "policy".to_string()),
                ("new".to_string(), "policy".to_string()),
            ],
            ..Injection::new("Test")
        };
        let mut pod = json!({"metadata": {"annotations": {"mine": "user"}}, "spec": {"containers": [{"name": "c"}]}});
        assert!(apply_idempotent(&mut pod, &injection));
        assert_eq!(
            pod["metadata"]["annotations"],
            json!({"mine": "user", "new": "policy"})
        );
        assert_eq!(pod["spec"].get("volumes"), None);
    }

    #[test]
    fn init_containers_come_first_and_receive_the_injection() {
        let injection = Injection {
            volumes: vec![json!({"name": "v", "emptyDir": {}})],
            mounts: vec![Mount {
                volume: "v".to_string(),
                path: "/ro".to_string(),
            }],
            writable_mounts: vec![Mount {
                volume: "w".to_string(),
                path: "/rw".to_string(),
            }],
            env_groups: vec![vec![env_value("A", "1")]],
            init_containers: vec![
                json!({"name": "pull", "volumeMounts": [{"name": "v", "mountPath": "/tmp"}]}),
                json!({"name": "mine", "image": "policy"}),
            ],
            ..Injection::new("Test")
        };
        let mut pod = json!({"spec": {"initContainers": [{"name": "mine", "image": "user"}],
            "containers": [{"name": "c"}]}});
        assert!(apply_idempotent(&mut pod, &injection));
        assert_eq!(
            pod["spec"]["initContainers"],
            json!([
                {"name": "mine", "image": "user", "env": [{"name": "A", "value": "1"}], "volumeMounts": [
                    {"name": "v", "mountPath": "/ro", "readOnly": true}, {"name": "w", "mountPath": "/rw"}]},
                {"name": "pull", "env": [{"name": "A", "value": "1"}], "volumeMounts": [
                    {"name": "v", "mountPath": "/tmp"}, {"name": "w", "mountPath": "/rw"}]},
            ])
        );
    }

    #[test]
    fn a_complete_container_gets_nothing_but_the_pod_gets_the_volume() {
        let injection = Injection {
            complete_when: &[&["A", "B"], &["C"]],
            ..injection()
        };
        let mut pod = json!({"spec": {"containers": [
            {"name": "done", "env": [{"name": "B", "value": "x"}, {"name": "C", "value": "y"}]},
        ]}});
        let before = pod["spec"]["containers"].clone();
        assert!(apply_idempotent(&mut pod, &injection));
        assert_eq!(pod["spec"]["containers"], before);
        assert_eq!(pod["spec"]["volumes"][0]["name"], "tok");
        // One group unset: the usual rules (A and B are a pair, C is set).
        let mut pod = json!({"spec": {"containers": [{"name": "half", "env": [{"name": "B", "value": "x"}]}]}});
        apply(&mut pod, &[injection], "ns/p", &mut Vec::new()).unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "x"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "tok"
        );
    }

    #[test]
    fn null_lists_count_as_absent() {
        let (pod, changed, _) = run(
            json!({"spec": {"containers": [{"name": "a", "env": null, "volumeMounts": null}], "volumes": null}}),
        );
        assert!(changed);
        assert_eq!(pod["spec"]["volumes"][0]["name"], "tok");
    }

    #[test]
    fn managed_values_are_set_replaced_deduplicated_or_removed() {
        let mut pod = json!({"metadata": {"annotations": {"who": "forged", "keep": "x"}},
            "spec": {"containers": [
                {"name": "a", "env": [{"name": "SUB", "value": "forged"}, {"name": "OTHER", "value": "1"}, {"name": "SUB", "valueFrom": {}}]},
                {"name": "b"}
            ], "initContainers": [{"name": "i", "env": [{"name": "GONE", "value": "x"}]}]}});
        let annotations = [
            ("who".to_string(), Some("alice".to_string())),
            ("team".to_string(), None),
        ];
        let env = [
            ("SUB".to_string(), Some("u-1".to_string())),
            ("GONE".to_string(), None),
        ];
        assert!(write_managed(&mut pod, &annotations, &env).unwrap());
        assert_eq!(
            pod,
            json!({"metadata": {"annotations": {"who": "alice", "keep": "x"}},
                "spec": {"containers": [
                    {"name": "a", "env": [{"name": "SUB", "value": "u-1"}, {"name": "OTHER", "value": "1"}]},
                    {"name": "b", "env": [{"name": "SUB", "value": "u-1"}]}
                ], "initContainers": [{"name": "i", "env": [{"name": "SUB", "value": "u-1"}]}]}})
        );
        assert!(!write_managed(&mut pod, &annotations, &env).unwrap());
    }

    #[test]
    fn restore_puts_back_each_containers_own_entries() {
        let old = json!({"metadata": {"annotations": {"who": "alice"}}, "spec": {"containers": [
            {"name": "a", "env": [{"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
            {"name": "b"}
        ]}});
        // Unchanged apart from the stamp: nothing to write, even though
        // container b has no managed entry.
        let mut same = old.clone();
        let keys = ["who".to_string()];
        let names = ["WHO".to_string()];
        assert!(!restore_managed(&mut same, &old, &keys, &names).unwrap());
        assert_eq!(same, old);
        // Tampered: the old values come back, whole, and b gets nothing.
        let mut tampered = json!({"metadata": {"annotations": {"who": "mallory"}}, "spec": {"containers": [
            {"name": "a", "env": [{"name": "WHO", "value": "mallory"}]},
            {"name": "b", "env": [{"name": "WHO", "value": "mallory"}]}
        ]}});
        assert!(restore_managed(&mut tampered, &old, &keys, &names).unwrap());
        assert_eq!(
            tampered,
            json!({"metadata": {"annotations": {"who": "alice"}}, "spec": {"containers": [
                {"name": "a", "env": [{"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
                {"name": "b", "env": []}
            ]}})
        );
    }

    #[test]
    fn removing_absent_managed_values_creates_nothing() {
        let mut pod = json!({"metadata": {}, "spec": {"containers": [{"name": "a"}]}});
        let before = pod.clone();
        let none = [("who".to_string(), None)];
        assert!(!write_managed(&mut pod, &none, &none).unwrap());
        assert_eq!(pod, before);
    }

    #[test]
    fn wrongly_typed_fields_are_reported_by_path() {
        let cases = [
            (json!({"spec": "x"}), "spec is not an object"),
            (
                json!({"spec": {"containers": {}}}),
                "spec.containers is not a list",
            ),
            (
                json!({"spec": {"containers": [1]}}),
                "spec.containers[0] is not an object",
            ),
            (
                json!({"spec": {"containers": [{"env": "x"}]}}),
                "spec.containers[0].env is not a list",
            ),
            (
                json!({"spec": {"containers": [{"name": "a"}], "volumes": 3}}),
                "spec.volumes is not a list",
            ),
        ];
        for (mut pod, expected) in cases {
            assert_eq!(check_shape(&pod).unwrap_err().to_string(), expected);
            let err = apply(&mut pod, &[injection()], "ns/p", &mut Vec::new()).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        assert_eq!(
            check_shape(&json!({"spec": {"containers": [{"env": null}], "volumes": []}})),
            Ok(())
        );
    }
}
