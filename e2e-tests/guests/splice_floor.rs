//! The benches' splice-floor guest: an experiment (BENCHMARKS.md, issue #12) that measures what
//! the "no document" design would cost, before anyone rewrites the policy for it.
//!
//! It gives the policy's exact answer on `caller-pod-create-stamped` (a Pod CREATE by an
//! untrusted requester, caller identity on, every cloud off) and on the cloud-identity pod rows
//! (`aws-basic-default-sa`, `both-providers`, the 10-container pod) without building a document
//! of the pod: the payload is read with borrowed strings and the pod kept as raw JSON text
//! (`serde_json::value::RawValue`); the settings are decoded by the policy's own
//! `Settings::from_payload_text` (kept for the next payload with the same text, as the policy
//! does). Caller identity: the stamp is the policy's own `caller::stamp_for`, and only
//! `metadata.annotations` and the containers' `env` are written. Cloud identity: our one
//! ServiceAccount lookup, the policy's own providers resolving the injections from a document of
//! the pod's `metadata` alone, then volumes, read-only mounts and env groups spliced in. Every
//! untouched member is copied verbatim. Anything else (another kind, a trusted requester, an
//! UPDATE, escaped keys, a conflict, a warning, a malformed pod) is answered with an error: this
//! is a bound, not a policy. The bench checks it answers a row exactly as the policy does before
//! timing it.
//!
//! Its `wapc_init` registers the same three functions as the policy's (`src/lib.rs`), as the
//! document floor's does, so the SDK's waPC runtime costs it what it costs ours.
//!
//! Built by `make splice-floor.wasm` (`cargo build --example splice-floor-guest`); natively empty.

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod wapc {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use serde_json::Value;
    use workload_identity_policy::caller;
    use workload_identity_policy::host::{HostLookup, Lookup, ServiceAccountRef};
    use workload_identity_policy::podedit::Injection;
    use workload_identity_policy::providers::{self, Context, Findings};
    use workload_identity_policy::request::UserInfo;
    use workload_identity_policy::settings::Settings;

    #[derive(Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        request: Request<'a>,
        #[serde(borrow)]
        settings: &'a RawValue,
    }

    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        kind: Kind<'a>,
        operation: &'a str,
        #[serde(default)]
        namespace: &'a str,
        #[serde(rename = "userInfo")]
        user: User,
        #[serde(borrow)]
        object: &'a RawValue,
    }

    #[derive(Deserialize)]
    struct Kind<'a> {
        group: &'a str,
        kind: &'a str,
    }

    #[derive(Deserialize)]
    struct User {
        #[serde(default)]
        username: String,
        #[serde(default)]
        uid: String,
        #[serde(default)]
        groups: Vec<String>,
        #[serde(default)]
        extra: BTreeMap<String, Vec<String>>,
    }

    /// One JSON object's members, borrowed, in key order (the host reads the answer as a
    /// document, so the order of members is free).
    type Members<'a> = BTreeMap<&'a str, &'a RawValue>;

    #[derive(Deserialize)]
    struct Named<'a> {
        name: &'a str,
    }

    /// Settings text and what it decoded to.
    type Decoded = (Box<[u8]>, Rc<Settings>);

    thread_local! {
        /// The last settings decoded, by their exact text (as `request::settings_of`).
        static LAST: RefCell<Option<Decoded>> = const { RefCell::new(None) };
    }

    fn settings_of(text: &[u8]) -> Option<Rc<Settings>> {
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((cached, settings)) = last.as_ref() {
                if **cached == *text {
                    return Some(Rc::clone(settings));
                }
            }
            let settings = Rc::new(Settings::from_payload_text(text)?);
            *last = Some((text.into(), Rc::clone(&settings)));
            Some(settings)
        })
    }

    fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) -> serde_json::Result<()> {
        if !std::mem::take(first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name)?;
        out.push(b':');
        Ok(())
    }

    /// `members` as an object, verbatim but for member `name`, written by `write` (and added
    /// when absent).
    fn object_with(
        out: &mut Vec<u8>,
        members: &Members,
        name: &str,
        write: impl Fn(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        out.push(b'{');
        let mut first = true;
        let mut written = false;
        for (k, v) in members {
            key(out, &mut first, k)?;
            if *k == name {
                write(out)?;
                written = true;
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        if !written {
            key(out, &mut first, name)?;
            write(out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// `metadata` with the stamp's annotations set (and the missing claims' removed).
    fn metadata(
        out: &mut Vec<u8>,
        raw: &RawValue,
        stamp: &[(String, Option<String>)],
    ) -> serde_json::Result<()> {
        let members: Members = serde_json::from_str(raw.get())?;
        let existing: Members = match members.get("annotations") {
            Some(a) => serde_json::from_str(a.get())?,
            None => Members::new(),
        };
        object_with(out, &members, "annotations", |out| {
            out.push(b'{');
            let mut first = true;
            for (k, v) in &existing {
                if !stamp.iter().any(|(s, _)| s == k) {
                    key(out, &mut first, k)?;
                    out.extend_from_slice(v.get().as_bytes());
                }
            }
            for (k, v) in stamp {
                if let Some(v) = v {
                    key(out, &mut first, k)?;
                    serde_json::to_writer(&mut *out, v)?;
                }
            }
            out.push(b'}');
            Ok(())
        })
    }

    /// One container with the stamp's env vars set in place or appended.
    fn container(
        out: &mut Vec<u8>,
        raw: &RawValue,
        stamp: &[(String, Option<String>)],
    ) -> serde_json::Result<()> {
        let members: Members = serde_json::from_str(raw.get())?;
        let env: Vec<&RawValue> = match members.get("env") {
            Some(e) => serde_json::from_str(e.get())?,
            None => Vec::new(),
        };
        let item = |out: &mut Vec<u8>, first: &mut bool| {
            if !std::mem::take(first) {
                out.push(b',');
            }
        };
        let var = |out: &mut Vec<u8>, first: &mut bool, name: &str, value: &str| {
            item(out, first);
            out.extend_from_slice(b"{\"name\":");
            serde_json::to_writer(&mut *out, name)?;
            out.extend_from_slice(b",\"value\":");
            serde_json::to_writer(&mut *out, value)?;
            out.push(b'}');
            Ok::<(), serde_json::Error>(())
        };
        object_with(out, &members, "env", |out| {
            out.push(b'[');
            let mut first = true;
            let mut done = vec![false; stamp.len()];
            for raw_var in &env {
                let Named { name } = serde_json::from_str(raw_var.get())?;
                match stamp.iter().position(|(s, _)| s == name) {
                    Some(i) => {
                        done[i] = true;
                        if let Some(value) = &stamp[i].1 {
                            var(out, &mut first, name, value)?;
                        }
                    }
                    None => {
                        item(out, &mut first);
                        out.extend_from_slice(raw_var.get().as_bytes());
                    }
                }
            }
            for ((name, value), done) in stamp.iter().zip(done) {
                if let (false, Some(value)) = (done, value) {
                    var(out, &mut first, name, value)?;
                }
            }
            out.push(b']');
            Ok(())
        })
    }

    fn spec(
        out: &mut Vec<u8>,
        raw: &RawValue,
        stamp: &[(String, Option<String>)],
    ) -> serde_json::Result<()> {
        let members: Members = serde_json::from_str(raw.get())?;
        out.push(b'{');
        let mut first = true;
        for (k, v) in &members {
            key(out, &mut first, k)?;
            if matches!(*k, "containers" | "initContainers" | "ephemeralContainers") {
                let containers: Vec<&RawValue> = serde_json::from_str(v.get())?;
                out.push(b'[');
                for (i, c) in containers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    container(out, c, stamp)?;
                }
                out.push(b']');
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn validate(payload: &[u8]) -> CallResult {
        let payload: Payload = serde_json::from_slice(payload)?;
        let request = payload.request;
        let settings = settings_of(payload.settings.get().as_bytes()).ok_or("settings")?;
        let cfg = &settings.identity_injection;
        let user = UserInfo {
            username: request.user.username,
            uid: request.user.uid,
            groups: request.user.groups,
            extra: request.user.extra,
        };
        if (request.kind.group, request.kind.kind, request.operation) != ("", "Pod", "CREATE") {
            return Err("the splice floor answers a Pod CREATE only".into());
        }
        if !cfg.enabled {
            return cloud(&settings, request.namespace, request.object);
        }
        if caller::is_trusted(cfg, &user) {
            return Err("the splice floor answers an untrusted requester only".into());
        }
        let stamp = caller::stamp_for(cfg, &user);
        if !stamp.missing_required.is_empty() {
            return Err("the splice floor does not deny".into());
        }
        let object: Members = serde_json::from_str(request.object.get())?;
        let mut out = Vec::with_capacity(request.object.get().len() + 512);
        out.extend_from_slice(br#"{"accepted":true,"message":null,"code":null,"mutated_object":{"#);
        let mut first = true;
        for (k, v) in &object {
            key(&mut out, &mut first, k)?;
            match *k {
                "metadata" => metadata(&mut out, v, &stamp.annotations)?,
                "spec" => spec(&mut out, v, &stamp.env)?,
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        out.extend_from_slice(br#"},"audit_annotations":{"caller-identity-stamped-by":"#);
        serde_json::to_writer(&mut out, &user.username)?;
        out.extend_from_slice(br#","caller-identity-stamped-keys":"#);
        serde_json::to_writer(&mut out, &stamp.stamped_keys().join(","))?;
        out.extend_from_slice(br#"},"warnings":null}"#);
        Ok(out)
    }

    /// An error as waPC hands it back.
    type Failure = Box<dyn std::error::Error + Send + Sync>;
    type Done = Result<(), Failure>;

    fn failure(what: &str) -> Failure {
        what.into()
    }

    /// What the cloud providers inject, written into a raw pod: only injections of volumes,
    /// read-only mounts and env groups, into containers that have none of their names yet.
    fn cloud(settings: &Settings, namespace: &str, raw: &RawValue) -> CallResult {
        let unsupported =
            || failure("the splice floor writes volumes, read-only mounts and new env vars only");
        let object: Members = serde_json::from_str(raw.get())?;
        let spec: Members =
            serde_json::from_str(object.get("spec").ok_or_else(unsupported)?.get())?;
        // The few members the providers read, as a document: metadata and two of spec's.
        let mut view_spec = serde_json::Map::new();
        for k in ["serviceAccountName", "nodeSelector"] {
            if let Some(v) = spec.get(k) {
                view_spec.insert(k.to_string(), serde_json::from_str(v.get())?);
            }
        }
        let metadata: Value = match object.get("metadata") {
            Some(m) => serde_json::from_str(m.get())?,
            None => Value::Null,
        };
        let view = serde_json::json!({"metadata": metadata, "spec": view_spec});
        let pod_annotations = providers::string_map(&view, "annotations");
        let pod_labels = providers::string_map(&view, "labels");
        let wanted = providers::Wanted::for_pod(settings, &pod_labels, &pod_annotations);
        let sa = ServiceAccountRef {
            namespace: namespace.to_string(),
            name: view
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
        };
        let account = HostLookup.service_account(&sa)?;
        let ctx = Context {
            pod: &view,
            pod_annotations,
            pod_labels,
            sa: &sa,
            sa_annotations: providers::string_map(&account, "annotations"),
        };
        let mut findings = Findings::default();
        let injections = wanted.resolve(settings, &ctx, &mut findings);
        let plain = |i: &Injection| {
            i.init_containers.is_empty()
                && i.writable_mounts.is_empty()
                && i.managed_annotations.is_empty()
                && i.default_annotations.is_empty()
                && i.labels.is_empty()
        };
        if injections.is_empty()
            || wanted.custom
            || findings != Findings::default()
            || !injections.iter().all(plain)
        {
            return Err(unsupported());
        }
        let mut out = Vec::with_capacity(raw.get().len() + 1024);
        out.extend_from_slice(br#"{"accepted":true,"message":null,"code":null,"mutated_object":"#);
        out.push(b'{');
        let mut first = true;
        for (k, v) in &object {
            key(&mut out, &mut first, k)?;
            match *k {
                "spec" => cloud_spec(&mut out, &spec, &injections)?,
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        out.push(b'}');
        out.extend_from_slice(br#","audit_annotations":null,"warnings":null}"#);
        Ok(out)
    }

    /// `spec` with every container injected and the volumes appended.
    fn cloud_spec(out: &mut Vec<u8>, spec: &Members, injections: &[Injection]) -> Done {
        out.push(b'{');
        let mut first = true;
        let mut volumes_seen = false;
        for (k, v) in spec {
            key(out, &mut first, k)?;
            match *k {
                "containers" | "initContainers" => {
                    let containers: Vec<&RawValue> = serde_json::from_str(v.get())?;
                    out.push(b'[');
                    for (i, c) in containers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        cloud_container(out, c, injections)?;
                    }
                    out.push(b']');
                }
                "volumes" => {
                    volumes_seen = true;
                    let existing: Vec<&RawValue> = serde_json::from_str(v.get())?;
                    volumes(out, &existing, injections)?;
                }
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        if !volumes_seen {
            key(out, &mut first, "volumes")?;
            volumes(out, &[], injections)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn volumes(out: &mut Vec<u8>, existing: &[&RawValue], injections: &[Injection]) -> Done {
        let mut names = Vec::new();
        out.push(b'[');
        for (i, v) in existing.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let Named { name } = serde_json::from_str(v.get())?;
            names.push(name.to_string());
            out.extend_from_slice(v.get().as_bytes());
        }
        let mut first = existing.is_empty();
        for volume in injections.iter().flat_map(|i| &i.volumes) {
            let name = volume
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !names.iter().any(|n| n == name) {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, volume)?;
                names.push(name.to_string());
            }
        }
        out.push(b']');
        Ok(())
    }

    #[derive(Deserialize)]
    struct MountAt<'a> {
        name: &'a str,
        #[serde(rename = "mountPath")]
        path: &'a str,
    }

    /// One container with every injection's env groups and mounts appended; anything already
    /// there with one of their names or paths is more than the splice floor handles.
    fn cloud_container(out: &mut Vec<u8>, raw: &RawValue, injections: &[Injection]) -> Done {
        let unsupported =
            || failure("the splice floor injects containers without those names or paths only");
        let members: Members = serde_json::from_str(raw.get())?;
        let Named { name } = serde_json::from_str(raw.get())?;
        let wanted: Vec<&Injection> = injections
            .iter()
            .filter(|i| !i.skip_containers.iter().any(|s| s == name))
            .collect();
        let env: Vec<&RawValue> = match members.get("env") {
            Some(e) => serde_json::from_str(e.get())?,
            None => Vec::new(),
        };
        let mounts: Vec<&RawValue> = match members.get("volumeMounts") {
            Some(m) => serde_json::from_str(m.get())?,
            None => Vec::new(),
        };
        let mut names = Vec::with_capacity(env.len());
        for var in &env {
            let Named { name } = serde_json::from_str(var.get())?;
            names.push(name);
            let taken = wanted
                .iter()
                .flat_map(|i| i.env_groups.iter().flatten())
                .any(|v| v.get("name").and_then(Value::as_str) == Some(name));
            if taken {
                return Err(unsupported());
            }
        }
        let complete = |i: &&Injection| {
            !i.complete_when.is_empty()
                && i.complete_when
                    .iter()
                    .all(|group| group.iter().any(|n| names.contains(n)))
        };
        if wanted.iter().any(complete) {
            return Err(unsupported());
        }
        for mount in &mounts {
            let MountAt { name, path } = serde_json::from_str(mount.get())?;
            if wanted
                .iter()
                .flat_map(|i| &i.mounts)
                .any(|m| m.volume == name || m.path == path)
            {
                return Err(unsupported());
            }
        }
        let list = |out: &mut Vec<u8>,
                    existing: &[&RawValue],
                    added: &mut dyn Iterator<Item = Vec<u8>>| {
            out.push(b'[');
            let mut first = true;
            for item in existing
                .iter()
                .map(|r| r.get().as_bytes().to_vec())
                .chain(added)
            {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                out.extend_from_slice(&item);
            }
            out.push(b']');
        };
        let added_env = || {
            wanted
                .iter()
                .flat_map(|i| i.env_groups.iter().flatten())
                .map(|v| serde_json::to_vec(v).unwrap_or_default())
        };
        let added_mounts = || {
            wanted.iter().flat_map(|i| &i.mounts).map(|m| {
                serde_json::to_vec(
                    &serde_json::json!({"name": m.volume, "mountPath": m.path, "readOnly": true}),
                )
                .unwrap_or_default()
            })
        };
        out.push(b'{');
        let mut first = true;
        let (mut env_seen, mut mounts_seen) = (false, false);
        for (k, v) in &members {
            key(out, &mut first, k)?;
            match *k {
                "env" => {
                    env_seen = true;
                    list(out, &env, &mut added_env());
                }
                "volumeMounts" => {
                    mounts_seen = true;
                    list(out, &mounts, &mut added_mounts());
                }
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        if !env_seen && added_env().next().is_some() {
            key(out, &mut first, "env")?;
            list(out, &[], &mut added_env());
        }
        if !mounts_seen && added_mounts().next().is_some() {
            key(out, &mut first, "volumeMounts")?;
            list(out, &[], &mut added_mounts());
        }
        out.push(b'}');
        Ok(())
    }

    fn validate_settings(_: &[u8]) -> CallResult {
        Ok(br#"{"valid":true,"message":null}"#.to_vec())
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn wapc_init() {
        guest::register_function("validate", validate);
        guest::register_function("validate_settings", validate_settings);
        guest::register_function(
            "protocol_version",
            kubewarden_policy_sdk::protocol_version_guest,
        );
    }
}
