//! `bench.png`: throughput and p99 latency against the client count, one
//! line per system, side by side, from a session's medians. The x axis is
//! logarithmic (base 2, labelled at powers of two), as client counts grow by
//! factors (1, 16, 64, 256).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::BenchError;
use crate::report::{Report, Summary};
use crate::targets::TargetKind;

/// Size of the picture, pixels.
const PLOT_SIZE: (u32, u32) = (1200, 500);
/// Where Debian's fonts-dejavu-core puts the font the labels use.
const FONT_FILES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn color(target: TargetKind) -> RGBColor {
    match target {
        TargetKind::Safekeep => RGBColor(0, 114, 178),
        TargetKind::Etcd => RGBColor(213, 94, 0),
    }
}

/// Makes the labels' font known to plotters, once per process.
fn register_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_FILES
            .iter()
            .find_map(|path| std::fs::read(path).ok())
            .ok_or_else(|| format!("no font at {FONT_FILES:?}: install fonts-dejavu-core (scripts/install-deps.sh)"))?;
        plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
            .map_err(|_| "the font file is unreadable".to_string())
    })
    .clone()
}

/// Whether the labels' font loads: checked with the options, so a missing
/// font is found before any cluster starts, not after the runs.
pub fn check_font() -> Result<(), BenchError> {
    register_font().map_err(BenchError::Font)
}

/// Draws `report`'s medians into `path`.
pub fn draw(report: &Report, path: &Path) -> Result<(), BenchError> {
    let failed = |detail: String| BenchError::Plot {
        path: path.to_path_buf(),
        detail,
    };
    register_font().map_err(failed)?;
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
    let (left, right) = root.split_horizontally(PLOT_SIZE.0 / 2);
    let title = format!("{} workload", report.settings.workload);
    panel(&left, report, &format!("{title}: throughput"), "operations/s", |s| {
        Some(s.ops_per_s)
    })
    .map_err(failed)?;
    panel(&right, report, &format!("{title}: p99 latency"), "p99 ms", |s| s.p99_ms).map_err(failed)?;
    root.present().map_err(|e| failed(e.to_string()))
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    report: &Report,
    title: &str,
    y_label: &str,
    value: fn(&Summary) -> Option<f64>,
) -> Result<(), String> {
    let clients = &report.settings.clients;
    let lowest = (*clients.iter().min().ok_or("no client counts")? as f64).log2();
    let highest = (*clients.iter().max().ok_or("no client counts")? as f64).log2();
    let x_range = (lowest.floor() - 0.5)..(highest.ceil() + 0.5);
    let top = report.summaries.iter().filter_map(value).fold(0.0, f64::max);
    let y_range = 0.0..(if top > 0.0 { top * 1.15 } else { 1.0 });
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("clients in flight")
        .y_desc(y_label)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 0.01 {
                format!("{:.0}", x.round().exp2())
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for target in [TargetKind::Safekeep, TargetKind::Etcd] {
        let points: Vec<(f64, f64)> = report
            .summaries
            .iter()
            .filter(|s| s.target == target)
            // A summary without the figure (no successful operation) has no point.
            .filter_map(|s| Some(((s.clients as f64).log2(), value(s)?)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let style = color(target).stroke_width(3);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(|e| e.to_string())?
            .label(target.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 5, color(target).filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())
}
