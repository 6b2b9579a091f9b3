//! Every log line the backend writes during the test run, as production writes them (JSON lines
//! with the current span), through one subscriber for the whole binary: appended to the file
//! named by `API_TEST_LOG` when it is set (`make test` scans that file for secrets after the
//! run), and copied to the [`Capture`] of the test whose thread wrote it.

use std::{
    cell::RefCell,
    fs::File,
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// Installs the subscriber (once per test binary).
pub(crate) fn init() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let file = std::env::var_os("API_TEST_LOG").map(|path| {
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("API_TEST_LOG {path:?}: {e}"));
            Mutex::new(file)
        });
        FILE.set(file).ok();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(
                "debug,hyper=info,h2=info,aws_smithy_runtime=info,aws_config=info,rustls=info",
            )
            .with_writer(|| LineWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
    });
}

/// Writes each formatted line (one `write` per line) to the run's file and to the capture of
/// the current thread.
struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(Some(file)) = FILE.get() {
            file.lock().unwrap().write_all(buf)?;
        }
        CAPTURE.with(|c| {
            if let Some(capture) = &*c.borrow() {
                capture.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines of one test.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

/// Stops the capture when dropped.
pub(crate) struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Capture {
    /// Captures the lines written on this thread from now on: a `#[tokio::test]` runs the
    /// gateway and every task it spawns on its own thread.
    pub(crate) fn start() -> (Self, CaptureGuard) {
        init();
        let capture = Self::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard)
    }

    /// What was captured so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
