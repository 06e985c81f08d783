//! The benches' splice-floor guest: an experiment (BENCHMARKS.md, issue #12) that measures what
//! the "no document" design would cost on the caller-identity rows, before anyone rewrites the
//! policy for it.
//!
//! It gives the policy's exact answer on `caller-pod-create-stamped` (a Pod CREATE by an
//! untrusted requester, caller identity on, every cloud off) without building a document of the
//! pod: the payload is read with borrowed strings and the pod kept as raw JSON text
//! (`serde_json::value::RawValue`); the settings are decoded by the policy's own
//! `Settings::from_payload_text` (kept for the next payload with the same text, as the policy
//! does) and the stamp computed by the policy's own `caller::stamp_for`; the mutated pod is then
//! written by copying every untouched member verbatim and writing only `metadata.annotations` and
//! the containers' `env`. Anything else (another kind, a trusted requester, an UPDATE, escaped
//! keys, a malformed pod) is answered with an error: this is a bound, not a policy. The bench
//! checks it answers the row exactly as the policy does before timing it.
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
    use workload_identity_policy::caller;
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
        if (request.kind.group, request.kind.kind, request.operation) != ("", "Pod", "CREATE")
            || !cfg.enabled
            || caller::is_trusted(cfg, &user)
        {
            return Err("the splice floor answers an untrusted Pod CREATE only".into());
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
