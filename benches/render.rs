//! In-process render speed on the real-world corpora: every directory of each corpus, and the
//! v1.0 directory with the largest output. `hack/bench-render.sh` runs this beside kustomize's
//! own library (`hack/krusty-bench`) on the same directories and prints the ratios; it also
//! compares the whole CLI with `kubectl kustomize`.
//!
//! The corpora are found in `$KFOP_CORPUS`, else `../shared/corpus` beside the crate.

use criterion::{Criterion, criterion_group, criterion_main};
use kfop::render::Renderer;
use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    std::env::var_os("KFOP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// The directories a corpus lists, as paths, or `None` when the corpus is absent.
fn corpus_dirs(name: &str) -> Option<Vec<PathBuf>> {
    let root = corpus_root().join(name);
    let list = std::fs::read_to_string(root.join("dirs.txt")).ok()?;
    Some(
        list.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| root.join("tree").join(l))
            .collect(),
    )
}

/// The v1.0 directory whose `kubectl kustomize` output (stored in the corpus) is largest.
fn largest_v1_0_dir() -> Option<PathBuf> {
    let root = corpus_root().join("kubeflow-manifests-v1.0");
    let list = std::fs::read_to_string(root.join("dirs.txt")).ok()?;
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .max_by_key(|dir| {
            std::fs::metadata(
                root.join("expected")
                    .join(format!("{}.yaml", dir.replace('/', "_"))),
            )
            .map_or(0, |m| m.len())
        })
        .map(|dir| root.join("tree").join(dir))
}

fn bench(c: &mut Criterion) {
    let renderer = Renderer::new(None).expect("renderer");
    // `cargo test --all-targets` runs this without `--bench`: the whole corpora (minutes in a
    // debug build) only when measuring; the largest directory checks the bench still works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let corpora: &[(&str, &str)] = if measuring {
        &[
            ("kubeflow-manifests-v1.0", "v1.0"),
            ("kubeflow-manifests-v1.9.1", "v1.9.1"),
        ]
    } else {
        &[]
    };
    for &(corpus, id) in corpora {
        let Some(dirs) = corpus_dirs(corpus) else {
            eprintln!(
                "skipping {corpus}: not found in {}",
                corpus_root().display()
            );
            continue;
        };
        let failing: Vec<_> = dirs
            .iter()
            .filter(|d| renderer.render(d).is_err())
            .collect();
        if !failing.is_empty() {
            eprintln!("{corpus}: {} directories fail: {failing:?}", failing.len());
        }
        let mut group = c.benchmark_group(format!("render-{id}"));
        group.sample_size(10);
        group.bench_function("all-dirs", |b| {
            b.iter(|| dirs.iter().filter(|d| renderer.render(d).is_ok()).count())
        });
        group.finish();
    }
    if let Some(largest) = largest_v1_0_dir() {
        eprintln!("largest v1.0 directory: {}", largest.display());
        c.bench_function("render-v1.0-largest", |b| {
            b.iter(|| renderer.render(&largest))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
