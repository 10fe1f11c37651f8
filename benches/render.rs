//! In-process render speed on the kubeflow/manifests v1.0 corpus: the largest directory, and all
//! 146 directories. `hack/bench-render.sh` compares the whole CLI with `kubectl kustomize`.

use criterion::{Criterion, criterion_group, criterion_main};
use kfop::render::Renderer;
use std::path::{Path, PathBuf};

const CORPUS: &str = "../shared/corpus/kubeflow-manifests-v1.0";

fn corpus_dirs() -> Option<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let list = std::fs::read_to_string(root.join("dirs.txt")).ok()?;
    Some(
        list.lines()
            .filter(|l| !l.is_empty())
            .map(|l| root.join("tree").join(l))
            .collect(),
    )
}

fn bench(c: &mut Criterion) {
    let Some(dirs) = corpus_dirs() else {
        eprintln!("skipping: corpus not found at {CORPUS}");
        return;
    };
    let renderer = Renderer::new(None).expect("renderer");
    // The largest directory by rendered size.
    let largest = dirs
        .iter()
        .max_by_key(|d| renderer.render(d).map(|objects| objects.len()).unwrap_or(0))
        .cloned()
        .expect("at least one directory");
    let name = largest
        .strip_prefix(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(CORPUS)
                .join("tree"),
        )
        .unwrap_or(&largest)
        .display()
        .to_string();
    c.bench_function(&format!("render largest corpus dir ({name})"), |b| {
        b.iter(|| renderer.render(&largest))
    });
    let mut group = c.benchmark_group("corpus");
    group.sample_size(10);
    group.bench_function("render all corpus dirs", |b| {
        b.iter(|| {
            dirs.iter()
                .map(|d| renderer.render(d).is_ok())
                .filter(|ok| *ok)
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
