//! The publish path, end to end, against a real OCI registry: Debian's `docker-registry` started
//! on 127.0.0.1 on a free port with a temporary storage folder, `make publish` (annotate + `kwctl
//! push`), `kwctl pull`, `kwctl inspect`, and `kwctl run registry://...` answering a fixture as the
//! local module does. A push to a registry that is not running fails loudly.
//!
//! Needs kwctl (`KWCTL` or `PATH`) and `docker-registry` (`DOCKER_REGISTRY` or `PATH`); without
//! either the test is skipped with a notice.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::kwctl::{find_tool, missing, Kwctl};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A running registry, stopped when dropped (even when the test fails).
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(binary: &Path, dir: &Path) -> Registry {
        let port = free_port();
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let registry = Registry { child, port };
        registry.wait_ready(dir);
        registry
    }

    /// Waits until `GET /v2/` answers 200.
    fn wait_ready(&self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        panic!(
            "docker-registry did not answer on 127.0.0.1:{}:\n{log}",
            self.port
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The version `make publish` requires in the tag.
fn version() -> String {
    let metadata = std::fs::read_to_string(workspace().join("policy-metadata.yml")).unwrap();
    metadata
        .lines()
        .find_map(|l| l.trim().strip_prefix("io.kubewarden.policy.version:"))
        .map(|v| v.trim().to_owned())
        .expect("policy-metadata.yml has io.kubewarden.policy.version")
}

/// `make publish ...` in the workspace, building into the tests' own target directory.
fn make_publish(kwctl: &Path, vars: &[String]) -> Output {
    Command::new(std::env::var_os("MAKE").unwrap_or_else(|| "make".into()))
        .current_dir(workspace())
        .arg("--no-print-directory")
        .arg("publish")
        .arg(format!("KWCTL={}", kwctl.display()))
        .arg("TARGET_DIR=target/e2e-wasm")
        .args(vars)
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .env_remove("CARGO_TARGET_DIR")
        // An outer `make -j` must not run the checks and the build side by side.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run make")
}

#[test]
fn publish_pull_inspect_and_run_from_a_registry() {
    let Some(kwctl) = Kwctl::for_test("publish_pull_inspect_and_run_from_a_registry") else {
        return;
    };
    let Some(registry_binary) = find_tool("DOCKER_REGISTRY", "docker-registry") else {
        missing(
            "publish_pull_inspect_and_run_from_a_registry",
            "docker-registry",
            "apt-get install docker-registry, or set DOCKER_REGISTRY",
        );
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("publish");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The module the fixtures test, built first so that `make publish` finds it up to date.
    common::wasm();

    let registry = Registry::start(&registry_binary, &dir);
    let host = format!("127.0.0.1:{}", registry.port);
    let sources = dir.join("sources.yml");
    std::fs::write(&sources, format!("insecure_sources: [\"{host}\"]\n")).unwrap();
    let uri = format!("registry://{host}/workload-identity-policy:v{}", version());

    let publish = make_publish(
        kwctl.path(),
        &[
            format!("REGISTRY={uri}"),
            format!("SOURCES={}", sources.display()),
        ],
    );
    assert!(
        publish.status.success(),
        "make publish failed:\n{}",
        text(&publish)
    );
    assert!(
        text(&publish).contains("Policy successfully pushed"),
        "{}",
        text(&publish)
    );

    // kwctl's store goes to a folder of this test, not the user's cache.
    let cache = dir.join("cache");
    let kw = |args: &[&str]| -> Output {
        let (name, rest) = args.split_first().unwrap();
        let mut command = kwctl.subcommand(name);
        command.env("XDG_CACHE_HOME", &cache);
        command.args(rest).output().unwrap()
    };
    let sources_arg = sources.to_string_lossy().into_owned();
    let pulled = kw(&["pull", "--sources-path", &sources_arg, &uri]);
    assert!(pulled.status.success(), "kwctl pull:\n{}", text(&pulled));

    let inspected = kw(&[
        "inspect",
        "-o",
        "yaml",
        "--sources-path",
        &sources_arg,
        &uri,
    ]);
    assert!(
        inspected.status.success(),
        "kwctl inspect:\n{}",
        text(&inspected)
    );
    let metadata: Value = serde_yaml::from_slice(&inspected.stdout).unwrap();
    let ours: Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace().join("policy-metadata.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["rules"], ours["rules"], "rules");
    assert_eq!(metadata["mutating"], Value::Bool(true), "mutating");
    assert_eq!(
        metadata["contextAwareResources"], ours["contextAwareResources"],
        "context aware"
    );
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.title"],
        ours["annotations"]["io.kubewarden.policy.title"],
        "title"
    );
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.version"].as_str(),
        Some(version().as_str())
    );

    // The same fixture from the registry and from the local module: the same answer.
    let fixture = common::fixtures().join("aws-basic-default-sa");
    let arg = |p: PathBuf| p.to_string_lossy().into_owned();
    let run = |module: &str| -> Value {
        let output = kw(&[
            "run",
            "--sources-path",
            &sources_arg,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &arg(fixture.join("session.yml")),
            "--request-path",
            &arg(fixture.join("request.json")),
            module,
        ]);
        assert!(
            output.status.success(),
            "kwctl run {module}:\n{}",
            text(&output)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let annotated = workspace().join("annotated-policy.wasm");
    let from_registry = run(&uri);
    assert_eq!(from_registry, run(&arg(annotated)));
    assert!(from_registry["patch"].is_string(), "{from_registry}");

    // A registry that is not running: make publish fails and shows kwctl's error.
    drop(registry);
    let closed = format!("registry://127.0.0.1:{}/x:v{}", free_port(), version());
    let failed = make_publish(kwctl.path(), &[format!("REGISTRY={closed}")]);
    assert!(!failed.status.success(), "push to a closed port succeeded");
    assert!(
        text(&failed).contains("Error: Fail to interact with OCI registry"),
        "{}",
        text(&failed)
    );
}

/// `make publish` checks its inputs before it builds or calls kwctl: no kwctl is needed here.
#[test]
fn publish_refuses_bad_registries_and_tags() {
    let kwctl = Path::new("/nonexistent/kwctl");
    let v = version();
    for (vars, wanted) in [
        (vec![], "REGISTRY is missing".to_owned()),
        (
            vec![format!("REGISTRY=ghcr.io/x/y:v{v}")],
            "is not registry://HOST/PATH:TAG".to_owned(),
        ),
        (
            vec!["REGISTRY=registry://127.0.0.1:1/x:v9.9.9".to_owned()],
            format!("tag v9.9.9 differs from the policy's version {v}"),
        ),
        (
            vec![
                format!("REGISTRY=registry://127.0.0.1:1/x:v{v}"),
                "SOURCES=/nonexistent/sources.yml".to_owned(),
            ],
            "SOURCES=/nonexistent/sources.yml is not a file".to_owned(),
        ),
    ] {
        let output = make_publish(kwctl, &vars);
        assert!(!output.status.success(), "{vars:?}");
        assert!(
            text(&output).contains(&wanted),
            "{vars:?}: {}",
            text(&output)
        );
    }
}
