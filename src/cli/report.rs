//! `mnq-gpu report`: regenerates RESULTS.md — every scheme's accuracy beside the study's figures (int8 on the
//! GPU, every layer confirmed on the CPU integer reference), the SQNR charts, and the 1.0 model's weight analysis.
//! [`mnq_gpu::study::report`] measures; this module finds the files beside the repository, renders the markdown and
//! draws the charts.

use super::{
    arithmetic, charts, conventions, default_calibration_list, default_evaluation_list, find_shared, finetune,
    model_dir,
};
use super::{DeviceArgs, Stderr};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mnq_gpu::analysis::{self, LayerAnalysis};
use mnq_gpu::plot::{self, Series};
use mnq_gpu::study::eval::Report as EvalReport;
use mnq_gpu::study::report::{self, Inputs, TfliteResults, CHANNELS_LAYER};
use mnq_gpu::study::sqnr::Report as SqnrReport;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const MODEL_1_0: &str = "shared/models/mobilenet_v1_1.0_224";
const IMAGENETTE_LABELS: &str = "shared/imagenette/labels.txt";
/// Google's quantization-aware-trained uint8 TFLite models beside the repository, with their published ImageNet
/// top-1 on the full validation set: tensorflow/models `research/slim/nets/mobilenet_v1.md` (the 1.0 × 224 figure
/// is the 2018_08_02 release's, as ../shared/README.md gives it; the others are that page's 2018_02_22 figures).
const TFLITE_MODELS: [(&str, &str); 4] = [
    ("shared/models/tflite/mobilenet_v1_1.0_224_quant.tflite", "70.0"),
    ("shared/models/tflite/mobilenet_v1_0.75_192_quant.tflite", "66.2"),
    ("shared/models/tflite/mobilenet_v1_0.5_160_quant.tflite", "57.7"),
    ("shared/models/tflite/mobilenet_v1_0.25_128_quant.tflite", "39.9"),
];
/// The LiteRT cross-check's summaries (`scripts/litert-crosscheck-full.sh`), relative to the markdown file, and
/// what each covers; rendered when present.
const LITERT_SUMMARIES: [(&str, &str); 2] = [
    ("results/litert_crosscheck.json", "Google's four models, as imported"),
    ("results/litert_crosscheck_export.json", "models mnq-gpu quantized and exported (`mnq-gpu export`)"),
];

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// The markdown file to write.
    #[arg(long, default_value = "RESULTS.md")]
    output: PathBuf,
    /// Folder for the charts, relative to the markdown file's folder.
    #[arg(long, default_value = "plots")]
    plots: PathBuf,
    /// Evaluate only the first N images (for a quick look; the published report uses all 1,200).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Images the SQNR is averaged over.
    #[arg(long, default_value_t = 50)]
    sqnr_images: usize,
    /// Regenerate only this section of the markdown file (it must exist; the rest is kept as it is).
    #[arg(long, value_enum)]
    section: Option<Section>,
}

/// The sections of RESULTS.md that can be regenerated alone, each between `<!-- section NAME -->` and
/// `<!-- end NAME -->`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Every requantization mode (`--requant`) on four schemes, the ReLU6/ReLU SQNR figure, `fp32` against XNNPACK.
    Requant,
    /// Weight bit-widths 8, 6, 5 and 4 (`+wB`) on three schemes.
    WeightBits,
    /// LiteRT's reference kernels, XNNPACK and ONNX Runtime against mnq-gpu, from the cross-checks' summaries
    /// (nothing is measured).
    Conventions,
    /// The fine-tuned models of models/finetuned/ (the study's variants and QAT), before and after, on the
    /// fine-tuning classes and the others, their ReLU6/ReLU SQNR, the training cost.
    Finetune,
}

impl Section {
    const ALL: [Section; 4] = [Section::Requant, Section::WeightBits, Section::Conventions, Section::Finetune];

    fn name(self) -> &'static str {
        match self {
            Section::Requant => "requant",
            Section::WeightBits => "weight-bits",
            Section::Conventions => "conventions",
            Section::Finetune => "finetune",
        }
    }

    /// Measures the section on `inputs` and renders it, with its markers; the summaries it renders are read
    /// relative to `base`, its charts go to `plots`, named relative to the markdown file as `plots_link`.
    fn render(self, inputs: &Inputs, base: &Path, plots: &Path, plots_link: &Path) -> Result<String> {
        let body = match self {
            Section::Requant => {
                let modes = report::measure_modes(inputs, &Stderr)?;
                let xnnpack = std::fs::read_to_string(base.join(arithmetic::XNNPACK_SUMMARY)).ok();
                arithmetic::render_modes(&modes, xnnpack.as_deref(), plots, plots_link)?
            }
            Section::WeightBits => {
                let bits = report::measure_weight_bits(inputs, &Stderr)?;
                arithmetic::render_weight_bits(&bits, plots, plots_link)?
            }
            Section::Conventions => conventions::render(base),
            Section::Finetune => {
                let classes = imagenette_classes()?;
                let models = finetune::source_path(finetune::MODELS)?;
                let measured = report::measure_finetune(inputs, &models, &classes, &Stderr)?;
                finetune::render(&measured, plots, plots_link)?
            }
        };
        Ok(format!("<!-- section {0} -->\n{body}<!-- end {0} -->\n", self.name()))
    }
}

/// The ImageNet classes of the fine-tuning photos (the second column of `../shared/imagenette/labels.txt`).
fn imagenette_classes() -> Result<Vec<usize>> {
    let labels = find_shared(IMAGENETTE_LABELS)
        .with_context(|| format!("the fine-tuning section needs {IMAGENETTE_LABELS} beside the repository"))?;
    let text = std::fs::read_to_string(&labels).with_context(|| format!("reading {}", labels.display()))?;
    let mut classes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let class = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        let class = class.with_context(|| format!("{}: `{line}` is not `FILE CLASS`", labels.display()))?;
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    Ok(classes)
}

/// `markdown` with its section `section` replaced by `rendered` (markers included), or with `rendered` appended.
fn splice(markdown: &str, section: Section, rendered: &str) -> String {
    let (start, end) = (format!("<!-- section {} -->", section.name()), format!("<!-- end {} -->\n", section.name()));
    match (markdown.find(&start), markdown.find(&end)) {
        (Some(from), Some(to)) if from < to => {
            format!("{}{rendered}{}", &markdown[..from], &markdown[to + end.len()..])
        }
        _ => format!("{}\n{rendered}", markdown.trim_end()),
    }
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let inputs = Inputs {
        model: model_dir(None)?,
        calibration: default_calibration_list()?,
        evaluation: default_evaluation_list()?,
        limit: args.limit,
        sqnr_images: args.sqnr_images,
        device: args.device.to_device(),
    };
    let base = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let plots = base.join(&args.plots);
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    if let Some(section) = args.section {
        let existing = std::fs::read_to_string(&args.output).with_context(|| {
            format!("--section rewrites one section of {}; make it first with `report`", args.output.display())
        })?;
        let markdown = splice(&existing, section, &section.render(&inputs, base, &plots, &args.plots)?);
        std::fs::write(&args.output, markdown).with_context(|| format!("writing {}", args.output.display()))?;
        eprintln!("wrote section {} of {}", section.name(), args.output.display());
        return Ok(ExitCode::SUCCESS);
    }

    let model_1_0 = find_shared(MODEL_1_0).context("the 1.0 model's folder was not found beside the repository")?;
    let tflite = TFLITE_MODELS
        .iter()
        .map(|(file, _)| find_shared(file).with_context(|| format!("{file} was not found beside the repository")))
        .collect::<Result<Vec<_>>>()?;
    let results = report::measure(&inputs, &model_1_0, &tflite, &Stderr)?;
    charts::sqnr(&results.sqnr, &plots)?;
    charts::layer_ranges(&results.channels_1_0, CHANNELS_LAYER, &plots.join("mobilenet_v1_1.0_224"))?;
    charts::layer_ranges(&results.channels, CHANNELS_LAYER, &plots.join("mobilenet_v1_0.75_224"))?;
    let tflite: Vec<TfliteRow> = results
        .tflite
        .iter()
        .zip(TFLITE_MODELS)
        .map(|(results, (_, published))| TfliteRow { results, published })
        .collect();
    write_tflite_chart(&tflite, &plots)?;
    let litert: Vec<(&str, &str, Option<String>)> = LITERT_SUMMARIES
        .iter()
        .map(|&(file, what)| (file, what, std::fs::read_to_string(base.join(file)).ok()))
        .collect();
    let mut markdown = render(&results.eval, &results.sqnr, &results.analysis, &args.plots)
        + &render_tflite(&tflite, &litert, &args.plots);
    for section in Section::ALL {
        markdown = splice(&markdown, section, &section.render(&inputs, base, &plots, &args.plots)?);
    }
    std::fs::write(&args.output, markdown).with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// The study's ImageNet top-1 for each row it reports (Sheng et al. 2018, MobileNetV1 1.0 × 224, full validation set).
fn study_figure(scheme: &str) -> &'static str {
    match scheme {
        "tf8" => "1.80 (TF8)",
        "tf8-zero-var" => "≈ 50 (Option 1, no retraining)",
        "tf8-zero-var+dw-linear" => "61.50 (no BN+ReLU6 after depthwise, retrained)",
        "tf8-zero-var+relu" => "67.80 (… and ReLU, retrained)",
        _ => "",
    }
}

fn render(eval: &EvalReport, sqnr: &SqnrReport, analysis: &[LayerAnalysis], plots: &Path) -> String {
    let mut md = String::new();
    let plot = |name: &str| plots.join(name).display().to_string();
    let _ = writeln!(md, "# mnq-gpu results\n");
    let _ = writeln!(
        md,
        "Regenerate with `cargo run --release -- report` (75 minutes on 2 CPU cores shared with other work, with the \
         software Vulkan device, and 28 more for the fine-tuning section). Model `{}`, calibrated on the 100 images of `calibration.txt`, evaluated on the {} images of `{}`. \
         int8 ran on: {}. Every int8 result was confirmed on the CPU integer reference, every layer's output, bit for \
         bit (column *differing bytes*).\n",
        eval.model,
        eval.images,
        eval.list.display(),
        eval.adapter.as_deref().unwrap_or("the CPU integer reference")
    );
    let _ = writeln!(md, "## Accuracy of every scheme\n");
    let _ = writeln!(
        md,
        "The study's figures are for MobileNetV1 1.0 on the full 50,000-image validation set (float 70.50 %); ours are \
         for the 0.75 model on an easier 1,200-image subset (float {:.2} %), so compare each scheme with the float row \
         and with each other. Rows marked *architecture* change the float network: the study retrained for them, we \
         cannot, so their float column shows what the change does without retraining.\n",
        eval.float.top1_percent
    );
    let _ = writeln!(md, "| scheme | float top-1 | float top-5 | int8 top-1 | int8 top-5 | study (top-1) | checked bytes | differing bytes |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| float (original) | {:.2} | {:.2} | | | 70.50 | | |",
        eval.float.top1_percent, eval.float.top5_percent
    );
    for s in &eval.schemes {
        let architecture =
            if s.scheme.contains("+relu") || s.scheme.contains("+dw-linear") { " (architecture)" } else { "" };
        let _ = writeln!(
            md,
            "| `{}`{architecture} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            s.scheme,
            s.float.top1_percent,
            s.float.top5_percent,
            s.int8.top1_percent,
            s.int8.top5_percent,
            study_figure(&s.scheme),
            s.checked_bytes.unwrap_or(0),
            s.differing_bytes.map_or("-".into(), |d| d.to_string())
        );
    }
    let _ = writeln!(md, "\nThe study's L2-regularised quantization-friendly network (68.03 %) needs training: its variants fine-tuned here, and quantization-aware training, are in the last section, *Fine-tuned*.\n");

    let _ = writeln!(md, "## Per-layer SQNR\n");
    let _ = writeln!(
        md,
        "Mean over the first {} evaluation images, each scheme against the float model it quantizes. *Accumulated*: \
         both pipelines end to end, errors accumulate (the study's figure). *Local*: each int8 layer fed the quantized \
         float input, which shows the layer that creates the loss.\n",
        sqnr.images
    );
    let _ = writeln!(
        md,
        "![accumulated SQNR]({})\n\n![local SQNR]({})\n",
        plot("sqnr_accumulated.png"),
        plot("sqnr_local.png")
    );
    let mut header = "| layer |".to_string();
    let mut rule = "|---|".to_string();
    for s in &sqnr.schemes {
        let _ = write!(header, " `{}` acc. / local |", s.scheme);
        rule += "---|";
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for (i, layer) in sqnr.schemes[0].layers.iter().enumerate() {
        let mut row = format!("| {} |", layer.layer);
        for s in &sqnr.schemes {
            let _ = write!(row, " {:.1} / {:.1} |", s.layers[i].accumulated_db, s.layers[i].local_db);
        }
        let _ = writeln!(md, "{row}");
    }

    let _ = writeln!(
        md,
        "\n## Weights of the 1.0 model (`inspect`, no inference: its `conv_pw_13/kernel` shard is missing)\n"
    );
    let _ = writeln!(
        md,
        "Per-tensor kernel ranges before and after folding BatchNorm; *ratio* = folded range / median channel's \
         folded range; *dead* = BatchNorm channels with moving variance below {:e}.\n",
        analysis::ZERO_VARIANCE
    );
    let _ =
        writeln!(md, "| layer | channels | kernel range | folded range | ratio | dead | widest channel (fold scale) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let range =
        |r: Option<mnq_gpu::quant::Range>| r.map_or("missing".into(), |r| format!("{:.2} … {:.2}", r.min, r.max));
    for row in analysis {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.layer,
            row.channels.map_or("-".into(), |c| c.to_string()),
            range(row.kernel),
            range(row.folded),
            row.range_ratio.map_or("-".into(), |r| format!("{r:.1}")),
            row.zero_variance_channels.as_ref().map_or("-".into(), |d| d.len().to_string()),
            row.widest_channel.as_ref().map_or("-".into(), |w| format!("{} (×{:.1})", w.channel, w.fold_scale))
        );
    }
    let _ = writeln!(
        md,
        "\nThe study's chart of one depthwise layer's channels, `conv_dw_1` of the 1.0 model, folded and unfolded \
         (and the same for 0.75 in `{}`):\n\n![folded]({})\n\n![unfolded]({})",
        plot("mobilenet_v1_0.75_224"),
        plot("mobilenet_v1_1.0_224/conv_dw_1_folded.png"),
        plot("mobilenet_v1_1.0_224/conv_dw_1_unfolded.png")
    );
    md.push_str(NOTES);
    md
}

/// How each scheme handles what the study found; fixed text, checked by the tests named in it.
const NOTES: &str = "
## Notes on the schemes

- **Zero-variance channels (`tf8-zero-var`).** On the calibration images, every depthwise channel whose BatchNorm
  variance is ≈ 4e-35 reads a channel of the previous layer that is itself dead (weights ≈ 1e-14, negative beta, so
  ReLU6 outputs exactly 0); its convolution output is exactly 0 and its output the constant ReLU6(beta)
  (`tests/schemes.rs`, `zero_variance_depthwise_channels_see_exactly_zero_on_calibration_images`). Setting the folded
  weights of zero-variance channels to 0 and keeping the folded bias therefore leaves the float network's outputs
  unchanged (`the_zero_variance_fix_keeps_the_real_model_float_function`) while removing the gamma/sqrt(epsilon)
  blow-up from the per-tensor weight range.
- **ReLU6 under cross-layer equalization (`cle`, `cle-bc`).** Equalization divides a channel by s_c and ReLU6 does
  not commute with that. Replacing ReLU6 by ReLU (what Data-Free Quantization did for MobileNetV2) costs 8 points of
  float top-1 here without retraining (row `tf8+relu`); instead each channel keeps the bound 6/s_c and the integer
  kernels clamp per output channel, so the float function is unchanged.
- **Bias correction** subtracts the expected weight-quantization error Σ(W_q − W)·E[x], with E[x] the mean of each
  input channel over the calibration images (padding ignored).
- **`+mse`** clips each activation range to the factor of min/max (0.2 … 1) that minimises the expected squared
  error on a 2,048-bin calibration histogram.
- **Architecture rows** apply the study's changes to the trained weights without retraining: ReLU6 → ReLU everywhere,
  and no activation after the depthwise layers with their BatchNorm folded forward into the pointwise layer. The
  second destroys the float network (the depthwise outputs were trained to be clipped), which is why the study
  retrained.
";

/// One of Google's TFLite models: what was measured, and its published accuracy.
struct TfliteRow<'a> {
    results: &'a TfliteResults,
    published: &'static str,
}

/// The accumulated SQNR of the TFLite models, one line per model.
fn write_tflite_chart(rows: &[TfliteRow], plots: &Path) -> Result<()> {
    let layers: Vec<String> = rows[0].results.sqnr.schemes[0].layers.iter().map(|l| l.layer.clone()).collect();
    let series: Vec<Series> = rows
        .iter()
        .map(|row| Series {
            name: row.results.eval.model.clone(),
            values: row.results.sqnr.schemes[0].layers.iter().map(|l| l.accumulated_db).collect(),
        })
        .collect();
    let title = format!(
        "Google's QAT uint8 MobileNetV1: accumulated SQNR against the dequantized float model, {} images",
        rows[0].results.sqnr.images
    );
    plot::line_chart(&plots.join("sqnr_tflite_accumulated"), &title, &layers, "SQNR (dB)", &series)?;
    Ok(())
}

fn render_tflite(rows: &[TfliteRow], litert: &[(&str, &str, Option<String>)], plots: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Retrained: Google's quantization-aware-trained uint8 models (TFLite)\n");
    let _ = writeln!(
        md,
        "The study fixed MobileNetV1 by retraining; Google retrained it for 8 bits with quantization-aware training and \
         published uint8 TFLite files. mnq-gpu imports them as they are (`--model FILE.tflite`, scheme `tflite`: the \
         file's own quantization and TFLite's requantization constants) and runs them on the GPU; every layer was \
         confirmed on the CPU integer reference (*differing bytes*). *Float* is the model the file represents: its \
         dequantized weights and biases in a float pipeline, which is also what the SQNR is measured against. The \
         published figure is Google's, on the full validation set; the study's own retrained network reaches 68.03 % \
         (float 70.77 %) there. Same {} evaluation images as above; the inputs are the resized pixels themselves \
         (scale 1/128, zero point 128), as TFLite's classifiers take them.\n",
        rows.first().map_or(0, |r| r.results.eval.images)
    );
    let _ = writeln!(
        md,
        "| model | float top-1 | float top-5 | int8 top-1 | int8 top-5 | published int8 top-1 | logits SQNR (dB) | checked bytes | differing bytes |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let int8 = &row.results.eval.schemes[0];
        let logits = row.results.sqnr.schemes[0].layers.last().map_or(f64::NAN, |l| l.accumulated_db);
        let _ = writeln!(
            md,
            "| `{}` | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {} | {} |",
            row.results.eval.model,
            row.results.eval.float.top1_percent,
            row.results.eval.float.top5_percent,
            int8.int8.top1_percent,
            int8.int8.top5_percent,
            row.published,
            logits,
            int8.checked_bytes.unwrap_or(0),
            int8.differing_bytes.map_or("-".into(), |d| d.to_string())
        );
    }
    let _ = writeln!(
        md,
        "\n![accumulated SQNR of the TFLite models]({})\n",
        plots.join("sqnr_tflite_accumulated.png").display()
    );
    let _ = writeln!(md, "### Bit-exact with LiteRT's reference kernels\n");
    for (file, what, summary) in litert {
        match summary {
            Some(summary) => md.push_str(&render_litert(file, what, summary)),
            None => {
                let _ = writeln!(
                    md,
                    "No LiteRT cross-check summary `{file}` ({what}) was found; `scripts/litert-crosscheck-full.sh` \
                     writes it.\n"
                );
            }
        }
    }
    md
}

/// The LiteRT cross-check's JSON summary as tables: mnq-gpu (CPU reference and GPU) against LiteRT's reference
/// kernels, and LiteRT's other kernels against the reference.
fn render_litert(file: &str, what: &str, summary: &str) -> String {
    let mut md = String::new();
    let Ok(json) = serde_json::from_str::<serde_json::Value>(summary) else {
        return format!("The LiteRT cross-check summary `{file}` is not valid JSON.\n\n");
    };
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let results = json["results"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        md,
        "{what} (`{file}`, from `scripts/litert-crosscheck-full.sh`): LiteRT {} (`ai-edge-litert`, `OpResolverType.BUILTIN_REF`, \
         `experimental_preserve_all_tensors`) fed the same uint8 input as mnq-gpu; every layer's output compared byte \
         for byte. The other columns compare LiteRT's own paths with its reference kernels, on the tensors each \
         exposes, and count the images whose top-1 class (from the uint8 logits) changes: the default XNNPACK delegate \
         with every tensor kept (`AUTO`, one delegate node per operator) and as deployed (`AUTO_FUSED`, outputs only), \
         and the optimized builtin kernels without XNNPACK (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`).\n",
        json["litert_version"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        md,
        "| model | mnq-gpu device | images | bytes compared | differing from reference kernels | XNNPACK (`AUTO`): differing bytes / compared, top-1 changed | XNNPACK deployed | optimized builtin |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for result in &results {
        let config = |name: &str| {
            let c = &result["litert_vs_builtin_ref"][name];
            if c.is_null() {
                return "-".to_string();
            }
            format!(
                "{} / {}, {} of {}",
                number(&c["bytes_differing"]),
                number(&c["bytes_compared"]),
                number(&c["top1_differs"]),
                number(&c["top1_compared"])
            )
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | **{}** | {} | {} | {} |",
            result["model"].as_str().unwrap_or("?"),
            result["device"].as_str().unwrap_or("?"),
            result["images"].as_array().map_or(0, Vec::len),
            number(&result["mnq_vs_builtin_ref"]["bytes_compared"]),
            number(&result["mnq_vs_builtin_ref"]["bytes_differing"]),
            config("AUTO"),
            config("AUTO_FUSED"),
            config("BUILTIN_WITHOUT_DEFAULT_DELEGATES")
        );
    }
    let _ = writeln!(
        md,
        "\nIn all: {} bytes compared, {} differ from LiteRT's reference kernels.\n",
        number(&json["bytes_compared"]),
        number(&json["bytes_differing"])
    );
    md
}
