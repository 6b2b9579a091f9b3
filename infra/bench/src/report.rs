//! The run's figures as a table with the targets, the Markdown of `docs/benchmarks.md`, and
//! the CSV the latency plot is drawn from.

use std::{fmt::Write, time::Duration};

use crate::{
    Results, dynamo,
    turns::{Timing, ms, quantile},
};

/// One row: what, the figure, the target, whether it is met (`None`: not measured).
pub struct Row {
    /// The measurement.
    pub what: String,
    /// The figure, with what it is compared with.
    pub figure: String,
    /// The target.
    pub target: &'static str,
    /// Met, missed, or not measured.
    pub met: Option<bool>,
}

fn pick(timings: &[Timing], f: fn(&Timing) -> Duration) -> Vec<Duration> {
    timings.iter().map(f).collect()
}

/// Lambda arm64, USD per GB-second and per request (us-east-1).
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_REQUEST: f64 = 0.000_000_2;
/// DynamoDB on demand, USD per write and read request unit (us-east-1).
const DYNAMODB_WRU: f64 = 0.000_000_625;
const DYNAMODB_RRU: f64 = 0.000_000_125;
/// The functions' memory in the template, GB.
const MEMORY_GB: f64 = 0.25;

/// The rows of a run.
pub fn rows(r: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for add in [
        latency,
        relay,
        starts,
        zips,
        dynamodb,
        before_letta,
        tokens,
        load,
        cost,
    ] {
        add(r, &mut rows);
    }
    rows
}

/// The backend against Letta direct, turn by turn.
fn latency(r: &Results, rows: &mut Vec<Row>) {
    type Part = (&'static str, fn(&Timing) -> Duration, f64, &'static str);
    let parts: [Part; 3] = [
        (
            "time to first event",
            |t| t.first_event,
            5.0,
            "added p50 ≤ 5 ms, p95 ≤ 10 ms",
        ),
        (
            "time to first reply text",
            |t| t.first_text,
            5.0,
            "added p50 ≤ 5 ms, p95 ≤ 10 ms",
        ),
        (
            "time to end of stream",
            |t| t.end,
            10.0,
            "added p50 ≤ 10 ms, p95 ≤ 20 ms",
        ),
    ];
    for (what, f, limit, target) in parts {
        let (b, l) = (pick(&r.backend, f), pick(&r.letta, f));
        let (added, added95) = (added(r, f, 0.5), added(r, f, 0.95));
        rows.push(Row {
            what: format!("{what} (p50 / p95)"),
            figure: format!(
                "backend {:.1} / {:.1} ms, Letta direct {:.1} / {:.1} ms: added {added:+.1} / {added95:+.1} ms",
                ms(quantile(&b, 0.5)),
                ms(quantile(&b, 0.95)),
                ms(quantile(&l, 0.5)),
                ms(quantile(&l, 0.95)),
            ),
            target,
            met: (!b.is_empty() && !l.is_empty())
                .then_some(added <= limit && added95 <= 2.0 * limit),
        });
    }
}

/// The delay the backend adds to each event.
fn relay(r: &Results, rows: &mut Vec<Row>) {
    let relay = &r.relay;
    rows.push(Row {
        what: "relay delay per reply text event (p50 / p99)".into(),
        figure: format!(
            "{:.2} / {:.2} ms over {} events ({} unpaired): Letta's event at the loopback tap → the client has it",
            quantile(relay, 0.5).as_secs_f64() * 1e3,
            quantile(relay, 0.99).as_secs_f64() * 1e3,
            relay.len(),
            r.relay_unpaired,
        ),
        target: "p99 ≤ 1 ms",
        met: (!relay.is_empty()).then(|| quantile(relay, 0.99) <= Duration::from_millis(1)),
    });
}

/// Each bootstrap's start-up and memory.
fn starts(r: &Results, rows: &mut Vec<Row>) {
    let python = r.python.map(|(ms, _)| ms);
    for (name, start) in &r.starts {
        let start_ms = ms(start.first_response);
        let (ratio, met) = match python {
            Some(p) if start_ms > 0.0 => (
                format!(", {:.0}× the Python stack's {p:.0} ms", p / start_ms),
                Some(p / start_ms >= 40.0),
            ),
            _ => (String::new(), None),
        };
        let init = start.init.map_or(String::new(), |init| {
            let times = python.map_or(String::new(), |p| format!(", {:.0}×", p / ms(init)));
            format!(
                "; init alone (spawn → its first poll for an event) {:.1} ms{times}",
                ms(init)
            )
        });
        let checks = start.slowest_check.as_ref().map_or(String::new(), |(dependency, took)| {
            format!("; the first response (`GET /health`) waited {took:.1} ms on its slowest check, {dependency}")
        });
        rows.push(Row {
            what: format!("{name}: spawn → first response"),
            figure: format!("{start_ms:.1} ms{ratio}{init}{checks}"),
            target: "≥ 40× faster than the Python stack",
            met,
        });
        let mib = start.rss_kib as f64 / 1024.0;
        rows.push(Row {
            what: format!("{name}: RSS after 21 invocations"),
            figure: format!(
                "{mib:.1} MiB ({} failed){}",
                start.errors,
                r.python
                    .map(|(_, kib)| format!(
                        "; the Python stack after import {:.1} MiB",
                        kib as f64 / 1024.0
                    ))
                    .unwrap_or_default()
            ),
            target: "≤ 16 MiB",
            met: Some(start.rss_kib > 0 && mib <= 16.0),
        });
    }
}

/// The deployment zips' sizes.
fn zips(r: &Results, rows: &mut Vec<Row>) {
    for (name, bytes) in &r.zips {
        let mb = *bytes as f64 / 1_000_000.0;
        rows.push(Row {
            what: format!("{name}: arm64 deployment zip"),
            figure: format!("{mb:.2} MB"),
            target: "≤ 4 MB",
            met: Some(mb <= 4.0),
        });
    }
}

/// The DynamoDB requests of each endpoint.
fn dynamodb(r: &Results, rows: &mut Vec<Row>) {
    for (endpoint, counts) in &r.dynamodb {
        let (reads, writes) = dynamo::reads_and_writes(counts);
        let chat = endpoint.contains("chat/message");
        let ops: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
        rows.push(Row {
            what: format!("DynamoDB requests: {endpoint}"),
            figure: format!("{reads} reads + {writes} writes ({})", ops.join(", ")),
            target: if chat {
                "≤ 2 writes, 0 reads"
            } else {
                "≤ 2"
            },
            met: Some(if chat {
                reads == 0 && writes <= 2
            } else {
                reads + writes <= 2
            }),
        });
    }
}

/// The DynamoDB requests of a warm chat turn before Letta was called.
fn before_letta(r: &Results, rows: &mut Vec<Row>) {
    if let Some(counts) = &r.dynamodb_before_letta {
        let total: usize = counts.values().sum();
        let ops: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
        rows.push(Row {
            what: "DynamoDB requests before Letta (a plain turn, warm instance)".into(),
            figure: format!("{total} ({})", ops.join(", ")),
            target: "1",
            met: Some(total == 1),
        });
    }
}

/// The prompt tokens a turn sends the model.
fn tokens(r: &Results, rows: &mut Vec<Row>) {
    if let Some((plain, memory)) = r.prompt_tokens {
        rows.push(Row {
            what: "prompt tokens: a plain turn on a fresh agent / a memory-writing turn".into(),
            figure: format!("{plain} / {memory} (the `usage` event; the memory turn is two steps)"),
            target: "plain ≤ 2,300",
            met: Some(plain <= 2300),
        });
    }
}

/// Many users at once.
fn load(r: &Results, rows: &mut Vec<Row>) {
    if let Some(load) = &r.load {
        let (b, l) = (quantile(&load.backend, 0.95), quantile(&load.letta, 0.95));
        let ratio = load.p95_ratio();
        rows.push(Row {
            what: format!("{} users × {} turns at once: first reply text p95", load.users, load.turns),
            figure: format!(
                "backend {:.1} ms ({} errors, {:.1} s), Letta direct {:.1} ms ({} errors, {:.1} s): {ratio:.3}×",
                ms(b),
                load.errors.0,
                load.wall.0.as_secs_f64(),
                ms(l),
                load.errors.1,
                load.wall.1.as_secs_f64(),
            ),
            target: "0 errors; ≤ 1.05 × Letta's",
            met: Some(load.errors.0 == 0 && ratio <= 1.05),
        });
        let side = |cpu: &crate::cpu::Usage| {
            cpu.iter()
                .map(|(name, secs)| format!("{name} {secs:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(Row {
            what: "the load's CPU time, each side".into(),
            figure: format!(
                "through the backend: {}; Letta direct: {} (`bench` is the gateway and the clients)",
                side(&load.cpu.0),
                side(&load.cpu.1)
            ),
            target: "printed",
            met: None,
        });
    }
}

/// What a million chat turns cost on AWS.
fn cost(r: &Results, rows: &mut Vec<Row>) {
    if let Some(chat) = r.dynamodb.get("POST /api/v1/chat/message") {
        let end = quantile(&pick(&r.backend, |t| t.end), 0.5).as_secs_f64();
        let lambda = end * MEMORY_GB * LAMBDA_GB_SECOND + LAMBDA_REQUEST;
        let units: f64 = chat
            .iter()
            .map(|(op, n)| {
                let n = *n as f64;
                if op == "TransactWriteItems" {
                    2.0 * n * DYNAMODB_WRU
                } else if dynamo::is_read(op) {
                    n * DYNAMODB_RRU
                } else {
                    n * DYNAMODB_WRU
                }
            })
            .sum();
        rows.push(Row {
            what: "AWS cost per 1M chat turns (LLM excluded)".into(),
            figure: format!(
                "${:.2}: Lambda ${:.2} ({end:.2} s × {MEMORY_GB} GB at ${LAMBDA_GB_SECOND}/GB-s + $0.20 per 1M requests), DynamoDB ${:.2} (the counted requests on demand, items ≤ 1 KB, a transaction's write counted twice)",
                (lambda + units) * 1e6,
                lambda * 1e6,
                units * 1e6,
            ),
            target: "printed with its inputs",
            met: None,
        });
    }
}

/// The table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| measurement | figure | target | met |\n|---|---|---|---|\n");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            row.what, row.figure, row.target
        );
    }
    out
}

/// `side,kind,ms` lines for the plot.
pub fn csv(r: &Results) -> String {
    let mut out = String::from("side,kind,ms\n");
    for (side, timings) in [("backend", &r.backend), ("letta", &r.letta)] {
        for t in timings {
            for (kind, d) in [
                ("first_event", t.first_event),
                ("first_text", t.first_text),
                ("end", t.end),
            ] {
                let _ = writeln!(out, "{side},{kind},{}", ms(d));
            }
        }
    }
    out
}

/// The line after which `docs/benchmarks.md` is written by hand (the reading of the figures):
/// a new run keeps it.
pub const ANALYSIS_MARKER: &str = "<!-- written by hand below: make bench keeps it -->";

/// The hand-written part of an earlier page, from its marker on (empty without one).
pub fn kept_analysis(previous: &str) -> &str {
    previous
        .find(ANALYSIS_MARKER)
        .map_or("", |at| &previous[at..])
}

/// The history's bounds on the page: one table row per run between them, newest first.
const HISTORY_START: &str = "<!-- history: make bench adds a row per run -->";
const HISTORY_END: &str = "<!-- end of history -->";
/// Rows the history keeps.
const HISTORY_ROWS: usize = 40;

/// This run's row of the history: the added p50 times, the DynamoDB requests before Letta, a
/// plain turn's prompt tokens and the load's p95 ratio.
pub fn history_row(r: &Results, date: &str, commit: &str) -> String {
    let before = r
        .dynamodb_before_letta
        .as_ref()
        .map_or("—".into(), |c| c.values().sum::<usize>().to_string());
    let tokens = r
        .prompt_tokens
        .map_or("—".into(), |(plain, _)| plain.to_string());
    let load = r
        .load
        .as_ref()
        .map_or("—".into(), |load| format!("{:.2}×", load.p95_ratio()));
    format!(
        "| {date} | `{commit}` | {:+.1} / {:+.1} / {:+.1} | {before} | {tokens} | {load} |",
        added(r, |t| t.first_event, 0.5),
        added(r, |t| t.first_text, 0.5),
        added(r, |t| t.end, 0.5),
    )
}

/// What the backend added to one of a turn's times at quantile `q`, ms.
fn added(r: &Results, f: fn(&Timing) -> Duration, q: f64) -> f64 {
    ms(quantile(&pick(&r.backend, f), q)) - ms(quantile(&pick(&r.letta, f), q))
}

/// The history's rows of an earlier page, newest first.
pub fn history_rows(previous: &str) -> Vec<String> {
    let Some(start) = previous.find(HISTORY_START) else {
        return Vec::new();
    };
    let block = &previous[start + HISTORY_START.len()..];
    let block = &block[..block.find(HISTORY_END).unwrap_or(block.len())];
    block
        .lines()
        .filter(|l| l.starts_with("| 2"))
        .map(str::to_string)
        .collect()
}

/// The history section: this run's row above the earlier ones.
pub fn history(row: &str, earlier: &[String]) -> String {
    let mut rows = vec![row.to_string()];
    rows.extend(earlier.iter().take(HISTORY_ROWS - 1).cloned());
    format!(
        "## History\n\n{HISTORY_START}\n\
         | date | commit | added p50, ms: first event / first text / end | DynamoDB requests \
         before Letta | prompt tokens, plain turn | load p95 ratio |\n\
         |---|---|---|---|---|---|\n{}\n{HISTORY_END}\n",
        rows.join("\n")
    )
}

/// `docs/benchmarks.md`.
pub fn page(table: &str, options: &crate::Options, commit: &str, machine: &str) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "# Benchmarks\n\n\
         `make bench` on {date}, commit `{commit}`, {machine}. The local stack (Letta 0.16.8, \
         LiteLLM 1.106.2, DynamoDB Local, the scripted LLM) on the same machine; a release \
         build of the gateway hosted by the bench (a second one, behind a counting proxy in front of \
         DynamoDB and a loopback tap in front of Letta, gives the request counts and the relay \
         delay). \
         {turns} turns each side through `POST /api/v1/chat/message` and straight to Letta's \
         `POST /v1/agents/{{id}}/messages/stream` (`stream_tokens: true`) on the same agent, \
         interleaved; then {users} users × {load_turns} turns at once, each side. The machine is \
         noisy: the differences and ratios within this run are the figures that count; absolute \
         times are context.\n\n{table}\n\
         ![Time to first event, first reply text and end of stream: backend vs Letta direct](bench-latency.png)\n\n\
         Rerun: `make bench` (installs what is missing, starts the stack if it is not up, \
         writes this page). `make test` runs a smoke version (`bench::smoke`, two turns, no \
         targets).\n",
        turns = options.turns,
        users = options.load.0,
        load_turns = options.load.1,
    )
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn a_run_adds_its_row_above_the_earlier_ones() {
        let first = history(
            "| 2026-12-07 | `a` | +1.0 / +2.0 / -3.0 | 1 | 2133 | 1.10× |",
            &[],
        );
        let page = format!("# Benchmarks\n\n{first}\n<!-- written by hand below -->\n");
        assert_eq!(history_rows(&page).len(), 1);
        let second = history(
            "| 2026-12-08 | `b` | +0.5 / +1.0 / -2.0 | 1 | 2133 | 1.00× |",
            &history_rows(&page),
        );
        let rows = history_rows(&second);
        assert_eq!(rows.len(), 2);
        assert!(
            rows[0].contains("`b`") && rows[1].contains("`a`"),
            "{rows:?}"
        );
        assert!(history_rows("no history yet").is_empty());
        assert!(
            second.contains("\n| date | commit |") && second.contains("\n|---|"),
            "the header lines start the table: {second}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_page_keeps_the_hand_written_analysis_only() {
        let previous = format!("# Benchmarks\nold table\n{ANALYSIS_MARKER}\n## Reading\nwhy\n");
        assert_eq!(
            kept_analysis(&previous),
            format!("{ANALYSIS_MARKER}\n## Reading\nwhy\n")
        );
        assert_eq!(kept_analysis("# Benchmarks\nold table\n"), "");
    }
}
