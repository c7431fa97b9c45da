//! Charts written as PNG and SVG: per-layer line charts (e.g. SQNR per layer) and the per-channel weight-range
//! chart of one layer.
//!
//! Every chart is drawn twice through the same code, once into an RGB buffer (encoded as PNG by `image`) and once
//! into an SVG string. Text uses DejaVu Sans embedded in the binary (`assets/fonts/`, Bitstream Vera licence), so
//! charts render identically on a bare machine without fontconfig or system fonts.

use crate::error::{Error, Result};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use plotters_backend::{BackendColor, BackendCoord, DrawingErrorKind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core); licence in `assets/fonts/LICENSE-DejaVu.txt`.
static FONT_TTF: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// The family name the embedded font is registered under; SVG viewers fall back to their own sans-serif.
const FONT: &str = "sans-serif";

/// Tableau 10: distinguishable lines, also for the common forms of colour blindness.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a [`line_chart`]: a value per x label. NaN and infinite values are skipped (gaps in the line).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// Line chart, one line per series, over categorical x labels (e.g. layer names, drawn rotated), with `y_label`
/// (e.g. "SQNR (dB)") on the y axis. Writes `<stem>.png` and `<stem>.svg` and returns both paths.
pub fn line_chart(
    stem: &Path,
    title: &str,
    x_labels: &[String],
    y_label: &str,
    series: &[Series],
) -> Result<Vec<PathBuf>> {
    let chart = LineChart { title, x_labels, y_label, series };
    write_both(stem, (1200, 720), &chart)
}

/// Per-channel weight ranges of one layer: for channel `c` a vertical bar from `mins[c]` to `maxs[c]`, x = channel
/// index. Title e.g. "conv_dw_1 folded depthwise weights". Writes `<stem>.png` and `<stem>.svg`.
pub fn range_chart(stem: &Path, title: &str, mins: &[f64], maxs: &[f64]) -> Result<Vec<PathBuf>> {
    if mins.len() != maxs.len() {
        return Err(Error::Plot {
            path: stem.to_path_buf(),
            reason: format!("{} channel minima but {} maxima", mins.len(), maxs.len()),
        });
    }
    write_both(stem, (1200, 600), &RangeChart { title, mins, maxs })
}

/// A chart drawable on any plotters backend; errors are rendered to strings (backend error types differ).
trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

fn write_both(stem: &Path, (width, height): (u32, u32), chart: &impl Chart) -> Result<Vec<PathBuf>> {
    register_font()?;
    let png_path = with_extension(stem, "png");
    let svg_path = with_extension(stem, "svg");
    let plot_error = |path: &Path, reason: String| Error::Plot { path: path.to_path_buf(), reason };
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }

    // RGB, 3 bytes per pixel, row-major.
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = GlyphBitmap(BitMapBackend::with_buffer(&mut rgb, (width, height))).into_drawing_area();
        chart.draw(&root).map_err(|e| plot_error(&png_path, e))?;
        root.present().map_err(|e| plot_error(&png_path, e.to_string()))?;
    }
    image::save_buffer_with_format(&png_path, &rgb, width, height, image::ColorType::Rgb8, image::ImageFormat::Png)
        .map_err(|e| plot_error(&png_path, e.to_string()))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        chart.draw(&root).map_err(|e| plot_error(&svg_path, e))?;
        root.present().map_err(|e| plot_error(&svg_path, e.to_string()))?;
    }
    std::fs::write(&svg_path, svg).map_err(|e| Error::io(&svg_path, e))?;
    Ok(vec![png_path, svg_path])
}

/// `stem` + `.ext`, keeping any dots already in the stem (`plots/conv_dw_1.folded` → `conv_dw_1.folded.png`).
fn with_extension(stem: &Path, extension: &str) -> PathBuf {
    let mut path = stem.as_os_str().to_owned();
    path.push(".");
    path.push(extension);
    PathBuf::from(path)
}

/// Register the embedded font with plotters once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot { path: "assets/fonts/DejaVuSans.ttf".into(), reason: "embedded font does not parse".into() })
    }
}

/// (min, max) of the finite values, padded by 5 % of the span; (0, 1) when there are none.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { lo.abs().max(1.0) * 0.05 };
    (lo - pad, hi + pad)
}

/// The bitmap backend with text rasterized here: plotters 0.3.7's ab_glyph text drops each glyph's side bearing
/// (visible as "con v_dw"). Everything else goes straight to [`BitMapBackend`].
struct GlyphBitmap<'a>(BitMapBackend<'a>);
// plotters_backend::{BackendStyle, BackendTextStyle} are named by path: imported, their methods clash with
// plotters::style::Color's (stroke_width).

type BitmapError = DrawingErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

impl GlyphBitmap<'_> {
    fn font() -> &'static FontRef<'static> {
        static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
        // register_font() parsed the same bytes before any chart is drawn.
        PARSED.get_or_init(|| FontRef::try_from_slice(FONT_TTF).expect("embedded font parses"))
    }

    /// Glyph outlines of `text` laid out from (0, 0) = top left, and the (width, height) of the line box.
    fn layout(text: &str, size: f64) -> (Vec<ab_glyph::OutlinedGlyph>, (f32, f32)) {
        let font = Self::font().as_scaled(PxScale::from(size as f32));
        let mut pen_x = 0.0f32;
        let mut previous = None;
        let mut glyphs = Vec::new();
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                pen_x += font.kern(previous, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(font.scale(), ab_glyph::point(pen_x, font.ascent()));
            glyphs.extend(Self::font().outline_glyph(glyph));
            pen_x += font.h_advance(id);
        }
        (glyphs, (pen_x, font.ascent() - font.descent()))
    }
}

impl DrawingBackend for GlyphBitmap<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), BitmapError> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), BitmapError> {
        self.0.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), BitmapError> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), BitmapError> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), BitmapError> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), BitmapError> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), BitmapError> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> Result<(), BitmapError> {
        self.0.fill_polygon(vertices, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), BitmapError> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: plotters_backend::BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), BitmapError> {
        let (_, (width, height)) = Self::layout(text, style.size());
        Ok((width.ceil() as u32, height.ceil() as u32))
    }

    fn draw_text<S: plotters_backend::BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), BitmapError> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let (glyphs, (width, height)) = Self::layout(text, style.size());
        // The anchor applies to the unrotated line box, as in plotters' own backends.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let (canvas_w, canvas_h) = self.get_size();
        let mut result = Ok(());
        for glyph in &glyphs {
            let bounds = glyph.px_bounds();
            glyph.draw(|x, y, coverage| {
                if result.is_err() || coverage <= 0.0 {
                    return;
                }
                let gx = (bounds.min.x + x as f32 + dx).round() as i32;
                let gy = (bounds.min.y + y as f32 + dy).round() as i32;
                let (tx, ty) = transform.transform(gx, gy);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if px >= 0 && py >= 0 && (px as u32) < canvas_w && (py as u32) < canvas_h {
                    let alpha = color.alpha * coverage.min(1.0) as f64;
                    result = self.0.draw_pixel((px, py), BackendColor { alpha, rgb: color.rgb });
                }
            });
        }
        result
    }
}

fn error_string(e: impl std::fmt::Display) -> String {
    e.to_string()
}

struct LineChart<'a> {
    title: &'a str,
    x_labels: &'a [String],
    y_label: &'a str,
    series: &'a [Series],
}

impl Chart for LineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(error_string)?;
        let n = self.x_labels.len().max(1);
        let (y_min, y_max) = padded_range(self.series.iter().flat_map(|s| s.values.iter().copied()));
        let longest_label = self.x_labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 26))
            .margin(16)
            .x_label_area_size(24 + 9 * longest_label as u32)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, y_min..y_max)
            .map_err(error_string)?;
        // Ticks at every category; the labels are drawn below, rotated, because plotters centres rotated tick
        // labels on the tick, which pushes long names up into the plot.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|_| String::new())
            .y_desc(self.y_label)
            .axis_desc_style((FONT, 18))
            .y_label_style((FONT, 14))
            .draw()
            .map_err(error_string)?;

        let label_style = TextStyle::from((FONT, 14).into_font())
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, label) in self.x_labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, y_min));
            root.draw(&Text::new(label.as_str(), (x, y + 8), label_style.clone())).map_err(error_string)?;
        }

        for (index, series) in self.series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            let style = color.stroke_width(2);
            // Runs of consecutive finite values; a gap ends a run. Points are marked so single-value runs show.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (i, &v) in series.values.iter().enumerate().take(n) {
                if v.is_finite() {
                    runs.last_mut().expect("runs is never empty").push((i as f64, v));
                } else if !runs.last().expect("runs is never empty").is_empty() {
                    runs.push(Vec::new());
                }
            }
            for (run_index, run) in runs.into_iter().filter(|r| !r.is_empty()).enumerate() {
                let drawn = chart.draw_series(LineSeries::new(run, style).point_size(3)).map_err(error_string)?;
                if run_index == 0 {
                    drawn
                        .label(series.name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
                }
            }
        }
        if !self.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 16))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(error_string)?;
        }
        Ok(())
    }
}

struct RangeChart<'a> {
    title: &'a str,
    mins: &'a [f64],
    maxs: &'a [f64],
}

impl Chart for RangeChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(error_string)?;
        let channels = self.mins.len().max(1);
        let (y_min, y_max) = padded_range(self.mins.iter().chain(self.maxs).copied());
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 26))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..channels as f64 - 0.5, y_min..y_max)
            .map_err(error_string)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("output channel")
            .y_desc("weight")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(error_string)?;
        // Bars are 70 % of a channel's width, at least one pixel.
        let plot_width = chart.plotting_area().dim_in_pixel().0 as f64;
        let bar_px = ((0.7 * plot_width / channels as f64).round() as u32).max(1);
        let color = PALETTE[0];
        chart
            .draw_series(
                self.mins
                    .iter()
                    .zip(self.maxs)
                    .enumerate()
                    .filter(|(_, (lo, hi))| lo.is_finite() && hi.is_finite())
                    .map(|(c, (&lo, &hi))| {
                        PathElement::new(vec![(c as f64, lo), (c as f64, hi)], color.stroke_width(bar_px))
                    }),
            )
            .map_err(error_string)?;
        if y_min < 0.0 && y_max > 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, 0.0), (channels as f64 - 0.5, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(error_string)?;
        }
        Ok(())
    }
}
