//! Google's published MobileNetV1 models by name, fetched into a local cache (`mnq-gpu download`).
//!
//! Two forms are known: TF.js layers models (float32; `model.json` plus every shard it lists, kept as a folder)
//! and TFLite uint8 QAT models (the `.tflite` taken out of TensorFlow's `.tgz`, kept as one file). Everything is
//! written under a `.NAME.partial-PID` name in the cache folder and renamed into place only once complete and
//! checked, so an interrupted or failed download never looks cached, and a failed `--force` keeps the old copy.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Both of Google's hosts sit under this prefix; [`BASE_URL_ENV`] or `--base-url` replaces it (a mirror, or a
/// local server in tests).
pub const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com";
pub const BASE_URL_ENV: &str = "MNQ_DOWNLOAD_BASE_URL";
/// The cache folder; else `$XDG_CACHE_HOME/mnq-gpu`, else `~/.cache/mnq-gpu`.
pub const CACHE_DIR_ENV: &str = "MNQ_CACHE_DIR";

/// Width multipliers as each form spells them in its names.
const TFJS_WIDTHS: [&str; 4] = ["0.25", "0.50", "0.75", "1.0"];
const TFLITE_WIDTHS: [&str; 4] = ["0.25", "0.5", "0.75", "1.0"];
const INPUT_SIZES: [u32; 4] = [128, 160, 192, 224];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TF.js layers model: `model.json` + float32 shards, cached as a folder.
    TfjsLayers,
    /// TFLite uint8 quantization-aware-trained flatbuffer, cached as one `.tflite` file.
    Tflite,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::TfjsLayers => "tfjs",
            Format::Tflite => "tflite",
        }
    }
}

/// One model Google publishes, e.g. `mobilenet_v1_0.75_224` (TF.js) or `mobilenet_v1_0.25_128_quant` (TFLite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownModel {
    pub name: String,
    pub format: Format,
    /// The width multiplier as the name spells it ("0.50" in TF.js names, "0.5" in TFLite names).
    pub width: &'static str,
    /// Input height and width in pixels.
    pub input_size: u32,
}

impl KnownModel {
    /// The URL of `model.json` (TF.js) or of the `.tgz` (TFLite), under `base_url` (see [`DEFAULT_BASE_URL`]).
    pub fn url(&self, base_url: &str) -> String {
        let base = base_url.trim_end_matches('/');
        match self.format {
            Format::TfjsLayers => format!("{base}/tfjs-models/tfjs/{}/model.json", self.name),
            Format::Tflite => {
                format!("{base}/download.tensorflow.org/models/mobilenet_v1_2018_08_02/{}.tgz", self.name)
            }
        }
    }

    /// Where it lives in `cache_dir` once downloaded: the model folder (TF.js) or the `.tflite` file.
    pub fn cache_path(&self, cache_dir: &Path) -> PathBuf {
        match self.format {
            Format::TfjsLayers => cache_dir.join(&self.name),
            Format::Tflite => cache_dir.join(format!("{}.tflite", self.name)),
        }
    }
}

/// Every model Google publishes in the two forms: 16 TF.js, then 16 TFLite, by width then input size.
pub fn known_models() -> Vec<KnownModel> {
    let forms = [(Format::TfjsLayers, TFJS_WIDTHS, ""), (Format::Tflite, TFLITE_WIDTHS, "_quant")];
    forms
        .into_iter()
        .flat_map(|(format, widths, suffix)| {
            widths.into_iter().flat_map(move |width| {
                INPUT_SIZES.into_iter().map(move |input_size| KnownModel {
                    name: format!("mobilenet_v1_{width}_{input_size}{suffix}"),
                    format,
                    width,
                    input_size,
                })
            })
        })
        .collect()
}

/// The known model called `name`; an unknown name is an error listing the known ones.
pub fn find(name: &str) -> Result<KnownModel> {
    let known = known_models();
    if let Some(model) = known.iter().find(|m| m.name == name) {
        return Ok(model.clone());
    }
    let names = |format| known.iter().filter(|m| m.format == format).map(|m| m.name.as_str()).collect::<Vec<_>>();
    Err(Error::Invalid(format!(
        "unknown model `{name}`; the known names are\n  TF.js layers (float32): {}\n  TFLite (uint8 QAT): {}",
        names(Format::TfjsLayers).join(", "),
        names(Format::Tflite).join(", ")
    )))
}

/// The cache folder: `$MNQ_CACHE_DIR`, else `$XDG_CACHE_HOME/mnq-gpu`, else `~/.cache/mnq-gpu` (empty variables
/// count as unset).
pub fn cache_dir() -> Result<PathBuf> {
    let var = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(CACHE_DIR_ENV) {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(dir.join("mnq-gpu"));
    }
    match var("HOME").or_else(|| var("USERPROFILE")) {
        Some(home) => Ok(home.join(".cache").join("mnq-gpu")),
        None => Err(Error::Invalid(format!("no cache folder: set {CACHE_DIR_ENV} (or XDG_CACHE_HOME or HOME)"))),
    }
}

/// The base URL: `$MNQ_DOWNLOAD_BASE_URL`, else [`DEFAULT_BASE_URL`].
pub fn base_url() -> String {
    std::env::var(BASE_URL_ENV).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
}

/// The cached model folder (TF.js) or `.tflite` file (TFLite) for `name`, if it is complete in [`cache_dir`].
pub fn cached(name: &str) -> Option<PathBuf> {
    cached_in(&cache_dir().ok()?, &find(name).ok()?)
}

/// The model's cache path in `cache_dir` if it is complete there: for TF.js, `model.json` parses and every shard
/// it lists exists; for TFLite, the file carries the TFLite identifier.
pub fn cached_in(cache_dir: &Path, model: &KnownModel) -> Option<PathBuf> {
    let path = model.cache_path(cache_dir);
    let complete = match model.format {
        Format::TfjsLayers => fs::read(path.join("model.json"))
            .ok()
            .and_then(|json| parse_manifest(&json).ok())
            .is_some_and(|groups| groups.iter().flat_map(|g| &g.paths).all(|p| path.join(p).is_file())),
        Format::Tflite => {
            let mut head = [0u8; 8];
            File::open(&path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && is_tflite(&head)
        }
    };
    complete.then_some(path)
}

/// Whether `bytes` start like a TFLite flatbuffer: file identifier `TFL3` at bytes 4..8.
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3".as_slice())
}

/// Where and how [`download`] fetches.
#[derive(Clone, Debug)]
pub struct Options {
    pub cache_dir: PathBuf,
    /// Replaces [`DEFAULT_BASE_URL`] in every URL.
    pub base_url: String,
    /// Download again even when the model is cached.
    pub force: bool,
    /// A byte progress bar on stderr (indicatif hides it anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Options {
    /// [`cache_dir`] and [`base_url`] from the environment, no `force`, with progress.
    pub fn from_env() -> Result<Self> {
        Ok(Options { cache_dir: cache_dir()?, base_url: base_url(), force: false, progress: true })
    }
}

/// The model's path in the cache, downloading it first unless it is cached already (or `options.force`).
pub fn download(model: &KnownModel, options: &Options) -> Result<PathBuf> {
    if !options.force {
        if let Some(path) = cached_in(&options.cache_dir, model) {
            return Ok(path);
        }
    }
    fs::create_dir_all(&options.cache_dir).map_err(|e| Error::io(&options.cache_dir, e))?;
    let fetcher = Fetcher::new(options.progress);
    let final_path = model.cache_path(&options.cache_dir);
    let url = model.url(&options.base_url);
    match model.format {
        Format::TfjsLayers => download_tfjs(&fetcher, &url, &options.cache_dir, &final_path),
        Format::Tflite => download_tflite(&fetcher, &url, &options.cache_dir, &final_path),
    }?;
    Ok(final_path)
}

/// `model.json`, then every shard it lists (relative to it), into a partial folder renamed into place.
fn download_tfjs(fetcher: &Fetcher, json_url: &str, cache_dir: &Path, final_dir: &Path) -> Result<()> {
    let partial = Partial::new(cache_dir, final_dir);
    fs::create_dir(&partial.path).map_err(|e| Error::io(&partial.path, e))?;
    let json_path = partial.path.join("model.json");
    fetcher.fetch(json_url, &json_path, "model.json")?;
    let json = fs::read(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let groups = parse_manifest(&json).map_err(|reason| Error::Download { url: json_url.to_string(), reason })?;

    let base = json_url.rsplit_once('/').map_or(json_url, |(base, _)| base);
    let count = groups.iter().map(|g| g.paths.len()).sum::<usize>();
    let mut done = 0;
    for group in &groups {
        let mut group_bytes = 0;
        for path in &group.paths {
            done += 1;
            let dest = partial.path.join(path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            group_bytes += fetcher.fetch(&format!("{base}/{path}"), &dest, &format!("shard {done}/{count}"))?;
        }
        if let Some(expected) = group.expected_bytes.filter(|&expected| expected != group_bytes) {
            let reason = format!(
                "the shards {} hold {group_bytes} bytes, but the tensors model.json lists for them need {expected}",
                group.paths.join(", ")
            );
            return Err(Error::Download { url: json_url.to_string(), reason });
        }
    }
    partial.finish(final_dir)
}

/// The `.tgz`, then the `NAME.tflite` inside it (among checkpoint files), renamed into place once checked.
fn download_tflite(fetcher: &Fetcher, url: &str, cache_dir: &Path, final_path: &Path) -> Result<()> {
    let tgz = Partial::new(cache_dir, &final_path.with_extension("tgz"));
    fetcher.fetch(url, &tgz.path, "tarball")?;
    let wanted = final_path.file_name().expect("cache paths end in a file name");
    let partial = Partial::new(cache_dir, final_path);
    let fail = |reason: String| Error::Download { url: url.to_string(), reason };

    let file = File::open(&tgz.path).map_err(|e| Error::io(&tgz.path, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut seen = Vec::new();
    let mut found = false;
    for entry in archive.entries().map_err(|e| fail(format!("not a .tgz archive: {e}")))? {
        let mut entry = entry.map_err(|e| fail(format!("not a readable .tgz archive: {e}")))?;
        let path = entry.path().map_err(|e| fail(format!("bad path in the archive: {e}")))?.into_owned();
        if path.file_name() == Some(wanted) && entry.header().entry_type().is_file() {
            let mut out = File::create(&partial.path).map_err(|e| Error::io(&partial.path, e))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            out.sync_all().map_err(|e| Error::io(&partial.path, e))?;
            found = true;
            break;
        }
        seen.push(path.display().to_string());
    }
    if !found {
        let wanted = wanted.to_string_lossy();
        return Err(fail(format!("the archive holds no {wanted} (it holds: {})", seen.join(", "))));
    }
    let mut head = [0u8; 8];
    let read = File::open(&partial.path).and_then(|mut f| f.read_exact(&mut head));
    if read.is_err() || !is_tflite(&head) {
        let wanted = wanted.to_string_lossy();
        return Err(fail(format!("{wanted} in the archive is not a TFLite flatbuffer (no `TFL3` at bytes 4..8)")));
    }
    partial.finish(final_path)
}

/// One weight group of `model.json`: its shard paths (checked to be plain relative paths) and, where every
/// tensor is an unquantized 4-byte type, the bytes its shards must hold together.
struct Group {
    paths: Vec<String>,
    expected_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
    #[allow(dead_code)] // required, so that any JSON with a `weightsManifest` is not taken for a model
    model_topology: IgnoredAny,
    weights_manifest: Vec<ManifestGroup>,
}

#[derive(Deserialize)]
struct ManifestGroup {
    paths: Vec<String>,
    #[serde(default)]
    weights: Vec<ManifestWeight>,
}

#[derive(Deserialize)]
struct ManifestWeight {
    shape: Vec<u64>,
    dtype: String,
    #[serde(default)]
    quantization: Option<IgnoredAny>,
}

/// The shard groups of a TF.js `model.json`, or why it is not one.
fn parse_manifest(json: &[u8]) -> Result<Vec<Group>, String> {
    if looks_like_html(json) {
        return Err("the server sent an HTML page instead of model.json".into());
    }
    let model: ModelJson = serde_json::from_slice(json).map_err(|e| format!("not a TF.js model.json: {e}"))?;
    model
        .weights_manifest
        .into_iter()
        .map(|group| {
            if let Some(bad) = group.paths.iter().find(|p| !is_plain_relative(p)) {
                return Err(format!("model.json lists the shard path `{bad}`, which is not a plain relative path"));
            }
            let four_byte =
                |w: &ManifestWeight| matches!(w.dtype.as_str(), "float32" | "int32") && w.quantization.is_none();
            let expected_bytes = group
                .weights
                .iter()
                .all(four_byte)
                .then(|| group.weights.iter().map(|w| 4 * w.shape.iter().product::<u64>()).sum());
            Ok(Group { paths: group.paths, expected_bytes })
        })
        .collect()
}

/// A shard path that stays inside the model folder: relative, only plain names (no `..`, `.`, root or drive),
/// and none of the characters that would change the URL.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', ':', '?', '#', '%'])
        && !path.starts_with('/')
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Whether a body starts like an HTML page (a login, quota or error page served with status 200).
fn looks_like_html(body: &[u8]) -> bool {
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let head = String::from_utf8_lossy(&body[start..body.len().min(start + 64)]).to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

/// A temporary `.NAME.partial-PID` path beside the final one; removed on drop unless renamed into place.
struct Partial {
    path: PathBuf,
}

impl Partial {
    fn new(cache_dir: &Path, final_path: &Path) -> Self {
        let name = final_path.file_name().expect("cache paths end in a file name").to_string_lossy();
        let partial = Partial { path: cache_dir.join(format!(".{name}.partial-{}", std::process::id())) };
        partial.remove();
        partial
    }

    /// Replace `final_path` (a stale or, with `--force`, an older copy) with the finished download.
    fn finish(self, final_path: &Path) -> Result<()> {
        if let Ok(meta) = fs::symlink_metadata(final_path) {
            let removed = if meta.is_dir() { fs::remove_dir_all(final_path) } else { fs::remove_file(final_path) };
            removed.map_err(|e| Error::io(final_path, e))?;
        }
        fs::rename(&self.path, final_path).map_err(|e| Error::io(final_path, e))
    }

    fn remove(&self) {
        // Errors are fine: usually the path does not exist (never created, or renamed into place).
        let _ = fs::remove_dir_all(&self.path).or_else(|_| fs::remove_file(&self.path));
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        self.remove();
    }
}

/// HTTP GET into files, with a byte progress bar.
struct Fetcher {
    agent: ureq::Agent,
    progress: bool,
}

impl Fetcher {
    fn new(progress: bool) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false) // checked in `fetch`, to say which URL failed and how
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .user_agent(concat!("mnq-gpu/", env!("CARGO_PKG_VERSION")))
            .build();
        Fetcher { agent: config.into(), progress }
    }

    /// GET `url` into a new file `dest`; returns its size. Refuses error statuses, HTML pages, empty bodies and
    /// bodies shorter or longer than their Content-Length.
    fn fetch(&self, url: &str, dest: &Path, label: &str) -> Result<u64> {
        let fail = |reason: String| Error::Download { url: url.to_string(), reason };
        let response = self.agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the server answered HTTP {status}")));
        }
        let body = response.into_body();
        if body.mime_type() == Some("text/html") {
            return Err(fail("the server sent an HTML page, not the file".into()));
        }
        // Absent for chunked or compressed responses (ureq then checks the framing itself).
        let announced = body.content_length();
        let bar = self.bar(announced, label);
        let mut reader = body.into_reader();
        let mut file = File::create(dest).map_err(|e| Error::io(dest, e))?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut received: u64 = 0;
        let of_announced = |received: u64| match announced {
            Some(announced) => format!("{received} of the {announced} bytes announced"),
            None => format!("{received} bytes"),
        };
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fail(format!(
                        "truncated: the transfer broke off after {}: {e}",
                        of_announced(received)
                    )))
                }
            };
            if received == 0 && looks_like_html(&buffer[..n]) {
                return Err(fail("the server sent an HTML page, not the file".into()));
            }
            file.write_all(&buffer[..n]).map_err(|e| Error::io(dest, e))?;
            received += n as u64;
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
        if announced.is_some_and(|announced| announced != received) {
            return Err(fail(format!("truncated: the body ended after {}", of_announced(received))));
        }
        if received == 0 {
            return Err(fail("the server sent an empty body".into()));
        }
        file.sync_all().map_err(|e| Error::io(dest, e))?;
        Ok(received)
    }

    fn bar(&self, len: Option<u64>, label: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let (bar, template) = match len {
            Some(len) => {
                (ProgressBar::new(len), "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
            }
            None => (ProgressBar::no_length(), "{msg:>12} {bytes} ({bytes_per_sec})"),
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar.with_message(label.to_string())
    }
}
