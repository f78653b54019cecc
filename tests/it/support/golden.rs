//! Golden files: what people read (plans, reports) pinned in
//! `tests/golden/<name>.txt`, so that an output change shows as a diff in
//! review. `UPDATE_GOLDEN=1 cargo test` rewrites them; read the diff before
//! committing it.

use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"))
}

pub fn assert_golden(name: &str, actual: &str) {
    let path = path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; UPDATE_GOLDEN=1 cargo test writes it (then review it)", path.display())
    });
    assert!(
        expected == actual,
        "{} differs from the output (UPDATE_GOLDEN=1 cargo test rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
