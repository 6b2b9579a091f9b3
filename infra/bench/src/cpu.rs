//! CPU time per process, read from `/proc`: this process (the bench's gateways and clients)
//! and each local service with its child processes (their pid files in `.state/run`), so a
//! run's spread can be put down to one side or the other.

use std::{collections::HashMap, path::Path};

/// Seconds of CPU (user + system) by name.
pub type Usage = Vec<(String, f64)>;

/// The services whose CPU is read, by pid file name.
const SERVICES: [&str; 4] = ["letta", "litellm", "dynamodb", "llm"];

/// CPU seconds used so far by this process and by each service under `run_dir`.
pub fn snapshot(run_dir: &Path) -> Usage {
    let stats = all_stats();
    let mut usage = vec![("bench".to_string(), tree(&stats, std::process::id()))];
    for name in SERVICES {
        let pid = std::fs::read_to_string(run_dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            usage.push((name.to_string(), tree(&stats, pid)));
        }
    }
    usage
}

/// What each process used between two snapshots.
pub fn since(before: &Usage, after: &Usage) -> Usage {
    after
        .iter()
        .map(|(name, secs)| {
            let was = before.iter().find(|(n, _)| n == name).map_or(0.0, |b| b.1);
            (name.clone(), secs - was)
        })
        .collect()
}

/// pid → (parent pid, CPU seconds) of every process.
fn all_stats() -> HashMap<u32, (u32, f64)> {
    let mut stats = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return stats;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            stats.insert(pid, stat);
        }
    }
    stats
}

/// The parent pid and the user + system CPU seconds of a `/proc/<pid>/stat` line (clock ticks
/// of 1/100 s, Linux's `USER_HZ`).
fn parse_stat(line: &str) -> Option<(u32, f64)> {
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let fields: Vec<&str> = line.get(line.rfind(')')? + 2..)?.split(' ').collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks as f64 / 100.0))
}

/// CPU seconds of `root` and every live descendant.
fn tree(stats: &HashMap<u32, (u32, f64)>, root: u32) -> f64 {
    let mut total = 0.0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some((_, secs)) = stats.get(&pid) {
            total += secs;
        }
        todo.extend(
            stats
                .iter()
                .filter(|(_, (parent, _))| *parent == pid)
                .map(|(child, _)| *child),
        );
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name_are_read() {
        let line = "42 (my proc) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(line), Some((7, 3.0)));
    }

    #[test]
    fn this_process_is_seen_using_cpu() {
        let stats = all_stats();
        assert!(stats.contains_key(&std::process::id()));
    }
}
