//! SVG chart builders for the report: pure functions from figures to markup.
//!
//! Every chart is an inline `<svg>` with an id, a `<title>`, axes with ticks, and
//! one `data-backend` attribute per backend's marks so the page can hide a backend.
//! No chart library, no network: the page must render offline, years later.

use std::fmt::Write;

use super::html::esc;

pub const PALETTE: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

const W: f64 = 760.0;
const H: f64 = 320.0;
const L: f64 = 70.0; // left margin (y labels)
const R: f64 = 150.0; // right margin (legend)
const T: f64 = 28.0;
const B: f64 = 44.0;

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A named line or set of points. A point whose value is NaN is a gap (a second
/// with nothing to show): the line breaks there instead of dropping to zero.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    /// How many samples the points stand for (shown in the legend), where known.
    pub count: Option<u64>,
}

/// How an axis maps values to pixels.
#[derive(Clone, Copy)]
pub enum Scale {
    Linear {
        min: f64,
        max: f64,
    },
    /// log10, for positive values.
    Log {
        min: f64,
        max: f64,
    },
}

impl Scale {
    fn frac(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { min, max } => (v - min) / (max - min).max(f64::EPSILON),
            Scale::Log { min, max } => {
                let (a, b) = (min.max(1e-9).log10(), max.max(min * 10.0).log10());
                (v.max(1e-9).log10() - a) / (b - a).max(f64::EPSILON)
            }
        }
    }
    fn x(&self, v: f64) -> f64 {
        L + self.frac(v).clamp(0.0, 1.0) * (W - L - R)
    }
    fn y(&self, v: f64) -> f64 {
        H - B - self.frac(v).clamp(0.0, 1.0) * (H - T - B)
    }
    /// A linear scale over the data with a little headroom, from zero.
    pub fn linear_to(max: f64) -> Scale {
        Scale::Linear { min: 0.0, max: if max > 0.0 { max * 1.1 } else { 1.0 } }
    }
    /// A log scale over whole decades around the data.
    pub fn log_over(values: impl Iterator<Item = f64>) -> Scale {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return Scale::Log { min: 1.0, max: 10.0 };
        }
        Scale::Log { min: 10f64.powf(lo.log10().floor()), max: 10f64.powf(hi.log10().ceil()).max(lo * 10.0) }
    }
    fn ticks(&self) -> Vec<f64> {
        match *self {
            Scale::Linear { min, max } => {
                let span = (max - min).max(f64::EPSILON);
                let raw = span / 5.0;
                let mag = 10f64.powf(raw.log10().floor());
                let step =
                    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(mag * 10.0);
                let mut t = (min / step).ceil() * step;
                let mut out = Vec::new();
                while t <= max + step * 1e-9 {
                    out.push(t);
                    t += step;
                }
                out
            }
            Scale::Log { min, max } => {
                let mut out = Vec::new();
                let mut t = min;
                while t <= max * 1.000_001 {
                    out.push(t);
                    t *= 10.0;
                }
                out
            }
        }
    }
}

/// Microseconds as an axis label.
pub fn us_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}s", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}ms", trim(v / 1e3))
    } else {
        format!("{}µs", trim(v))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn frame(out: &mut String, id: &str, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>\
         <text x=\"{cx}\" y=\"16\" class=\"ct\" text-anchor=\"middle\">{t}</text>\
         <text x=\"{cx}\" y=\"{xl}\" class=\"al\" text-anchor=\"middle\">{x}</text>\
         <text x=\"14\" y=\"{cy}\" class=\"al\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">{y}</text>",
        t = esc(title),
        cx = (L + W - R) / 2.0,
        xl = H - 6.0,
        cy = (T + H - B) / 2.0,
        x = esc(x_label),
        y = esc(y_label),
    );
}

fn axes(out: &mut String, xs: &Scale, ys: &Scale, xfmt: &dyn Fn(f64) -> String, yfmt: &dyn Fn(f64) -> String) {
    let _ = write!(out, "<g class=\"axis\"><line x1=\"{L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>", b = H - B, r = W - R);
    let _ = write!(out, "<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{b}\"/>", b = H - B);
    // In a group of their own too: the safety chart's page redraws them.
    out.push_str("<g class=\"xaxis-ticks\">");
    for t in xs.ticks() {
        let x = xs.x(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{T}\" x2=\"{x:.1}\" y2=\"{b}\"/><text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\">{l}</text>",
            b = H - B,
            ty = H - B + 16.0,
            l = esc(&xfmt(t))
        );
    }
    out.push_str("</g>");
    // The value ticks in a group of their own: the page redraws them when a
    // backend is hidden or shown (see `rescalable`).
    out.push_str("<g class=\"yticks\">");
    for t in ys.ticks() {
        let y = ys.y(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{L}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{l}</text>",
            r = W - R,
            tx = L - 6.0,
            ty = y + 4.0,
            l = esc(&yfmt(t))
        );
    }
    out.push_str("</g></g>");
}

fn legend(out: &mut String, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        let y = T + 10.0 + i as f64 * 18.0;
        let _ = write!(
            out,
            "<g data-backend=\"{n}\"><rect x=\"{x}\" y=\"{ry}\" width=\"12\" height=\"12\" fill=\"{c}\"/><text x=\"{tx}\" y=\"{ty}\">{n}</text></g>",
            n = esc(n),
            x = W - R + 12.0,
            ry = y - 10.0,
            c = color(i),
            tx = W - R + 30.0,
            ty = y
        );
    }
}

/// The series' line, broken at gaps (NaN values): one polyline per unbroken run.
/// Each point's value is kept beside it (`data-ys`), so that the page can redraw
/// the line on a new value axis.
fn polyline(out: &mut String, i: usize, name: &str, pts: &[(f64, f64)], xs: &Scale, ys: &Scale) {
    for run in pts.split(|(_, y)| y.is_nan()).filter(|r| !r.is_empty()) {
        let (mut d, mut vals) = (String::new(), String::new());
        for (x, y) in run {
            let _ = write!(d, "{:.1},{:.1} ", xs.x(*x), ys.y(*y));
            let _ = write!(vals, "{y} ");
        }
        // A lone point still shows.
        let marker =
            if run.len() == 1 { " stroke-linecap=\"round\" stroke-width=\"5\"" } else { " stroke-width=\"2\"" };
        let (d, vals) = if run.len() == 1 {
            (format!("{0} {0}", d.trim_end()), format!("{0} {0}", vals.trim_end()))
        } else {
            (d.trim_end().to_owned(), vals.trim_end().to_owned())
        };
        let _ = write!(
            out,
            "<polyline data-backend=\"{n}\" fill=\"none\" stroke=\"{c}\"{marker} points=\"{d}\" data-ys=\"{vals}\"><title>{n}</title></polyline>",
            n = esc(name),
            c = color(i),
        );
    }
}

/// Mark a chart whose value axis the page rebuilds over the backends shown: `mode`
/// is `log` (always), or `auto` (log when the values span more than two decades,
/// else linear from zero with 10 % headroom: the rule `time_chart` uses); `fmt`
/// is how tick labels are written (`us`: microseconds, `n`: plain numbers). The
/// page's script mirrors [`Scale::log_over`], [`Scale::linear_to`] and the ticks.
fn rescalable(out: &mut String, mode: &str, fmt: &str) {
    *out = out.replacen(
        "class=\"chart\"",
        &format!(
            "class=\"chart\" data-yscale=\"{mode}\" data-yfmt=\"{fmt}\" data-plot=\"{T} {b} {L} {r}\"",
            b = H - B,
            r = W - R
        ),
        1,
    );
}

/// The label of the legend: the name, and the sample count where known.
fn legend_names(series: &[Series<'_>]) -> Vec<String> {
    series
        .iter()
        .map(|s| match s.count {
            Some(n) => format!("{} (n={n})", s.name),
            None => s.name.to_owned(),
        })
        .collect()
}

/// HdrHistogram-style percentile plot: x = percentile on a "nines" axis
/// (−log10(1 − p): 90 % at 1, 99 % at 2, ...), y = latency (µs, log scale). Each
/// curve is a staircase (a latency holds until the next percentile's) and ends at
/// its data: no further out than 1 − 1/n for n samples.
///
/// `rtt`: a server backend's round-trip floor (name, p50 µs): the plot then carries
/// a second scale in units of it, dashed lines at 1, 10, 100, ... round trips.
pub fn percentile_plot(id: &str, series: &[Series<'_>], rtt: Option<(&str, f64)>) -> String {
    let nines = |p: f64| -(1.0 - p.min(0.999_999)).log10();
    let end = |s: &Series<'_>| s.count.map_or(0.999_999, |n| 1.0 - 1.0 / (n.max(1) as f64)).min(0.999_999);
    let top = series.iter().flat_map(|s| s.points.iter().map(|p| nines(p.0.min(end(s))))).fold(1.0f64, f64::max).ceil();
    let xs = Scale::Linear { min: 0.0, max: top };
    let ys = Scale::log_over(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut out = String::new();
    frame(&mut out, id, "Acquire latency by percentile", "percentile", "latency");
    // 99.9%, 99.99%: as many decimals as the tick has nines, so no two read alike.
    let label = |x: f64| match x.round() as i32 {
        // Only whole nines are labelled (half steps would repeat a label).
        _ if (x - x.round()).abs() > 1e-9 => String::new(),
        0 => "0%".to_owned(),
        n => format!("{:.*}%", (n - 2).max(0) as usize, 100.0 - 100.0 * 10f64.powi(-n)),
    };
    axes(&mut out, &xs, &ys, &label, &us_label);
    if let Some((name, r)) = rtt.filter(|(_, r)| *r > 0.0) {
        rtt_scale(&mut out, name, r, &ys);
    }
    for (i, s) in series.iter().enumerate() {
        let last = end(s);
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for (p, v) in s.points.iter().filter(|(p, _)| *p <= last) {
            if let Some(&(_, prev)) = pts.last() {
                pts.push((nines(*p), prev));
            }
            pts.push((nines(*p), *v));
        }
        // The maximum sits at the data's end.
        if let Some(&(p, v)) = s.points.last()
            && p > last
        {
            if let Some(&(_, prev)) = pts.last() {
                pts.push((nines(last), prev));
            }
            pts.push((nines(last), v));
        }
        polyline(&mut out, i, s.name, &pts, &xs, &ys);
    }
    legend(&mut out, &legend_names(series));
    out.push_str("</svg>");
    rescalable(&mut out, "log", "us");
    out
}

/// The second scale of a latency chart: a dashed line at each power of ten of
/// round trips inside the value range, labelled at the plot's right edge, and a
/// caption. Each line keeps its value (`data-yv`): the page moves it when it
/// rescales the axis.
fn rtt_scale(out: &mut String, name: &str, rtt_us: f64, ys: &Scale) {
    let (lo, hi) = match *ys {
        Scale::Log { min, max } | Scale::Linear { min, max } => (min, max),
    };
    let _ = write!(
        out,
        "<text class=\"rtt-caption\" x=\"{x}\" y=\"{y}\" text-anchor=\"end\">dashed: round trips to {n} (1 RTT = {v})</text>",
        x = W - R - 4.0,
        y = T + 12.0,
        n = esc(name),
        v = us_label(rtt_us)
    );
    let mut k = 1.0;
    while k <= 1e6 {
        let v = k * rtt_us;
        let hidden = if v < lo || v > hi { " style=\"display:none\"" } else { "" };
        let y = ys.y(v);
        let _ = write!(
            out,
            "<g class=\"rtt\" data-yv=\"{v}\"{hidden}><line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#777\" \
             stroke-dasharray=\"4 3\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{k} RTT</text></g>",
            r = W - R,
            tx = W - R - 4.0,
            ty = y - 3.0,
        );
        k *= 10.0;
    }
}

/// A fault window of one backend (its index in the series) on a time chart.
pub struct Band<'a> {
    pub backend: usize,
    pub from: f64,
    pub to: f64,
    pub label: &'a str,
}

/// Height of one backend's fault lane under a time chart.
const LANE: f64 = 14.0;

/// Values per second over the run, one line per backend. Each backend's fault
/// windows are shaded in its colour and drawn in a lane of its own under the chart
/// (labels that would collide are left to the tooltip). The value axis is
/// logarithmic when the values span more than two decades.
/// `yunit` says how the page writes value ticks when it rescales: `us`
/// (microseconds, as [`us_label`]) or `n` (whole numbers).
pub fn time_chart(
    id: &str,
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
    bands: &[Band<'_>],
    yfmt: &dyn Fn(f64) -> String,
    yunit: &str,
) -> String {
    let xmax = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let values = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| !v.is_nan());
    let ymax = values().fold(0.0f64, f64::max);
    let ymin_pos = values().filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
    let ys =
        if ymin_pos < f64::MAX && ymax / ymin_pos > 100.0 { Scale::log_over(values()) } else { Scale::linear_to(ymax) };
    let xs = Scale::Linear { min: 0.0, max: xmax };
    let lanes: Vec<usize> = {
        let mut v: Vec<usize> = bands.iter().map(|b| b.backend).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let extra = lanes.len() as f64 * LANE + if lanes.is_empty() { 0.0 } else { 8.0 };
    let mut out = String::new();
    frame(&mut out, id, title, "seconds since start", y_label);
    if extra > 0.0 {
        // Taller than the frame says: make room for the lanes.
        out = out.replacen(
            &format!("viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\""),
            &format!("viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\"", h = H + extra),
            1,
        );
    }
    for b in bands {
        let (x1, x2) = (xs.x(b.from), xs.x(b.to.max(b.from)));
        let name = series.get(b.backend).map_or("", |s| s.name);
        let _ = write!(
            out,
            "<g class=\"fault\" data-backend=\"{n}\"><rect x=\"{x1:.1}\" y=\"{T}\" width=\"{w:.1}\" height=\"{h}\" fill=\"{c}\" fill-opacity=\"0.08\"><title>{n}: {l}</title></rect></g>",
            n = esc(name),
            w = (x2 - x1).max(2.0),
            h = H - T - B,
            c = color(b.backend),
            l = esc(b.label),
        );
    }
    axes(&mut out, &xs, &ys, &|v| trim(v), yfmt);
    for (i, s) in series.iter().enumerate() {
        // On a log axis a zero sits on the axis line.
        let pts: Vec<(f64, f64)> =
            s.points.iter().map(|&(x, y)| (x, if y.is_nan() { y } else { y.max(0.0) })).collect();
        polyline(&mut out, i, s.name, &pts, &xs, &ys);
    }
    // The lanes: one row per backend with faults, below the x axis labels.
    for (row, &bi) in lanes.iter().enumerate() {
        let y = H + 4.0 + row as f64 * LANE;
        let name = series.get(bi).map_or("", |s| s.name);
        let _ = write!(
            out,
            "<g class=\"lane\" data-backend=\"{n}\"><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" class=\"lane-name\">{n}</text>",
            n = esc(name),
            tx = L - 6.0,
            ty = y + 10.0
        );
        let mut free_from = f64::MIN;
        for b in bands.iter().filter(|b| b.backend == bi) {
            let (x1, x2) = (xs.x(b.from), xs.x(b.to.max(b.from)));
            let _ = write!(
                out,
                "<rect class=\"lane-window\" x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{lh}\" fill=\"{c}\" fill-opacity=\"0.5\" data-from=\"{f}\" data-to=\"{t}\"><title>{l}</title></rect>",
                f = b.from,
                t = b.to,
                w = (x2 - x1).max(2.0),
                lh = LANE - 3.0,
                c = color(bi),
                l = esc(b.label),
            );
            // A label only where it fits before the next one: ~6 px a character.
            let short: String = b.label.split(':').next().unwrap_or(b.label).chars().take(24).collect();
            let width = short.chars().count() as f64 * 6.0;
            if x1 >= free_from && x1 + width <= W - R + 100.0 {
                let _ = write!(
                    out,
                    "<text class=\"fault-label\" x=\"{tx:.1}\" y=\"{ty:.1}\">{l}</text>",
                    tx = x1 + 2.0,
                    ty = y + 9.0,
                    l = esc(&short)
                );
                free_from = x1 + width + 4.0;
            }
        }
        out.push_str("</g>");
    }
    legend(&mut out, &legend_names(series));
    out.push_str("</svg>");
    rescalable(&mut out, "auto", yunit);
    out
}

/// A figure against a swept value (`[sweep]`): one line per backend, a dot at
/// each point. x on a log scale when the values span two decades or more (1 000 to
/// 100 000 held locks), else linear; y on a log scale, so that every backend's
/// growth reads as its slope however far apart the backends are. `yfmt`: `us`
/// (microseconds) or `n` (plain numbers).
pub fn sweep_chart(id: &str, title: &str, x_label: &str, y_label: &str, series: &[Series<'_>], yfmt: &str) -> String {
    let xv = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = (xv().fold(f64::MAX, f64::min), xv().fold(0.0f64, f64::max));
    let xs = if lo > 0.0 && hi / lo >= 100.0 {
        Scale::log_over(xv())
    } else {
        Scale::Linear { min: 0.0, max: if hi > 0.0 { hi * 1.05 } else { 1.0 } }
    };
    let ys = Scale::log_over(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| v.is_finite()));
    let mut out = String::new();
    frame(&mut out, id, title, x_label, y_label);
    let y_label_of = |v: f64| if yfmt == "us" { us_label(v) } else { trim(v) };
    axes(&mut out, &xs, &ys, &trim, &y_label_of);
    for (i, s) in series.iter().enumerate() {
        polyline(&mut out, i, s.name, &s.points, &xs, &ys);
        for (x, y) in s.points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(
                out,
                "<circle data-backend=\"{n}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"{c}\"><title>{n}: {xl} = {xv}: {yv}</title></circle>",
                n = esc(s.name),
                cx = xs.x(*x),
                cy = ys.y(*y),
                c = color(i),
                xl = esc(x_label),
                xv = trim(*x),
                yv = esc(&y_label_of(*y)),
            );
        }
    }
    legend(&mut out, &legend_names(series));
    out.push_str("</svg>");
    out
}

/// Safety against speed: one point per backend, x = p99 acquire latency (µs, log),
/// y = violations per million grants (log(1 + y), so that zero sits on the axis).
pub fn safety_speed(id: &str, points: &[(&str, f64, f64)]) -> String {
    let xs = Scale::log_over(points.iter().map(|p| p.1));
    let ymax = points.iter().map(|p| p.2).fold(0.0f64, f64::max);
    let ys = Scale::Log { min: 1.0, max: 10f64.powf((1.0 + ymax).log10().ceil()).max(10.0) };
    let mut out = String::new();
    frame(&mut out, id, "Safety vs speed", "p99 acquire latency", "violations per 10⁶ grants");
    // Ticks sit at 1 + y = 1, 10, 100, ...: label them 0, 10, 100 (the one lost at
    // each decade is below a pixel).
    axes(&mut out, &xs, &ys, &us_label, &|v| if v <= 1.0 { "0".to_owned() } else { trim(v) });
    for (i, (name, x, y)) in points.iter().enumerate() {
        let _ = write!(
            out,
            "<g data-backend=\"{n}\" class=\"point\" data-x=\"{x}\" data-y=\"{y}\"><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"{c}\"><title>{n}: p99 {lx}, {y:.1} violations per 10⁶ grants</title></circle>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\">{n}</text></g>",
            n = esc(name),
            cx = xs.x(*x),
            cy = ys.y(1.0 + y),
            c = color(i),
            lx = us_label(*x),
            tx = xs.x(*x) + 10.0,
            ty = ys.y(1.0 + y) - 8.0
        );
    }
    out.push_str("</svg>");
    // Both axes are rebuilt by the page over the backends shown.
    out = out.replacen(
        "class=\"chart\"",
        &format!("class=\"chart\" data-scatter=\"1\" data-plot=\"{T} {b} {L} {r}\"", b = H - B, r = W - R),
        1,
    );
    out
}

/// Grants per client as a row of small bars (one per client), with the
/// backend's name; each bar's tooltip gives the count.
pub fn client_bars(name: &str, i: usize, grants: &[u64]) -> String {
    let (w, h, top) = (W, 70.0, 14.0);
    let max = grants.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = grants.len().max(1) as f64;
    let bw = ((w - L - R) / n).min(24.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart clients\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{n}: grants per client</title>\
         <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{n}</text>",
        n = esc(name),
        tx = L - 6.0,
        ty = h / 2.0,
    );
    for (c, &g) in grants.iter().enumerate() {
        let bh = (g as f64 / max) * (h - top - 4.0);
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw1:.1}\" height=\"{bh:.1}\" fill=\"{col}\"><title>client {c}: {g} grants</title></rect>",
            x = L + c as f64 * bw,
            y = h - 4.0 - bh,
            bw1 = (bw - 1.0).max(0.5),
            col = color(i),
        );
    }
    let _ = write!(out, "<text x=\"{x}\" y=\"{top}\" class=\"al\">max {}</text></svg>", max as u64, x = L);
    out
}

/// One bar of the holder timeline.
pub struct Bar {
    pub client: u32,
    pub from: f64,
    pub to: f64,
    /// Seconds at which the holder's lease ran out (by its own estimate).
    pub lease_until: f64,
    /// Part of a violation: drawn in red, with an anchor id.
    pub anchor: Option<String>,
}

/// A Gantt of holds on one key: one row per client, time across. The page zooms
/// it by scaling the bars' group in x only (strokes do not scale, text is never
/// stretched) and redrawing the time axis for the range shown: `data-span` is the
/// run's length, `data-x0`/`data-x1` the plot's edges.
pub fn timeline(id: &str, title: &str, clients: u32, span: f64, bars: &[Bar]) -> String {
    let rows = clients.max(1) as f64;
    let row_h = (240.0 / rows).clamp(4.0, 16.0);
    let h = T + rows * row_h + B;
    let xs = Scale::Linear { min: 0.0, max: span.max(1e-3) };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart timeline\" viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\" data-span=\"{span}\" \
         data-x0=\"{L}\" data-x1=\"{x1}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>\
         <defs><clipPath id=\"{id}-clip\"><rect x=\"{L}\" y=\"0\" width=\"{pw}\" height=\"{h}\"/></clipPath></defs>\
         <text x=\"{cx}\" y=\"16\" class=\"ct\" text-anchor=\"middle\">{t}</text>",
        t = esc(title),
        cx = (L + W - R) / 2.0,
        x1 = W - R,
        pw = W - R - L,
    );
    let _ = write!(
        out,
        "<g class=\"axis\"><line x1=\"{L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><g class=\"xticks\" data-y=\"{ty}\">",
        b = h - B,
        r = W - R,
        ty = h - B + 16.0
    );
    for t in xs.ticks() {
        let x = xs.x(t);
        let _ =
            write!(out, "<text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}s</text>", trim(t), ty = h - B + 16.0);
    }
    out.push_str("</g>");
    for c in (0..clients).step_by(((clients / 8).max(1)) as usize) {
        let _ = write!(
            out,
            "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">client {c}</text>",
            tx = L - 6.0,
            ty = T + (c as f64 + 0.8) * row_h
        );
    }
    let _ = write!(out, "</g><g clip-path=\"url(#{id}-clip)\"><g class=\"bars\">");
    for b in bars {
        let (x1, x2) = (xs.x(b.from), xs.x(b.to.max(b.from)));
        let y = T + b.client as f64 * row_h;
        let bad = b.anchor.is_some();
        let _ = write!(
            out,
            "<rect{id} x=\"{x1:.2}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{rh:.1}\" class=\"{cls}\" vector-effect=\"non-scaling-stroke\"><title>client {c}: held {f:.4}s–{to:.4}s, lease until {l:.4}s</title></rect>",
            id = b.anchor.as_ref().map(|a| format!(" id=\"{}\"", esc(a))).unwrap_or_default(),
            w = (x2 - x1).max(0.6),
            rh = row_h * 0.8,
            cls = if bad { "hold bad" } else { "hold" },
            c = b.client,
            f = b.from,
            to = b.to,
            l = b.lease_until
        );
        if bad && b.lease_until < b.to {
            // Where the lease ran out while the hold went on.
            let lx = xs.x(b.lease_until.max(b.from));
            let _ = write!(
                out,
                "<line class=\"expiry\" x1=\"{lx:.2}\" y1=\"{y:.1}\" x2=\"{lx:.2}\" y2=\"{y2:.1}\" vector-effect=\"non-scaling-stroke\"/>",
                y2 = y + row_h
            );
        }
    }
    out.push_str("</g></g></svg>");
    out
}

/// One operation in a violation's lane view: from its invoke to its answer.
pub struct LaneOp {
    pub lane: usize,
    /// Seconds since the run's start.
    pub from: f64,
    pub to: f64,
    /// `ok`, `fail`, `info` (outcome unknown) or `open` (no answer in the window).
    pub outcome: &'static str,
    /// `acquire`, `release`, `renew`, `read`, `write`, `crash`.
    pub op: &'static str,
    /// The tooltip: what it was, when (the raw ns too), and what it said.
    pub title: String,
}

/// A span behind a lane's operations: a hold (grant to release), or a fault window.
pub struct LaneSpan {
    pub lane: usize,
    pub from: f64,
    pub to: f64,
    /// `held`, `fault`.
    pub class: &'static str,
    pub title: String,
    /// Where the holder's lease ran out (a tick), for a hold.
    pub lease_until: Option<f64>,
}

/// Tick labels with as many decimals as the step needs, so no two read alike.
fn tick_label(step: f64) -> impl Fn(f64) -> String {
    let digits = (-step.log10().floor()).max(0.0) as usize;
    // A tick a rounding error from zero reads 0, never -0.
    move |t| format!("{:.digits$}s", if t.abs() < step * 1e-6 { 0.0 } else { t })
}

/// A violation's per-client lane view, Jepsen's way: one lane per involved client
/// (and one for faults), every operation of theirs in the window as a bar from
/// its invoke to its answer (coloured by outcome, the op's initial inside when it
/// fits), their holds behind, the overlap shaded across the lanes, on one time
/// axis of seconds since the run's start (the raw ns in each tooltip).
pub fn lanes(
    id: &str,
    names: &[String],
    window: (f64, f64),
    overlap: (f64, f64),
    ops: &[LaneOp],
    spans: &[LaneSpan],
) -> String {
    const LW: f64 = 760.0;
    const LL: f64 = 90.0;
    const LR: f64 = 20.0;
    const ROW: f64 = 22.0;
    let (t0, t1) = window;
    let span = (t1 - t0).max(1e-6);
    // A little room either side so marks at the edges show whole.
    let (t0, t1) = (t0 - span * 0.03, t1 + span * 0.03);
    let x = |t: f64| LL + ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) * (LW - LL - LR);
    let top = 8.0;
    let h = top + names.len() as f64 * ROW + 26.0;
    let axis_y = top + names.len() as f64 * ROW;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart lanes\" viewBox=\"0 0 {LW} {h}\" width=\"{LW}\" height=\"{h}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>each involved client's operations in the violation's window</title>"
    );
    // The overlap, across every lane.
    let (o1, o2) = (x(overlap.0), x(overlap.1.max(overlap.0)));
    let _ = write!(
        out,
        "<rect class=\"overlap\" x=\"{o1:.1}\" y=\"{top}\" width=\"{w:.1}\" height=\"{oh}\" fill=\"#d62728\" fill-opacity=\"0.12\"><title>two holders at once: {a:.6} s to {b:.6} s</title></rect>",
        w = (o2 - o1).max(1.0),
        oh = axis_y - top,
        a = overlap.0,
        b = overlap.1,
    );
    for (i, n) in names.iter().enumerate() {
        let y = top + i as f64 * ROW;
        let _ = write!(
            out,
            "<g class=\"lane-row\"><line class=\"grid\" x1=\"{LL}\" y1=\"{ly:.1}\" x2=\"{r}\" y2=\"{ly:.1}\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{n}</text></g>",
            ly = y + ROW - 1.0,
            r = LW - LR,
            tx = LL - 6.0,
            ty = y + 15.0,
            n = esc(n)
        );
    }
    for s in spans {
        let y = top + s.lane as f64 * ROW;
        let (a, b) = (x(s.from), x(s.to.max(s.from)));
        let fill = if s.class == "fault" { "#7f7f7f" } else { "#8fb4d9" };
        let _ = write!(
            out,
            "<rect class=\"span {c}\" x=\"{a:.1}\" y=\"{y1:.1}\" width=\"{w:.1}\" height=\"{sh}\" fill=\"{fill}\" fill-opacity=\"0.35\"><title>{t}</title></rect>",
            c = s.class,
            y1 = y + 2.0,
            w = (b - a).max(2.0),
            sh = ROW - 5.0,
            t = esc(&s.title)
        );
        if let Some(l) = s.lease_until {
            let lx = x(l);
            let _ = write!(
                out,
                "<line class=\"expiry\" x1=\"{lx:.1}\" y1=\"{y1:.1}\" x2=\"{lx:.1}\" y2=\"{y2:.1}\"><title>lease ran out at {l:.6} s</title></line>",
                y1 = y + 1.0,
                y2 = y + ROW - 2.0
            );
        }
    }
    // Long operations first: a short one that ends inside a long one (a write
    // answered while a renew hangs) is drawn on top of it, outlined, never hidden.
    let mut order: Vec<&LaneOp> = ops.iter().collect();
    order.sort_by(|p, q| (q.to - q.from).total_cmp(&(p.to - p.from)));
    for o in order {
        let y = top + o.lane as f64 * ROW + 6.0;
        let (a, b) = (x(o.from), x(o.to.max(o.from)));
        let w = (b - a).max(3.0);
        // A short one also stands out of the lane a little, above and below.
        let (outline, y, bh) =
            if w < 6.0 { (" stroke=\"#222\" stroke-width=\"0.8\"", y - 2.0, 14.0) } else { ("", y, 10.0) };
        let fill = match o.outcome {
            "ok" => "#1f77b4",
            "fail" => "#d62728",
            "info" => "#ff7f0e",
            _ => "#999999",
        };
        let _ = write!(
            out,
            "<g class=\"op\" data-op=\"{op}\" data-type=\"{oc}\"><rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bh}\" fill=\"{fill}\"{outline}/><title>{t}</title>",
            op = o.op,
            oc = o.outcome,
            t = esc(&o.title)
        );
        if w >= 10.0 {
            let _ = write!(
                out,
                "<text class=\"op-label\" x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{l}</text>",
                cx = a + w / 2.0,
                ty = y + 8.5,
                l = op_letter(o.op)
            );
        }
        out.push_str("</g>");
    }
    // The time axis: seconds since the run's start.
    let xs = Scale::Linear { min: t0, max: t1 };
    let ticks = xs.ticks();
    let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { span };
    let label = tick_label(step);
    let _ =
        write!(out, "<g class=\"axis\"><line x1=\"{LL}\" y1=\"{axis_y}\" x2=\"{r}\" y2=\"{axis_y}\"/>", r = LW - LR);
    for t in ticks {
        let _ = write!(
            out,
            "<text x=\"{tx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{l}</text>",
            tx = x(t),
            ty = axis_y + 15.0,
            l = label(t)
        );
    }
    out.push_str("</g></svg>");
    out
}

/// The letter drawn inside an operation's bar.
fn op_letter(op: &str) -> &'static str {
    match op {
        "acquire" => "A",
        "release" => "R",
        "renew" => "N",
        "read" => "r",
        "write" => "w",
        "crash" => "X",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &str, pat: &str) -> usize {
        s.matches(pat).count()
    }

    #[test]
    fn percentile_plot_has_a_line_per_backend_and_nines_ticks() {
        let a =
            Series { name: "a", points: vec![(0.0, 10.0), (0.5, 20.0), (0.99, 500.0), (0.999, 2000.0)], count: None };
        let b = Series { name: "b<x>", points: vec![(0.0, 5.0), (0.9, 8.0)], count: None };
        let svg = percentile_plot("pct", &[a, b], None);
        assert!(svg.starts_with("<svg id=\"pct\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(count(&svg, "<polyline"), 2);
        assert!(svg.contains(">99%<") && svg.contains(">99.9%<"), "{svg}");
        assert!(svg.contains("b&lt;x&gt;"), "names are escaped");
        assert!(!svg.contains("NaN"), "{svg}");
        assert!(!svg.contains("RTT"), "no round-trip scale without a floor");
    }

    #[test]
    fn percentile_plot_carries_a_round_trip_scale_inside_the_value_range() {
        let a = Series { name: "redis", points: vec![(0.0, 40.0), (0.5, 60.0), (0.999, 900.0)], count: Some(1000) };
        let svg = percentile_plot("pct", &[a], Some(("redis", 50.0)));
        assert!(svg.contains("round trips to redis (1 RTT = 50µs)"), "{svg}");
        // 10..1000 µs: 1 RTT (50 µs) and 10 RTT (500 µs) shown, 100 RTT (5 ms) not.
        let shown = |k: &str| {
            svg.split("<g class=\"rtt\"").any(|g| g.contains(&format!(">{k} RTT<")) && !g.contains("display:none"))
        };
        assert!(shown("1") && shown("10") && !shown("100"), "{svg}");
        assert!(svg.contains("data-yv=\"500\""));
    }

    #[test]
    fn log_scale_covers_the_data_in_whole_decades() {
        let Scale::Log { min, max } = Scale::log_over([3.0, 450.0].into_iter()) else { panic!() };
        assert_eq!((min, max), (1.0, 1000.0));
        let s = Scale::Log { min: 1.0, max: 1000.0 };
        assert_eq!(s.ticks(), vec![1.0, 10.0, 100.0, 1000.0]);
        assert!((s.y(1.0) - (H - B)).abs() < 1e-9);
        assert!((s.y(1000.0) - T).abs() < 1e-9);
    }

    #[test]
    fn linear_ticks_are_round() {
        let s = Scale::Linear { min: 0.0, max: 4.4 };
        assert_eq!(s.ticks(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(us_label(1500.0), "1.5ms");
        assert_eq!(us_label(2_000_000.0), "2s");
    }

    #[test]
    fn time_chart_shades_fault_windows() {
        let s = Series { name: "x", points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)], count: None };
        let svg = time_chart(
            "t",
            "Grants per second",
            "grants/s",
            &[s],
            &[Band { backend: 0, from: 0.5, to: 1.2, label: "pause" }],
            &|v| format!("{v}"),
            "n",
        );
        assert_eq!(count(&svg, "class=\"fault\""), 1);
        assert!(svg.contains(">pause<"));
        assert_eq!(count(&svg, "<polyline"), 1);
    }

    #[test]
    fn safety_speed_puts_zero_violations_on_the_axis() {
        let svg = safety_speed("s", &[("safe", 100.0, 0.0), ("naive", 1000.0, 5000.0)]);
        assert_eq!(count(&svg, "<circle"), 2);
        let safe_y: f64 = svg.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!((safe_y - (H - B)).abs() < 0.1, "zero sits on the x axis: {safe_y}");
    }

    #[test]
    fn timeline_marks_violating_holds_with_anchors() {
        let bars = vec![
            Bar { client: 0, from: 0.1, to: 0.5, lease_until: 0.3, anchor: Some("v-x-0".into()) },
            Bar { client: 1, from: 0.2, to: 0.4, lease_until: 1.2, anchor: None },
        ];
        let svg = timeline("tl", "key k0", 2, 1.0, &bars);
        assert_eq!(count(&svg, "class=\"hold bad\""), 1);
        assert_eq!(count(&svg, "class=\"hold\""), 1);
        assert!(svg.contains("id=\"v-x-0\""));
        assert_eq!(count(&svg, "class=\"expiry\""), 1);
    }

    #[test]
    fn each_backend_gets_its_own_fault_lane_and_colliding_labels_are_dropped() {
        let a = Series { name: "a", points: vec![(0.5, 1.0), (1.5, 2.0)], count: None };
        let b = Series { name: "b", points: vec![(0.5, 1.0), (1.5, 2.0)], count: None };
        let bands = [
            Band { backend: 0, from: 0.1, to: 0.2, label: "pause-holder: client 2" },
            Band { backend: 0, from: 0.11, to: 0.3, label: "pause-holder: client 1" },
            Band { backend: 1, from: 0.5, to: 0.9, label: "pause-holder: client 0" },
        ];
        let svg = time_chart("t", "x", "y", &[a, b], &bands, &|v| format!("{v}"), "n");
        assert_eq!(count(&svg, "class=\"lane\""), 2);
        assert_eq!(count(&svg, "class=\"lane-window\""), 3);
        // Two windows of `a` 0.01 s apart: one label, the other in its tooltip.
        assert_eq!(count(&svg, "class=\"fault-label\""), 2);
        assert!(svg.contains("data-backend=\"b\"><rect"), "shading belongs to its backend");
    }

    #[test]
    fn values_over_decades_get_a_log_axis_and_gaps_break_the_line() {
        let s =
            Series { name: "x", points: vec![(0.5, 5.0), (1.5, f64::NAN), (2.5, 27_000.0), (3.5, 30.0)], count: None };
        let svg = time_chart("t", "x", "y", &[s], &[], &|v| format!("{v}"), "n");
        assert_eq!(count(&svg, "<polyline"), 2, "the gap splits the line");
        assert!(svg.contains(">100000<") || svg.contains(">10000<"), "decade ticks: {svg}");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn lanes_draw_each_operation_in_its_clients_lane_on_one_axis() {
        let ops = vec![
            LaneOp { lane: 0, from: 1.0, to: 1.001, outcome: "ok", op: "acquire", title: "a".into() },
            LaneOp { lane: 1, from: 1.2, to: 1.2005, outcome: "fail", op: "write", title: "stale <token>".into() },
        ];
        let spans =
            vec![LaneSpan { lane: 2, from: 0.9, to: 1.1, class: "fault", title: "pause".into(), lease_until: None }];
        let names = vec!["client 0".to_owned(), "client 1".to_owned(), "faults".to_owned()];
        let svg = lanes("l", &names, (1.0, 1.2005), (1.1, 1.2), &ops, &spans);
        assert_eq!(count(&svg, "class=\"op\""), 2);
        assert!(svg.contains("data-op=\"write\" data-type=\"fail\""));
        assert!(svg.contains("stale &lt;token&gt;"), "titles are escaped");
        assert_eq!(count(&svg, "class=\"span fault\""), 1);
        // Ticks over a 0.2 s window read in tenths or finer, none twice.
        let ticks: Vec<&str> = svg
            .split("text-anchor=\"middle\">")
            .skip(1)
            .filter_map(|t| t.split('<').next())
            .filter(|t| t.ends_with('s'))
            .collect();
        assert!(ticks.len() >= 3, "{ticks:?}");
        let mut d = ticks.clone();
        d.dedup();
        assert_eq!(d.len(), ticks.len(), "{ticks:?}");
    }

    #[test]
    fn percentile_curves_are_steps_that_end_at_their_data() {
        let s = Series {
            name: "a",
            points: vec![(0.0, 10.0), (0.5, 20.0), (0.9, 30.0), (0.99, 40.0), (0.999_999, 50.0)],
            count: Some(9),
        };
        let svg = percentile_plot("p", &[s], None);
        assert!(svg.contains("a (n=9)"), "sample count in the legend");
        // 9 samples: the curve ends at 1 − 1/9 (under one nine), so the axis ends at 90 %.
        assert!(svg.contains(">90%<") && !svg.contains(">99%<"), "{svg}");
        let many = Series { name: "b", points: vec![(0.0, 1.0), (0.99999, 9.0)], count: Some(1_000_000) };
        let svg = percentile_plot("p", &[many], None);
        assert!(svg.contains(">99.999%<") && svg.contains(">99.99%<"), "ticks do not repeat: {svg}");
    }
}
