//! Embeds `web/`: writes the list of its files (the page, its scripts, styles and icon) with
//! their routes and content types to `$OUT_DIR/web_assets.rs`, which `src/web.rs` includes,
//! so that a module added under `web/` is served without a change to the Rust code. Files of
//! other kinds (the screenshots) are left out. Each file is also gzipped here, once, and given
//! an entity tag (a hash of its bytes), so that the server compresses nothing per request; so
//! are the browser library's bundle and declarations (`clients/js/dist`, `src/library.rs`).

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
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let mut assets = String::from("[\n");
    for (index, (file, content_type)) in files.into_iter().enumerate() {
        let relative = file.strip_prefix(&web).expect("a file under web/");
        let parts: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
        let route = match parts.join("/").as_str() {
            "index.html" => "/".to_owned(),
            path => format!("/{path}"),
        };
        let path = file.to_str().expect("a UTF-8 path");
        let body = fs::read(&file).expect("read a file of web/");
        let gzipped = out.join(format!("web_{index}.gz"));
        fs::write(&gzipped, gzip(&body)).expect("write a gzipped file");
        let gzipped = gzipped.to_str().expect("a UTF-8 path");
        let tag = format!("\"{:016x}\"", fnv1a(&body));
        let tag_gz = format!("\"{:016x}-gz\"", fnv1a(&body));
        assets.push_str(&format!(
            "    Asset {{ route: {route:?}, content_type: {content_type:?}, \
             body: include_str!({path:?}), gzip: include_bytes!({gzipped:?}), \
             etag: {tag:?}, etag_gzip: {tag_gz:?} }},\n"
        ));
    }
    assets.push(']');
    // The browser library's bundle and declarations (`src/library.rs`), gzipped the same way.
    for (name, file) in [("client.js", "client.js"), ("client.d.ts", "index.d.ts")] {
        let file = manifest.join("../../clients/js/dist").join(file);
        println!("cargo:rerun-if-changed={}", file.display());
        let body = fs::read(&file).expect("read the library's bundle");
        fs::write(out.join(format!("{name}.gz")), gzip(&body)).expect("write a gzipped file");
    }
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

/// `body` as a gzip member (RFC 1952): a fixed header, the raw deflate stream, its CRC-32 and
/// length.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gzipped = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
    gzipped.extend(miniz_oxide::deflate::compress_to_vec(body, 9));
    gzipped.extend(crc32(body).to_le_bytes());
    gzipped.extend((body.len() as u32).to_le_bytes());
    gzipped
}

/// CRC-32 (IEEE), bit by bit: a few hundred kilobytes at build time.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// FNV-1a, 64 bits: the entity tag of a file, the same for the same bytes in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
