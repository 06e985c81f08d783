//! The documentation points at things that exist: every link to a file of this repository in
//! `README.md` and `docs/*.md` resolves to a file (and, with a `#fragment`, to a heading of that
//! file), and every `fixtures/<case>` it cites is a fixture case. `README.md` is also what Artifact
//! Hub shows (`kwctl annotate` embeds it in the module), where relative links lead nowhere: its
//! links to files are absolute, under the repository's `io.kubewarden.policy.source`.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Written by another change (issue 11, Flyte secret managers); linked from here before it lands.
const PENDING: &[&str] = &["docs/flyte-secrets.md"];

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `[text](target)` targets outside fenced code blocks.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// `<io.kubewarden.policy.source>/blob/main/`: where README links to repository files start.
fn blob_base() -> String {
    let metadata: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("policy-metadata.yml")).expect("policy-metadata.yml"),
    )
    .expect("policy-metadata.yml is YAML");
    let source = metadata["annotations"]["io.kubewarden.policy.source"]
        .as_str()
        .expect("io.kubewarden.policy.source");
    format!("{}/blob/main/", source.trim_end_matches('/'))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("readable markdown");
        let dir = file.parent().unwrap_or(root());
        for link in links(&text) {
            let (dir, link) = match link.strip_prefix(&blob_base()) {
                Some(in_repo) => (root(), in_repo.to_string()),
                None if link.contains("://") || link.starts_with("mailto:") => continue,
                None => (dir, link),
            };
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let Ok(target) = target.canonicalize() else {
                let wanted = relative(&dir.join(path));
                let wanted = wanted.replace("docs/../", "");
                if !PENDING.contains(&wanted.as_str()) {
                    broken.push(format!("{}: {link} (no such file)", relative(&file)));
                }
                continue;
            };
            if !fragment.is_empty() && target.is_file() {
                let heads = anchors(&std::fs::read_to_string(&target).unwrap_or_default());
                if !heads.iter().any(|h| h == fragment) {
                    broken.push(format!("{}: {link} (no such heading)", relative(&file)));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn readme_links_work_on_artifact_hub() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let relative: Vec<String> = links(&readme)
        .into_iter()
        .filter(|link| !link.contains("://") && !link.starts_with('#'))
        .collect();
    assert!(
        relative.is_empty(),
        "README.md links {relative:?} relatively: on Artifact Hub they lead nowhere; link to {}<path>",
        blob_base()
    );
}

#[test]
fn cited_fixtures_exist() {
    let mut missing = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("readable markdown");
        for (at, _) in text.match_indices("fixtures/") {
            let rest = &text[at + "fixtures/".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() || name == "case" {
                continue;
            }
            if !root()
                .join("fixtures")
                .join(name)
                .join("request.json")
                .is_file()
            {
                missing.push(format!("{}: fixtures/{name}", relative(&file)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited fixture cases that do not exist:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_link_checker_sees_links_and_anchors() {
    assert_eq!(
        links("see [a](docs/a.md#x) and [b](https://x.y)\n```\n[c](no.md)\n```\n"),
        ["docs/a.md#x", "https://x.y"]
    );
    assert_eq!(
        anchor(" Sidecars injected after the policy get no identity"),
        "sidecars-injected-after-the-policy-get-no-identity"
    );
    assert_eq!(
        anchor("`lookupFailure`: switch to `reject`"),
        "lookupfailure-switch-to-reject"
    );
}
