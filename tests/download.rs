//! `mnq-gpu download`: models arrive complete and byte-identical, or not at all, from a local HTTP server that
//! serves models in Google's URL layout (no network): Google's 0.25 × 128 TFLite file (`tests/data/`) in a .tgz laid
//! out like TensorFlow's, and TF.js folders generated here (the download reads only model.json's manifest).

use flate2::write::GzEncoder;
use mnq_gpu::download::{self, Format, KnownModel, Options, DEFAULT_BASE_URL};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const TFJS_PREFIX: &str = "/tfjs-models/tfjs";
const TGZ_PREFIX: &str = "/download.tensorflow.org/models/mobilenet_v1_2018_08_02";
const TFLITE_NAME: &str = "mobilenet_v1_0.25_128_quant";

/// What the test server answers for one path; any other path is a 404.
#[derive(Clone)]
enum Reply {
    /// 200 with the body and its true Content-Length.
    File(Vec<u8>),
    /// 200 announcing `announced` bytes, sending only `body`, then closing the connection.
    Truncated { body: Vec<u8>, announced: usize },
    /// 200 with an HTML page, as a captive portal or a quota page answers.
    Html,
}

/// An HTTP/1.1 server on 127.0.0.1, one connection at a time, `Connection: close`; stops when dropped.
struct Server {
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &routes);
                }
            }
        });
        Server { url: format!("http://{addr}"), addr, stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop so that it sees `stop`
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &HashMap<String, Reply>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Read the headers to the blank line, so that closing the socket sends a clean FIN, not a reset.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let html = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>".to_vec();
    let (status, content_type, body, announced) = match routes.get(path) {
        Some(Reply::File(body)) => ("200 OK", "application/octet-stream", body.clone(), body.len()),
        Some(Reply::Truncated { body, announced }) => ("200 OK", "application/octet-stream", body.clone(), *announced),
        Some(Reply::Html) => ("200 OK", "text/html; charset=utf-8", html.clone(), html.len()),
        None => {
            let body = b"<Error><Code>NoSuchKey</Code></Error>".to_vec();
            ("404 Not Found", "application/xml", body.clone(), body.len())
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
}

/// The shards of [`generated_tfjs`]: group number, then the float32 tensors each shard of the group holds (Google
/// splits a group into 4 MB shards; group 2 is split in two here).
const GENERATED_GROUPS: [(usize, &[&[u64]]); 3] =
    [(1, &[&[3, 3, 3, 24]]), (2, &[&[1, 1, 96, 192], &[1, 1, 192, 96]]), (3, &[&[96], &[96], &[96], &[96]])];

/// Routes serving a generated TF.js *layers* model as Google's model `<folder>`: a `model.json` whose manifest lists
/// [`GENERATED_GROUPS`] and shards of seeded random bytes of exactly the sizes the manifest implies. The download
/// reads only the manifest (and checks the sizes), so it needs no real weights.
fn generated_tfjs(folder: &str) -> HashMap<String, Reply> {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut routes = HashMap::new();
    let mut manifest = Vec::new();
    for (group, shards) in GENERATED_GROUPS {
        let paths: Vec<String> =
            (1..=shards.len()).map(|i| format!("group{group}-shard{i}of{}", shards.len())).collect();
        let mut weights = Vec::new();
        for (path, shape) in paths.iter().zip(shards) {
            weights.push(serde_json::json!({"name": format!("{path}/kernel"), "shape": shape, "dtype": "float32"}));
            let bytes: Vec<u8> = (0..4 * shape.iter().product::<u64>()).map(|_| rng.random()).collect();
            routes.insert(format!("{TFJS_PREFIX}/{folder}/{path}"), Reply::File(bytes));
        }
        manifest.push(serde_json::json!({"paths": paths, "weights": weights}));
    }
    let json = serde_json::json!({"modelTopology": {}, "weightsManifest": manifest});
    routes.insert(format!("{TFJS_PREFIX}/{folder}/model.json"), Reply::File(serde_json::to_vec(&json).unwrap()));
    routes
}

/// Google's mobilenet_v1_0.25_128_quant.tflite (tests/data/README.md).
fn published_tflite() -> Vec<u8> {
    std::fs::read(format!("tests/data/{TFLITE_NAME}.tflite")).unwrap()
}

/// A .tgz laid out like TensorFlow's: the .tflite among the checkpoint files, with `./` paths.
fn tflite_tgz(tflite: &[u8]) -> Vec<u8> {
    let entries: [(&str, &[u8]); 4] = [
        ("./mobilenet_v1_0.25_128_quant.ckpt.meta", b"not a real checkpoint"),
        ("./mobilenet_v1_0.25_128_quant_info.txt", b"Model: mobilenet_v1_0.25_128_quant\n"),
        ("./mobilenet_v1_0.25_128_quant.tflite", tflite),
        ("./mobilenet_v1_0.25_128_quant_frozen.pb", b"not a real graph"),
    ];
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn tgz_route(body: Reply) -> (String, Reply) {
    (format!("{TGZ_PREFIX}/{TFLITE_NAME}.tgz"), body)
}

/// A fresh, empty folder for one test's cache, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mnq-download-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mnq-gpu download ARGS` with the cache in `cache` and every URL on `base_url`.
fn mnq_gpu(cache: &Path, base_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnq-gpu"))
        .arg("download")
        .args(args)
        .env("MNQ_CACHE_DIR", cache)
        .env("MNQ_DOWNLOAD_BASE_URL", base_url)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every entry of `dir` (names), sorted: partial downloads would show up here as `.NAME.partial-PID`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn model(name: &str) -> KnownModel {
    download::find(name).unwrap()
}

fn quiet_options(cache: &Path, base_url: &str) -> Options {
    Options { cache_dir: cache.to_path_buf(), base_url: base_url.to_string(), force: false, progress: false }
}

#[test]
fn the_registry_knows_every_published_width_and_input_size_at_googles_urls() {
    let known = download::known_models();
    assert_eq!(known.iter().filter(|m| m.format == Format::TfjsLayers).count(), 16);
    assert_eq!(known.iter().filter(|m| m.format == Format::Tflite).count(), 16);
    assert_eq!(
        model("mobilenet_v1_0.75_224").url(DEFAULT_BASE_URL),
        "https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_0.75_224/model.json"
    );
    assert_eq!(
        model("mobilenet_v1_0.5_160_quant").url(DEFAULT_BASE_URL),
        "https://storage.googleapis.com/download.tensorflow.org/models/mobilenet_v1_2018_08_02/mobilenet_v1_0.5_160_quant.tgz"
    );
    for name in
        ["mobilenet_v1_0.50_128", "mobilenet_v1_1.0_224", "mobilenet_v1_0.25_224_quant", "mobilenet_v1_1.0_128_quant"]
    {
        assert_eq!(model(name).name, name);
    }
    assert_eq!(model("mobilenet_v1_0.50_192").input_size, 192);
}

#[test]
fn a_tfjs_model_downloads_model_json_and_every_shard_byte_identical() {
    let cache = TempDir::new("tfjs");
    let routes = generated_tfjs("mobilenet_v1_0.75_224");
    let server = Server::start(routes.clone());
    let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_0.75_224"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let folder = cache.0.join("mobilenet_v1_0.75_224");
    assert_eq!(stdout(&output).trim_end(), folder.display().to_string());

    let names = entries(&folder);
    let shards: usize = GENERATED_GROUPS.iter().map(|(_, shards)| shards.len()).sum();
    assert_eq!(names.len(), 1 + shards, "model.json + {shards} shards: {names:?}");
    for name in &names {
        let Some(Reply::File(served)) = routes.get(&format!("{TFJS_PREFIX}/mobilenet_v1_0.75_224/{name}")) else {
            panic!("{name} was not served")
        };
        assert!(std::fs::read(folder.join(name)).unwrap() == *served, "{name} differs");
    }
    assert_eq!(entries(&cache.0), ["mobilenet_v1_0.75_224"], "no partial files left behind");
    assert_eq!(download::cached_in(&cache.0, &model("mobilenet_v1_0.75_224")), Some(folder));
}

#[test]
fn a_tflite_tgz_downloads_and_extracts_the_byte_identical_tflite() {
    let cache = TempDir::new("tflite");
    let tflite = published_tflite();
    let server = Server::start([tgz_route(Reply::File(tflite_tgz(&tflite)))].into());
    let output = mnq_gpu(&cache.0, &server.url, &[TFLITE_NAME]);
    assert!(output.status.success(), "{}", stderr(&output));
    let path = cache.0.join(format!("{TFLITE_NAME}.tflite"));
    assert_eq!(stdout(&output).trim_end(), path.display().to_string());
    assert!(std::fs::read(&path).unwrap() == tflite, "the extracted .tflite differs from the one in the .tgz");
    assert_eq!(entries(&cache.0), [format!("{TFLITE_NAME}.tflite")], "the .tgz and partial files are removed");
    assert_eq!(download::cached_in(&cache.0, &model(TFLITE_NAME)), Some(path));
}

#[test]
fn a_cached_model_is_not_fetched_again_and_a_failed_force_keeps_it() {
    let cache = TempDir::new("force");
    let tflite = published_tflite();
    let server = Server::start([tgz_route(Reply::File(tflite_tgz(&tflite)))].into());
    let base_url = server.url.clone();
    assert!(mnq_gpu(&cache.0, &base_url, &[TFLITE_NAME]).status.success());
    drop(server); // nothing answers from here on

    let again = mnq_gpu(&cache.0, &base_url, &[TFLITE_NAME]);
    assert!(again.status.success(), "a cached model needs no server: {}", stderr(&again));
    let path = cache.0.join(format!("{TFLITE_NAME}.tflite"));
    assert_eq!(stdout(&again).trim_end(), path.display().to_string());

    let forced = mnq_gpu(&cache.0, &base_url, &["--force", TFLITE_NAME]);
    assert_eq!(forced.status.code(), Some(1), "--force must fetch again, and there is no server");
    assert!(std::fs::read(&path).unwrap() == tflite, "a failed --force must leave the cached copy as it was");
    assert_eq!(entries(&cache.0), [format!("{TFLITE_NAME}.tflite")]);
}

#[test]
fn a_404_is_an_error_naming_the_url_and_leaves_nothing_cached() {
    let cache = TempDir::new("404");
    let server = Server::start(HashMap::new());
    let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_0.75_224"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let url = format!("{}{TFJS_PREFIX}/mobilenet_v1_0.75_224/model.json", server.url);
    assert!(message.contains(&format!("cannot download {url}: the server answered HTTP 404")), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(download::cached_in(&cache.0, &model("mobilenet_v1_0.75_224")), None);
    assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
}

/// As the shared 1.0 model lacks `group37-shard1of1` (conv_pw_13/kernel): a shard the manifest lists is a 404.
#[test]
fn a_missing_shard_is_a_404_naming_its_url_and_leaves_no_model_folder() {
    let cache = TempDir::new("missing-shard");
    let mut routes = generated_tfjs("mobilenet_v1_1.0_224");
    routes.remove(&format!("{TFJS_PREFIX}/mobilenet_v1_1.0_224/group2-shard2of2")).expect("a generated shard");
    let server = Server::start(routes);
    let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_1.0_224"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let url = format!("{}{TFJS_PREFIX}/mobilenet_v1_1.0_224/group2-shard2of2", server.url);
    assert!(message.contains(&format!("cannot download {url}: the server answered HTTP 404")), "{message}");
    assert_eq!(download::cached_in(&cache.0, &model("mobilenet_v1_1.0_224")), None);
    assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
}

#[test]
fn a_truncated_tgz_is_an_error_and_leaves_nothing_cached() {
    let cache = TempDir::new("truncated-tgz");
    let tgz = tflite_tgz(&published_tflite());
    let (announced, sent) = (tgz.len(), tgz.len() / 2);
    let server = Server::start([tgz_route(Reply::Truncated { body: tgz[..sent].to_vec(), announced })].into());
    let error = download::download(&model(TFLITE_NAME), &quiet_options(&cache.0, &server.url)).unwrap_err();
    match &error {
        mnq_gpu::Error::Download { url, reason } => {
            assert_eq!(url, &format!("{}{TGZ_PREFIX}/{TFLITE_NAME}.tgz", server.url));
            assert!(
                reason.starts_with("truncated") && reason.contains(&format!("of the {announced} bytes")),
                "{reason}"
            );
        }
        other => panic!("expected a download error, got {other:?}"),
    }
    assert_eq!(download::cached_in(&cache.0, &model(TFLITE_NAME)), None);
    assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
}

#[test]
fn a_truncated_shard_is_an_error_and_leaves_no_model_folder() {
    let cache = TempDir::new("truncated-shard");
    let mut routes = generated_tfjs("mobilenet_v1_0.75_224");
    let shard = format!("{TFJS_PREFIX}/mobilenet_v1_0.75_224/group2-shard1of2");
    let Some(Reply::File(body)) = routes.get(&shard).cloned() else { panic!("{shard} is in the generated model") };
    routes.insert(shard.clone(), Reply::Truncated { body: body[..body.len() - 100].to_vec(), announced: body.len() });
    let server = Server::start(routes);
    let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_0.75_224"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains(&format!("cannot download {}{shard}: truncated", server.url)), "{message}");
    assert_eq!(download::cached_in(&cache.0, &model("mobilenet_v1_0.75_224")), None);
    assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
}

#[test]
fn an_html_page_instead_of_the_model_is_refused() {
    let cache = TempDir::new("html");
    let routes = [(format!("{TFJS_PREFIX}/mobilenet_v1_0.75_224/model.json"), Reply::Html)].into();
    let server = Server::start(routes);
    let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_0.75_224"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("the server sent an HTML page, not the file"), "{}", stderr(&output));
    assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
}

/// A hostile or broken model.json must not make the download write outside the cache folder.
#[test]
fn a_shard_path_that_leaves_the_model_folder_is_refused() {
    let cache = TempDir::new("dotdot");
    for bad in ["../escaped-shard", "/etc/escaped-shard", "group1/../../escaped-shard"] {
        let json = serde_json::json!({
            "modelTopology": {},
            "weightsManifest": [{"paths": [bad], "weights": [{"name": "w", "shape": [1], "dtype": "float32"}]}],
        });
        let mut routes = HashMap::from([(
            format!("{TFJS_PREFIX}/mobilenet_v1_0.75_224/model.json"),
            Reply::File(serde_json::to_vec(&json).unwrap()),
        )]);
        routes.insert("/tfjs-models/tfjs/escaped-shard".into(), Reply::File(vec![0; 4]));
        let server = Server::start(routes);
        let output = mnq_gpu(&cache.0, &server.url, &["mobilenet_v1_0.75_224"]);
        assert_eq!(output.status.code(), Some(1), "{bad}");
        let message = stderr(&output);
        assert!(message.contains(&format!("the shard path `{bad}`, which is not a plain relative path")), "{message}");
        assert!(entries(&cache.0).is_empty(), "left behind: {:?}", entries(&cache.0));
        assert!(!cache.0.parent().unwrap().join("escaped-shard").exists());
    }
}

#[test]
fn an_unknown_name_is_an_error_listing_the_known_names() {
    let cache = TempDir::new("unknown");
    let output = mnq_gpu(&cache.0, "http://127.0.0.1:9", &["mobilenet_v1_0.75_224", "mobilenet_v2_1.0_224"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: unknown model `mobilenet_v2_1.0_224`"), "{message}");
    for known in download::known_models() {
        assert!(message.contains(&known.name), "{} is not listed: {message}", known.name);
    }
    assert!(!message.contains("downloading"), "names are checked before anything is fetched: {message}");
}

#[test]
fn list_shows_every_known_name_and_which_are_cached() {
    let cache = TempDir::new("list");
    let server = Server::start([tgz_route(Reply::File(tflite_tgz(&published_tflite())))].into());
    assert!(mnq_gpu(&cache.0, &server.url, &[TFLITE_NAME]).status.success());
    let output = mnq_gpu(&cache.0, &server.url, &["--list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = stdout(&output);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 32, "{listing}");
    for (line, known) in lines.iter().zip(download::known_models()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[0], fields[1]), (known.name.as_str(), known.format.as_str()), "{line}");
        if known.name == TFLITE_NAME {
            assert_eq!(fields[2], cache.0.join(format!("{TFLITE_NAME}.tflite")).display().to_string());
        } else {
            assert_eq!(&fields[2..], ["not", "cached"], "{line}");
        }
    }
}

#[test]
fn the_cache_is_mnq_cache_dir_else_xdg_cache_home_else_home() {
    let root = TempDir::new("cache-dir");
    let server = Server::start([tgz_route(Reply::File(tflite_tgz(&published_tflite())))].into());
    let file = format!("{TFLITE_NAME}.tflite");
    let run = |envs: &[(&str, &Path)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mnq-gpu"));
        command.args(["download", TFLITE_NAME]).env("MNQ_DOWNLOAD_BASE_URL", &server.url);
        command.env_remove("MNQ_CACHE_DIR").env_remove("XDG_CACHE_HOME");
        let output = command.envs(envs.iter().copied()).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        PathBuf::from(stdout(&output).trim_end())
    };
    let (explicit, xdg, home) = (root.0.join("explicit"), root.0.join("xdg"), root.0.join("home"));
    assert_eq!(run(&[("MNQ_CACHE_DIR", &explicit), ("XDG_CACHE_HOME", &xdg), ("HOME", &home)]), explicit.join(&file));
    assert_eq!(run(&[("XDG_CACHE_HOME", &xdg), ("HOME", &home)]), xdg.join("mnq-gpu").join(&file));
    assert_eq!(run(&[("HOME", &home)]), home.join(".cache").join("mnq-gpu").join(&file));
}
