//! The local auth server driven by the official Supabase client (`supabase_auth` from PyPI),
//! once with HS256 and once with ES256 signing. Each run starts its own server on a free port.

use std::{
    net::TcpListener,
    process::{Child, Command},
    time::{Duration, Instant},
};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn python() -> String {
    std::env::var("LOCAL_TOOLS_PYTHON")
        .expect("LOCAL_TOOLS_PYTHON (the tools venv, set by make test)")
}

fn start(alg: &str, dir: &std::path::Path) -> (Server, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_local-auth"))
        .env("AUTH_PORT", port.to_string())
        .env("AUTH_SIGNING_ALG", alg)
        .env("AUTH_JWT_SECRET", "contract-test-secret-of-enough-length")
        .env("AUTH_ANON_KEY", "contract-anon")
        .env("AUTH_SERVICE_ROLE_KEY", "contract-service")
        .env("AUTH_ES256_KEY_FILE", dir.join("key.pk8"))
        .env("AUTH_DATA_FILE", dir.join("users.json"))
        .spawn()
        .expect("start local-auth");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "local-auth did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child), base)
}

fn run_contract(alg: &str) {
    let dir =
        std::env::temp_dir().join(format!("local-auth-contract-{alg}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, base) = start(alg, &dir);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contract/contract.py");
    let out = Command::new(python())
        .args([script, &base, "contract-anon", alg])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "contract failed with {alg}:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("contract: all checks passed"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn official_client_contract_hs256() {
    run_contract("HS256");
}

#[test]
fn official_client_contract_es256() {
    run_contract("ES256");
}

#[test]
fn requests_without_a_valid_apikey_are_refused_like_the_api_gateway_does() {
    let dir = std::env::temp_dir().join(format!("local-auth-apikey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, base) = start("HS256", &dir);
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("{base}/auth/v1/health"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("401"), "{text}");
    assert!(text.contains("No API key found in request"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
