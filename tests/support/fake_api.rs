//! The harness every provider's test server (or fault-injecting proxy) stands on: an axum server on
//! `127.0.0.1:0` that routes by method and route template, records every request, and answers from
//! a fault queue before the route's handler runs.
//!
//! - **Routes** are written `METHOD /path/{var}/more`, optionally with one parameter a query API
//!   routes by: `POST /?Action=RunInstances` (EC2's Query API puts the operation in a form field).
//!   Path segments are percent-decoded before matching; `{var}` matches one segment.
//! - **Faults** are queued per route (`"METHOD template"`): an [`Fault::Answer`] (status, headers such as
//!   `Retry-After`, body in the API's error shape), a [`Fault::Stall`] (no answer within the client's
//!   timeout; the API never acts on the request), or [`Fault::DropAnswer`] (the API acts on the
//!   request, then the connection drops before the answer: the crash between accept and record).
//!   A queue may start with requests that pass untouched (`skip`: "fail page 2").
//! - **Recording**: method, route template, decoded path, query, form and query parameters, headers
//!   without credentials, body and arrival time of every request, routed or not.
//! - **Bodies**: [`Reply`] builds answers (JSON, XML, text) and [`page`] cuts a list into pages with
//!   opaque continuation tokens, the way REST list calls page.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Query and form parameters; repeated keys keep every value in order.
pub type Params = BTreeMap<String, Vec<String>>;

/// One request as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The method.
    pub method: Method,
    /// The route template that matched, without the method (e.g. `/nodes/{node}/qemu/{vmid}`).
    pub route: String,
    /// The prefix the matched route lives below (the API's, or the route's own: [`FakeApiBuilder::route_below`]).
    pub prefix: String,
    /// The path below that prefix, each segment decoded.
    pub path: String,
    /// The values of the template's `{var}` segments.
    pub vars: BTreeMap<String, String>,
    /// The raw query string.
    pub query: String,
    /// Query parameters, then form-body parameters.
    pub params: Params,
    /// The request headers, credentials included (handlers may check them).
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The answer will be dropped ([`Fault::DropAnswer`]): work the API would finish in the
    /// background (a task nobody polls) should finish on its own.
    pub answer_lost: bool,
}

impl Incoming {
    /// The first value of parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    /// The value of template variable `k` (empty when the template has none).
    pub fn var(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or_default()
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The route template without the method (`(no route)` when none matched).
    pub route: String,
    /// The path below the API's prefix, each segment decoded.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Query and form parameters (repeated keys keep every value).
    pub params: Params,
    /// Headers, lower-case names, without credentials (see [`is_secret_header`]).
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first value of parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    /// `"METHOD route"`, the key faults are queued under.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.route)
    }
}

/// Headers that carry credentials and are never recorded.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-amz-security-token")
        || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("api-key")
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Headers besides `content-type`.
    pub headers: Vec<(String, String)>,
    /// `content-type`, if any.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    fn new(status: u16, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("a valid HTTP status"),
            headers: Vec::new(),
            content_type,
            body: body.into(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::new(status, Some("application/json"), serde_json::to_vec(body).expect("JSON"))
    }

    /// An XML answer (`text/xml`, as AWS Query APIs answer).
    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, Some("text/xml;charset=UTF-8"), body.into())
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, Some("text/plain; charset=utf-8"), body.into())
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, None, Bytes::new())
    }

    /// With header `name: value` (e.g. `Retry-After`).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The body as text.
    pub fn text_body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::from(self.body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        if let Some(ct) = self.content_type {
            h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (k, v) in self.headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(&v).expect("header value"),
            );
        }
        r
    }
}

/// What the API does instead of its usual answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers this, without acting on the request.
    Answer(Reply),
    /// Holds the request for `hold` (longer than the client waits), then answers `then`; the API
    /// never acts on it.
    Stall {
        /// How long.
        hold: Duration,
        /// The late answer nobody reads.
        then: Reply,
    },
    /// Acts on the request as usual, then drops the connection before the answer arrives.
    DropAnswer,
}

/// A route handler: the request in, the answer out.
pub type Handler = Arc<dyn Fn(Incoming) -> BoxFuture<'static, Reply> + Send + Sync>;

/// A [`Handler`] from an async closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// Checks a request before faults and handlers (authentication): `Some` answers it.
pub type Guard = Arc<dyn Fn(&Incoming) -> Option<Reply> + Send + Sync>;

/// Answers a request no route matches (method, raw path).
pub type Unrouted = Arc<dyn Fn(&Method, &str) -> Reply + Send + Sync>;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Var(String),
}

struct Route {
    method: Method,
    segs: Vec<Seg>,
    /// A parameter the route requires, e.g. `("Action", "RunInstances")`.
    param: Option<(String, String)>,
    /// The template without the method.
    template: String,
    /// The prefix this route lives below when it is not the API's.
    prefix: Option<String>,
    handler: Handler,
}

impl Route {
    fn parse(template: &str, handler: Handler) -> Route {
        let (method, rest) = template.split_once(' ').unwrap_or_else(|| panic!("route `{template}`: METHOD /path"));
        let (path, param) = match rest.split_once('?') {
            Some((p, q)) => {
                let (k, v) = q.split_once('=').unwrap_or_else(|| panic!("route `{template}`: ?name=value"));
                (p, Some((k.to_string(), v.to_string())))
            }
            None => (rest, None),
        };
        let segs = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(v) => Seg::Var(v.to_string()),
                None => Seg::Lit(s.to_string()),
            })
            .collect();
        Route {
            method: Method::from_bytes(method.as_bytes()).expect("method"),
            segs,
            param,
            template: rest.to_string(),
            prefix: None,
            handler,
        }
    }

    fn matches(&self, method: &Method, segs: &[String], params: &Params) -> Option<BTreeMap<String, String>> {
        if *method != self.method || segs.len() != self.segs.len() {
            return None;
        }
        if let Some((k, v)) = &self.param
            && params.get(k).and_then(|x| x.first()) != Some(v)
        {
            return None;
        }
        let mut vars = BTreeMap::new();
        for (want, got) in self.segs.iter().zip(segs) {
            match want {
                Seg::Lit(l) if l == got => {}
                Seg::Lit(_) => return None,
                Seg::Var(name) => {
                    vars.insert(name.clone(), got.clone());
                }
            }
        }
        Some(vars)
    }
}

#[derive(Default)]
struct State {
    /// Per route key: `None` passes a request untouched, `Some` answers it with the fault.
    faults: HashMap<String, VecDeque<Option<Fault>>>,
    requests: Vec<Recorded>,
}

struct Api {
    prefix: String,
    routes: Vec<Route>,
    fallback: Option<Handler>,
    guard: Option<Guard>,
    unrouted: Unrouted,
    state: Mutex<State>,
}

/// Builds a [`FakeApi`].
pub struct FakeApiBuilder {
    api: Api,
}

impl std::fmt::Debug for FakeApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiBuilder").field("prefix", &self.api.prefix).finish_non_exhaustive()
    }
}

impl FakeApiBuilder {
    /// Every path lives below `prefix` (e.g. `/api2/json`); others are answered as unrouted.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.api.prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    /// Routes `template` (`"GET /vms/{id}"`, `"POST /?Action=RunInstances"`) to `h`.
    pub fn route(mut self, template: &str, h: Handler) -> Self {
        self.api.routes.push(Route::parse(template, h));
        self
    }

    /// Routes `template` to `h` below `prefix` instead of the API's prefix (one server standing in for
    /// two APIs whose paths start with different versions, e.g. OCI's Core `/20160918` and Limits
    /// `/20190729`). Faults are keyed by `"METHOD template"` as for [`route`](Self::route).
    pub fn route_below(mut self, prefix: &str, template: &str, h: Handler) -> Self {
        let mut r = Route::parse(template, h);
        r.prefix = Some(prefix.trim_end_matches('/').to_string());
        self.api.routes.push(r);
        self
    }

    /// Handles requests no route matches (a proxy forwarding everything); they are recorded under
    /// route `(no route)`.
    pub fn fallback(mut self, h: Handler) -> Self {
        self.api.fallback = Some(h);
        self
    }

    /// Runs `g` on every routed request before faults and handlers (authentication).
    pub fn guard(mut self, g: impl Fn(&Incoming) -> Option<Reply> + Send + Sync + 'static) -> Self {
        self.api.guard = Some(Arc::new(g));
        self
    }

    /// The answer to requests no route matches when there is no fallback (default: 404).
    pub fn unrouted(mut self, f: impl Fn(&Method, &str) -> Reply + Send + Sync + 'static) -> Self {
        self.api.unrouted = Arc::new(f);
        self
    }

    /// Serves on `127.0.0.1:0`; the server ends with the test's runtime.
    pub async fn start(self) -> FakeApi {
        let api = Arc::new(self.api);
        let a = api.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let a = a.clone();
            async move { dispatch(a, method, uri, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { url: format!("http://{addr}"), api }
    }
}

/// A running fake API.
#[derive(Clone)]
pub struct FakeApi {
    /// `http://127.0.0.1:PORT` (without the prefix).
    pub url: String,
    api: Arc<Api>,
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi").field("url", &self.url).finish_non_exhaustive()
    }
}

impl FakeApi {
    /// A builder.
    pub fn builder() -> FakeApiBuilder {
        FakeApiBuilder {
            api: Api {
                prefix: String::new(),
                routes: Vec::new(),
                fallback: None,
                guard: None,
                unrouted: Arc::new(|m, p| Reply::text(404, format!("no route for {m} {p}"))),
                state: Mutex::new(State::default()),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.api.state.lock().expect("fake API lock")
    }

    /// After `skip` requests of `route` (`"METHOD template"`) pass, the next `times` get `fault`.
    pub fn inject(&self, route: &str, fault: Fault, skip: usize, times: usize) {
        assert!(
            self.api.routes.iter().any(|r| format!("{} {}", r.method, r.template) == route),
            "no route {route} to inject a fault into"
        );
        let mut st = self.lock();
        let q = st.faults.entry(route.to_string()).or_default();
        q.extend(std::iter::repeat_n(None, skip));
        q.extend(std::iter::repeat_n(Some(fault), times));
    }

    /// Forgets every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many requests of `route` (`"METHOD template"`) arrived so far.
    pub fn count(&self, route: &str) -> usize {
        self.lock().requests.iter().filter(|r| r.key() == route).count()
    }

    /// The last request of `route`.
    pub fn last(&self, route: &str) -> Option<Recorded> {
        self.lock().requests.iter().rev().find(|r| r.key() == route).cloned()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

/// Percent-decodes one path segment.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(text: &str, into: &mut Params) {
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        into.entry(k.into_owned()).or_default().push(v.into_owned());
    }
}

/// A response whose body fails before any byte: the connection drops without an answer.
fn dropped() -> Response {
    let lost = futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("answer dropped")) });
    Response::new(Body::from_stream(lost))
}

async fn dispatch(api: Arc<Api>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let raw = uri.path();
    let below_of = |prefix: &str| {
        if prefix.is_empty() {
            Some(raw)
        } else {
            raw.strip_prefix(prefix).filter(|r| r.is_empty() || r.starts_with('/'))
        }
    };
    let segs_of = |below: &str| -> Vec<String> { below.split('/').filter(|s| !s.is_empty()).map(decode).collect() };
    let query = uri.query().unwrap_or_default().to_string();
    let mut params = Params::new();
    parse_params(&query, &mut params);
    let is_form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        parse_params(&String::from_utf8_lossy(&body), &mut params);
    }
    let matched = api.routes.iter().find_map(|r| {
        let prefix = r.prefix.as_deref().unwrap_or(api.prefix.as_str());
        let segs = segs_of(below_of(prefix)?);
        r.matches(&method, &segs, &params).map(|vars| (r, vars, prefix.to_string(), segs))
    });
    let segs = match &matched {
        Some((_, _, _, segs)) => segs.clone(),
        None => segs_of(below_of(api.prefix.as_str()).unwrap_or_default()),
    };
    let path = format!("/{}", segs.join("/"));

    let recorded = Recorded {
        method: method.to_string(),
        route: matched.as_ref().map_or_else(|| "(no route)".to_string(), |(r, ..)| r.template.clone()),
        path: path.clone(),
        query: query.clone(),
        params: params.clone(),
        headers: headers
            .iter()
            .filter(|(k, _)| !is_secret_header(k.as_str()))
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let key = recorded.key();
    api.state.lock().expect("fake API lock").requests.push(recorded);

    let Some((route, vars, prefix, _)) = matched else {
        let incoming = Incoming {
            method: method.clone(),
            route: "(no route)".into(),
            prefix: api.prefix.clone(),
            path,
            vars: BTreeMap::new(),
            query,
            params,
            headers,
            body,
            answer_lost: false,
        };
        return match &api.fallback {
            Some(f) => f(incoming).await.into_response(),
            None => (api.unrouted)(&method, raw).into_response(),
        };
    };
    let mut incoming = Incoming {
        method,
        route: route.template.clone(),
        prefix,
        path,
        vars,
        query,
        params,
        headers,
        body,
        answer_lost: false,
    };
    if let Some(g) = &api.guard
        && let Some(reply) = g(&incoming)
    {
        return reply.into_response();
    }
    let fault = api.state.lock().expect("fake API lock").faults.get_mut(&key).and_then(VecDeque::pop_front).flatten();
    match fault {
        None => (route.handler)(incoming).await.into_response(),
        Some(Fault::Answer(reply)) => reply.into_response(),
        Some(Fault::Stall { hold, then }) => {
            tokio::time::sleep(hold).await;
            then.into_response()
        }
        Some(Fault::DropAnswer) => {
            incoming.answer_lost = true;
            let _ = (route.handler)(incoming).await;
            dropped()
        }
    }
}

/// One page of `items` from the opaque `token` a previous page gave (`None`: the first page), and
/// the token of the next page (`None` on the last one).
pub fn page<T: Clone>(items: &[T], token: Option<&str>, size: usize) -> (Vec<T>, Option<String>) {
    assert!(size > 0, "a page holds at least one item");
    let start = token.and_then(|t| t.strip_prefix("page-")).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    (items.get(start..end).unwrap_or_default().to_vec(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates_and_parameters() {
        let h = handler(|_| async { Reply::empty(200) });
        let r = Route::parse("GET /nodes/{node}/qemu/{vmid}/status/start", h.clone());
        let segs: Vec<String> = ["nodes", "pve1", "qemu", "5000", "status", "start"].map(String::from).into();
        let vars = r.matches(&Method::GET, &segs, &Params::new()).expect("matches");
        assert_eq!(vars["node"], "pve1");
        assert_eq!(vars["vmid"], "5000");
        assert!(r.matches(&Method::POST, &segs, &Params::new()).is_none());
        assert!(r.matches(&Method::GET, &segs[..5], &Params::new()).is_none());

        let q = Route::parse("POST /?Action=RunInstances", h);
        let mut p = Params::new();
        p.insert("Action".into(), vec!["RunInstances".into()]);
        assert!(q.matches(&Method::POST, &[], &p).is_some());
        p.insert("Action".into(), vec!["DescribeInstances".into()]);
        assert!(q.matches(&Method::POST, &[], &p).is_none());
    }

    #[test]
    fn segments_are_decoded_and_pages_chain() {
        assert_eq!(decode("UPID%3Apve1%3A1"), "UPID:pve1:1");
        assert_eq!(decode("100%"), "100%");
        let items: Vec<u32> = (0..7).collect();
        let (a, t) = page(&items, None, 3);
        let (b, t) = page(&items, t.as_deref(), 3);
        let (c, t) = page(&items, t.as_deref(), 3);
        assert_eq!((a, b, c, t), (vec![0, 1, 2], vec![3, 4, 5], vec![6], None));
    }

    #[test]
    fn credentials_are_not_recorded() {
        for h in ["Authorization", "x-amz-security-token", "X-Auth-Token", "x-api-key", "Cookie"] {
            assert!(is_secret_header(h), "{h}");
        }
        assert!(!is_secret_header("content-type") && !is_secret_header("x-amz-date"));
    }
}
