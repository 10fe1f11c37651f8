//! What the conformance tests need from outside the repo: the real-world corpora (in
//! `$KFOP_CORPUS`, else `../shared/corpus` beside the crate) and `kubectl`, whose `kustomize`
//! output is cached outside the repo. A test whose input is missing skips, saying so, unless
//! `KFOP_REQUIRE_INPUTS=1` (or `KFOP_REQUIRE_CLUSTER=1`, as `make test` and CI set), where it fails.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

/// Whether a missing input fails the test instead of skipping it.
pub fn required() -> bool {
    ["KFOP_REQUIRE_INPUTS", "KFOP_REQUIRE_CLUSTER"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v == "true"))
}

/// Skips (returns `None`, saying why) or, when inputs are required, fails.
pub fn missing<T>(why: String) -> Option<T> {
    if required() {
        panic!("a required test input is missing: {why}");
    }
    eprintln!("skipping: {why} (KFOP_REQUIRE_INPUTS=1 makes this a failure)");
    None
}

/// The folder that holds the corpora.
pub fn corpus_root() -> PathBuf {
    std::env::var_os("KFOP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// One corpus folder (e.g. `kubeflow-manifests-v1.9.1`) holding `file`, or `None` after skipping.
pub fn corpus(name: &str, file: &str) -> Option<PathBuf> {
    let dir = corpus_root().join(name);
    if dir.join(file).exists() {
        Some(dir)
    } else {
        missing(format!(
            "the {name} corpus is not at {} (set KFOP_CORPUS to the folder of corpora)",
            dir.display()
        ))
    }
}

/// The directories a corpus's `dirs.txt` lists.
pub fn corpus_dirs(corpus: &Path) -> Vec<String> {
    std::fs::read_to_string(corpus.join("dirs.txt"))
        .expect("dirs.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `kubectl`, found on the PATH, with what `kubectl version --client` says.
pub struct Kubectl {
    pub version: String,
}

impl Kubectl {
    /// kubectl, or `None` after skipping.
    pub fn find() -> Option<Self> {
        match Command::new("kubectl")
            .args(["version", "--client"])
            .output()
        {
            Ok(output) if output.status.success() => Some(Self {
                version: String::from_utf8_lossy(&output.stdout).into_owned(),
            }),
            Ok(output) => missing(format!(
                "`kubectl version --client` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )),
            Err(e) => missing(format!("kubectl is not on the PATH: {e}")),
        }
    }

    /// What `kubectl kustomize DIR` prints for each of `dirs` (relative to `tree`), or its
    /// error. Outputs are cached under `$KFOP_CACHE/kubectl-kustomize/`, keyed by kubectl's
    /// version and the names, sizes and times of every file of `tree`, so a changed corpus or
    /// kubectl makes fresh ones; missing outputs are made two at a time.
    pub fn kustomize_all(&self, tree: &Path, dirs: &[String]) -> Vec<Result<String, String>> {
        let cache = cache_root()
            .join("kubectl-kustomize")
            .join(self.cache_key(tree));
        std::fs::create_dir_all(&cache).expect("create the kubectl output cache");
        let file_of = |dir: &str| cache.join(format!("{}.out", dir.replace('/', "_")));
        let todo: Vec<&String> = dirs.iter().filter(|d| !file_of(d).exists()).collect();
        if !todo.is_empty() {
            eprintln!(
                "running kubectl kustomize on {} directories into {}",
                todo.len(),
                cache.display()
            );
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(dir) = todo.get(i) else { break };
                        let output = Command::new("kubectl")
                            .arg("kustomize")
                            .arg(tree.join(dir))
                            .output()
                            .expect("run kubectl kustomize");
                        // The first byte says which: `o` for output, `e` for an error.
                        let mut record = if output.status.success() {
                            let mut r = b"o".to_vec();
                            r.extend(output.stdout);
                            r
                        } else {
                            let mut r = b"e".to_vec();
                            r.extend(output.stderr);
                            r
                        };
                        record.shrink_to_fit();
                        let target = file_of(dir);
                        let temporary = target.with_extension("tmp");
                        std::fs::write(&temporary, record).expect("write the cache");
                        std::fs::rename(&temporary, &target).expect("write the cache");
                    }
                });
            }
        });
        dirs.iter()
            .map(|dir| {
                let record = std::fs::read(file_of(dir)).expect("read the cache");
                let text = String::from_utf8_lossy(record.get(1..).unwrap_or_default());
                match record.first() {
                    Some(b'o') => Ok(text.into_owned()),
                    _ => Err(text.into_owned()),
                }
            })
            .collect()
    }

    /// [`Self::kustomize_all`], each output as one compact JSON text per object (serde_json's,
    /// keys sorted), kept beside the cached output so that later runs need not parse YAML.
    pub fn kustomize_all_json(
        &self,
        tree: &Path,
        dirs: &[String],
    ) -> Vec<Result<Vec<String>, String>> {
        let outputs = self.kustomize_all(tree, dirs);
        let cache = cache_root()
            .join("kubectl-kustomize")
            .join(self.cache_key(tree));
        dirs.iter()
            .zip(outputs)
            .map(|(dir, output)| {
                let text = output?;
                let file = cache.join(format!("{}.jsonl", dir.replace('/', "_")));
                if let Ok(lines) = std::fs::read_to_string(&file) {
                    return Ok(lines.lines().map(str::to_string).collect());
                }
                let objects = kfop::render::yaml::parse_documents(&text)
                    .map_err(|e| format!("kubectl's output does not parse: {e}"))?;
                let lines: Vec<String> = objects
                    .iter()
                    .map(|o| serde_json::to_string(o).expect("JSON"))
                    .collect();
                let temporary = file.with_extension("tmp");
                std::fs::write(&temporary, lines.join("\n")).expect("write the cache");
                std::fs::rename(&temporary, &file).expect("write the cache");
                Ok(lines)
            })
            .collect()
    }

    fn cache_key(&self, tree: &Path) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.version.as_bytes());
        let mut files = Vec::new();
        walk(tree, &mut files);
        files.sort();
        for (path, len, modified) in files {
            hasher.update(format!("{path}\0{len}\0{modified}\n").as_bytes());
        }
        let digest = hasher.finalize();
        let name = tree
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{name}-{hex}")
    }
}

/// `$KFOP_CACHE`, else `~/.cache/kfop` (as the Makefile and hack/ scripts use).
pub fn cache_root() -> PathBuf {
    std::env::var_os("KFOP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/kfop")))
        .unwrap_or_else(|| std::env::temp_dir().join("kfop-cache"))
}

fn walk(dir: &Path, out: &mut Vec<(String, u64, u128)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            walk(&path, out);
        } else {
            let modified = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push((path.display().to_string(), metadata.len(), modified));
        }
    }
}

/// Where two renders first differ, object by object, or `None` when they are the same.
pub fn first_difference(
    expected: &[serde_json::Value],
    actual: &[serde_json::Value],
) -> Option<String> {
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e != a {
            return Some(format!(
                "object {i}: expected {} got {}: {}",
                describe(e),
                describe(a),
                value_difference(e, a, "").unwrap_or_default()
            ));
        }
    }
    (expected.len() != actual.len())
        .then(|| format!("expected {} objects, got {}", expected.len(), actual.len()))
}

fn describe(object: &serde_json::Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The path of the first place two values differ, with both sides there.
fn value_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let short = |v: Option<&Value>| {
        let text = v.map_or("(absent)".to_string(), Value::to_string);
        if text.len() > 120 {
            format!("{}…", text.chars().take(120).collect::<String>())
        } else {
            text
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let here = format!("{path}.{k}");
            match (x.get(k), y.get(k)) {
                (Some(l), Some(r)) => value_difference(l, r, &here),
                (l, r) => Some(format!("{here}: expected {} got {}", short(l), short(r))),
            }
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| value_difference(l, r, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!(
            "{path}: expected {} got {}",
            short(Some(a)),
            short(Some(b))
        )),
    }
}
