//! Every input the fuzzers ever crashed on (`fuzz/regressions/<target>/`), and the seed inputs they
//! start from (`fuzz/seeds/<target>/`), replayed through the very function the fuzz target runs
//! (`fuzz/src/lib.rs`, included here), in a normal `cargo test`: a fixed crash stays fixed without
//! cargo-fuzz or a nightly compiler. See `docs/fuzzing.md`.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_fuzz_input_replays_through_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, run) in targets::TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(!seeds.is_empty(), "{name} has no seed inputs");
        let regressions = inputs(&fuzz.join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read input");
            // A panic names the file: run it alone with `cargo fuzz run NAME FILE`.
            eprintln!("{name}: {}", path.display());
            run(&data);
        }
    }
}

/// The seeds are real inputs of each kind, so replaying them exercises more than the error paths.
#[test]
fn the_seeds_are_what_their_targets_expect() {
    use loyalty_core::checkout_code::ParsedCode;
    use loyalty_core::protocol::SyncRequest;
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let read = |target: &str, file: &str| std::fs::read(seeds.join(target).join(file)).unwrap();
    assert_eq!(
        SyncRequest::decode(&read("sync_request", "nothing-changed.bin"))
            .unwrap()
            .entries
            .len(),
        4
    );
    let doc =
        automerge::AutoCommit::load(&read("member_document", "member-with-requests.automerge"))
            .unwrap();
    assert_eq!(loyalty_core::member::read(&doc).unwrap().requests.len(), 1);
    let text = String::from_utf8(read("checkout_code", "worked-example-crlf.txt")).unwrap();
    assert!(ParsedCode::parse(&text).is_ok());
    let body = read("enroll_body", "enroll.json");
    assert!(loyalty_server::http::json::parse::<loyalty_core::api::EnrollRequest>(&body).is_ok());
}
