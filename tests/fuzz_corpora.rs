//! Replays the fuzz targets' seeds, corpora and crash regressions through the targets' own
//! checks (`fuzz/src/lib.rs`), without the fuzzer: every parser of outside bytes meets, in each
//! test run, every input fuzzing found interesting. `scripts/fuzz.sh` fuzzes; this replays.
//!
//! `MSM_BLESS=1` writes the seeds to `fuzz/seeds/` after a deliberate change of a format.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

/// The files of a directory, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn seeds_are_accepted_and_committed() {
    let bless = std::env::var_os("MSM_BLESS").is_some();
    for (target, check) in targets::TARGETS {
        let dir = fuzz_dir("seeds", target);
        let seeds = targets::seeds(target);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            for file in files(&dir) {
                std::fs::remove_file(file).unwrap();
            }
        }
        for (i, seed) in seeds.iter().enumerate() {
            assert!(check(seed), "{target}: seed {i} is refused");
            let path = dir.join(format!("seed-{i:02}"));
            if bless {
                std::fs::write(&path, seed).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_default();
            assert_eq!(
                &committed,
                seed,
                "{} differs from the seed made from the fixtures: run with MSM_BLESS=1",
                path.display()
            );
        }
        assert_eq!(files(&dir).len(), seeds.len(), "{}", dir.display());
    }
}

#[test]
fn corpora_and_crash_regressions_replay() {
    let mut replayed = 0;
    for (target, check) in targets::TARGETS {
        for kind in ["corpus", "regressions"] {
            for file in files(&fuzz_dir(kind, target)) {
                let input = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&input));
                assert!(outcome.is_ok(), "{} fails its target", file.display());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed > 0,
        "no corpus under fuzz/: run `bash scripts/fuzz.sh` once"
    );
}
