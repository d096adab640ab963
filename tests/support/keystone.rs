//! A real Keystone for the OpenStack tests: PyPI `keystone` served by `uwsgi` on a loopback port,
//! SQLite database, Fernet tokens, bootstrapped with `keystone-manage bootstrap` (admin user and
//! project in the `Default` domain, roles `admin`, `manager`, `member`, `reader`).
//!
//! Each test process starts its own from `.ci/.venv-keystone` (where `.ci/test` installs it): a test
//! registers its services in the catalogue, and a catalogue shared by concurrent tests would list
//! several of each. The database is bootstrapped once per machine into a template directory under the
//! system temp dir (about 15 s) and copied for every instance (starting uwsgi takes about 3 s).
//!
//! `Keystone::tenant` makes a project with a user (password) holding `member` on it, and an
//! application credential of that user; `Keystone::register` puts a service's public endpoint in the
//! catalogue. A test server checks tokens with `Keystone::validate` (`GET /v3/auth/tokens`, as
//! keystonemiddleware does). Nothing leaves the loopback interface.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the bootstrapped `admin` user of an own Keystone.
pub const ADMIN_PASSWORD: &str = "kasm-autoscale-test-admin";

/// A running (or shared) Keystone; its API through [`KeystoneApi`].
#[derive(Debug)]
pub struct Keystone {
    api: KeystoneApi,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

/// Keystone's API as the tests and the test servers call it (cheap to clone).
#[derive(Debug, Clone)]
pub struct KeystoneApi {
    /// `http://127.0.0.1:PORT` (the API is below `/v3`).
    pub url: String,
    admin_password: String,
    http: reqwest::Client,
    /// The admin's token, once issued (the bootstrapped admin's password hash is slow to check).
    admin: std::sync::Arc<tokio::sync::Mutex<Option<String>>>,
}

impl std::ops::Deref for Keystone {
    type Target = KeystoneApi;
    fn deref(&self) -> &KeystoneApi {
        &self.api
    }
}

/// A project with a user and an application credential (ids and secrets are test values).
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The project's name.
    pub project: String,
    /// The project's id.
    pub project_id: String,
    /// The user's name (domain `Default`).
    pub user: String,
    /// The user's id.
    pub user_id: String,
    /// The user's password.
    pub password: String,
    /// The application credential's id.
    pub app_cred_id: String,
    /// The application credential's secret.
    pub app_cred_secret: String,
}

/// What `GET /v3/auth/tokens` says of a valid token.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The project the token is scoped to.
    pub project_id: String,
    /// The application credential's access rules, when the token is an application credential's
    /// and the credential has rules: `(service type, method, path glob)`.
    pub access_rules: Option<Vec<(String, String, String)>>,
    /// The names of the token's roles (implied roles included, as Keystone lists them).
    pub roles: Vec<String>,
}

fn venv_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/.venv-keystone/bin").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[DEFAULT]\nlog_dir = {d}\n[database]\nconnection = sqlite:///{d}/keystone.db\n\
         [identity]\npassword_hash_rounds = 4\n\
         [token]\nprovider = fernet\nexpiration = 3600\n\
         [fernet_tokens]\nkey_repository = {d}/fernet-keys\n\
         [fernet_receipts]\nkey_repository = {d}/fernet-receipts\n\
         [credential]\nkey_repository = {d}/credential-keys\n"
    )
}

fn run(args: &[&str], conf_file: &Path) {
    let out = Command::new(venv_bin("keystone-manage"))
        .arg("--config-file")
        .arg(conf_file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("keystone-manage {args:?}: {e}"));
    assert!(
        out.status.success(),
        "keystone-manage {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read template") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The bootstrapped template (database + keys), made once per machine.
fn template() -> PathBuf {
    let tpl = std::env::temp_dir().join("kasm-autoscale-keystone-template-v1");
    if tpl.join("ready").is_file() {
        return tpl;
    }
    let work = std::env::temp_dir().join(format!("kasm-autoscale-keystone-bootstrap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir");
    let conf_file = work.join("keystone.conf");
    std::fs::write(&conf_file, conf(&work)).expect("write keystone.conf");
    let started = Instant::now();
    run(&["db_sync"], &conf_file);
    for what in ["fernet_setup", "credential_setup"] {
        run(&[what, "--keystone-user", "root", "--keystone-group", "root"], &conf_file);
    }
    // Receipts have their own key repository.
    copy_dir(&work.join("fernet-keys"), &work.join("fernet-receipts"));
    run(
        &[
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-public-url",
            "http://127.0.0.1:5000/v3",
            "--bootstrap-region-id",
            "RegionOne",
        ],
        &conf_file,
    );
    std::fs::write(work.join("ready"), format!("{:?}", started.elapsed())).expect("mark ready");
    eprintln!("keystone: bootstrapped a template in {:?}", started.elapsed());
    // Another process may have won the race: theirs is as good as ours.
    if std::fs::rename(&work, &tpl).is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    tpl
}

impl Keystone {
    /// A new Keystone. Panics with what to do when Keystone is not installed: a test that needs it
    /// must not silently pass without it.
    pub fn start() -> Keystone {
        shared::http::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        assert!(
            venv_bin("uwsgi").is_file() && venv_bin("keystone-manage").is_file(),
            "Keystone is not installed: run `bash .ci/test` (it installs keystone and uwsgi into .ci/.venv-keystone), \
             or `python3 -m venv .ci/.venv-keystone && .ci/.venv-keystone/bin/pip install keystone uwsgi`"
        );
        let tpl = template();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kasm-autoscale-keystone-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&tpl, &dir);
        let conf_file = dir.join("keystone.conf");
        std::fs::write(&conf_file, conf(&dir)).expect("write keystone.conf");
        let log = std::fs::File::create(dir.join("uwsgi.log")).expect("log");
        let child = Command::new(venv_bin("uwsgi"))
            .args(["--http-socket", &format!("127.0.0.1:{port}")])
            // uwsgi's plain HTTP socket serves one request per connection: say so, or a client
            // reusing the connection finds it closed.
            .args(["--add-header", "Connection: close"])
            .args(["--module", "keystone.wsgi.api:application"])
            .arg("--home")
            .arg(venv_bin("").parent().expect("venv"))
            .args(["--processes", "1", "--threads", "8"])
            .env("OS_KEYSTONE_CONFIG_FILES", &conf_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start uwsgi: {e}"));
        let k = Keystone {
            api: KeystoneApi {
                url: format!("http://127.0.0.1:{port}"),
                admin_password: ADMIN_PASSWORD.into(),
                http,
                admin: Default::default(),
            },
            child: Some(child),
            dir: Some(dir),
        };
        k.wait_ready(Duration::from_secs(60));
        k
    }

    fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        let addr = self.url.trim_start_matches("http://").to_string();
        while started.elapsed() < limit {
            if std::net::TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.dir.as_ref().and_then(|d| std::fs::read_to_string(d.join("uwsgi.log")).ok()).unwrap_or_default();
        panic!("Keystone did not listen on {} within {limit:?}:\n{log}", self.url);
    }

    /// Its API, to hand to a test server.
    pub fn api(&self) -> KeystoneApi {
        self.api.clone()
    }
}

impl KeystoneApi {
    /// A token (`X-Subject-Token`) for `body` (a whole `{"auth": ...}` request).
    pub async fn issue(&self, body: &Value) -> Result<String, (StatusCode, String)> {
        // uwsgi accepts connections before Keystone answers: the first requests may see a 5xx.
        let mut last = (StatusCode::SERVICE_UNAVAILABLE, String::new());
        for _ in 0..50 {
            match self.http.post(format!("{}/v3/auth/tokens", self.url)).json(body).send().await {
                Ok(r) if r.status() == StatusCode::CREATED => {
                    return Ok(r.headers()["x-subject-token"].to_str().expect("token").to_string());
                }
                Ok(r) if r.status().is_server_error() => last = (r.status(), r.text().await.unwrap_or_default()),
                Ok(r) => return Err((r.status(), r.text().await.unwrap_or_default())),
                Err(e) => last = (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last)
    }

    /// A token of the bootstrapped admin, scoped to the `admin` project (issued once; see
    /// [`KeystoneApi::fresh_admin_token`]).
    pub async fn admin_token(&self) -> String {
        let mut g = self.admin.lock().await;
        if let Some(t) = &*g {
            return t.clone();
        }
        let t = self.issue_admin().await;
        *g = Some(t.clone());
        t
    }

    /// A new token of the bootstrapped admin (the cached one is replaced).
    pub async fn fresh_admin_token(&self) -> String {
        let t = self.issue_admin().await;
        *self.admin.lock().await = Some(t.clone());
        t
    }

    async fn issue_admin(&self) -> String {
        self.issue(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": self.admin_password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
        }}))
        .await
        .unwrap_or_else(|e| panic!("admin token: {e:?}"))
    }

    async fn admin(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method.clone(), format!("{}/v3{path}", self.url)).header("X-Auth-Token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A project `name` with a user (password, `member` role on it) and an application credential of
    /// that user with `access_rules` (Keystone's `[{service, method, path}]`; `None`: unrestricted).
    pub async fn tenant(&self, name: &str, access_rules: Option<Value>) -> Tenant {
        let admin = self.admin_token().await;
        let p = self
            .admin(
                reqwest::Method::POST,
                "/projects",
                &admin,
                Some(json!({"project": {"name": name, "domain_id": "default"}})),
            )
            .await;
        let project_id = p["project"]["id"].as_str().expect("project id").to_string();
        let user = format!("{name}-user");
        let password = format!("pw-{name}-0123456789");
        let u = self
            .admin(
                reqwest::Method::POST,
                "/users",
                &admin,
                Some(json!({"user": {"name": user, "password": password, "domain_id": "default", "default_project_id": project_id}})),
            )
            .await;
        let user_id = u["user"]["id"].as_str().expect("user id").to_string();
        let roles = self.admin(reqwest::Method::GET, "/roles?name=member", &admin, None).await;
        let role = roles["roles"][0]["id"].as_str().expect("the member role").to_string();
        self.admin(reqwest::Method::PUT, &format!("/projects/{project_id}/users/{user_id}/roles/{role}"), &admin, None)
            .await;
        let user_token = self
            .issue(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"id": project_id}}
            }}))
            .await
            .unwrap_or_else(|e| panic!("user token: {e:?}"));
        let mut cred = json!({"name": format!("{name}-kasm-autoscale")});
        if let Some(rules) = access_rules {
            cred["access_rules"] = rules;
        }
        let c = self
            .admin(
                reqwest::Method::POST,
                &format!("/users/{user_id}/application_credentials"),
                &user_token,
                Some(json!({ "application_credential": cred })),
            )
            .await;
        Tenant {
            project: name.to_string(),
            project_id,
            user,
            user_id,
            password,
            app_cred_id: c["application_credential"]["id"].as_str().expect("id").to_string(),
            app_cred_secret: c["application_credential"]["secret"].as_str().expect("secret").to_string(),
        }
    }

    /// Registers `url` as the public endpoint of a new service of `kind` (`compute`, `volumev3`,
    /// `image`, `network`) named `name`, in RegionOne.
    pub async fn register(&self, kind: &str, name: &str, url: &str) {
        let admin = self.admin_token().await;
        let s = self
            .admin(reqwest::Method::POST, "/services", &admin, Some(json!({"service": {"type": kind, "name": name}})))
            .await;
        let id = s["service"]["id"].as_str().expect("service id").to_string();
        self.admin(
            reqwest::Method::POST,
            "/endpoints",
            &admin,
            Some(json!({"endpoint": {"service_id": id, "interface": "public", "url": url, "region_id": "RegionOne"}})),
        )
        .await;
    }

    /// What Keystone says of `token` (`GET /v3/auth/tokens` with a service token, as
    /// keystonemiddleware asks, access rules included); `None` when it is not valid (expired,
    /// revoked, unknown).
    pub async fn validate(&self, service_token: &str, token: &str) -> Option<Validated> {
        let r = self
            .http
            .get(format!("{}/v3/auth/tokens", self.url))
            .header("X-Auth-Token", service_token)
            .header("X-Subject-Token", token)
            .header("OpenStack-Identity-Access-Rules", "1")
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        let t = &v["token"];
        let access_rules = t["application_credential"]["access_rules"].as_array().map(|rules| {
            rules
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("service"), s("method"), s("path"))
                })
                .collect()
        });
        let roles = t["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Some(Validated { project_id: t["project"]["id"].as_str().unwrap_or_default().to_string(), access_rules, roles })
    }

    /// Revokes `token` (`DELETE /v3/auth/tokens`): services refuse it from now on, as an expired one.
    pub async fn revoke(&self, token: &str) {
        let admin = self.admin_token().await;
        let r = self
            .http
            .delete(format!("{}/v3/auth/tokens", self.url))
            .header("X-Auth-Token", admin)
            .header("X-Subject-Token", token)
            .send()
            .await
            .expect("revoke");
        assert!(r.status().is_success(), "revoke: HTTP {}", r.status());
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
