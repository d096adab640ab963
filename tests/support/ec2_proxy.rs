//! A fault-injecting proxy in front of moto's EC2, on the shared fake-API harness
//! ([`crate::fake_api`]): every request is forwarded to moto unless a fault answers it, and
//! [`Ec2Proxy`] is the provider conformance suite's [`Harness`] for the AWS provider.
//!
//! - **Routes**: EC2's Query API names the operation in the form field `Action`, so the routes are
//!   `POST /?Action=RunInstances` (the suite's `Create`), `POST /?Action=DescribeInstances` (`Get`
//!   and `List`: the provider reads one instance with `InstanceId.1`, lists with `tag:` filters),
//!   `POST /?Action=TerminateInstances` (`Delete`); everything else is forwarded as it is.
//! - **Faults** are EC2's error answers: the XML document of the EC2 API reference's "Error codes"
//!   page (`<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors>
//!   <RequestID>…</RequestID></Response>`) with the HTTP status EC2 sends for the code: client
//!   errors 4xx (`AuthFailure` 401, `UnauthorizedOperation` 403, `InvalidInstanceID.NotFound` and
//!   `IncorrectInstanceState` 400), server errors 5xx (`InternalError` and
//!   `InsufficientInstanceCapacity` 500), and throttling as `RequestLimitExceeded` with 503 —
//!   without `Retry-After`: EC2 gives no wait hint, so the suite checks the class only.
//! - **ClientToken**: moto ignores RunInstances' `ClientToken`; EC2 answers a repeated token with
//!   the first request's result (and `IdempotentParameterMismatch` when the parameters differ). The
//!   proxy does the same, so an SDK retry after a lost answer behaves as on EC2. RunInstances
//!   requests are handled one at a time: a retry waits for the first attempt's answer.

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use shared::model::OwnerLabels;
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Params, Reply};

/// A moto-listed Linux AMI of us-east-1 (root device `/dev/sda1`).
pub const AMI: &str = "ami-1e749f67";

/// The live instance states (what a provider may still own).
const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// An EC2 error answer in the documented shape.
pub fn ec2_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
             </Error></Errors><RequestID>{}</RequestID></Response>",
            uuid_like(code)
        ),
    )
}

fn uuid_like(seed: &str) -> String {
    let n = seed.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{n:08x}-f9aa-478e-9ede-{:012x}", u64::from(n) * 7919)
}

#[derive(Debug, Default)]
struct State {
    /// ClientToken → (the request's parameters but the signature-dependent ones, the answer).
    tokens: HashMap<String, (Params, Reply)>,
    /// `<instanceState>` elements in DescribeInstances answers that reached the client.
    listed: usize,
}

/// The proxy; start one per test.
#[derive(Debug, Clone)]
pub struct Ec2Proxy {
    /// `http://127.0.0.1:PORT`: the provider's EC2 endpoint.
    pub url: String,
    api: FakeApi,
    /// moto itself, bypassing the proxy (the harness's own view).
    moto: aws_sdk_ec2::Client,
    state: Arc<Mutex<State>>,
    stall: Duration,
    page_size: Option<usize>,
}

fn route(op: Op) -> &'static str {
    match op {
        Op::Create => "POST /?Action=RunInstances",
        Op::Get | Op::List => "POST /?Action=DescribeInstances",
        Op::Delete => "POST /?Action=TerminateInstances",
    }
}

/// The request's parameters as EC2 compares them for a repeated ClientToken.
fn comparable(params: &Params) -> Params {
    params.iter().filter(|(k, _)| k.as_str() != "Version").map(|(k, v)| (k.clone(), v.clone())).collect()
}

async fn forward(http: &reqwest::Client, moto: &str, req: &Incoming) -> Reply {
    let url =
        if req.query.is_empty() { format!("{moto}{}", req.path) } else { format!("{moto}{}?{}", req.path, req.query) };
    let mut out = http.request(req.method.clone(), url).body(req.body.clone());
    for (k, v) in &req.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            out = out.header(k, v);
        }
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => return ec2_error(502, "ProxyError", &format!("moto did not answer: {e}")),
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection" | "date" | "server")
        })
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp.bytes().await.unwrap_or_default();
    Reply { status: reqwest::StatusCode::from_u16(status).expect("status"), headers, content_type: None, body }
}

impl Ec2Proxy {
    /// A proxy in front of `moto_endpoint`, for a provider whose EC2 client gives up on an attempt
    /// before `stall` and lists in pages of `page_size` (`None`: one page).
    pub async fn start(moto_endpoint: &str, stall: Duration, page_size: Option<usize>) -> Ec2Proxy {
        let http = shared::http::build_client(&Default::default()).expect("HTTP client");
        let state = Arc::new(Mutex::new(State::default()));
        let run_lock = Arc::new(tokio::sync::Mutex::new(()));
        let moto_url = moto_endpoint.trim_end_matches('/').to_string();

        let fwd = |http: reqwest::Client, moto: String| {
            fake_api::handler(move |req: Incoming| {
                let (http, moto) = (http.clone(), moto.clone());
                async move { forward(&http, &moto, &req).await }
            })
        };
        let (h, m, st, lock) = (http.clone(), moto_url.clone(), state.clone(), run_lock.clone());
        let run = fake_api::handler(move |req: Incoming| {
            let (http, moto, st, lock) = (h.clone(), m.clone(), st.clone(), lock.clone());
            async move {
                let _one_at_a_time = lock.lock().await;
                let token = req.param("ClientToken").map(str::to_string);
                let params = comparable(&req.params);
                if let Some(t) = &token {
                    let known = st.lock().expect("lock").tokens.get(t).cloned();
                    if let Some((first, answer)) = known {
                        return if first == params {
                            answer
                        } else {
                            ec2_error(
                                400,
                                "IdempotentParameterMismatch",
                                "The client token you have provided is associated with a resource that is already deleted or the parameters differ.",
                            )
                        };
                    }
                }
                let answer = forward(&http, &moto, &req).await;
                if let Some(t) = token
                    && answer.status.is_success()
                {
                    st.lock().expect("lock").tokens.insert(t, (params, answer.clone()));
                }
                answer
            }
        });
        let (h, m, st) = (http.clone(), moto_url.clone(), state.clone());
        let describe = fake_api::handler(move |req: Incoming| {
            let (http, moto, st) = (h.clone(), m.clone(), st.clone());
            async move {
                let answer = forward(&http, &moto, &req).await;
                if answer.status.is_success() {
                    st.lock().expect("lock").listed += answer.text_body().matches("<instanceState>").count();
                }
                answer
            }
        });
        let api = FakeApi::builder()
            .route("POST /?Action=RunInstances", run)
            .route("POST /?Action=DescribeInstances", describe)
            .route("POST /?Action=TerminateInstances", fwd(http.clone(), moto_url.clone()))
            .fallback(fwd(http, moto_url.clone()))
            .start()
            .await;

        let conf = shared::http::aws::config_loader()
            .endpoint_url(&moto_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await;
        let moto = aws_sdk_ec2::Client::new(&conf);
        // moto builds its EC2 backend (AMIs, ...) on the first request, which takes seconds: not
        // while a client with a short timeout waits.
        moto.describe_images().image_ids(AMI).send().await.expect("moto DescribeImages");
        moto.describe_instances().send().await.expect("moto DescribeInstances");
        Ec2Proxy { url: api.url.clone(), api, moto, state, stall, page_size }
    }

    /// The fake API underneath (the request record).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    async fn live(&self, filters: Vec<Filter>) -> BTreeSet<String> {
        let mut f = filters;
        f.push(Filter::builder().name("instance-state-name").set_values(Some(LIVE.map(String::from).into())).build());
        let out = self.moto.describe_instances().set_filters(Some(f)).send().await.expect("moto DescribeInstances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect()
    }
}

#[async_trait]
impl Harness for Ec2Proxy {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => {
                ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
            }
            F::Forbidden => {
                ec2_error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.")
            }
            F::NotFound => {
                ec2_error(400, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist")
            }
            F::Conflict => ec2_error(
                400,
                "IncorrectInstanceState",
                "The instance 'i-0123456789abcdef0' is not in a state from which it can be terminated.",
            ),
            F::RateLimited { .. } => ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."),
            F::ServerError => ec2_error(500, "InternalError", "An internal error has occurred."),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: ec2_error(500, "InternalError", "Too late.") };
                return self.api.inject(route(op), late, skip, times);
            }
            F::OutOfCapacity => ec2_error(
                500,
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a).",
            ),
        };
        self.api.inject(route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.api.inject(route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.api.count(route(op))
    }

    fn retries(&self) -> RetryRules {
        // The SDK's standard retry strategy retries every operation (RunInstances is safe to repeat
        // with its ClientToken); EC2's throttling answer carries no wait.
        RetryRules { retried: &Op::ALL, retry_after_hint: false }
    }

    fn page_size(&self) -> Option<usize> {
        self.page_size
    }

    fn vms_in_list_answers(&self) -> usize {
        self.state.lock().expect("lock").listed
    }

    fn last_create_token(&self) -> Option<String> {
        self.api.last(route(Op::Create)).and_then(|r| r.param("ClientToken").map(str::to_string))
    }

    fn missing_id(&self) -> String {
        "i-0123456789abcdef0".into()
    }

    async fn create_foreign_vm(&self) -> String {
        let out =
            self.moto.run_instances().image_id(AMI).min_count(1).max_count(1).send().await.expect("moto RunInstances");
        out.instances()[0].instance_id().expect("an instance id").to_string()
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.moto.terminate_instances().instance_ids(id).send().await.expect("moto TerminateInstances");
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.live(vec![Filter::builder().name("instance-id").values(id).build()]).await.contains(id)
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let by_claim =
            Filter::builder().name(format!("tag:{}", OwnerLabels::CLAIM)).values(spec.claim.as_str()).build();
        let by_name = Filter::builder().name("tag:Name").values(&spec.name).build();
        let mut ids = self.live(vec![by_claim]).await;
        ids.extend(self.live(vec![by_name]).await);
        ids.len()
    }
}
