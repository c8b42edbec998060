//! What a drill hands the SRE: `report.json` for machines, `report.md` for
//! people (the verdict, the SLO figures and the phases), and
//! `timeline.png`: the workload's successes and failures per second and
//! the write p99 over time, the fault window shaded, and every leader
//! change marked.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::backups::BackupFigures;
use crate::faults::FaultKind;
use crate::measure::{Bucket, Figures, Phases};
use crate::netns::Isolation;

/// Size of the timeline plot, pixels.
const PLOT_SIZE: (u32, u32) = (1200, 500);
/// Fonts the plot's labels may use, first found wins.
const FONT_FILES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Where a failed drill keeps its whole history, beside the report.
pub const HISTORY_FILE: &str = "history.json";

/// The history checks' verdict.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryVerdict {
    pub operations: usize,
    pub linearizable: bool,
    pub lost_writes: usize,
    /// After recovery every node's own replica held what the cluster holds.
    pub replicas_agree: bool,
    /// One line per violation found, as the checker words it.
    pub findings: Vec<String>,
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub fault: FaultKind,
    /// How the zones were laid out; none for a cluster that runs elsewhere.
    pub isolation: Option<Isolation>,
    pub zone: String,
    pub nodes: Vec<u64>,
    /// How the fault was made.
    pub mechanism: String,
    pub phases: Phases,
    pub figures: Figures,
    pub history: HistoryVerdict,
    /// The longest write gap the drill accepts, seconds.
    pub write_gap_slo_s: f64,
    pub passed: bool,
    pub timeline: Vec<Bucket>,
    /// How the backups fared, when the cluster takes them.
    pub backup: Option<BackupFigures>,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot draw {0}: {1}")]
    Plot(PathBuf, String),
}

impl DrillReport {
    /// Writes `report.json`, `report.md` and `timeline.png` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::Io(dir.to_path_buf(), e))?;
        let json = dir.join("report.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?).map_err(|e| ReportError::Io(json.clone(), e))?;
        let markdown = dir.join("report.md");
        std::fs::write(&markdown, self.markdown()).map_err(|e| ReportError::Io(markdown.clone(), e))?;
        let plot = dir.join("timeline.png");
        self.plot(&plot)?;
        Ok(vec![json, markdown, plot])
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let seconds = |s: Option<f64>| s.map_or_else(|| "never".to_string(), |s| format!("{s:.2} s"));
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        let f = &self.figures;
        let mut out = format!(
            "# Drill: {} of zone {} (nodes {:?})\n\n**Verdict: {}**\n\nFault: {}.\n\nZones: {}.\n\n",
            self.fault,
            self.zone,
            self.nodes,
            if self.passed { "PASS" } else { "FAIL" },
            self.mechanism,
            match self.isolation {
                Some(Isolation::Namespaces) => "one network namespace per zone",
                Some(Isolation::Loopback) => "loopback addresses, one per node (no root: process faults only)",
                None => "a cluster that runs elsewhere, reached through its endpoints",
            }
        );
        out += &format!(
            "| figure | value |\n|---|---|\n| longest write gap | {:.2} s (SLO {:.1} s) |\n| failover (first write sent once the fault was in place succeeded) | {} |\n| recovery (throughput back after the heal) | {} |\n| catch-up (restored nodes hold what was committed at the heal) | {} |\n| leader changes | {} |\n| operations checked | {} |\n| linearizable | {} |\n| lost acknowledged writes | {} |\n| every replica holds the same data | {} |\n\n",
            f.longest_write_gap_s,
            self.write_gap_slo_s,
            seconds(f.failover_s),
            seconds(f.recovery_s),
            seconds(f.catch_up_s),
            f.leader_changes.len().saturating_sub(1),
            self.history.operations,
            if self.history.linearizable { "yes" } else { "NO" },
            self.history.lost_writes,
            if self.history.replicas_agree { "yes" } else { "NO" }
        );
        out += "| phase | writes/s | reads/s | failed | availability | write p50 ms | write p99 ms |\n|---|---|---|---|---|---|---|\n";
        for (name, p) in [("before", &f.before), ("during", &f.during), ("after", &f.after)] {
            out += &format!(
                "| {name} | {:.1} | {:.1} | {} | {} | {} | {} |\n",
                p.writes_per_s,
                p.reads_per_s,
                p.failed,
                p.availability_pct.map_or_else(|| "-".into(), |a| format!("{a:.1}%")),
                ms(p.write_p50_ms),
                ms(p.write_p99_ms)
            );
        }
        out += &format!(
            "\nFault at {:.1} s, healed at {:.1} s, ended at {:.1} s. Timeline: `timeline.png`.\n",
            self.phases.fault_ms / 1000.0,
            self.phases.heal_ms / 1000.0,
            self.phases.end_ms / 1000.0
        );
        if !f.leader_changes.is_empty() {
            out += "\nLeaders seen: ";
            let seen: Vec<String> = f
                .leader_changes
                .iter()
                .map(|c| {
                    format!(
                        "node {} (term {}) at {:.1} s",
                        c.leader,
                        c.term,
                        c.at_ms as f64 / 1000.0
                    )
                })
                .collect();
            out += &seen.join(", ");
            out += ".\n";
        }
        if let Some(backup) = &self.backup {
            let worst = |s: Option<f64>| s.map_or_else(|| "no answer".to_string(), |s| format!("{s:.2} s"));
            out += &format!(
                "\n## Backups\n\nExposure is the time from the newest write a restore reaches to when it was asked ({} answers, once a second): what a loss of every node at that moment would take.\n\n| figure | value |\n|---|---|\n| worst exposure before the fault | {} |\n| worst exposure during the fault | {} |\n| worst exposure after the heal | {} |\n| the archive grew during the fault | {} |\n| nodes seen shipping | {:?} |\n",
                backup.samples,
                worst(backup.max_exposure_before_s),
                worst(backup.max_exposure_during_s),
                worst(backup.max_exposure_after_s),
                if backup.archived_during_fault { "yes" } else { "NO" },
                backup.shippers,
            );
            if let Some(error) = &backup.last_error {
                out += &format!(
                    "| answers reporting a backup error | {} (the newest: {error}) |\n",
                    backup.errors
                );
            }
        }
        if !self.passed {
            out += &format!(
                "\nThe whole history is kept in `{}`, the node logs in `cluster/node-*/node.log`.\n",
                HISTORY_FILE
            );
        }
        for finding in &self.history.findings {
            out += &format!("\n- {finding}");
        }
        out
    }

    fn plot(&self, path: &Path) -> Result<(), ReportError> {
        let failed = |e: String| ReportError::Plot(path.to_path_buf(), e);
        register_font().map_err(failed)?;
        let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        let end_s = self.phases.end_ms / 1000.0;
        let top = self
            .timeline
            .iter()
            .map(|b| b.writes_per_s.max(b.reads_per_s).max(b.failed_per_s))
            .fold(1.0, f64::max)
            * 1.1;
        let p99_top = self.timeline.iter().filter_map(|b| b.write_p99_ms).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{} of zone {}: operations per second and write p99",
                    self.fault, self.zone
                ),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..end_s, 0.0..top)
            .map_err(|e| failed(e.to_string()))?
            .set_secondary_coord(0.0..end_s, 0.0..p99_top);
        chart
            .configure_mesh()
            .x_desc("seconds since the drill began")
            .y_desc("operations/s")
            .draw()
            .map_err(|e| failed(e.to_string()))?;
        chart
            .configure_secondary_axes()
            .y_desc("write p99, ms")
            .draw()
            .map_err(|e| failed(e.to_string()))?;
        // The fault window, shaded.
        let (fault_s, heal_s) = (self.phases.fault_ms / 1000.0, self.phases.heal_ms / 1000.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(fault_s, 0.0), (heal_s, top)],
                RED.mix(0.12).filled(),
            )))
            .map_err(|e| failed(e.to_string()))?
            .label("fault held")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], RED.mix(0.12).filled()));
        let series = |pick: fn(&Bucket) -> f64| {
            self.timeline
                .iter()
                .map(move |b| (b.start_ms / 1000.0, pick(b)))
                .collect::<Vec<_>>()
        };
        for (name, color, pick) in [
            ("writes ok", BLUE, (|b: &Bucket| b.writes_per_s) as fn(&Bucket) -> f64),
            ("reads ok", GREEN, |b: &Bucket| b.reads_per_s),
            ("failed", RED, |b: &Bucket| b.failed_per_s),
        ] {
            chart
                .draw_series(LineSeries::new(series(pick), color.stroke_width(2)))
                .map_err(|e| failed(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        let p99_color = RGBColor(230, 140, 0);
        let p99: Vec<(f64, f64)> = self
            .timeline
            .iter()
            .filter_map(|b| b.write_p99_ms.map(|ms| (b.start_ms / 1000.0, ms)))
            .collect();
        chart
            .draw_secondary_series(p99.into_iter().map(|at| Circle::new(at, 3, p99_color.filled())))
            .map_err(|e| failed(e.to_string()))?
            .label("write p99 (right axis)")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, p99_color.filled()));
        let leader_color = RGBColor(120, 60, 160);
        for change in &self.figures.leader_changes {
            let x = change.at_ms as f64 / 1000.0;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, 0.0), (x, top)],
                    4,
                    4,
                    leader_color.stroke_width(1),
                ))
                .map_err(|e| failed(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("leader {}", change.leader),
                    (x, top * 0.9),
                    ("sans-serif", 14).into_font().color(&leader_color),
                )))
                .map_err(|e| failed(e.to_string()))?;
        }
        for (name, x) in [("fault", fault_s), ("heal", heal_s)] {
            chart
                .draw_series(LineSeries::new(vec![(x, 0.0), (x, top)], BLACK.stroke_width(1)))
                .map_err(|e| failed(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Text::new(name, (x, top * 0.97), ("sans-serif", 16))))
                .map_err(|e| failed(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))
    }
}

/// Registers the plot's font once per process.
fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_FILES
                .iter()
                .find_map(|path| std::fs::read(path).ok())
                .ok_or_else(|| {
                    format!("no font for the plot's labels at {FONT_FILES:?} (install fonts-dejavu-core)")
                })?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
                .map_err(|_| "the plot's font is unreadable".to_string())
        })
        .clone()
}
