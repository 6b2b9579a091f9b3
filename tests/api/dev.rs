//! `make dev` beside a running one: it says so and leaves that one and its stack alone (it
//! used to start, fail to bind the port, and stop every service on its way out).

use std::process::Command;

use crate::helpers::*;

fn services_status(workspace: &std::path::Path) -> String {
    let out = Command::new("bash")
        .arg(workspace.join("infra/local/services.sh"))
        .arg("status")
        .output()
        .expect("services.sh status");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn a_second_make_dev_says_the_first_is_running_and_leaves_the_stack_up() {
    // Alone: a regression would stop the services.
    let _app = spawn_app_exclusive().await;
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let before = services_status(&workspace);
    assert!(before.lines().all(|l| l.ends_with(" up")), "{before}");
    // The first `make dev`'s gateway holds its port.
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let out = Command::new("bash")
        .arg(workspace.join("infra/local/dev.sh"))
        .env("GATEWAY_PORT", port.to_string())
        .output()
        .expect("dev.sh");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("already served"), "{said}");
    assert_eq!(services_status(&workspace), before);
    drop(first);
}
