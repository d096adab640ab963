//! A local AWS Lambda Runtime API (the interface a `provided.al2023` function polls), so the real
//! function binaries run as Lambda runs them: `GET /2018-06-01/runtime/invocation/next` hands out one
//! event with the request-id, deadline and function-ARN headers; `POST .../invocation/{id}/response`
//! and `.../invocation/{id}/error` answer it; `POST .../init/error` reports a failed cold start.
//!
//! [`FunctionProcess`] starts a function binary against a stub with the environment Lambda sets
//! (plus the caller's), keeps its stdout/stderr in a log file, and kills it when dropped.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../response` with this body.
    Response(Value),
    /// `POST .../error` with this body (`errorType`, `errorMessage`).
    Error(Value),
}

impl Outcome {
    /// The response body; panics (with the error) when the function failed.
    pub fn ok(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("the function answered with an error: {e}"),
        }
    }
}

#[derive(Debug)]
struct Pending {
    event: Value,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Debug)]
struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    next_id: Mutex<u64>,
    function_arn: String,
}

/// A running Runtime API stub for one function.
#[derive(Debug)]
pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    tx: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts a stub on a free loopback port (on the current Tokio runtime).
    pub async fn start(function_name: &str) -> RuntimeApi {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            init_error: Mutex::new(None),
            next_id: Mutex::new(0),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi { addr, tx, shared }
    }

    /// Queues `event` and waits (at most `within`) for the function's answer.
    pub async fn invoke(&self, event: Value, within: Duration) -> Outcome {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Pending { event, reply }).expect("stub alive");
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(o)) => o,
            Ok(Err(_)) => panic!("the invocation was dropped without an answer"),
            Err(_) => panic!("no answer within {within:?} (init error: {:?})", self.init_error()),
        }
    }

    /// When the function first asked for an event (its init ended).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().expect("lock")
    }

    /// The body of `POST /init/error`, if the function's cold start failed.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().expect("lock").clone()
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_poll.lock().expect("lock").get_or_insert_with(Instant::now);
    let Some(p) = s.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let id = {
        let mut n = s.next_id.lock().expect("lock");
        *n += 1;
        format!("00000000-0000-4000-8000-{:012x}", *n)
    };
    s.in_flight.lock().expect("lock").insert(id.clone(), p.reply);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 300_000)
        .unwrap_or_default();
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", s.function_arn.clone()),
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_string()),
            ("content-type", "application/json".to_string()),
        ],
        p.event.to_string(),
    )
        .into_response()
}

fn answer(s: &Shared, id: &str, o: Outcome) -> StatusCode {
    match s.in_flight.lock().expect("lock").remove(id) {
        Some(tx) => {
            let _ = tx.send(o);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn body_json(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, Outcome::Response(body_json(&body)))
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, _h: HeaderMap, body: Bytes) -> StatusCode {
    answer(&s, &id, Outcome::Error(body_json(&body)))
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *s.init_error.lock().expect("lock") = Some(body_json(&body));
    StatusCode::ACCEPTED
}

/// A function binary running against a [`RuntimeApi`]; killed when dropped.
#[derive(Debug)]
pub struct FunctionProcess {
    child: Child,
    log: PathBuf,
    /// When the process was spawned.
    pub started: Instant,
}

impl FunctionProcess {
    /// Starts `binary` as function `name` polling `api`, with Lambda's environment and `env` on top.
    /// Its stdout and stderr go to `log_dir/<name>.log`.
    pub fn spawn(binary: &FsPath, name: &str, api: &RuntimeApi, env: &[(&str, &str)], log_dir: &FsPath) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("failed to start {}: {e}", binary.display()));
        FunctionProcess { child, log, started }
    }

    /// Everything the function printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory holding the workspace's binaries of the profile this test (or bench) was built
/// with: `target/<profile>` (the parent of the `deps` folder holding the running executable).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("exe dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The Lambda functions' package (= binary) names.
pub const FUNCTIONS: [&str; 4] = ["scale-evaluator", "provisioner", "reaper", "windows-password-fetcher"];

/// Builds the four function binaries and the `kasm-autoscale` CLI with the profile of the running
/// test and returns their directory.
///
/// Issue 22: the build must resolve features exactly as the test build did (`cargo nextest run
/// --workspace`, which is `cargo test --no-run --workspace`), or cargo compiles the shared crate and
/// the AWS SDK a second time with another feature set (minutes on two cores). `--workspace --bins
/// --tests` selects the same packages with dev-dependencies active, so the only work left is linking
/// the five binaries; the test targets it names are the ones nextest already built (no-ops).
pub fn workspace_binaries() -> PathBuf {
    let dir = target_profile_dir();
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "--locked", "--workspace", "--bins", "--tests"]);
    if profile != "debug" {
        cmd.args(["--profile", if profile == "release" { "release" } else { &profile }]);
    }
    let st = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("run cargo build");
    assert!(st.success(), "building the function binaries failed");
    dir
}
