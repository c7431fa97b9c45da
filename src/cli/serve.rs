//! `mnq-gpu serve`: the browser page (`web/dist`, built by `scripts/build-web.sh`) and what it loads, over plain
//! synchronous HTTP, a thread per request. The URL space:
//!
//! ```text
//! /, /<file>               the built page: index.html, main.js, the wasm-bindgen glue and .wasm
//! /api/index.json          the models offered, the built-in example image, how many calibration images exist
//! /builtin/<name>.tflite   the embedded TFLite model (assets::EMBEDDED_MODEL), so the page needs no ../shared
//! /builtin/grace_hopper.jpg  the embedded example photo (assets::EXAMPLE_IMAGE)
//! /models/<path>           files under the model folder (TF.js folders, .tflite and .onnx files)
//! /calibration/<i>         the i-th image (0-based) of the calibration list
//! /imagenet/<file>         an image of the calibration list's images/ folder
//! ```
//!
//! Paths are percent-decoded and resolved component by component under their folder: `..`, `.`, empty and
//! backslash components are refused, so no request reaches outside the folders named above.

use super::find_shared;
use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::{assets, labels};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const DEFAULT_MODELS: &str = "shared/models";

#[derive(Args)]
pub struct ServeArgs {
    /// The port to listen on; 0 picks a free one (the URL printed says which).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The address to listen on; 0.0.0.0 serves other machines too.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The built page. Default: web/dist in the current folder, else in the source tree.
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// The models the page offers: TF.js folders (model.json + shards), .tflite and .onnx files, one level of
    /// subfolders deep. Default: ../shared/models (looked up as the other commands look up shared data); the
    /// built-in mobilenet_v1_1.0_224_quant is always offered.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// Calibration list (`FILE CLASS` lines) whose images the page calibrates on. Default:
    /// ../shared/imagenet/val1300/calibration.txt
    #[arg(long, value_name = "LIST")]
    calibration: Option<PathBuf>,
}

/// One model of `/api/index.json`.
#[derive(Serialize)]
struct ModelEntry {
    /// Unique: `built-in`, or the path under `/models/`.
    id: String,
    name: String,
    /// `tflite` or `onnx` (one file) or `tfjs` (a folder: `url` + `model.json`, and the shards model.json names).
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct Index {
    models: Vec<ModelEntry>,
    example_image: String,
    /// How many images `/calibration/<i>` serves (0 without a calibration list).
    calibration_images: usize,
}

struct Site {
    dist: PathBuf,
    models: Option<PathBuf>,
    /// The calibration list's images, in list order.
    calibration: Vec<PathBuf>,
    /// The folder `/imagenet/` serves: the calibration list's `images/`.
    imagenet: Option<PathBuf>,
    index: Vec<u8>,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let site = Arc::new(Site::new(&args)?);
    let address = format!("{}:{}", args.host, args.port);
    let server = tiny_http::Server::http(&address)
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e} (pick another with --port N, or --port 0)"))?;
    let bound = server.server_addr().to_ip().context("the server has no IP address")?;
    eprintln!("page: {}", site.dist.display());
    match &site.models {
        Some(dir) => eprintln!("models: {} and the built-in {}", dir.display(), assets::EMBEDDED_MODEL_NAME),
        None => {
            eprintln!("models: the built-in {} (no {DEFAULT_MODELS} found; pass --models)", assets::EMBEDDED_MODEL_NAME)
        }
    }
    eprintln!("calibration: {} images", site.calibration.len());
    // The one line on stdout: scripts read the URL from it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "serving http://{bound}/ (Ctrl-C stops)")?;
    stdout.flush()?;
    drop(stdout);

    // A thread per request: no response waits for another (the page fetches a TF.js model's 55 shards at once).
    for request in server.incoming_requests() {
        let site = Arc::clone(&site);
        std::thread::spawn(move || site.respond(request));
    }
    Ok(ExitCode::SUCCESS)
}

impl Site {
    fn new(args: &ServeArgs) -> Result<Site> {
        let dist = match &args.dist {
            Some(dir) => dir.clone(),
            None => {
                let from_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dist");
                [PathBuf::from("web/dist"), from_source.clone()]
                    .into_iter()
                    .find(|dir| dir.join("index.html").is_file())
                    .unwrap_or(from_source)
            }
        };
        anyhow::ensure!(
            dist.join("index.html").is_file(),
            "no built page at {} (no index.html): build it with scripts/build-web.sh, or pass --dist DIR",
            dist.display()
        );
        let models = match &args.models {
            Some(dir) => {
                anyhow::ensure!(dir.is_dir(), "--models {}: not a folder", dir.display());
                Some(dir.clone())
            }
            None => find_shared(DEFAULT_MODELS),
        };
        let list = match &args.calibration {
            Some(list) => Some(list.clone()),
            None => find_shared(super::DEFAULT_CALIBRATION),
        };
        let calibration = match &list {
            // The class bound is checked by the commands that use the classes; any class is accepted here.
            Some(list) => labels::read_list(list, usize::MAX)?.into_iter().map(|image| image.path).collect(),
            None => Vec::new(),
        };
        let imagenet = list.as_deref().and_then(Path::parent).map(|dir| dir.join("images")).filter(|d| d.is_dir());

        let mut entries = vec![ModelEntry {
            id: "built-in".into(),
            name: assets::EMBEDDED_MODEL_NAME.into(),
            kind: "tflite",
            url: format!("/builtin/{}.tflite", assets::EMBEDDED_MODEL_NAME),
        }];
        if let Some(dir) = &models {
            entries.extend(list_models(dir)?);
        }
        let index = Index {
            models: entries,
            example_image: format!("/builtin/{}", assets::EXAMPLE_IMAGE_NAME),
            calibration_images: calibration.len(),
        };
        Ok(Site { dist, models, calibration, imagenet, index: serde_json::to_vec_pretty(&index)? })
    }

    fn respond(&self, request: tiny_http::Request) {
        let reply = match request.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => self.reply(request.url()),
            _ => Reply::error(405, "only GET and HEAD are served".into()),
        };
        let status = reply.status;
        let header = |name: &str, value: &str| {
            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
        };
        let response = tiny_http::Response::from_data(reply.body)
            .with_status_code(status)
            .with_header(header("Content-Type", reply.content_type))
            // The page is rebuilt often; never serve a stale .wasm next to new glue.
            .with_header(header("Cache-Control", "no-cache"))
            .with_header(header("X-Content-Type-Options", "nosniff"));
        // A client that went away mid-response is no error of the server's.
        let _ = request.respond(response);
    }

    fn reply(&self, url: &str) -> Reply {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let Some(path) = percent_decode(path) else {
            return Reply::error(400, format!("{url}: malformed percent-encoding"));
        };
        let Some(rest) = path.strip_prefix('/') else {
            return Reply::error(400, format!("{path}: not an absolute path"));
        };
        let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match first {
            "" => self.file(&self.dist, "index.html"),
            "api" if tail == "index.json" => Reply::ok("application/json", self.index.clone()),
            "builtin" if tail == format!("{}.tflite", assets::EMBEDDED_MODEL_NAME) => {
                Reply::ok(content_type(tail), assets::EMBEDDED_MODEL.to_vec())
            }
            "builtin" if tail == assets::EXAMPLE_IMAGE_NAME => Reply::ok("image/jpeg", assets::EXAMPLE_IMAGE.to_vec()),
            "models" => match &self.models {
                Some(dir) => self.file(dir, tail),
                None => Reply::error(404, "no model folder is served (pass --models DIR)".into()),
            },
            "calibration" => match tail.parse::<usize>().ok().and_then(|i| self.calibration.get(i)) {
                Some(image) => read(image),
                None => Reply::error(
                    404,
                    format!("/calibration/{tail}: the calibration list has {} images", self.calibration.len()),
                ),
            },
            "imagenet" => match &self.imagenet {
                Some(dir) => self.file(dir, tail),
                None => Reply::error(404, "no images folder beside the calibration list".into()),
            },
            _ => self.file(&self.dist, rest),
        }
    }

    /// `relative` under `root`, or 400 for a path that would leave it.
    fn file(&self, root: &Path, relative: &str) -> Reply {
        match safe_join(root, relative) {
            Some(path) => read(&path),
            None => Reply::error(400, format!("{relative}: only plain relative paths are served")),
        }
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply { status: 200, content_type, body }
    }

    fn error(status: u16, message: String) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: (message + "\n").into_bytes() }
    }
}

fn read(path: &Path) -> Reply {
    if !path.is_file() {
        return Reply::error(404, format!("{}: not found", file_name(path)));
    }
    match std::fs::read(path) {
        Ok(body) => Reply::ok(content_type(&path.to_string_lossy()), body),
        Err(e) => Reply::error(500, format!("{}: {e}", file_name(path))),
    }
}

/// The last component only: error pages do not reveal where the served folders are.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

/// `root/relative` where every component of `relative` is a plain name: no `..`, `.`, empty component (`//`, a
/// leading `/`), backslash, NUL or drive prefix.
fn safe_join(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in relative.split('/') {
        let plain =
            !component.is_empty() && component != "." && component != ".." && !component.contains(['\\', '\0', ':']);
        if !plain {
            return None;
        }
        path.push(component);
    }
    Some(path)
}

/// `%XX` escapes decoded; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e).to_ascii_lowercase();
    match extension.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The models under `dir`: folders holding `model.json`, `.tflite` and `.onnx` files, in `dir` and one level below.
fn list_models(dir: &Path) -> Result<Vec<ModelEntry>> {
    let mut entries = Vec::new();
    let mut visit = |folder: &Path, prefix: &str, descend: bool| -> Result<Vec<(PathBuf, String)>> {
        let mut below = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .filter_map(|entry| entry.ok())
            .collect();
        names.sort_by_key(|entry| entry.file_name());
        for entry in names {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let path = entry.path();
            let id = format!("{prefix}{name}");
            if path.is_dir() && path.join("model.json").is_file() {
                entries.push(ModelEntry { id: id.clone(), name, kind: "tfjs", url: format!("/models/{id}/") });
            } else if path.is_dir() && descend {
                below.push((path, format!("{id}/")));
            } else if path.is_file() && mnq_gpu::tflite::is_tflite_path(&path) {
                let stem = name.trim_end_matches(".tflite").to_string();
                entries.push(ModelEntry { id: id.clone(), name: stem, kind: "tflite", url: format!("/models/{id}") });
            } else if path.is_file() && mnq_gpu::onnx::is_onnx_path(&path) {
                let stem = name.trim_end_matches(".onnx").to_string();
                entries.push(ModelEntry { id: id.clone(), name: stem, kind: "onnx", url: format!("/models/{id}") });
            }
        }
        Ok(below)
    };
    for (folder, prefix) in visit(dir, "", true)? {
        visit(&folder, &prefix, false)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_every_way_out_of_the_folder() {
        let root = Path::new("/srv");
        for bad in ["..", "../etc/passwd", "a/../../b", "./a", "a//b", "/etc/passwd", "a\\..\\b", "c:/x", ""] {
            assert_eq!(safe_join(root, bad), None, "{bad}");
        }
        assert_eq!(safe_join(root, "tflite/m.tflite"), Some(PathBuf::from("/srv/tflite/m.tflite")));
    }

    #[test]
    fn percent_decoding_decodes_escapes_and_refuses_malformed_ones() {
        assert_eq!(percent_decode("/a%2E%2e/b%20c").as_deref(), Some("/a../b c"));
        assert_eq!(percent_decode("/%2"), None);
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }
}
