//! Packaging agreement: `policy-metadata.yml` (what `kwctl annotate` embeds),
//! `artifacthub-pkg.yml` (what `kwctl scaffold artifacthub` derives from it),
//! the crate version in the root `Cargo.toml`, the example
//! ClusterAdmissionPolicy, and the README/Makefile entry points must not drift
//! apart. Every assertion names the field it checks.
//!
//! No wasm is built here: these tests only read files.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use serde_yaml::Value as Yaml;

const METADATA: &str = "policy-metadata.yml";
const ARTIFACTHUB: &str = "artifacthub-pkg.yml";
/// The example whose rules are all of the metadata's (caller identity needs every kind); the
/// other examples subscribe to a subset, which `tests/examples.rs` checks.
const EXAMPLE_POLICY: &str = "examples/caller-identity.yaml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e-tests lives inside the repository root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// YAML to JSON, so structures compare regardless of YAML styling.
fn to_json(v: &Yaml, what: &str) -> Json {
    serde_json::to_value(v).unwrap_or_else(|e| panic!("{what} cannot be converted to JSON: {e}"))
}

/// A string field, or a panic naming the field.
fn string<'a>(v: &'a Yaml, field: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{field}: expected a string, found {v:?}"))
}

fn annotation<'a>(metadata: &'a Yaml, key: &str) -> &'a str {
    string(
        &metadata["annotations"][key],
        &format!("{METADATA} annotations.\"{key}\""),
    )
}

fn ah_annotation<'a>(pkg: &'a Yaml, key: &str) -> &'a str {
    string(
        &pkg["annotations"][key],
        &format!("{ARTIFACTHUB} annotations.\"{key}\""),
    )
}

/// The value of `key` in TOML section `[section]` of `text`, for simple
/// `key = "string"` and `key.workspace = true` lines only. Returns the raw
/// right-hand side with surrounding quotes removed and any trailing comment
/// dropped. Enough for Cargo.toml's package table; not a TOML parser.
fn toml_value(text: &str, section: &str, key: &str) -> Option<String> {
    let header = format!("[{section}]");
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == header;
            continue;
        }
        if !in_section || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        let value = if let Some(rest) = v.strip_prefix('"') {
            rest.split_once('"')
                .map(|(inner, _)| inner.to_string())
                .unwrap_or_else(|| panic!("Cargo.toml [{section}] {key}: unterminated string"))
        } else {
            v.split('#').next().unwrap_or_default().trim().to_string()
        };
        return Some(value);
    }
    None
}

/// `[package] version` of the root crate, the single source of the version.
fn crate_version() -> String {
    let cargo = read("Cargo.toml");
    if toml_value(&cargo, "package", "version.workspace").is_some() {
        return toml_value(&cargo, "workspace.package", "version").expect(
            "Cargo.toml: [package] version.workspace is set but [workspace.package] has no version",
        );
    }
    toml_value(&cargo, "package", "version")
        .expect("Cargo.toml: [package] has no `version = \"...\"` line")
}

/// `[package] license`, following `license.workspace = true`.
fn crate_license() -> String {
    let cargo = read("Cargo.toml");
    if toml_value(&cargo, "package", "license.workspace").is_some() {
        return toml_value(&cargo, "workspace.package", "license").expect(
            "Cargo.toml: [package] license.workspace is set but [workspace.package] has no license",
        );
    }
    toml_value(&cargo, "package", "license").expect("Cargo.toml: [package] has no license")
}

/// The image `kwctl scaffold artifacthub` derives: `<ociUrl>:v<version>`.
fn expected_image(metadata: &Yaml) -> String {
    format!(
        "{}:v{}",
        annotation(metadata, "io.kubewarden.policy.ociUrl"),
        annotation(metadata, "io.kubewarden.policy.version")
    )
}

/// Pods and every workload kind whose pod template caller identity stamps
/// (`caller::template_pointer`), on CREATE and UPDATE.
fn expected_rules() -> Json {
    let ops = json!(["CREATE", "UPDATE"]);
    json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "replicationcontrollers"], "operations": ops},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"], "operations": ops},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"], "operations": ops},
        {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["serviceaccounts"], "operations": ops},
    ])
}

/// Every kind the rules name is one the policy knows the pod template of.
#[test]
fn rules_cover_exactly_the_kinds_the_policy_handles() {
    let kinds = [
        ("", "Pod"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
    ];
    // ServiceAccounts have no pod template: they get the ServiceAccount checks.
    for (group, kind) in kinds {
        assert!(
            workload_identity_policy::caller::template_pointer(group, kind).is_some(),
            "{group}/{kind} is in the rules but the policy has no pod template pointer for it"
        );
    }
    let resources: usize = expected_rules()
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["resources"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        resources,
        kinds.len() + 1,
        "one resource per handled kind, and serviceaccounts"
    );
}

fn service_account_resource() -> Json {
    json!([{ "apiVersion": "v1", "kind": "ServiceAccount" }])
}

#[test]
fn metadata_declares_what_the_policy_needs() {
    let m = yaml(METADATA);

    assert_eq!(
        to_json(&m["rules"], "rules"),
        expected_rules(),
        "{METADATA} rules: must be exactly the pod and workload kinds and ServiceAccounts, CREATE and UPDATE"
    );
    assert_eq!(
        m["mutating"].as_bool(),
        Some(true),
        "{METADATA} mutating: must be true"
    );
    assert_eq!(
        m["backgroundAudit"].as_bool(),
        Some(false),
        "{METADATA} backgroundAudit: must be false"
    );
    assert_eq!(
        m["executionMode"].as_str(),
        Some("kubewarden-wapc"),
        "{METADATA} executionMode: must be kubewarden-wapc"
    );
    assert_eq!(
        m["policyType"].as_str(),
        Some("kubernetes"),
        "{METADATA} policyType: must be kubernetes"
    );
    let caps = to_json(&m["hostCapabilities"], "hostCapabilities");
    assert!(
        caps.as_array()
            .is_some_and(|c| c.contains(&json!("kubernetes/get_resource"))),
        "{METADATA} hostCapabilities: must contain kubernetes/get_resource, found {caps}"
    );
    let car = to_json(&m["contextAwareResources"], "contextAwareResources");
    assert!(
        car.as_array()
            .is_some_and(|r| r.contains(&json!({ "apiVersion": "v1", "kind": "ServiceAccount" }))),
        "{METADATA} contextAwareResources: must contain ServiceAccount v1, found {car}"
    );

    for key in [
        "io.kubewarden.policy.title",
        "io.kubewarden.policy.version",
        "io.kubewarden.policy.description",
        "io.kubewarden.policy.author",
        "io.kubewarden.policy.url",
        "io.kubewarden.policy.source",
        "io.kubewarden.policy.license",
        "io.kubewarden.policy.ociUrl",
        "io.kubewarden.policy.severity",
        "io.kubewarden.policy.category",
        "io.artifacthub.displayName",
        "io.artifacthub.resources",
        "io.artifacthub.keywords",
    ] {
        assert!(
            !annotation(&m, key).trim().is_empty(),
            "{METADATA} annotations.\"{key}\": must not be empty"
        );
    }
    assert_eq!(
        annotation(&m, "io.artifacthub.resources"),
        "Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController, ServiceAccount",
        "{METADATA} annotations.\"io.artifacthub.resources\": must list the handled kinds"
    );
}

#[test]
fn versions_agree() {
    let m = yaml(METADATA);
    let pkg = yaml(ARTIFACTHUB);
    let crate_version = crate_version();

    assert_eq!(
        annotation(&m, "io.kubewarden.policy.version"),
        crate_version,
        "{METADATA} annotations.\"io.kubewarden.policy.version\" must equal Cargo.toml [package] version"
    );
    assert_eq!(
        string(&pkg["version"], &format!("{ARTIFACTHUB} version")),
        crate_version,
        "{ARTIFACTHUB} version must equal Cargo.toml [package] version"
    );
}

#[test]
fn oci_url_and_image_agree() {
    let m = yaml(METADATA);
    let pkg = yaml(ARTIFACTHUB);
    let oci_url = annotation(&m, "io.kubewarden.policy.ociUrl");
    let version = annotation(&m, "io.kubewarden.policy.version");

    // kwctl scaffold artifacthub builds the image as "<ociUrl>:v<version>", so
    // a tag inside ociUrl would end up doubled.
    let last_segment = oci_url.rsplit('/').next().unwrap_or(oci_url);
    assert!(
        !last_segment.contains(':') && !last_segment.contains('@'),
        "{METADATA} annotations.\"io.kubewarden.policy.ociUrl\" must carry no tag or digest \
         (kwctl appends \":v<version>\"), found {oci_url}"
    );
    assert!(
        !oci_url.contains("://"),
        "{METADATA} annotations.\"io.kubewarden.policy.ociUrl\" must be a bare reference \
         without scheme, found {oci_url}"
    );

    let images = pkg["containersImages"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{ARTIFACTHUB} containersImages: expected a list"));
    assert_eq!(
        images.len(),
        1,
        "{ARTIFACTHUB} containersImages: expected exactly one image"
    );
    assert_eq!(
        string(
            &images[0]["name"],
            &format!("{ARTIFACTHUB} containersImages[0].name")
        ),
        "policy",
        "{ARTIFACTHUB} containersImages[0].name must be policy"
    );
    let image = string(
        &images[0]["image"],
        &format!("{ARTIFACTHUB} containersImages[0].image"),
    );
    assert_eq!(
        image,
        expected_image(&m),
        "{ARTIFACTHUB} containersImages[0].image must be ociUrl + \":v\" + version"
    );
    assert_eq!(
        image.rsplit_once(':').map(|(_, tag)| tag),
        Some(format!("v{version}").as_str()),
        "{ARTIFACTHUB} containersImages[0].image tag must be v<io.kubewarden.policy.version>"
    );

    let install = string(&pkg["install"], &format!("{ARTIFACTHUB} install"));
    assert!(
        install.contains(&format!("kwctl pull {image}")),
        "{ARTIFACTHUB} install: must show `kwctl pull {image}`"
    );
    assert!(
        read("README.md").contains(image),
        "README.md must mention the current image {image}"
    );
}

#[test]
fn artifacthub_annotations_match_metadata() {
    let m = yaml(METADATA);
    let pkg = yaml(ARTIFACTHUB);

    let mutating = m["mutating"]
        .as_bool()
        .unwrap_or_else(|| panic!("{METADATA} mutating: expected a bool"));
    assert_eq!(
        ah_annotation(&pkg, "kubewarden/mutation"),
        mutating.to_string(),
        "{ARTIFACTHUB} annotations.\"kubewarden/mutation\" must equal {METADATA} mutating"
    );

    let rules: Yaml =
        serde_yaml::from_str(ah_annotation(&pkg, "kubewarden/rules")).unwrap_or_else(|e| {
            panic!("{ARTIFACTHUB} annotations.\"kubewarden/rules\": not YAML: {e}")
        });
    assert_eq!(
        to_json(&rules, "kubewarden/rules"),
        to_json(&m["rules"], "rules"),
        "{ARTIFACTHUB} annotations.\"kubewarden/rules\" must equal {METADATA} rules"
    );

    let car: Yaml = serde_yaml::from_str(ah_annotation(&pkg, "kubewarden/contextAwareResources"))
        .unwrap_or_else(|e| {
            panic!("{ARTIFACTHUB} annotations.\"kubewarden/contextAwareResources\": not YAML: {e}")
        });
    assert_eq!(
        to_json(&car, "kubewarden/contextAwareResources"),
        to_json(&m["contextAwareResources"], "contextAwareResources"),
        "{ARTIFACTHUB} annotations.\"kubewarden/contextAwareResources\" must equal {METADATA} contextAwareResources"
    );

    assert_eq!(
        ah_annotation(&pkg, "kubewarden/resources"),
        annotation(&m, "io.artifacthub.resources"),
        "{ARTIFACTHUB} annotations.\"kubewarden/resources\" must equal {METADATA} io.artifacthub.resources"
    );
}

#[test]
fn artifacthub_descriptive_fields_match_metadata() {
    let m = yaml(METADATA);
    let pkg = yaml(ARTIFACTHUB);
    let field = |name: &str| string(&pkg[name], &format!("{ARTIFACTHUB} {name}")).to_string();
    let version = annotation(&m, "io.kubewarden.policy.version");

    assert_eq!(
        field("name"),
        annotation(&m, "io.kubewarden.policy.title"),
        "{ARTIFACTHUB} name must equal {METADATA} io.kubewarden.policy.title"
    );
    assert_eq!(
        field("displayName"),
        annotation(&m, "io.artifacthub.displayName"),
        "{ARTIFACTHUB} displayName must equal {METADATA} io.artifacthub.displayName"
    );
    assert_eq!(
        field("description"),
        annotation(&m, "io.kubewarden.policy.description"),
        "{ARTIFACTHUB} description must equal {METADATA} io.kubewarden.policy.description"
    );
    assert_eq!(
        field("license"),
        annotation(&m, "io.kubewarden.policy.license"),
        "{ARTIFACTHUB} license must equal {METADATA} io.kubewarden.policy.license"
    );
    assert_eq!(
        annotation(&m, "io.kubewarden.policy.license"),
        crate_license(),
        "{METADATA} io.kubewarden.policy.license must equal Cargo.toml license"
    );
    assert_eq!(
        field("homeURL"),
        annotation(&m, "io.kubewarden.policy.url"),
        "{ARTIFACTHUB} homeURL must equal {METADATA} io.kubewarden.policy.url"
    );
    let created_at = field("createdAt");
    assert!(
        created_at.len() >= 20 && created_at.as_bytes()[10] == b'T',
        "{ARTIFACTHUB} createdAt must be an RFC 3339 timestamp, found {created_at}"
    );

    let keywords: Vec<String> = annotation(&m, "io.artifacthub.keywords")
        .split(',')
        .map(|k| k.trim().to_string())
        .collect();
    assert_eq!(
        to_json(&pkg["keywords"], "keywords"),
        json!(keywords),
        "{ARTIFACTHUB} keywords must equal the comma-separated {METADATA} io.artifacthub.keywords"
    );

    let source = annotation(&m, "io.kubewarden.policy.source");
    assert_eq!(
        to_json(&pkg["links"], "links"),
        json!([
            { "name": "policy", "url": format!("{source}/releases/download/v{version}/policy.wasm") },
            { "name": "source", "url": source },
        ]),
        "{ARTIFACTHUB} links must be the release policy.wasm and {METADATA} io.kubewarden.policy.source"
    );

    // "Name <email>", the form kwctl requires for io.kubewarden.policy.author.
    let author = annotation(&m, "io.kubewarden.policy.author");
    let (name, email) = author
        .strip_suffix('>')
        .and_then(|a| a.split_once('<'))
        .map(|(n, e)| (n.trim(), e.trim()))
        .unwrap_or_else(|| {
            panic!(
                "{METADATA} io.kubewarden.policy.author must be \"Name <email>\", found {author}"
            )
        });
    assert_eq!(
        to_json(&pkg["maintainers"], "maintainers"),
        json!([{ "name": name, "email": email }]),
        "{ARTIFACTHUB} maintainers must equal {METADATA} io.kubewarden.policy.author"
    );

    assert_eq!(
        to_json(&pkg["provider"], "provider"),
        json!({ "name": "kubewarden" }),
        "{ARTIFACTHUB} provider must be kubewarden"
    );
    assert_eq!(
        to_json(&pkg["recommendations"], "recommendations"),
        json!([{ "url": "https://artifacthub.io/packages/helm/kubewarden/kubewarden-controller" }]),
        "{ARTIFACTHUB} recommendations must point at the kubewarden-controller chart"
    );
}

#[test]
fn example_cluster_admission_policy_matches_metadata() {
    let m = yaml(METADATA);
    let p = yaml(EXAMPLE_POLICY);
    let spec = &p["spec"];

    assert_eq!(
        string(&p["kind"], &format!("{EXAMPLE_POLICY} kind")),
        "ClusterAdmissionPolicy",
        "{EXAMPLE_POLICY} kind: a context-aware policy must be a ClusterAdmissionPolicy"
    );
    assert_eq!(
        string(&spec["module"], &format!("{EXAMPLE_POLICY} spec.module")),
        format!("registry://{}", expected_image(&m)),
        "{EXAMPLE_POLICY} spec.module must be registry:// + the released image"
    );
    assert_eq!(
        spec["mutating"].as_bool(),
        m["mutating"].as_bool(),
        "{EXAMPLE_POLICY} spec.mutating must equal {METADATA} mutating"
    );
    // Caller identity needs every workload kind; the ServiceAccount rule is for
    // examples/check-serviceaccounts.yaml.
    let mut workload_rules = to_json(&m["rules"], "rules");
    if let Some(rules) = workload_rules.as_array_mut() {
        rules.retain(|r| r["resources"] != json!(["serviceaccounts"]));
    }
    assert_eq!(
        to_json(&spec["rules"], "spec.rules"),
        workload_rules,
        "{EXAMPLE_POLICY} spec.rules must equal {METADATA} rules but the ServiceAccount one"
    );
    assert_eq!(
        to_json(&spec["contextAwareResources"], "spec.contextAwareResources"),
        to_json(&m["contextAwareResources"], "contextAwareResources"),
        "{EXAMPLE_POLICY} spec.contextAwareResources must equal {METADATA} contextAwareResources"
    );
    assert_eq!(
        to_json(
            &p["spec"]["contextAwareResources"],
            "spec.contextAwareResources"
        ),
        service_account_resource(),
        "{EXAMPLE_POLICY} spec.contextAwareResources must be ServiceAccount v1"
    );
}

/// Fenced code blocks of a Markdown text, in order: (info string, body).
fn fenced_blocks(markdown: &str) -> Vec<(String, String, usize)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((start, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for (_, inner) in lines.by_ref() {
            if inner.trim_end() == "```" {
                break;
            }
            body.push(inner);
        }
        blocks.push((info.trim().to_string(), body.join("\n"), start));
    }
    blocks
}

#[test]
fn readme_opens_with_make_run_then_make_test() {
    let readme = read("README.md");
    let blocks = fenced_blocks(&readme);
    assert!(
        blocks.len() >= 2,
        "README.md: expected at least two fenced blocks, found {}",
        blocks.len()
    );
    for (i, (cmd, (info, body, _))) in ["make run", "make test"].iter().zip(&blocks).enumerate() {
        assert_eq!(
            info,
            "sh",
            "README.md fenced block #{}: info string must be sh",
            i + 1
        );
        assert_eq!(
            body.trim(),
            *cmd,
            "README.md fenced block #{}: must be exactly `{cmd}`",
            i + 1
        );
    }
    // Both commands come before any section: they are the README's opening.
    let second_block_line = blocks[1].2;
    let first_section = readme
        .lines()
        .position(|l| l.starts_with("## "))
        .unwrap_or(usize::MAX);
    assert!(
        second_block_line < first_section,
        "README.md: `make run` and `make test` must come before the first `## ` section"
    );
    assert!(
        readme.starts_with("# workload-identity-policy\n"),
        "README.md: must start with the `# workload-identity-policy` title"
    );
}

/// Target names defined in a Makefile (`name other: deps`), ignoring
/// variable assignments (`:=`, `::=`) and recipe lines.
fn makefile_targets(makefile: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in makefile.lines() {
        if line.starts_with('\t') || line.starts_with(' ') || line.starts_with('#') {
            continue;
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        if line[colon..].starts_with(":=") || line[colon..].starts_with("::=") {
            continue;
        }
        let head = &line[..colon];
        if head.contains('=') {
            continue;
        }
        targets.extend(head.split_whitespace().map(str::to_string));
    }
    targets
}

#[test]
fn makefile_has_the_documented_targets() {
    let makefile = read("Makefile");
    let targets = makefile_targets(&makefile);
    for target in [
        "policy.wasm",
        "annotated-policy.wasm",
        "run",
        "test",
        "e2e-tests",
        "fmt",
        "lint",
    ] {
        assert!(
            targets.iter().any(|t| t == target),
            "Makefile: target `{target}` is missing (found: {targets:?})"
        );
    }
}

#[test]
fn toml_value_reads_only_the_requested_section() {
    let text = "[workspace.package]\nversion = \"9.9.9\"\n\n[package]\nname = \"x\"\n\
                version = \"1.2.3\" # comment\nlicense.workspace = true\n\n[dependencies]\nversion = \"0\"\n";
    assert_eq!(
        toml_value(text, "package", "version").as_deref(),
        Some("1.2.3")
    );
    assert_eq!(
        toml_value(text, "workspace.package", "version").as_deref(),
        Some("9.9.9")
    );
    assert_eq!(
        toml_value(text, "package", "license.workspace").as_deref(),
        Some("true")
    );
    assert_eq!(toml_value(text, "package", "license"), None);
}

#[test]
fn readme_cites_existing_fixtures() {
    let readme = read("README.md");
    let mut cited: Vec<&str> = readme
        .match_indices("fixtures/")
        .filter_map(|(at, _)| {
            let rest = &readme[at + "fixtures/".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            // `fixtures/<case>` is a placeholder, not a case.
            (!name.is_empty()).then_some(name)
        })
        .collect();
    cited.sort_unstable();
    cited.dedup();
    for name in cited {
        assert!(
            repo_root()
                .join("fixtures")
                .join(name)
                .join("request.json")
                .is_file(),
            "README.md cites fixtures/{name}, which has no request.json"
        );
    }
}
