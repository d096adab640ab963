//! The Kubernetes REST calls: JSON objects by path, with the API machinery's wire names
//! (`metadata.name`, `metadata.labels`, `items`, `metadata.continue`, `DeleteOptions.propagationPolicy`,
//! `Status`). Paths are built from segments under the base URL (which may carry a path, e.g. Rancher's
//! `/k8s/clusters/local`). Objects stay `serde_json::Value`: each provider reads the few fields it
//! needs, naming them in its errors.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::Error;
use super::credential::{Auth, Credential};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig};

/// The default page size of lists (`limit`).
pub(crate) const PAGE: usize = 250;

/// A Kubernetes API server.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    credential: Credential,
    retry: RetryConfig,
    page: usize,
}

/// One request.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'a str, String)>,
    body: Option<&'a Value>,
    what: &'a str,
    /// A value in the body to redact from errors besides the token (a Secret's user data).
    secret: Option<&'a SecretString>,
}

impl Client {
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Credential, retry: RetryConfig) -> Self {
        Client { http, base, credential, retry, page: PAGE }
    }

    /// Uses `retry` for every call.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Lists `n` objects per page (at least 1; tests use small pages).
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page = n.max(1);
        self
    }

    /// The base URL, as given.
    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty().extend(path);
        }
        u
    }

    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        let mut auth = self.credential.get().await?;
        let mut refreshed = false;
        loop {
            match self.send(&c, &auth).await {
                Err(e) if e.status() == Some(401) && !refreshed => match self.credential.refresh(&auth).await? {
                    Some(fresh) => {
                        tracing::info!("the API refused the token; sending again with the rotated one");
                        auth = fresh;
                        refreshed = true;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    async fn send(&self, c: &Call<'_>, auth: &Auth) -> Result<String, Error> {
        let redactor = match c.secret {
            Some(s) => auth.redactor.clone().with_secret(s),
            None => auth.redactor.clone(),
        };
        let redactor = &redactor;
        let mut url = self.url(c.path);
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self
            .http
            .request(c.method.clone(), url)
            .header(AUTHORIZATION, auth.header.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        // Every POST we send creates an object by its deterministic name (or is a read such as a
        // SelfSubjectAccessReview): sending it again after a lost answer gets 409 AlreadyExists,
        // which the caller resolves by reading the object, so retrying is safe.
        let resp = crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, redactor)
            .await
            .map_err(http_err)?;
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))
    }

    fn decode(what: &str, text: &str) -> Result<Value, Error> {
        // serde's message names the position, never the value.
        serde_json::from_str(text).map_err(|e| Error::Decode { what: what.to_string(), message: e.to_string() })
    }

    /// `GET` one object.
    pub(crate) async fn get(&self, path: &[&str], what: &str) -> Result<Value, Error> {
        let text =
            self.call(Call { method: Method::GET, path, query: Vec::new(), body: None, what, secret: None }).await?;
        Self::decode(what, &text)
    }

    /// `GET` one object; `None` when the API answers 404.
    pub(crate) async fn get_opt(&self, path: &[&str], what: &str) -> Result<Option<Value>, Error> {
        match self.get(path, what).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST` `body` to the collection `path`; the created (or reviewed) object.
    pub(crate) async fn post(
        &self,
        path: &[&str],
        body: &Value,
        what: &str,
        secret: Option<&SecretString>,
    ) -> Result<Value, Error> {
        let text =
            self.call(Call { method: Method::POST, path, query: Vec::new(), body: Some(body), what, secret }).await?;
        Self::decode(what, &text)
    }

    /// `DELETE` one object with `propagationPolicy: Background` (its owned dependents, such as a VM's
    /// DataVolumes, are collected by the garbage collector). `false` when it was already gone (404).
    pub(crate) async fn delete(&self, path: &[&str], what: &str) -> Result<bool, Error> {
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
        match self
            .call(Call { method: Method::DELETE, path, query: Vec::new(), body: Some(&body), what, secret: None })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object of the collection `path` matching `selector`, following `metadata.continue`.
    pub(crate) async fn list(&self, path: &[&str], selector: &str, what: &str) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        let mut cont: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let mut query = vec![("labelSelector", selector.to_string()), ("limit", self.page.to_string())];
            if let Some(c) = &cont {
                query.push(("continue", c.clone()));
            }
            let text = self.call(Call { method: Method::GET, path, query, body: None, what, secret: None }).await?;
            let v = Self::decode(what, &text)?;
            let items = v.get("items").and_then(Value::as_array).ok_or_else(|| Error::Decode {
                what: what.to_string(),
                message: "the list has no `items` array".into(),
            })?;
            out.extend(items.iter().cloned());
            pages += 1;
            let next = v.pointer("/metadata/continue").and_then(Value::as_str).filter(|c| !c.is_empty());
            match next {
                Some(n) if cont.as_deref() == Some(n) || pages > 100_000 => {
                    return Err(Error::Decode {
                        what: what.to_string(),
                        message: "metadata.continue does not move to a new page".into(),
                    });
                }
                Some(n) => cont = Some(n.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// `metadata.name` of an object (empty when absent).
pub(crate) fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

/// `metadata.labels` of an object.
pub(crate) fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}
