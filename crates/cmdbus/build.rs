//! Embeds `web/`: writes the list of its files (the page, its scripts, styles and icon) with
//! their routes and content types to `$OUT_DIR/web_assets.rs`, which `src/web.rs` includes,
//! so that a module added under `web/` is served without a change to the Rust code. Files of
//! other kinds (the screenshots) are left out.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

/// The content type of each kind of file served, by extension.
const CONTENT_TYPES: [(&str, &str); 4] = [
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest
        .join("../../web")
        .canonicalize()
        .expect("the web/ directory");
    // A directory makes cargo watch every file under it, new ones included.
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    collect(&web, &mut files);
    files.sort();
    let mut assets = String::from("[\n");
    for (file, content_type) in files {
        let relative = file.strip_prefix(&web).expect("a file under web/");
        let parts: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
        let route = match parts.join("/").as_str() {
            "index.html" => "/".to_owned(),
            path => format!("/{path}"),
        };
        let path = file.to_str().expect("a UTF-8 path");
        assets.push_str(&format!(
            "    ({route:?}, {content_type:?}, include_str!({path:?})),\n"
        ));
    }
    assets.push(']');
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    fs::write(out.join("web_assets.rs"), assets).expect("write web_assets.rs");
}

/// Every file under `dir` whose extension is served, with its content type.
fn collect(dir: &Path, files: &mut Vec<(PathBuf, &'static str)>) {
    for entry in fs::read_dir(dir).expect("read web/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
            continue;
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if let Some(&(_, content_type)) = CONTENT_TYPES.iter().find(|(ext, _)| *ext == extension) {
            files.push((path, content_type));
        }
    }
}
