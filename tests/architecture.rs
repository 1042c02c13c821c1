//! The module map at the top of src/lib.rs names every module that exists, and
//! names none that does not: the map is how a newcomer finds where a change goes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::manifest_dir;

/// Every library module as a path (`aws::sdk`), from the files under src/.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let join = |n: &str| {
            if prefix.is_empty() {
                n.to_owned()
            } else {
                format!("{prefix}::{n}")
            }
        };
        if path.is_dir() {
            if prefix.is_empty() && name == "bin" {
                continue; // the SES double, a binary of its own
            }
            out.insert(join(&name));
            modules(&path, &join(&name), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // lib.rs and main.rs are the crate roots; `tests` files are unit tests.
            if matches!(name.as_str(), "mod" | "tests")
                || (prefix.is_empty() && (name == "lib" || name == "main"))
            {
                continue;
            }
            out.insert(join(&name));
        }
    }
}

#[test]
fn the_module_map_in_lib_rs_names_every_module_and_only_those() {
    let src = manifest_dir().join("src");
    let mut actual = BTreeSet::new();
    modules(&src, "", &mut actual);
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let doc: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    // Links written as [`path`]: a lower-case module path, possibly with `::`.
    let named: BTreeSet<String> = doc
        .split("[`")
        .skip(1)
        .filter_map(|rest| rest.split_once("`]").map(|(name, _)| name.to_owned()))
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':')
        })
        .collect();
    let missing: Vec<&String> = actual.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "modules the map in src/lib.rs does not name: {missing:?}"
    );
    let stale: Vec<&String> = named
        .difference(&actual)
        .filter(|n| n.as_str() != "run")
        .collect();
    assert!(
        stale.is_empty(),
        "the map names modules that do not exist: {stale:?}"
    );
}
