//! Line plots as inline SVG: time on x, lines on y (linear or log), and
//! the scenario's events as labelled vertical lines.

use std::fmt::Write as _;

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 34.0;

/// One line: its name in the legend, its colour, its points (`None` where
/// it has no value: the line breaks there).
pub(crate) struct Line {
    pub(crate) name: &'static str,
    pub(crate) color: &'static str,
    pub(crate) points: Vec<(f64, Option<f64>)>,
}

/// A plot's y axis.
#[derive(Clone, Copy)]
pub(crate) enum Scale {
    /// From 0 up, in `unit`.
    Linear { unit: &'static str },
    /// Powers of ten of seconds, shown in ms.
    LogSeconds,
}

/// A plot: a title, an axis, lines, events `(seconds, label)`.
pub(crate) struct Plot<'a> {
    pub(crate) title: String,
    pub(crate) scale: Scale,
    pub(crate) lines: Vec<Line>,
    pub(crate) events: &'a [(f64, String)],
    /// The end of the x axis, in seconds.
    pub(crate) x_max: f64,
}

/// `text` escaped for XML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 times a power of ten) that cuts `span` into
/// about `parts`.
pub(crate) fn nice_step(span: f64, parts: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / parts;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// `1.5` → `"1.5"`, `2.0` → `"2"`: a tick's label.
fn label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Plot<'_> {
    /// The plot as an `<svg>` element.
    pub(crate) fn render(&self) -> String {
        let x_max = if self.x_max > 0.0 { self.x_max } else { 1.0 };
        let values = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|(_, v)| *v))
            .filter(|v| v.is_finite());
        let (y_min, y_max) = match self.scale {
            Scale::Linear { .. } => (0.0, values.fold(0.0f64, f64::max).max(1.0) * 1.05),
            Scale::LogSeconds => {
                let (lo, hi) = values
                    .filter(|v| *v > 0.0)
                    .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                        (lo.min(v), hi.max(v))
                    });
                if hi > 0.0 {
                    (
                        10f64.powf(lo.log10().floor()),
                        10f64.powf(hi.log10().ceil()),
                    )
                } else {
                    (1e-4, 1.0)
                }
            }
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x = |t: f64| LEFT + (t / x_max).clamp(0.0, 1.0) * plot_w;
        let y = |v: f64| {
            let share = match self.scale {
                Scale::Linear { .. } => (v - y_min) / (y_max - y_min),
                Scale::LogSeconds => {
                    (v.max(y_min).log10() - y_min.log10()) / (y_max.log10() - y_min.log10())
                }
            };
            TOP + plot_h - share.clamp(0.0, 1.0) * plot_h
        };
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        // The y axis: grid lines and their labels.
        let ticks: Vec<(f64, String)> = match self.scale {
            Scale::Linear { unit } => {
                let step = nice_step(y_max - y_min, 4.0);
                (0..)
                    .map(|i| f64::from(i) * step)
                    .take_while(|v| *v <= y_max)
                    .map(|v| (v, format!("{} {unit}", label(v))))
                    .collect()
            }
            Scale::LogSeconds => {
                let (lo, hi) = (y_min.log10().round() as i32, y_max.log10().round() as i32);
                (lo..=hi)
                    .map(|p| {
                        let v = 10f64.powi(p);
                        (v, format!("{} ms", label(v * 1000.0)))
                    })
                    .collect()
            }
        };
        for (value, text) in &ticks {
            let at = y(*value);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 4.0,
                at + 4.0,
                escape(text)
            );
        }
        // The x axis, in seconds.
        let step = nice_step(x_max, 8.0);
        let mut t = 0.0;
        while t <= x_max + 1e-9 {
            let at = x(t);
            let _ = write!(
                svg,
                r##"<line x1="{at:.1}" x2="{at:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{at:.1}" y="{}" text-anchor="middle">{} s</text>"##,
                TOP + plot_h,
                TOP + plot_h + 4.0,
                TOP + plot_h + 16.0,
                label(t)
            );
            t += step;
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
        );
        // Events: a dashed line and a label, on the line's left near the
        // right edge.
        for (i, (at, what)) in self.events.iter().enumerate() {
            let at_x = x(*at);
            let label_y = TOP + 12.0 + (i % 3) as f64 * 12.0;
            let (label_x, anchor) = if at_x > LEFT + plot_w * 0.8 {
                (at_x - 3.0, "end")
            } else {
                (at_x + 3.0, "start")
            };
            let _ = write!(
                svg,
                r##"<line x1="{at_x:.1}" x2="{at_x:.1}" y1="{TOP}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{label_x:.1}" y="{label_y:.1}" text-anchor="{anchor}" fill="#333">{}</text>"##,
                TOP + plot_h,
                escape(what)
            );
        }
        // The lines, broken where a point has no value; a point alone
        // between two gaps is a dot.
        for line in &self.lines {
            let mut path = String::new();
            let mut pen_down = false;
            let defined: Vec<Option<f64>> = line
                .points
                .iter()
                .map(|(_, v)| v.filter(|v| v.is_finite()))
                .collect();
            for (i, ((t, _), value)) in line.points.iter().zip(&defined).enumerate() {
                match value {
                    Some(v) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x(*t),
                            y(*v)
                        );
                        let next = defined.get(i + 1).copied().flatten();
                        if !pen_down && next.is_none() {
                            let _ = write!(
                                svg,
                                r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                                x(*t),
                                y(*v),
                                line.color
                            );
                        }
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    svg,
                    r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                    path.trim_end(),
                    line.color
                );
            }
        }
        // The legend, under the title.
        let mut lx = LEFT;
        for line in &self.lines {
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="24" width="10" height="10" fill="{}"/><text x="{:.1}" y="33">{}</text>"#,
                line.color,
                lx + 14.0,
                escape(line.name)
            );
            lx += 24.0 + 6.5 * line.name.chars().count() as f64;
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(7.0, 8.0), 1.0);
        assert_eq!(nice_step(0.3, 4.0), 0.1);
        assert_eq!(nice_step(4500.0, 4.0), 2000.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 4.0), 1.0);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn renders_lines_breaks_and_events() {
        let events = [(1.0, "SIGTERM <now>".to_owned())];
        let plot = Plot {
            title: "throughput".to_owned(),
            scale: Scale::Linear { unit: "req/s" },
            lines: vec![Line {
                name: "ok",
                color: "green",
                points: vec![
                    (0.0, Some(10.0)),
                    (0.5, Some(20.0)),
                    (1.0, None),
                    (1.5, Some(5.0)),
                ],
            }],
            events: &events,
            x_max: 2.0,
        };
        let svg = plot.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Two pieces: the break at 1.0 s lifts the pen.
        let path = svg
            .split(r#"<path d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 1, "{path}");
        // The point at 1.5 s stands alone: a dot.
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("SIGTERM &lt;now&gt;"));
        assert!(svg.contains("20 req/s"), "{svg}");

        let latency = Plot {
            title: "latency".to_owned(),
            scale: Scale::LogSeconds,
            lines: vec![Line {
                name: "p99",
                color: "red",
                points: vec![(0.0, Some(0.0004)), (1.0, Some(0.3))],
            }],
            events: &[],
            x_max: 1.0,
        };
        let svg = latency.render();
        // Decades from 0.1 ms to 1 s.
        for tick in ["0.1 ms", "1 ms", "10 ms", "100 ms", "1000 ms"] {
            assert!(svg.contains(&format!(">{tick}<")), "{tick}: {svg}");
        }
    }
}
