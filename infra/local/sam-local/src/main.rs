//! `sam-invoke FUNCTION EVENT`: one sample event through `sam local invoke` against the running
//! local stack (`make sam-invoke FUNCTION=AuthFunction EVENT=events/auth-register.json`). The
//! placeholders ACCESS_TOKEN, REFRESH_TOKEN, CONVERSATION_ID and PASSAGE_ID in the event are
//! replaced by the variables of the same names when they are set. Prints the status line, the
//! headers and the body (for the streaming functions, the body after the prelude).

use std::path::{Path, PathBuf};

use sam_local::{Options, Session};

const PLACEHOLDERS: [&str; 4] = [
    "ACCESS_TOKEN",
    "REFRESH_TOKEN",
    "CONVERSATION_ID",
    "PASSAGE_ID",
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [function, event] = args.as_slice() else {
        eprintln!("usage: sam-invoke FUNCTION EVENT   (e.g. AuthFunction events/auth-health.json)");
        std::process::exit(2)
    };
    if let Err(e) = run(function, Path::new(event)).await {
        eprintln!("sam-invoke: {e}");
        std::process::exit(1)
    }
}

async fn run(function: &str, event: &Path) -> Result<(), String> {
    let mut text =
        std::fs::read_to_string(event).map_err(|e| format!("{}: {e}", event.display()))?;
    for name in PLACEHOLDERS {
        if let Ok(value) = std::env::var(name) {
            text = text.replace(name, &value);
        }
    }
    let workspace = std::env::current_dir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let binaries = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(PathBuf::new);
    let session = Session::start(Options::from_env(&workspace, &binaries)?).await?;
    let answer = session.invoke(function, &text).await?;
    eprint!("{}", answer.logs);
    println!("HTTP {}", answer.status);
    if let Some(headers) = answer.headers.as_object() {
        for (name, value) in headers {
            println!("{name}: {}", value.as_str().unwrap_or_default());
        }
    }
    println!();
    println!("{}", answer.body);
    Ok(())
}
