//! Jepsen-style SVG plots of a history: per-operation latency and throughput over time,
//! with the nemesis's fault windows shaded, plus a small index page for a run's files.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::history::{
    pair_operations, Event, EventType, Operation, Outcome, PairingError, Process, NEVER,
};

const NS_PER_S: u64 = 1_000_000_000;

/// The image's width and height in pixels.
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 420.0;

/// Margins around the plot area; the right one holds the legend.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// Escapes text for XML character data and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// A span during which a nemesis fault was active, in ns since the test started.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Window {
    name: String,
    start: u64,
    end: u64,
}

/// Pairs each nemesis `start-NAME` (invoke or info) with the next `stop-NAME`. Jepsen logs
/// both an invoke and an info per nemesis action, so a start while the window is already
/// open, or a stop with none open, changes nothing. Unclosed windows run to `end`.
fn nemesis_windows(events: &[Event], end: u64) -> Vec<Window> {
    let mut open: BTreeMap<&str, u64> = BTreeMap::new();
    let mut windows = Vec::new();
    for event in events {
        if event.process != Process::Nemesis
            || !matches!(event.event_type, EventType::Invoke | EventType::Info)
        {
            continue;
        }
        let f = event.function.as_str();
        if let Some(name) = suffix(f, "start") {
            open.entry(name).or_insert(event.time);
        } else if let Some(name) = suffix(f, "stop") {
            if let Some(start) = open.remove(name) {
                windows.push(Window {
                    name: name.to_string(),
                    start,
                    end: event.time.max(start),
                });
            }
        }
    }
    windows.extend(open.into_iter().map(|(name, start)| Window {
        name: name.to_string(),
        start,
        end: end.max(start),
    }));
    windows.sort_by_key(|window| window.start);
    windows
}

/// The nemesis name in `f` after `prefix` and an optional dash.
fn suffix<'a>(f: &'a str, prefix: &str) -> Option<&'a str> {
    f.strip_prefix(prefix)
        .map(|rest| rest.strip_prefix('-').unwrap_or(rest))
}

/// Whole seconds the plots span: at least one, so scales never divide by zero.
fn span_seconds(events: &[Event]) -> u64 {
    let end = events.iter().map(|event| event.time).max().unwrap_or(0);
    end.div_ceil(NS_PER_S).max(1)
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// Colour by outcome name; names, not [`Outcome`], key the throughput series because
/// `Outcome` is not `Ord`.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "#2ca02c",
        "fail" => "#d62728",
        _ => "#ff7f0e",
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving about eight ticks over `range`.
fn nice_step(range: f64) -> f64 {
    let rough = (range / 8.0).max(1e-9);
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power)
}

/// The plot area's bounds, mapping seconds on x.
struct Frame {
    seconds: f64,
}

impl Frame {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.seconds).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn bottom(&self) -> f64 {
        HEIGHT - BOTTOM
    }

    /// The SVG opening, title, shaded nemesis windows and the time axis.
    fn open(&self, title: &str, y_label: &str, windows: &[Window]) -> String {
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
             <text x=\"{:.1}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
            WIDTH / 2.0,
            escape(title)
        );
        for window in windows {
            let x0 = self.x(window.start as f64 / 1e9);
            let x1 = self.x(window.end as f64 / 1e9);
            let _ = writeln!(
                svg,
                "<rect class=\"nemesis\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"#888888\" fill-opacity=\"0.15\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                 fill=\"#555555\">{}</text>",
                x1 - x0,
                self.bottom() - TOP,
                x0 + 2.0,
                TOP + 11.0,
                escape(&window.name)
            );
        }
        let (right, bottom) = (WIDTH - RIGHT, self.bottom());
        let _ = writeln!(
            svg,
            "<path d=\"M{LEFT} {TOP}V{bottom}H{right}\" fill=\"none\" stroke=\"black\"/>"
        );
        let step = nice_step(self.seconds);
        let mut tick = 0.0;
        while tick <= self.seconds + step * 1e-6 {
            let x = self.x(tick);
            let _ = writeln!(
                svg,
                "<path d=\"M{x:.1} {bottom}v5\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{:.1}\" \
                 text-anchor=\"middle\">{tick}</text>",
                bottom + 17.0
            );
            tick += step;
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>\n\
             <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            (LEFT + right) / 2.0,
            HEIGHT - 10.0,
            (TOP + bottom) / 2.0,
            escape(y_label)
        );
        svg
    }

    /// A y tick and its label at height `y`.
    fn y_tick(svg: &mut String, y: f64, label: &str) {
        let _ = writeln!(
            svg,
            "<path d=\"M{LEFT} {y:.1}h-5\" stroke=\"black\"/><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{label}</text>",
            LEFT - 7.0,
            y + 4.0
        );
    }

    /// The `index`th legend row: a sample drawn by `sample` at (x, y), then `label`.
    fn legend_row(svg: &mut String, index: usize, label: &str, sample: &str) {
        let y = TOP + 8.0 + 16.0 * index as f64;
        let x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            svg,
            "<g transform=\"translate({x:.1} {y:.1})\">{sample}</g><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 12.0,
            y + 4.0,
            escape(label)
        );
    }
}

/// The marker for the `shape`th function, centred on (x, y).
fn marker(shape: usize, x: f64, y: f64, colour: &str, class: &str) -> String {
    match shape % 3 {
        0 => format!("<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"),
        1 => format!(
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\" fill=\"{colour}\"/>",
            x - 3.0,
            y - 3.0
        ),
        _ => format!(
            "<polygon class=\"{class}\" points=\"{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"{colour}\"/>",
            y - 4.0,
            x - 4.0,
            y + 3.0,
            x + 4.0,
            y + 3.0
        ),
    }
}

/// What both plots start from: the operations, the run's length in whole seconds, the
/// frame spanning it and the nemesis windows.
struct Prologue {
    operations: Vec<Operation>,
    seconds: u64,
    frame: Frame,
    windows: Vec<Window>,
}

impl Prologue {
    fn of(events: &[Event]) -> Result<Prologue, PairingError> {
        let seconds = span_seconds(events);
        Ok(Prologue {
            operations: pair_operations(events)?,
            seconds,
            frame: Frame {
                seconds: seconds as f64,
            },
            windows: nemesis_windows(events, seconds * NS_PER_S),
        })
    }
}

/// Each operation's latency against its invoke time; `info` ones, which never
/// completed, sit on the top edge.
pub fn latency_svg(events: &[Event]) -> Result<String, PairingError> {
    let Prologue {
        operations,
        frame,
        windows,
        ..
    } = Prologue::of(events)?;
    let latency_ms =
        |op: &Operation| (op.complete_time.saturating_sub(op.invoke_time) as f64 / 1e6).max(1e-3);
    let completed = operations.iter().filter(|op| op.complete_time != NEVER);
    let (low, high) = completed.fold((f64::INFINITY, 0f64), |(low, high), op| {
        (low.min(latency_ms(op)), high.max(latency_ms(op)))
    });
    // Whole decades around the data; 1 ms to 1 s when nothing completed.
    let low_exp = if low.is_finite() {
        low.log10().floor() as i32
    } else {
        0
    };
    let high_exp = if high > 0.0 {
        (high.log10().ceil() as i32).max(low_exp + 1)
    } else {
        3
    };
    let bottom = frame.bottom();
    let y = |ms: f64| {
        let fraction = (ms.log10() - low_exp as f64) / (high_exp - low_exp) as f64;
        bottom - fraction.clamp(0.0, 1.0) * (bottom - TOP)
    };
    let mut svg = frame.open("Latency", "latency (ms, log)", &windows);
    for exp in low_exp..=high_exp {
        let ms = 10f64.powi(exp);
        Frame::y_tick(&mut svg, y(ms), &ms.to_string());
    }
    let mut shapes: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &operations {
        let next = shapes.len();
        let shape = *shapes.entry(op.function.as_str()).or_insert(next);
        let at = if op.complete_time == NEVER {
            TOP
        } else {
            y(latency_ms(op))
        };
        let x = frame.x(op.invoke_time as f64 / 1e9);
        let _ = writeln!(
            svg,
            "{}",
            marker(shape, x, at, outcome_colour(outcome_name(op.outcome)), "op")
        );
    }
    let mut row = 0;
    for (f, shape) in &shapes {
        Frame::legend_row(&mut svg, row, f, &marker(*shape, 0.0, 0.0, "black", "key"));
        row += 1;
    }
    for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
        let sample = format!(
            "<rect x=\"-4\" y=\"-4\" width=\"8\" height=\"8\" fill=\"{}\"/>",
            outcome_colour(outcome_name(outcome))
        );
        Frame::legend_row(&mut svg, row, outcome_name(outcome), &sample);
        row += 1;
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// Completions per one-second bucket for each (f, outcome). `info` operations have no
/// completion time, so they are not counted.
fn throughput_buckets(
    operations: &[Operation],
    buckets: u64,
) -> BTreeMap<(String, &'static str), Vec<u64>> {
    let buckets = buckets.max(1);
    let mut series: BTreeMap<(String, &'static str), Vec<u64>> = BTreeMap::new();
    for op in operations.iter().filter(|op| op.complete_time != NEVER) {
        let counts = series
            .entry((op.function.clone(), outcome_name(op.outcome)))
            .or_insert_with(|| vec![0; buckets as usize]);
        counts[(op.complete_time / NS_PER_S).min(buckets - 1) as usize] += 1;
    }
    series
}

/// Completions per second over time, one line per (f, outcome).
pub fn throughput_svg(events: &[Event]) -> Result<String, PairingError> {
    let Prologue {
        operations,
        seconds,
        frame,
        windows,
    } = Prologue::of(events)?;
    let series = throughput_buckets(&operations, seconds);
    let peak = series.values().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let step = nice_step(peak);
    let top = (peak / step).ceil() * step;
    let bottom = frame.bottom();
    let y = |count: f64| bottom - count / top * (bottom - TOP);
    let mut svg = frame.open("Throughput", "completions per second", &windows);
    let mut tick = 0.0;
    while tick <= top + step * 1e-6 {
        Frame::y_tick(&mut svg, y(tick), &tick.to_string());
        tick += step;
    }
    // Colour by outcome; functions are told apart by dash pattern.
    let mut dashes: BTreeMap<&str, usize> = BTreeMap::new();
    for (row, ((f, outcome), counts)) in series.iter().enumerate() {
        let next = dashes.len();
        let dash = ["", "6 3", "2 2", "8 3 2 3"][*dashes.entry(f.as_str()).or_insert(next) % 4];
        let style = format!(
            "fill=\"none\" stroke=\"{}\" stroke-dasharray=\"{dash}\"",
            outcome_colour(outcome)
        );
        let points: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(i, count)| format!("{:.1},{:.1}", frame.x(i as f64 + 0.5), y(*count as f64)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline class=\"series\" points=\"{}\" {style}/>",
            points.join(" ")
        );
        let label = format!("{f} {}", outcome);
        Frame::legend_row(
            &mut svg,
            row,
            &label,
            &format!("<path d=\"M-6 0h12\" {style}/>"),
        );
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// A page linking a run's plots and files (`files`, relative to the run's folder, such as
/// the node logs), showing whether the history was valid.
pub fn index_html(run_name: &str, valid: &str, files: &[String]) -> String {
    let (run_name, valid) = (escape(run_name), escape(valid));
    let mut links = String::new();
    for file in ["results.json", "history.jsonl"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
    {
        let file = escape(file);
        let _ = writeln!(links, "<li><a href=\"{file}\">{file}</a></li>");
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{run_name}</title></head>\n\
         <body><h1>{run_name}</h1>\n<p>valid: <b>{valid}</b></p>\n\
         <p><a href=\"latency.svg\"><img src=\"latency.svg\" alt=\"latency\"></a></p>\n\
         <p><a href=\"throughput.svg\"><img src=\"throughput.svg\" alt=\"throughput\"></a></p>\n\
         <ul>\n{links}</ul>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn event(process: Process, event_type: EventType, f: &str, time_ms: u64) -> Event {
        Event {
            process,
            event_type,
            function: f.to_string(),
            value: Value::Null,
            time: time_ms * 1_000_000,
            key: None,
            error: None,
        }
    }

    fn client(id: u64, event_type: EventType, f: &str, time_ms: u64) -> Event {
        event(Process::Client(id), event_type, f, time_ms)
    }

    fn nemesis(event_type: EventType, f: &str, time_ms: u64) -> Event {
        event(Process::Nemesis, event_type, f, time_ms)
    }

    /// Two reads (ok, fail), one write left without an answer.
    fn small_history() -> Vec<Event> {
        vec![
            client(0, EventType::Invoke, "read", 100),
            client(1, EventType::Invoke, "write", 150),
            client(0, EventType::Ok, "read", 110),
            client(0, EventType::Invoke, "read", 1_200),
            client(0, EventType::Fail, "read", 1_500),
        ]
    }

    #[test]
    fn latency_draws_one_marker_per_operation_coloured_by_outcome() {
        let svg = latency_svg(&small_history()).unwrap();
        assert_eq!(svg.matches("class=\"op\"").count(), 3);
        let ops: Vec<&str> = svg
            .lines()
            .filter(|line| line.contains("class=\"op\""))
            .collect();
        assert_eq!(ops.iter().filter(|l| l.contains("#2ca02c")).count(), 1);
        assert_eq!(ops.iter().filter(|l| l.contains("#d62728")).count(), 1);
        assert_eq!(ops.iter().filter(|l| l.contains("#ff7f0e")).count(), 1);
        // Reads are circles, the write another shape, and the info write sits at the top.
        assert_eq!(ops.iter().filter(|l| l.starts_with("<circle")).count(), 2);
        assert!(ops
            .iter()
            .any(|l| l.contains("#ff7f0e") && l.contains(&format!("y=\"{:.1}\"", TOP - 3.0))));
    }

    #[test]
    fn throughput_counts_completions_per_second() {
        let mut events = small_history();
        events.extend([
            client(2, EventType::Invoke, "read", 1_000),
            client(2, EventType::Ok, "read", 2_999),
        ]);
        let series = throughput_buckets(&pair_operations(&events).unwrap(), 3);
        let expected: BTreeMap<(String, &'static str), Vec<u64>> = [
            (("read".to_string(), "ok"), vec![1, 0, 1]),
            (("read".to_string(), "fail"), vec![0, 1, 0]),
        ]
        .into_iter()
        .collect();
        assert_eq!(series, expected);
        let svg = throughput_svg(&events).unwrap();
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
    }

    #[test]
    fn nemesis_windows_pair_starts_with_stops_and_run_unclosed_ones_to_the_end() {
        let events = vec![
            nemesis(EventType::Invoke, "start-partition", 1_000),
            nemesis(EventType::Info, "start-partition", 1_100),
            nemesis(EventType::Invoke, "start-kill", 2_000),
            nemesis(EventType::Invoke, "stop-partition", 3_000),
            nemesis(EventType::Info, "stop-partition", 3_100),
            client(0, EventType::Invoke, "read", 3_500),
            client(0, EventType::Ok, "read", 4_000),
        ];
        let windows = nemesis_windows(&events, 4 * NS_PER_S);
        let window = |name: &str, start: u64, end: u64| Window {
            name: name.to_string(),
            start,
            end,
        };
        assert_eq!(
            windows,
            vec![
                window("partition", NS_PER_S, 3 * NS_PER_S),
                window("kill", 2 * NS_PER_S, 4 * NS_PER_S),
            ]
        );
        let frame = Frame { seconds: 4.0 };
        let svg = latency_svg(&events).unwrap();
        assert_eq!(svg.matches("class=\"nemesis\"").count(), 2);
        let partition = format!(
            "class=\"nemesis\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\"",
            frame.x(1.0),
            frame.x(3.0) - frame.x(1.0)
        );
        assert!(svg.contains(&partition), "{svg}");
        let kill = format!(
            "x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\"",
            frame.x(2.0),
            frame.x(4.0) - frame.x(2.0)
        );
        assert!(svg.contains(&kill), "{svg}");
    }

    #[test]
    fn empty_and_all_info_histories_plot_without_nan() {
        let all_info = vec![
            client(0, EventType::Invoke, "read", 0),
            client(0, EventType::Info, "read", 0),
        ];
        for events in [vec![], all_info] {
            for svg in [
                latency_svg(&events).unwrap(),
                throughput_svg(&events).unwrap(),
            ] {
                assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
                assert!(
                    !svg.contains("NaN") && !svg.replace("info", "").contains("inf"),
                    "{svg}"
                );
            }
        }
    }

    #[test]
    fn text_is_escaped() {
        let page = index_html("run <&\"", "true", &["n1/<log>".to_string()]);
        assert!(page.contains("run &lt;&amp;&quot;") && !page.contains("run <"));
        assert!(page.contains("<a href=\"n1/&lt;log&gt;\">") && page.contains("history.jsonl"));
        let events = vec![
            client(0, EventType::Invoke, "f<&\"", 0),
            client(0, EventType::Ok, "f<&\"", 5),
            nemesis(EventType::Invoke, "start-<&\"", 1),
        ];
        for svg in [
            latency_svg(&events).unwrap(),
            throughput_svg(&events).unwrap(),
        ] {
            assert!(
                svg.contains("f&lt;&amp;&quot;") && !svg.contains("f<"),
                "{svg}"
            );
            assert!(svg.contains(">&lt;&amp;&quot;</text>"), "{svg}");
        }
    }
}
