//! The container image, built offline (no Docker engine, no registry): `hack/image-oci.sh` makes
//! an OCI image layout archive of this build's `kfop`, the archive is a valid layout with one
//! manifest and the expected config, its entrypoint starts as a runtime would start it
//! (`hack/run-image.sh`: the layers unpacked into a root filesystem, chrooted, as user 65532, with
//! the image's environment only), and the same binary gives the same digest and the same bytes.
//!
//! Building the image needs Go (for `hack/image-oci/`), `ldd` and `python3`; without them the test
//! skips, saying so, unless `KFOP_REQUIRE_INPUTS=1` or `KFOP_REQUIRE_CLUSTER=1` (as `make test`
//! sets), where it fails.

mod inputs;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hack")
        .join(name)
}

/// Whether the tools the image build needs are here: `Some` if so, else skips (`None`) or fails.
fn tools_present() -> Option<()> {
    for (tool, arg, why) in [
        (
            "go",
            "version",
            "to build hack/image-oci (https://go.dev/dl)",
        ),
        ("ldd", "--version", "to find the binary's shared libraries"),
        ("python3", "--version", "for hack/run-image.sh"),
    ] {
        match Command::new(tool).arg(arg).output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                return inputs::missing(format!(
                    "`{tool} {arg}` failed ({}), and {tool} is needed {why}",
                    output.status
                ));
            }
            Err(e) => {
                return inputs::missing(format!("{tool} is needed {why}: {e}"));
            }
        }
    }
    Some(())
}

fn describe(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Builds the image of this build's kfop into `out`; returns the digest the tool printed.
fn build_image(out: &Path) -> String {
    let output = Command::new(script("image-oci.sh"))
        .arg(env!("CARGO_BIN_EXE_kfop"))
        .arg(out)
        .env_remove("KFOP_IMAGE_TAG")
        .output()
        .expect("run hack/image-oci.sh");
    let text = describe("hack/image-oci.sh", &output);
    assert!(output.status.success(), "{text}");
    assert!(out.is_file(), "no archive at {}: {text}", out.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .unwrap_or_else(|| panic!("no `digest: ` line: {text}"))
        .to_string()
}

/// The archive's entries: each name with its size, and the content of the small ones (index,
/// manifests, configs; not the layers).
fn read_archive(path: &Path) -> BTreeMap<String, (u64, Option<Vec<u8>>)> {
    let file = std::fs::File::open(path).expect("open the archive");
    let mut archive = tar::Archive::new(file);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("read the archive") {
        let mut entry = entry.expect("an archive entry");
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let size = entry.header().size().expect("entry size");
        let content = (size < 1 << 20).then(|| {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read an entry");
            content
        });
        entries.insert(name, (size, content));
    }
    entries
}

fn json(entries: &BTreeMap<String, (u64, Option<Vec<u8>>)>, name: &str) -> Value {
    let (_, content) = entries
        .get(name)
        .unwrap_or_else(|| panic!("the archive has no {name}: {:?}", entries.keys()));
    let content = content
        .as_ref()
        .unwrap_or_else(|| panic!("{name} is too large for JSON"));
    serde_json::from_slice(content).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The blob a descriptor points at, checked to be in the archive with the descriptor's size.
fn blob_name(entries: &BTreeMap<String, (u64, Option<Vec<u8>>)>, descriptor: &Value) -> String {
    let digest = descriptor["digest"].as_str().expect("a descriptor digest");
    let name = format!("blobs/{}", digest.replacen(':', "/", 1));
    let (size, _) = entries
        .get(&name)
        .unwrap_or_else(|| panic!("the archive has no blob {digest}"));
    assert_eq!(
        Some(*size),
        descriptor["size"].as_u64(),
        "the size of {digest}"
    );
    name
}

/// Checks the archive is an OCI image layout of one image with kfop's config; returns the
/// manifest's digest.
fn check_layout(archive: &Path) -> String {
    let entries = read_archive(archive);
    let layout = json(&entries, "oci-layout");
    assert_eq!(layout["imageLayoutVersion"], "1.0.0", "{layout}");

    let index = json(&entries, "index.json");
    assert_eq!(index["schemaVersion"], 2, "{index}");
    let manifests = index["manifests"].as_array().expect("index manifests");
    assert_eq!(manifests.len(), 1, "one manifest: {index}");
    let descriptor = &manifests[0];
    assert_eq!(
        descriptor["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        format!("ghcr.io/kfop/kfop:{VERSION}"),
        "{index}"
    );

    let manifest = json(&entries, &blob_name(&entries, descriptor));
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().expect("manifest layers");
    assert!(!layers.is_empty(), "{manifest}");
    for layer in layers {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{manifest}"
        );
        blob_name(&entries, layer);
    }

    let config = json(&entries, &blob_name(&entries, &manifest["config"]));
    assert_eq!(config["os"], "linux", "{config}");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(layers.len()),
        "one diff_id per layer: {config}"
    );
    let run = &config["config"];
    assert_eq!(
        run["Entrypoint"],
        serde_json::json!(["/usr/local/bin/kfop"]),
        "{config}"
    );
    assert_eq!(run["Cmd"], serde_json::json!(["run"]), "{config}");
    assert_eq!(run["User"], "65532:65532", "{config}");
    assert_eq!(run["WorkingDir"], "/", "{config}");
    let env: Vec<&str> = run["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{config}");
    let labels = &run["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"], VERSION,
        "{config}"
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"], "Apache-2.0",
        "{config}"
    );
    assert_eq!(labels["org.opencontainers.image.title"], "kfop", "{config}");
    assert!(
        labels["org.opencontainers.image.source"].is_string(),
        "{config}"
    );
    descriptor["digest"]
        .as_str()
        .expect("manifest digest")
        .to_string()
}

#[test]
fn the_image_builds_offline_runs_its_entrypoint_and_is_reproducible() {
    if tools_present().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = dir.path().join("kfop.oci.tar");
    let digest = build_image(&first);
    assert!(digest.starts_with("sha256:"), "digest {digest}");
    assert_eq!(check_layout(&first), digest, "index.json's digest");

    // The entrypoint, started the way a runtime starts it.
    let output = Command::new(script("run-image.sh"))
        .arg(&first)
        .arg("version")
        .output()
        .expect("run hack/run-image.sh");
    if output.status.code() == Some(77) {
        inputs::missing::<()>(describe(
            "hack/run-image.sh cannot chroot here (needs root or user namespaces)",
            &output,
        ));
        return;
    }
    let text = describe("hack/run-image.sh ARCHIVE version", &output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("kfop {VERSION} "))
            || stdout.trim() == format!("kfop {VERSION}"),
        "{text}"
    );

    // The same binary again: the same digest, and the same archive byte for byte.
    let second = dir.path().join("again.oci.tar");
    assert_eq!(build_image(&second), digest, "the digest of a second build");
    let same = std::fs::read(&first).expect("read the first archive")
        == std::fs::read(&second).expect("read the second archive");
    assert!(same, "the two archives differ");
}
