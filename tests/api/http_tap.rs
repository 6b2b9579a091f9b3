//! A loopback HTTP proxy in front of a dependency that forwards every request unchanged but for
//! one [`Rule`]: Supabase's admin listing without some users (what a sign-up or a deletion
//! between two page reads does to an offset-paged listing), or a failing `DELETE` of one path
//! (a step that failed half-way).

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::Value;

/// What the proxy changes.
#[derive(Clone)]
pub(crate) enum Rule {
    /// Leaves these users out of `GET /auth/v1/admin/users`.
    HideUsers(Vec<String>),
    /// Answers `DELETE <path>` with a 500.
    FailDelete(String),
}

/// Starts the proxy in front of `upstream`; returns its URL.
pub(crate) async fn start(upstream: String, rule: Rule) -> String {
    let http = reqwest::Client::new();
    let app = Router::new().fallback(move |request: Request| {
        let (http, upstream, rule) = (http.clone(), upstream.clone(), rule.clone());
        async move { forward(&http, &upstream, request, &rule).await }
    });
    serve(app).await
}

/// Serves `app` on a loopback port of its own, for the rest of the test; returns its URL.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn forward(http: &reqwest::Client, to: &str, request: Request, rule: &Rule) -> Response {
    let (parts, body) = request.into_parts();
    if let Rule::FailDelete(path) = rule
        && parts.method == reqwest::Method::DELETE
        && parts.uri.path().trim_end_matches('/') == path
    {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"detail":"injected failure"}"#))
            .unwrap();
    }
    let hidden = match rule {
        Rule::HideUsers(ids)
            if parts.method == reqwest::Method::GET
                && parts.uri.path() == "/auth/v1/admin/users" =>
        {
            Some(ids)
        }
        _ => None,
    };
    let Some((res, headers)) = send_on(http, to, request_of(parts, body).await).await else {
        return bad_gateway();
    };
    let status = res.status();
    let mut bytes = res.bytes().await.unwrap_or_default().to_vec();
    if let Some(hidden) = hidden.filter(|_| status.is_success()) {
        let mut page: Value = serde_json::from_slice(&bytes).expect("a JSON page of users");
        page["users"]
            .as_array_mut()
            .expect("a page has users")
            .retain(|u| !hidden.iter().any(|h| u["id"] == h.as_str()));
        bytes = serde_json::to_vec(&page).unwrap();
    }
    let mut response = Response::builder()
        .status(status)
        .body(Body::from(bytes))
        .unwrap();
    *response.headers_mut() = headers;
    response
}

/// A request to pass on, with its body read.
pub(crate) struct Outgoing {
    method: reqwest::Method,
    path: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

impl Outgoing {
    /// The request's body.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Reads the request's body (the proxies pass small admin and API requests).
pub(crate) async fn request_of(parts: axum::http::request::Parts, body: Body) -> Outgoing {
    Outgoing {
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        method: parts.method,
        headers: parts.headers,
        body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
    }
}

/// Sends the request on to `to` (every header but `Host` and `Content-Length`); the answer
/// and its headers without the framing ones (the proxy frames its own). `None`: unreachable.
pub(crate) async fn send_on(
    http: &reqwest::Client,
    to: &str,
    request: Outgoing,
) -> Option<(reqwest::Response, HeaderMap)> {
    let mut upstream = http.request(request.method, format!("{to}{}", request.path));
    for (name, value) in &request.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let res = upstream.body(request.body).send().await.ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in res.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            headers.insert(name, value.clone());
        }
    }
    Some((res, headers))
}

/// The answer when the dependency cannot be reached.
pub(crate) fn bad_gateway() -> Response {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Body::empty())
        .unwrap()
}
