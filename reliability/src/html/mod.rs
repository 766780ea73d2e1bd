//! The suite's HTML report: each scenario's verdict and figures, and for
//! those that record a timeline, throughput and latency over time with
//! the scenario's events marked, as inline SVG (one self-contained file).

mod svg;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::Report;
use crate::timeline::Recorded;
use svg::{Line, Plot, Scale, escape};

/// About this many bins across a plot.
const BINS: f64 = 160.0;

/// A scenario as the report shows it.
pub(crate) struct Section<'a> {
    pub(crate) name: &'a str,
    pub(crate) verdict: &'a str,
    pub(crate) report: &'a Report,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:920px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.ok{color:#176f2c}.failed{color:#b00020;font-weight:bold}.skipped{color:#8a6d00}\
pre{white-space:pre-wrap;background:#fff4f4;padding:.5em}figure{margin:0 0 1em}";

/// The bin width for a timeline of `end`: about [`BINS`] bins, a
/// multiple of 10 ms.
fn bin_width(end: Duration) -> Duration {
    let ms = (end.as_secs_f64() * 1000.0 / BINS / 10.0).ceil() * 10.0;
    Duration::from_millis(ms.max(10.0) as u64)
}

/// The two plots of a timeline: requests per second by outcome, and the
/// latency of answers.
fn plots(title: &str, recorded: &Recorded) -> String {
    let width = bin_width(recorded.end());
    let bins = recorded.bins(width);
    let x_max = recorded.end().as_secs_f64().max(width.as_secs_f64());
    let events: Vec<(f64, String)> = recorded
        .events
        .iter()
        .map(|(at, what)| (at.as_secs_f64(), what.clone()))
        .collect();
    let mid = |b: &crate::timeline::Bin| b.at + width.as_secs_f64() / 2.0;
    let series = |pick: fn(&crate::timeline::Bin) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        bins.iter().map(|b| (mid(b), pick(b))).collect()
    };
    let throughput = Plot {
        title: format!(
            "{title}: requests per second ({} ms bins)",
            width.as_millis()
        ),
        scale: Scale::Linear { unit: "/s" },
        lines: vec![
            Line {
                name: "answered",
                color: "#2b8a3e",
                points: series(|b| Some(b.ok_per_sec)),
            },
            Line {
                name: "refused (503/429, closed)",
                color: "#e8890c",
                points: series(|b| Some(b.refused_per_sec)),
            },
            Line {
                name: "errors",
                color: "#c92a2a",
                points: series(|b| Some(b.errors_per_sec)),
            },
        ],
        events: &events,
        x_max,
    };
    let latency = Plot {
        title: format!("{title}: latency of answers and refusals (log scale)"),
        scale: Scale::LogSeconds,
        lines: vec![
            Line {
                name: "p50",
                color: "#1971c2",
                points: series(|b| b.p50),
            },
            Line {
                name: "p99",
                color: "#e8590c",
                points: series(|b| b.p99),
            },
            Line {
                name: "max",
                color: "#868e96",
                points: series(|b| b.max),
            },
        ],
        events: &events,
        x_max,
    };
    let mut html = format!(
        "<figure>{}</figure><figure>{}</figure>",
        throughput.render(),
        latency.render()
    );
    if recorded.dropped > 0 {
        let _ = write!(
            html,
            "<p>{} requests beyond the timeline's bound are not plotted.</p>",
            recorded.dropped
        );
    }
    html
}

/// The whole page.
pub(crate) fn page(sections: &[Section<'_>], short: bool) -> String {
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Reliability report</title><style>{STYLE}</style></head><body>\
         <h1>Reliability report</h1><p>The reference service driven by <code>cargo xtask reliability</code> ({} form).</p>",
        if short { "short" } else { "full" }
    );
    html.push_str("<table><tr><th>scenario</th><th>result</th></tr>");
    for section in sections {
        let class = verdict_class(section.verdict);
        let _ = write!(
            html,
            "<tr><td><a href=\"#{0}\">{0}</a></td><td class=\"{class}\">{1}</td></tr>",
            escape(section.name),
            escape(section.verdict)
        );
    }
    html.push_str("</table>");
    for section in sections {
        let _ = write!(
            html,
            "<h2 id=\"{0}\">{0}: <span class=\"{1}\">{2}</span></h2>",
            escape(section.name),
            verdict_class(section.verdict),
            escape(section.verdict)
        );
        let report = section.report;
        if !report.figures.is_empty() {
            html.push_str("<table><tr><th>figure</th><th>value</th></tr>");
            for (figure, value) in &report.figures {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(figure),
                    escape(value)
                );
            }
            html.push_str("</table>");
        }
        for broken in &report.broken {
            let _ = write!(html, "<pre>BROKEN: {}</pre>", escape(broken));
        }
        for (title, recorded) in &report.timelines {
            html.push_str(&plots(title, recorded));
        }
    }
    html.push_str("</body></html>\n");
    html
}

fn verdict_class(verdict: &str) -> &'static str {
    if verdict == "ok" {
        "ok"
    } else if verdict.starts_with("SKIPPED") {
        "skipped"
    } else {
        "failed"
    }
}

/// Writes the page to `path`, making its folder.
pub(crate) fn write(path: &Path, sections: &[Section<'_>], short: bool) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, page(sections, short)).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Outcome, Timeline};
    use std::time::Instant;

    #[test]
    fn bin_widths() {
        assert_eq!(bin_width(Duration::ZERO), Duration::from_millis(10));
        assert_eq!(bin_width(Duration::from_secs(8)), Duration::from_millis(50));
        assert_eq!(
            bin_width(Duration::from_secs(30)),
            Duration::from_millis(190)
        );
    }

    #[test]
    fn a_page_with_a_timeline() {
        let timeline = Timeline::start();
        let now = Instant::now();
        for i in 0..50 {
            timeline.request(now, Duration::from_millis(i), Outcome::Ok);
        }
        timeline.request(now, Duration::from_millis(2), Outcome::Refused);
        timeline.event("SIGTERM");
        let mut report = Report::default();
        report.figure("answered", "50 <all>");
        report.broken.push("a <broken> promise".to_owned());
        report.timeline("drain", &timeline);
        let skipped = Report::default();
        let page = page(
            &[
                Section {
                    name: "shutdown",
                    verdict: "FAILED",
                    report: &report,
                },
                Section {
                    name: "outage",
                    verdict: "SKIPPED (no database)",
                    report: &skipped,
                },
            ],
            true,
        );
        assert!(page.starts_with("<!doctype html>"));
        assert_eq!(page.matches("<svg").count(), 2, "two plots of one timeline");
        assert!(page.contains("50 &lt;all&gt;") && page.contains("a &lt;broken&gt; promise"));
        assert!(page.contains(">SIGTERM<"));
        assert!(page.contains("class=\"failed\"") && page.contains("class=\"skipped\""));
        assert!(!page.contains("<broken>"));
    }
}
