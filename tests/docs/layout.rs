//! The folders the examples run in.

use std::path::{Path, PathBuf};

use crate::markdown;

/// Lays out one trycmd case per document in the test's scratch folder and returns that folder:
/// `NAME.md` is a symbolic link to the document, so that `TRYCMD=overwrite` rewrites the document
/// itself, and `NAME.in/` the folder its commands run in (see [`example_folder`]).
pub fn lay_out() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs");
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("the scratch folder can be emptied");
    }
    std::fs::create_dir_all(&root).expect("the scratch folder can be made");
    for doc in markdown::documents() {
        let stem = doc.file_stem().expect("a document has a name");
        let case = root.join(stem).with_extension("md");
        let target = std::fs::canonicalize(&doc).expect("the document exists");
        std::os::unix::fs::symlink(&target, &case).expect("the case link can be made");
        example_folder(&doc, &case.with_extension("in"));
    }
    root
}

/// Fills `dir` with what the examples of `doc` read: a copy of the repository's `rules/`, and each
/// block of `doc` marked `<!-- file: PATH -->`, written to `PATH`.
pub fn example_folder(doc: &Path, dir: &Path) {
    copy_dir(Path::new("rules"), &dir.join("rules"));
    for block in markdown::blocks(doc) {
        if let Some(file) = &block.file {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))
                .expect("the file's folder can be made");
            std::fs::write(&path, &block.body).expect("the example's file can be written");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's folder can be made");
    for entry in std::fs::read_dir(from).expect("the folder is readable") {
        let path = entry.expect("the folder is readable").path();
        let dest = to.join(path.file_name().expect("an entry has a name"));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("the file can be copied");
        }
    }
}
