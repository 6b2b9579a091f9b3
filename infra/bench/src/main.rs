//! `make bench`: runs the side-by-side measurements on the local stack (which `make bench`
//! starts), prints the table, and writes `docs/benchmarks.md` and `docs/bench-latency.png`.
//!
//! `bench [--turns N] [--users N] [--load-turns N] [--no-starts] [--write-docs]`

use std::path::PathBuf;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let options = bench::Options {
        turns: arg(&args, "--turns", 60),
        load: (arg(&args, "--users", 50), arg(&args, "--load-turns", 10)),
        starts: !args.iter().any(|a| a == "--no-starts"),
        python: std::env::var("BENCH_PYTHON").ok().map(PathBuf::from),
        workspace: workspace.clone(),
    };
    let results = match bench::run(&options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    let rows = bench::report::rows(&results);
    let table = bench::report::table(&rows);
    println!("{table}");
    let out = workspace.join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let csv = out.join("latency.csv");
    if let Err(e) = std::fs::write(&csv, bench::report::csv(&results)) {
        eprintln!("bench: {}: {e}", csv.display());
    }
    if args.iter().any(|a| a == "--write-docs") {
        let docs = workspace.join("docs");
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&workspace)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let machine = format!(
            "{} CPUs ({}), {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(
                    |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                        .split(':')
                        .nth(1)
                        .unwrap_or("")
                        .trim()
                        .to_string())
                )
                .unwrap_or_else(|| "unknown CPU".into()),
            std::env::consts::ARCH,
        );
        let page_path = docs.join("benchmarks.md");
        let previous = std::fs::read_to_string(&page_path).unwrap_or_default();
        let mut page = bench::report::page(&table, &options, &commit, &machine);
        let date = time::OffsetDateTime::now_utc().date().to_string();
        let row = bench::report::history_row(&results, &date, &commit);
        page.push('\n');
        page.push_str(&bench::report::history(
            &row,
            &bench::report::history_rows(&previous),
        ));
        page.push('\n');
        page.push_str(bench::report::kept_analysis(&previous));
        if let Err(e) = std::fs::write(&page_path, page) {
            eprintln!("bench: docs/benchmarks.md: {e}");
        }
        if let Some(python) = &options.python {
            let plot = std::process::Command::new(python)
                .arg(workspace.join("infra/bench/python/plot.py"))
                .arg(&csv)
                .arg(docs.join("bench-latency.png"))
                .status();
            if !plot.is_ok_and(|s| s.success()) {
                eprintln!("bench: the latency plot was not drawn");
            }
        }
    }
    if rows.iter().any(|r| r.met == Some(false)) {
        eprintln!("bench: some targets are not met (see the table)");
    }
}
