//! The benches' splice-floor guest: an experiment (BENCHMARKS.md, issue #12) that measures what
//! the "no document" design would cost, before anyone rewrites the policy for it.
//!
//! It gives the policy's exact answer on `caller-pod-create-stamped` (a Pod CREATE by an
//! untrusted requester, caller identity on, every cloud off), on the cloud-identity pod rows
//! (`aws-basic-default-sa`, `both-providers`, the 10-container pod) and on the Flyte secrets row
//! (`flyte-two-groups`, Kubernetes secrets, every cloud off) without building a document
//! of the pod: the payload is read with borrowed strings and the pod kept as raw JSON text
//! (`serde_json::value::RawValue`); the settings are read by the policy's own
//! `request::settings_of` (decoded, validated and kept for the next payload with the same text,
//! as the policy does). Caller identity: the stamp is the policy's own `caller::stamp_for`, and only
//! `metadata.annotations` and the containers' `env` are written. Cloud identity: our one
//! ServiceAccount lookup, the policy's own providers resolving the injections from a document of
//! the pod's `metadata` alone, then volumes, read-only mounts and env groups spliced in. Flyte
//! secrets: the policy's own secret manager resolves the requests from the same document of
//! `metadata`, and its injections are spliced in the same way. Every
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
    use std::collections::BTreeMap;

    use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
    use serde::{Deserialize, Serialize};
    use serde_json::value::RawValue;
    use serde_json::Value;
    use workload_identity_policy::caller;
    use workload_identity_policy::host::{HostLookup, Lookup, ServiceAccountRef};
    use workload_identity_policy::podedit::{self, Injection};
    use workload_identity_policy::providers::{self, Context, Findings};
    use workload_identity_policy::request::{self, UserInfo};
    use workload_identity_policy::secrets;
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

    #[derive(Deserialize)]
    struct MountAt<'a> {
        name: &'a str,
        #[serde(rename = "mountPath")]
        path: &'a str,
    }

    #[derive(Serialize)]
    struct MountOut<'a> {
        name: &'a str,
        #[serde(rename = "mountPath")]
        path: &'a str,
        #[serde(rename = "readOnly")]
        read_only: bool,
    }

    type Failure = Box<dyn std::error::Error + Send + Sync>;
    type Done = Result<(), Failure>;

    /// The members or items of `raw`, or none when it is absent.
    fn parse<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>) -> Result<T, Failure> {
        Ok(raw
            .map(|r| serde_json::from_str(r.get()))
            .transpose()?
            .unwrap_or_default())
    }

    fn comma(out: &mut Vec<u8>, first: &mut bool) {
        if !std::mem::take(first) {
            out.push(b',');
        }
    }

    fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) -> Done {
        comma(out, first);
        serde_json::to_writer(&mut *out, name)?;
        out.push(b':');
        Ok(())
    }

    /// A member the guest writes itself, from the member as it was (`None`: absent).
    struct Edit<'f> {
        name: &'static str,
        /// Written even when the object does not have it.
        add: bool,
        write: &'f dyn Fn(&mut Vec<u8>, Option<&RawValue>) -> Done,
    }

    /// `members` as an object: every member verbatim but the edited ones.
    fn object(out: &mut Vec<u8>, members: &Members, edits: &[Edit]) -> Done {
        out.push(b'{');
        let mut first = true;
        for (k, v) in members {
            key(out, &mut first, k)?;
            match edits.iter().find(|e| e.name == *k) {
                Some(edit) => (edit.write)(out, Some(v))?,
                None => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        for edit in edits
            .iter()
            .filter(|e| e.add && !members.contains_key(e.name))
        {
            key(out, &mut first, edit.name)?;
            (edit.write)(out, None)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// A list: `existing` verbatim, then `added`.
    fn list<T: Serialize>(out: &mut Vec<u8>, existing: &[&RawValue], added: &[T]) -> Done {
        out.push(b'[');
        let mut first = true;
        for raw in existing {
            comma(out, &mut first);
            out.extend_from_slice(raw.get().as_bytes());
        }
        for item in added {
            comma(out, &mut first);
            serde_json::to_writer(&mut *out, item)?;
        }
        out.push(b']');
        Ok(())
    }

    /// A list of containers, each written by `container`.
    fn containers(
        out: &mut Vec<u8>,
        raw: Option<&RawValue>,
        container: impl Fn(&mut Vec<u8>, &RawValue) -> Done,
    ) -> Done {
        let items: Vec<&RawValue> = parse(raw)?;
        out.push(b'[');
        let mut first = true;
        for item in items {
            comma(out, &mut first);
            container(out, item)?;
        }
        out.push(b']');
        Ok(())
    }

    const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

    fn validate(payload: &[u8]) -> CallResult {
        let payload: Payload = serde_json::from_slice(payload)?;
        let request = payload.request;
        let settings = request::settings_of(payload.settings.get().as_bytes()).ok_or("settings")?;
        if (request.kind.group, request.kind.kind, request.operation) != ("", "Pod", "CREATE") {
            return Err("the splice floor answers a Pod CREATE only".into());
        }
        let object: Members = serde_json::from_str(request.object.get())?;
        let mut out = Vec::with_capacity(request.object.get().len() + 1024);
        out.extend_from_slice(br#"{"accepted":true,"message":null,"code":null,"mutated_object":"#);
        if settings.identity_injection.enabled {
            let user = UserInfo {
                username: request.user.username,
                uid: request.user.uid,
                groups: request.user.groups,
                extra: request.user.extra,
            };
            stamp(&mut out, &settings, &user, &object)?;
        } else {
            let spec: Members = parse(object.get("spec").copied())?;
            let view = view(parse(object.get("metadata").copied())?, &spec)?;
            let labels = providers::string_map(&view, "labels");
            let annotations = providers::string_map(&view, "annotations");
            let wanted = providers::Wanted::for_pod(&settings, &labels, &annotations);
            let injections = if secrets::wanted(&settings.secrets, &view) {
                flyte(&settings, &view, wanted)?
            } else {
                cloud(
                    &settings,
                    request.namespace,
                    &view,
                    labels,
                    annotations,
                    wanted,
                )?
            };
            splice(&mut out, &object, &spec, &injections)?;
            out.extend_from_slice(br#","audit_annotations":null"#);
        }
        out.extend_from_slice(br#","warnings":null}"#);
        Ok(out)
    }

    /// Caller identity: the requester's stamp on `metadata.annotations` and every container's
    /// `env`, then the audit annotations.
    fn stamp(out: &mut Vec<u8>, settings: &Settings, user: &UserInfo, pod: &Members) -> Done {
        let cfg = &settings.identity_injection;
        if caller::is_trusted(cfg, user) {
            return Err("the splice floor answers an untrusted requester only".into());
        }
        let stamp = caller::stamp_for(cfg, user);
        if !stamp.missing_required.is_empty() {
            return Err("the splice floor does not deny".into());
        }
        let annotations = |out: &mut Vec<u8>, raw: Option<&RawValue>| {
            let existing: Members = parse(raw)?;
            out.push(b'{');
            let mut first = true;
            for (k, v) in existing {
                if !stamp.annotations.iter().any(|(s, _)| s == k) {
                    key(out, &mut first, k)?;
                    out.extend_from_slice(v.get().as_bytes());
                }
            }
            for (k, v) in &stamp.annotations {
                if let Some(v) = v {
                    key(out, &mut first, k)?;
                    serde_json::to_writer(&mut *out, v)?;
                }
            }
            out.push(b'}');
            Ok(())
        };
        let metadata = |out: &mut Vec<u8>, raw: Option<&RawValue>| {
            let edits = [Edit {
                name: "annotations",
                add: true,
                write: &annotations,
            }];
            object(out, &parse(raw)?, &edits)
        };
        let env = |out: &mut Vec<u8>, raw: Option<&RawValue>| {
            let existing: Vec<&RawValue> = parse(raw)?;
            let var = |out: &mut Vec<u8>, first: &mut bool, name: &str, value: &str| {
                comma(out, first);
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"name": name, "value": value}),
                )
            };
            out.push(b'[');
            let mut first = true;
            let mut done = vec![false; stamp.env.len()];
            for raw_var in existing {
                let Named { name } = serde_json::from_str(raw_var.get())?;
                match stamp.env.iter().position(|(s, _)| s == name) {
                    Some(i) => {
                        done[i] = true;
                        if let Some((_, Some(value))) = stamp.env.get(i) {
                            var(out, &mut first, name, value)?;
                        }
                    }
                    None => {
                        comma(out, &mut first);
                        out.extend_from_slice(raw_var.get().as_bytes());
                    }
                }
            }
            for ((name, value), done) in stamp.env.iter().zip(done) {
                if let (false, Some(value)) = (done, value) {
                    var(out, &mut first, name, value)?;
                }
            }
            out.push(b']');
            Ok(())
        };
        let container = |out: &mut Vec<u8>, raw: &RawValue| {
            let edits = [Edit {
                name: "env",
                add: true,
                write: &env,
            }];
            object(out, &serde_json::from_str(raw.get())?, &edits)
        };
        let list = |out: &mut Vec<u8>, raw: Option<&RawValue>| containers(out, raw, container);
        let spec = |out: &mut Vec<u8>, raw: Option<&RawValue>| {
            let edits = CONTAINER_LISTS.map(|name| Edit {
                name,
                add: false,
                write: &list,
            });
            object(out, &parse(raw)?, &edits)
        };
        object(
            out,
            pod,
            &[
                Edit {
                    name: "metadata",
                    add: false,
                    write: &metadata,
                },
                Edit {
                    name: "spec",
                    add: false,
                    write: &spec,
                },
            ],
        )?;
        out.extend_from_slice(br#","audit_annotations":{"caller-identity-stamped-by":"#);
        serde_json::to_writer(&mut *out, &user.username)?;
        out.extend_from_slice(br#","caller-identity-stamped-keys":"#);
        serde_json::to_writer(&mut *out, &stamp.stamped_keys().join(","))?;
        out.push(b'}');
        Ok(())
    }

    /// The document the policy's providers and secret managers read instead of the pod: its
    /// `metadata`, and the two members of `spec` they read.
    fn view(metadata: Value, spec: &Members) -> Result<Value, Failure> {
        let mut view_spec = serde_json::Map::new();
        for k in ["serviceAccountName", "nodeSelector"] {
            if let Some(v) = spec.get(k) {
                view_spec.insert(k.to_string(), serde_json::from_str(v.get())?);
            }
        }
        Ok(serde_json::json!({"metadata": metadata, "spec": view_spec}))
    }

    fn unsupported() -> Failure {
        "the splice floor writes volumes, read-only mounts and new env vars only".into()
    }

    /// What the injections ask of the pod is more than the splice floor writes.
    fn plain(injections: &[Injection]) -> bool {
        injections.iter().all(|i| {
            i.init_containers.is_empty()
                && i.writable_mounts.is_empty()
                && i.managed_annotations.is_empty()
                && i.default_annotations.is_empty()
                && i.labels.is_empty()
        })
    }

    /// Flyte secrets (no cloud identity besides): the policy's own secret manager resolves the
    /// pod's requests from the document of its `metadata`.
    fn flyte(
        settings: &Settings,
        view: &Value,
        wanted: providers::Wanted,
    ) -> Result<Vec<Injection>, Failure> {
        if wanted.any() {
            return Err(
                "the splice floor answers Flyte secrets without a cloud identity only".into(),
            );
        }
        let mut findings = Findings::default();
        let injections = secrets::resolve(&settings.secrets, view, "", &mut findings);
        if injections.is_empty() || findings != Findings::default() || !plain(&injections) {
            return Err(unsupported());
        }
        Ok(injections)
    }

    /// Cloud identity: our one lookup, then the policy's providers on the document of `metadata`
    /// (and the two members of `spec` they read).
    fn cloud<'v>(
        settings: &Settings,
        namespace: &str,
        view: &'v Value,
        pod_labels: BTreeMap<&'v str, &'v str>,
        pod_annotations: BTreeMap<&'v str, &'v str>,
        wanted: providers::Wanted,
    ) -> Result<Vec<Injection>, Failure> {
        let sa = ServiceAccountRef::of_pod(namespace, view);
        let account = HostLookup.service_account(&sa)?;
        let ctx = Context {
            pod: view,
            pod_annotations,
            pod_labels,
            sa: &sa,
            sa_annotations: providers::string_map(&account, "annotations"),
        };
        let mut findings = Findings::default();
        let injections = wanted.resolve(settings, &ctx, &mut findings);
        if injections.is_empty()
            || wanted.custom
            || findings != Findings::default()
            || !plain(&injections)
        {
            return Err(unsupported());
        }
        Ok(injections)
    }

    /// The injections' volumes, read-only mounts and env groups spliced into the raw pod.
    fn splice(out: &mut Vec<u8>, pod: &Members, spec: &Members, injections: &[Injection]) -> Done {
        let volumes = |out: &mut Vec<u8>, raw: Option<&RawValue>| {
            let existing: Vec<&RawValue> = parse(raw)?;
            let mut names = Vec::with_capacity(existing.len());
            for v in &existing {
                names.push(serde_json::from_str::<Named>(v.get())?.name);
            }
            let mut added = Vec::new();
            for volume in injections.iter().flat_map(|i| &i.volumes) {
                let name = podedit::name_of(volume).unwrap_or_default();
                if names.contains(&name) {
                    return Err(unsupported());
                }
                names.push(name);
                added.push(volume);
            }
            list(out, &existing, &added)
        };
        let container = |out: &mut Vec<u8>, raw: &RawValue| spliced_container(out, raw, injections);
        let lists = |out: &mut Vec<u8>, raw: Option<&RawValue>| containers(out, raw, container);
        let spec_out = |out: &mut Vec<u8>, _: Option<&RawValue>| {
            let edits = [
                Edit {
                    name: "containers",
                    add: false,
                    write: &lists,
                },
                Edit {
                    name: "initContainers",
                    add: false,
                    write: &lists,
                },
                Edit {
                    name: "volumes",
                    add: true,
                    write: &volumes,
                },
            ];
            object(out, spec, &edits)
        };
        let edits = [Edit {
            name: "spec",
            add: false,
            write: &spec_out,
        }];
        object(out, pod, &edits)
    }

    /// One container with every injection's env groups (`podedit::env_groups_to_add`, the
    /// policy's rule) and read-only mounts appended; a mount of one of their names or paths, or a
    /// container configured already, is more than the splice floor handles.
    fn spliced_container(out: &mut Vec<u8>, raw: &RawValue, injections: &[Injection]) -> Done {
        let unsupported = || -> Failure {
            "the splice floor injects containers without those mounts, not configured already, only"
                .into()
        };
        let members: Members = serde_json::from_str(raw.get())?;
        let name: &str = parse(members.get("name").copied())?;
        let wanted: Vec<&Injection> = injections
            .iter()
            .filter(|i| !i.skip_containers.iter().any(|s| s == name))
            .collect();
        let env: Vec<&RawValue> = parse(members.get("env").copied())?;
        let mounts: Vec<&RawValue> = parse(members.get("volumeMounts").copied())?;
        let mut names = Vec::with_capacity(env.len());
        for var in &env {
            names.push(serde_json::from_str::<Named>(var.get())?.name);
        }
        let complete = wanted.iter().any(|i| {
            !i.complete_when.is_empty()
                && i.complete_when
                    .iter()
                    .all(|group| group.iter().any(|n| names.contains(n)))
        });
        if complete {
            return Err(unsupported());
        }
        // Injection by injection, as the policy applies them.
        let mut added_env: Vec<&Value> = Vec::new();
        for injection in &wanted {
            let groups = podedit::env_groups_to_add(&injection.env_groups, |n| {
                n.is_some_and(|n| names.contains(&n))
            });
            for var in groups.into_iter().flatten() {
                added_env.push(var);
                names.extend(podedit::name_of(var));
            }
        }
        let added_mounts: Vec<MountOut> = wanted
            .iter()
            .flat_map(|i| &i.mounts)
            .map(|m| MountOut {
                name: &m.volume,
                path: &m.path,
                read_only: true,
            })
            .collect();
        for mount in &mounts {
            let MountAt { name, path } = serde_json::from_str(mount.get())?;
            if added_mounts
                .iter()
                .any(|m| m.name == name || m.path == path)
            {
                return Err(unsupported());
            }
        }
        let edits = [
            Edit {
                name: "env",
                add: !added_env.is_empty(),
                write: &|out, _| list(out, &env, &added_env),
            },
            Edit {
                name: "volumeMounts",
                add: !added_mounts.is_empty(),
                write: &|out, _| list(out, &mounts, &added_mounts),
            },
        ];
        object(out, &members, &edits)
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
