//! The short fuzz run of the test command: every target over its seed corpus
//! (`fuzz/corpus/<target>/`, real client frames, tokens and config files) and the regression
//! inputs (`fuzz/regressions/<target>/`, every crash found), plus a fixed number of
//! deterministic mutations of each seed. Bounded by count, not time; needs no nightly.

use std::path::PathBuf;

use gyre_fuzzing::{Mutator, TARGETS, Target};

/// Mutations per seed file.
const MUTATIONS_PER_SEED: usize = 1000;

fn inputs(dir: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("dir entry").path()).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("read seed"))
        .collect()
}

fn run_target(target: &Target) {
    let seeds = inputs("corpus", target.name);
    assert!(seeds.len() >= 3, "{}: seed corpus missing", target.name);
    for input in &inputs("regressions", target.name) {
        (target.run)(input);
    }
    let mut mutator = Mutator::new(target.name.len() as u64);
    for (i, seed) in seeds.iter().enumerate() {
        (target.run)(seed);
        let other = &seeds[(i + 1) % seeds.len()];
        for _ in 0..MUTATIONS_PER_SEED {
            let input = mutator.mutate(seed, other);
            (target.run)(&input);
        }
    }
}

macro_rules! target_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            let target = TARGETS.iter().find(|t| t.name == stringify!($name)).expect("target");
            run_target(target);
        }
    )*};
}

target_tests!(
    json_commands,
    protobuf_commands,
    websocket,
    jwt,
    fossil_delta,
    config_load
);

#[test]
fn every_target_has_a_libfuzzer_entry() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for target in TARGETS {
        let path = root.join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&path).expect("fuzz target file");
        assert!(
            text.contains(&format!("gyre_fuzzing::{}(", target.name)),
            "{path:?}"
        );
    }
}
