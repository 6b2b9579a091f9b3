//! A loopback TCP proxy in front of a dependency that injects faults: added latency, a
//! connection closed at once, a connection that never answers, a reset after some bytes of the
//! answer, and canned HTTP error answers (5xx bursts, DynamoDB's throttling) for the next few
//! connections. Switching the fault cuts the open connections, so pooled ones see it too.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

/// What the proxy does to the next connections.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Forwards both ways.
    Pass,
    /// Forwards after waiting this long.
    Latency(Duration),
    /// Closes each connection as soon as it is accepted.
    Close,
    /// Reads the request and never answers.
    Hang,
    /// Forwards, then cuts the connection after this many bytes of the answer.
    ResetAfter(usize),
    /// Answers the next `times` connections with this HTTP status and JSON body (then passes).
    Answer {
        status: u16,
        body: &'static str,
        times: usize,
    },
}

/// DynamoDB's answer when a table's throughput is exceeded (the SDK retries it by itself).
pub(crate) const DYNAMODB_THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;

/// Clones control the same proxy.
#[derive(Clone)]
pub(crate) struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Starts a proxy to `target` (`http://host:port`), passing everything.
    pub(crate) async fn start(target: &str) -> Self {
        let upstream = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (f, o, a) = (fault.clone(), open.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let fault = {
                    let mut current = f.lock().unwrap();
                    let now = current.clone();
                    if let Fault::Answer {
                        status,
                        body,
                        times,
                    } = now
                    {
                        *current = if times > 1 {
                            Fault::Answer {
                                status,
                                body,
                                times: times - 1,
                            }
                        } else {
                            Fault::Pass
                        };
                    }
                    now
                };
                let task = tokio::spawn(serve(client, upstream.clone(), fault));
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            url,
            fault,
            open,
            accepted,
        }
    }

    /// Switches the fault and cuts every open connection.
    pub(crate) fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut client: TcpStream, upstream: String, fault: Fault) {
    match fault {
        Fault::Close => {}
        Fault::Hang => {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
        }
        Fault::Answer { status, body, .. } => {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = client.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Fault::Pass | Fault::Latency(_) | Fault::ResetAfter(_) => {
            if let Fault::Latency(wait) = fault {
                tokio::time::sleep(wait).await;
            }
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let limit = match fault {
                Fault::ResetAfter(n) => Some(n),
                _ => None,
            };
            let (mut client_read, mut client_write) = client.split();
            let (mut server_read, mut server_write) = server.split();
            let up = tokio::io::copy(&mut client_read, &mut server_write);
            let down = async {
                let mut sent = 0usize;
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = limit.map_or(n, |l| n.min(l - sent));
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                    if limit.is_some_and(|l| sent >= l) {
                        break; // dropping both halves resets the connection mid-answer
                    }
                }
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        }
    }
}
