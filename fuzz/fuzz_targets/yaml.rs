//! Arbitrary bytes into the YAML loader: it may refuse them, never panic; and where its fast path
//! reads a text, it reads what the full parser reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kfop::render::yaml::parse_documents(text);
        let _ = kfop::render::yaml::parse_document(text);
        assert_ne!(
            kfop::render::yaml::fast_path_agrees(text),
            Some(false),
            "the fast path and the full parser read {text:?} differently"
        );
    }
});
