//! Arbitrary bytes as a kustomization.yaml (and as the manifest it lists): the renderer may refuse
//! them, never panic.
#![no_main]

use kfop::render::loader::Loader;
use kfop::render::Renderer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn root() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

fuzz_target!(|data: &[u8]| {
    let dir = root();
    let (kustomization, manifest) = match data.iter().position(|&b| b == 0) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(mut loader) = Loader::new(Some(dir)) else { return };
    if loader.override_file(&dir.join("kustomization.yaml"), kustomization).is_err()
        || loader.override_file(&dir.join("m.yaml"), manifest).is_err()
    {
        return;
    }
    let _ = Renderer::with_loader(loader).render(dir);
});
