//! The web chat page (`web/`) in a real browser: `tests/browser/chat.mjs` drives Debian's
//! Chromium with playwright-core against the gateway, which serves the page at `/`. Its
//! screenshots go to `target/screenshots` (`SCREENSHOT_DIR=docs/screenshots` to refresh the
//! README's).

use std::path::PathBuf;

use crate::helpers::*;

#[tokio::test]
async fn the_web_page_signs_up_chats_remembers_and_shows_usage_in_chromium() {
    let app = spawn_app().await;
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let browser_dir =
        std::env::var("LOCAL_BROWSER_DIR").expect("LOCAL_BROWSER_DIR (set by make test)");
    let shots = std::env::var("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/chat.mjs"))
        .arg(&app.base)
        .arg(&shots)
        .env(
            "PLAYWRIGHT_CORE",
            format!("{browser_dir}/node_modules/playwright-core/index.mjs"),
        )
        .env(
            "AXE_CORE",
            format!("{browser_dir}/node_modules/axe-core/axe.min.js"),
        )
        .output()
        .await
        .expect("node runs the browser test");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("browser test passed"), "{printed}");
    for shot in [
        "sign-in",
        "chat",
        "memory-and-usage",
        "budget-used-up",
        "mobile",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}
