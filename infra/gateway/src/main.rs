//! The local gateway: every function's router on one port, the way `make dev` and the tests
//! run the backend. In AWS each function is its own Lambda with its own function URL; here the
//! same routers are merged, so one handler serves both hosts.

use std::net::SocketAddr;

use gateway::{app, no_delay};

#[tokio::main]
async fn main() {
    // `gateway openapi`: the API description, as committed in docs/openapi.json.
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", gateway::openapi_json());
        return;
    }
    shared::app::telemetry::init("gateway");
    let state = match shared::AppState::load("gateway", auth::REQUIRED_VARIABLES).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    if std::env::args().any(|a| a == "--create-table") {
        match shared::store::table::ensure_table(&state.store).await {
            Ok(created) => {
                eprintln!(
                    "table {} {}",
                    state.store.table_name(),
                    if created { "created" } else { "already exists" }
                );
                return;
            }
            Err(e) => {
                eprintln!("gateway: cannot create the table: {e}");
                std::process::exit(1);
            }
        }
    }
    let port: u16 = std::env::var("GATEWAY_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateway: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(%addr, "gateway listening");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // The peer address is the client IP of the per-IP rate limits.
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(no_delay(listener), service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("gateway: {e}");
        std::process::exit(1);
    }
}
