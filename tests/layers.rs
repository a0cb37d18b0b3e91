//! The code's structure, checked: the layers of docs/architecture.md ("Layers") point one way,
//! nothing but the command line prints, and library errors are types, not strings.
//!
//! The layer table in docs/architecture.md is the source of truth: every top-level module of
//! `src/lib.rs` must have a row, and a module may use (`crate::x`, `super::x` up to the crate
//! root, `crate::{x, y}`) only modules of a lower layer. A failure names the file, the line and
//! the arrow that points the wrong way.
//!
//! The scan reads the source as text with comments, string and character literals blanked out,
//! so an example in a doc comment or a message never counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the layer table lives, relative to the crate root.
const LAYER_DOC: &str = "docs/architecture.md";
/// The heading of the section holding the table.
const LAYER_HEADING: &str = "## Layers";
/// The only places that may print to stdout or stderr.
const PRINTING_ALLOWED: [&str; 2] = ["src/cli/", "src/main.rs"];
/// Macros that write to the terminal.
const PRINT_MACROS: [&str; 5] = ["println!", "eprintln!", "print!", "eprint!", "dbg!"];

#[test]
fn every_module_uses_only_lower_layers() {
    let layers = layer_table(&read(LAYER_DOC));
    let modules = top_level_modules(&read("src/lib.rs"));
    let missing: Vec<_> = modules
        .iter()
        .filter(|m| !layers.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{LAYER_DOC}, {LAYER_HEADING}: no row for the modules {missing:?}; add each to the layer \
         it belongs to"
    );
    let extra: Vec<_> = layers.keys().filter(|m| !modules.contains(m)).collect();
    assert!(
        extra.is_empty(),
        "{LAYER_DOC}, {LAYER_HEADING}: {extra:?} are not modules of src/lib.rs"
    );
    let violations: Vec<String> = source_files()
        .iter()
        .flat_map(|file| upward_uses(file, &code_of(file), &layers))
        .collect();
    assert!(
        violations.is_empty(),
        "arrows that do not point down ({LAYER_DOC}, {LAYER_HEADING}):\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_the_command_line_prints() {
    let offenders = places(
        |file| !PRINTING_ALLOWED.iter().any(|p| rel(file).starts_with(p)),
        |code| {
            PRINT_MACROS
                .iter()
                .flat_map(|mac| find_macro(code, mac))
                .collect()
        },
    );
    assert!(
        offenders.is_empty(),
        "printing outside src/cli/ and src/main.rs (return the data and print it in cli/):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn library_errors_are_not_strings() {
    let offenders = places(|_| true, string_errors);
    assert!(
        offenders.is_empty(),
        "`Result<_, String>` in library code (use an error type, keep the source):\n{}",
        offenders.join("\n")
    );
}

/// `file:line` of every offset `find` reports in the code of the source files `wanted` keeps.
fn places(wanted: impl Fn(&Path) -> bool, find: impl Fn(&str) -> Vec<usize>) -> Vec<String> {
    source_files()
        .iter()
        .filter(|file| wanted(file))
        .flat_map(|file| {
            let code = code_of(file);
            find(&code)
                .into_iter()
                .map(|offset| format!("{}:{}", rel(file), line_of(&code, offset)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The checker itself: an upward import, a grouped one, one through `super::` to the root, a
/// printing macro and a string error are all found, while the same text in comments and
/// strings is not.
#[test]
fn the_checks_find_what_they_look_for() {
    let layers = layer_table(
        "## Layers\n| layer | modules | may use |\n|---|---|---|\n| 0 | `clock` | nothing |\n\
         | 1 | `spool`, `sinks` | 0 |\n| 2 | `app` | 0-1 |\n",
    );
    assert_eq!(layers["clock"], 0);
    assert_eq!(layers["sinks"], 1);
    assert_eq!(layers["app"], 2);
    let source = "// crate::app in a comment\nuse crate::clock;\nuse crate::{app::Application, \
                  clock::now};\nfn f() { let _ = \"crate::app\"; super::super::sinks::x(); \
                  crate::spool::y(); }\n";
    let found = upward_uses(Path::new("src/spool/deep.rs"), &strip(source), &layers);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains(":3: `spool` (layer 1) uses `app` (layer 2)"),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|f| f.contains("uses `sinks`")),
        "{found:#?}"
    );
    let printing =
        strip("fn f() { println!(\"x\"); } // eprintln!(\"y\")\nconst S: &str = \"dbg!\";");
    assert_eq!(find_macro(&printing, "println!").len(), 1);
    assert!(find_macro(&printing, "eprintln!").is_empty());
    assert!(find_macro(&printing, "dbg!").is_empty());
    let errors = strip(
        "fn a() -> Result<Vec<u8>, String> {}\nfn b() -> Result<(), MyError> {}\n\
                        fn c() -> Result<Result<(), String>, E> {}",
    );
    assert_eq!(string_errors(&errors).len(), 2);
}

/// The layer of each module in the `## Layers` table: `| 3 components | `spool`, `sinks` | ...`.
fn layer_table(doc: &str) -> BTreeMap<String, usize> {
    let section = doc
        .split_once(LAYER_HEADING)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{LAYER_DOC} has no {LAYER_HEADING:?} section"));
    let mut layers = BTreeMap::new();
    let rows = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2);
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let layer: usize = cells[1]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{LAYER_DOC}: a layer row starts with its number: {row}"));
        for module in cells[2].split(',') {
            let name = module.trim().trim_matches('`').trim_end_matches('/');
            assert!(
                layers.insert(name.to_owned(), layer).is_none(),
                "{LAYER_DOC}: {name} is in two layers"
            );
        }
    }
    assert!(!layers.is_empty(), "{LAYER_DOC}: the layer table is empty");
    layers
}

/// `pub mod x;` and `mod x;` lines of src/lib.rs.
fn top_level_modules(lib: &str) -> Vec<String> {
    strip(lib)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').trim().to_owned())
        })
        .collect()
}

/// Each use in `code` (of `file`) of a module that is not in a lower layer than the file's own.
fn upward_uses(file: &Path, code: &str, layers: &BTreeMap<String, usize>) -> Vec<String> {
    let relative = rel(file);
    let Some((own, depth)) = module_of(&relative) else {
        return Vec::new();
    };
    let Some(&own_layer) = layers.get(&own) else {
        return Vec::new();
    };
    root_references(code, depth)
        .into_iter()
        .filter(|(_, used)| *used != own)
        .filter_map(|(offset, used)| {
            let used_layer = *layers.get(&used)?;
            (used_layer >= own_layer).then(|| {
                format!(
                    "{relative}:{}: `{own}` (layer {own_layer}) uses `{used}` (layer {used_layer})",
                    line_of(code, offset)
                )
            })
        })
        .collect()
}

/// The top-level module a source file belongs to, and how deep it sits below the crate root
/// (`src/spool/mod.rs` and `src/clock.rs` are 1, `src/spool/window.rs` is 2). `None` for the
/// crate root and the binary.
fn module_of(relative: &str) -> Option<(String, usize)> {
    let parts: Vec<&str> = relative.strip_prefix("src/")?.split('/').collect();
    let top = parts[0].trim_end_matches(".rs");
    if parts.len() == 1 && (top == "lib" || top == "main") {
        return None;
    }
    let last = parts[parts.len() - 1];
    let depth = parts.len() - usize::from(last == "mod.rs");
    Some((top.to_owned(), depth))
}

/// Every top-level module `code` names through `crate::` (also in `crate::{a, b::c}` groups) or
/// through enough `super::` to reach the crate root, with the offset where it is named.
fn root_references(code: &str, depth: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (offset, _) in code.match_indices("crate::") {
        if preceded_by_ident(code, offset) {
            continue;
        }
        found.extend(names_after(code, offset + "crate::".len()));
    }
    let to_root = "super::".repeat(depth);
    for (offset, _) in code.match_indices(&to_root) {
        if preceded_by_ident(code, offset) || code[..offset].ends_with("super::") {
            continue;
        }
        found.extend(names_after(code, offset + to_root.len()));
    }
    found
}

/// The module named at `start` (`x::...`), or every first name of a `{x, y::z}` group.
fn names_after(code: &str, start: usize) -> Vec<(usize, String)> {
    let rest = &code[start..];
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut names = Vec::new();
        let mut expecting = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => expecting = true,
                c if expecting && (c.is_alphabetic() || c == '_') => {
                    expecting = false;
                    let name: String = group[i..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.push((start + 1 + i, name));
                }
                c if expecting && !c.is_whitespace() => expecting = false,
                _ => {}
            }
        }
        return names;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    vec![(start, name)]
}

/// The offsets of `mac` invoked in `code` (not the tail of a longer name).
fn find_macro(code: &str, mac: &str) -> Vec<usize> {
    code.match_indices(mac)
        .map(|(offset, _)| offset)
        .filter(|&offset| !preceded_by_ident(code, offset))
        .collect()
}

/// The offsets of `Result<..., String>` in `code`.
fn string_errors(code: &str) -> Vec<usize> {
    code.match_indices("Result<")
        .filter(|(offset, _)| !preceded_by_ident(code, *offset))
        .filter(|(offset, _)| {
            let args = &code[offset + "Result<".len()..];
            let mut depth = 0;
            let mut last_comma = None;
            for (i, c) in args.char_indices() {
                match c {
                    '<' | '(' | '[' => depth += 1,
                    ')' | ']' => depth -= 1,
                    '>' if depth == 0 => {
                        return last_comma
                            .is_some_and(|at: usize| args[at + 1..i].trim() == "String");
                    }
                    '>' => depth -= 1,
                    ',' if depth == 0 => last_comma = Some(i),
                    _ => {}
                }
            }
            false
        })
        .map(|(offset, _)| offset)
        .collect()
}

fn preceded_by_ident(code: &str, offset: usize) -> bool {
    code[..offset]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// `text` with comments, string literals (raw ones too) and character literals replaced by
/// spaces, line breaks kept, so offsets and line numbers still match the file.
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to.min(bytes.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            i + 2 + find(&rest[2..], b"*/").map_or(rest.len() - 2, |p| p + 2)
        } else if let Some(hashes) = raw_string_start(rest) {
            let open = 2 + hashes;
            let close: Vec<u8> = std::iter::once(b'"').chain(vec![b'#'; hashes]).collect();
            i + open + find(&rest[open..], &close).map_or(rest.len() - open, |p| p + close.len())
        } else if rest[0] == b'"' {
            i + 1 + quoted_len(&rest[1..], b'"')
        } else if rest[0] == b'\'' && is_char_literal(rest) {
            i + 1 + quoted_len(&rest[1..], b'\'')
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `r"` or `r#..#"` (also `br`) at the start of `rest`: the number of `#`.
fn raw_string_start(rest: &[u8]) -> Option<usize> {
    let rest = rest.strip_prefix(b"b").unwrap_or(rest);
    let after_r = rest.strip_prefix(b"r")?;
    let hashes = after_r.iter().take_while(|&&b| b == b'#').count();
    (after_r.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// A character literal (`'a'`, `'\n'`, `'é'`), not a lifetime (`'a`).
fn is_char_literal(rest: &[u8]) -> bool {
    match rest.get(1) {
        Some(b'\\') => true,
        Some(_) => {
            let head = String::from_utf8_lossy(&rest[1..rest.len().min(5)]);
            let width = head.chars().next().map_or(1, char::len_utf8);
            rest.get(1 + width) == Some(&b'\'')
        }
        None => false,
    }
}

/// The length of a quoted body up to and including its closing `quote`, escapes skipped.
fn quoted_len(body: &[u8], quote: u8) -> usize {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|err| panic!("cannot read {relative}: {err}"))
}

fn code_of(file: &Path) -> String {
    strip(&std::fs::read_to_string(file).expect("a source file reads"))
}

fn rel(file: &Path) -> String {
    file.strip_prefix(root())
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// Every `.rs` file under src/, sorted.
fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ reads") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    files.sort();
    files
}
