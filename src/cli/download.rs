//! `mnq-gpu download`: fetch Google's published MobileNetV1 models by name into the local cache.

use anyhow::{Context, Result};
use clap::Args;
use mnq_gpu::download::{self, Options};
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = "The cache is $MNQ_CACHE_DIR, else $XDG_CACHE_HOME/mnq-gpu, else ~/.cache/mnq-gpu.")]
pub struct DownloadArgs {
    /// Models to fetch, e.g. mobilenet_v1_0.75_224 (TF.js, float32) or mobilenet_v1_0.25_128_quant (TFLite,
    /// uint8 QAT); --list shows every name. Prints each one's path in the cache.
    #[arg(value_name = "NAME", required_unless_present = "list")]
    names: Vec<String>,
    /// Print every known name, its format and its path in the cache (or `not cached`).
    #[arg(long, conflicts_with = "names")]
    list: bool,
    /// Download again even if cached (the cached copy is replaced only once the new one is complete).
    #[arg(long)]
    force: bool,
    /// Replaces https://storage.googleapis.com in every URL, for a mirror [default: $MNQ_DOWNLOAD_BASE_URL if set].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

pub fn run(args: DownloadArgs) -> Result<ExitCode> {
    let mut options = Options::from_env()?;
    options.force = args.force;
    if let Some(base_url) = args.base_url {
        options.base_url = base_url;
    }
    if args.list {
        let known = download::known_models();
        let width = known.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for model in &known {
            let cached = download::cached_in(&options.cache_dir, model);
            let place = cached.map_or_else(|| "not cached".to_string(), |path| path.display().to_string());
            println!("{:width$}  {:6}  {place}", model.name, model.format.as_str());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Every name is checked before anything is fetched, so a typo in the last one costs no download.
    let models = args.names.iter().map(|name| download::find(name)).collect::<Result<Vec<_>, _>>()?;
    for model in &models {
        let cached = download::cached_in(&options.cache_dir, model).filter(|_| !options.force);
        if cached.is_none() {
            eprintln!("downloading {} from {}", model.name, model.url(&options.base_url));
        }
        let path = download::download(model, &options).with_context(|| format!("downloading {}", model.name))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
