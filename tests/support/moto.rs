//! A real AWS emulator for the tests: moto server (PyPI `moto[server]`) on a loopback port.
//!
//! Uses `KASM_AUTOSCALE_MOTO_ENDPOINT` when set (one server shared by a test run, started by
//! `.ci/test`); otherwise starts `moto_server` itself — from `.ci/.venv/bin` (where `.ci/test` installs
//! it) or the PATH — and stops it when dropped. No AWS account is ever used: the credentials are
//! moto's `testing` placeholders. Tests isolate themselves by unique table names, secret names and tags.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or shared) moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    /// The shared server, or a new one. Panics with what to do when moto is not installed: a test that
    /// needs the emulator must not silently pass without it.
    pub fn start() -> Moto {
        if let Ok(endpoint) = std::env::var("KASM_AUTOSCALE_MOTO_ENDPOINT") {
            return Moto { endpoint, child: None };
        }
        let bin = moto_bin().unwrap_or_else(|| {
            panic!("moto_server not found: run `bash .ci/test` (it installs moto[server] into .ci/.venv), or pip install 'moto[server]'")
        });
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", bin.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let m = Moto { endpoint, child: Some(child) };
        m.wait_ready(Duration::from_secs(30));
        m
    }

    /// A server of its own that handles **one request at a time**, for tests of concurrent
    /// transactions. moto's usual server is threaded and its TransactWriteItems takes no lock (a
    /// cancelled transaction restores a snapshot taken before it, over other requests' writes), so
    /// concurrent transactions are not atomic there; DynamoDB's are serializable. Serving requests in
    /// turn gives DynamoDB's isolation while the clients still race: a read-then-write cap check would
    /// still lose, because its read and its write are separate requests.
    pub fn start_serial() -> Moto {
        Self::start_python(
            "serial",
            "import sys\n\
from werkzeug.serving import run_simple\n\
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app\n\
run_simple('127.0.0.1', int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False, request_handler=MotoRequestHandler)\n",
        )
    }

    /// A server of its own that does not keep every model object it ever made, and serves one request
    /// at a time (as [`start_serial`](Self::start_serial): DynamoDB's isolation for concurrent
    /// transactions, which moto's threaded server lacks — there, concurrent transactions also fail
    /// with 500s now and then, and the SDK sends them again). moto records each instance of its models
    /// for its `/moto-api` data view and never lets go, and its TransactWriteItems deep-copies the
    /// whole table first (its rollback snapshot): every transaction leaks a copy of the table, which a
    /// run of thousands of transactions (a benchmark) cannot afford.
    pub fn start_untracked() -> Moto {
        Self::start_python(
            "untracked",
            "import sys\n\
from moto.core.common_models import BaseModel\n\
BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))\n\
from werkzeug.serving import run_simple\n\
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app\n\
run_simple('127.0.0.1', int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False, request_handler=MotoRequestHandler)\n",
        )
    }

    /// A server of its own whose EC2 `GetPasswordData` answers as EC2 does for a Windows instance
    /// launched with a key pair: the password, RSA-encrypted (PKCS#1 v1.5) with the key pair's public
    /// key, base64-encoded. moto itself answers with random text that is no ciphertext at all. The
    /// password of instance `i-…` is [`windows_password_of`]`("i-…")`, so a test can check what arrived.
    pub fn start_with_windows_passwords() -> Moto {
        let script = format!(
            "import sys\n{WINDOWS_PASSWORDS}\nfrom moto.server import main\nmain(['-H', '127.0.0.1', '-p', sys.argv[1]])\n"
        );
        Self::start_python("patched", &script)
    }

    /// Runs `script` (given the port as its argument) with the Python of `moto_server`.
    fn start_python(what: &str, script: &str) -> Moto {
        let bin = moto_bin().unwrap_or_else(|| {
            panic!("moto_server not found: run `bash .ci/test` (it installs moto[server] into .ci/.venv), or pip install 'moto[server]'")
        });
        let python = python_of(&bin);
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&python)
            .args(["-c", script, &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start a {what} moto with {}: {e}", python.display()));
        let m = Moto { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child) };
        m.wait_ready(Duration::from_secs(30));
        m
    }

    fn wait_ready(&self, within: Duration) {
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        let start = Instant::now();
        while start.elapsed() < within {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not listen on {addr} within {within:?}");
    }

    /// An SDK config pointing at the emulator with placeholder credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        shared::http::aws::config_loader()
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The Python that runs `moto_server` (its `#!` line), so the serial server imports the same moto.
fn python_of(moto_server: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(moto_server).unwrap_or_default();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| moto_server.with_file_name("python3"))
}

fn moto_bin() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/.venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("moto_server")).find(|p| p.is_file()))
}

/// The password [`Moto::start_with_windows_passwords`] gives a Windows instance.
pub fn windows_password_of(instance_id: &str) -> String {
    format!("Kasm-{instance_id}-P@ss")
}

/// Python run before moto serves: EC2's GetPasswordData as EC2Launch leaves it (see
/// [`Moto::start_with_windows_passwords`]). Empty for an instance without the Windows platform or key.
const WINDOWS_PASSWORDS: &str = r#"
import base64
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from moto.ec2.models.windows import WindowsBackend

def get_password_data(self, instance_id):
    inst = self.get_instance(instance_id)
    kp = self.key_pairs.get(inst.key_name or '')
    if inst.platform != 'windows' or kp is None:
        return ''
    key = serialization.load_ssh_public_key(kp.material_public)
    secret = ('Kasm-' + instance_id + '-P@ss').encode()
    return base64.b64encode(key.encrypt(secret, padding.PKCS1v15())).decode()

WindowsBackend.get_password_data = get_password_data
"#;
