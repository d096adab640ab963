//! HTTP Basic credentials: a refused password is Auth, sent once and never shown; a rotated one is
//! read again once and used.

use integration_tests::nutanix_server::{NutanixTestServer, PASSWORD};
use secrecy::SecretString;
use std::sync::Arc;

use super::{config, fast_retry, fast_timings, provider_cfg};
use shared::config::SecretRef;
use shared::providers::nutanix::NutanixProvider;
use shared::providers::{BuildEnv, ErrorClass, VmProvider};

const MISSING: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn a_refused_password_is_auth_sent_once_and_never_shown() {
    let server = NutanixTestServer::start().await;
    let p = provider_cfg(&config(&server), "not-the-Pr1sm-password");
    let e = p.get_vm(MISSING).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("AUTHENTICATION_REQUIRED"), "{e}");
    assert!(!e.to_string().contains("not-the-Pr1sm-password"), "{e}");
    assert_eq!(server.requests().len(), 1);
    assert!(!format!("{p:?}").contains("not-the-Pr1sm-password"));
}

/// A secret that an operator rotates.
#[derive(Debug)]
struct Rotating(std::sync::Mutex<String>);

#[async_trait::async_trait]
impl shared::secrets::Secrets for Rotating {
    async fn resolve(&self, _r: &SecretRef) -> Result<SecretString, shared::secrets::SecretError> {
        Ok(SecretString::from(self.0.lock().unwrap().clone()))
    }
}

#[tokio::test]
async fn a_refused_password_is_read_again_once_and_a_rotated_one_is_used() {
    let server = NutanixTestServer::start().await;
    let secret = Arc::new(Rotating(std::sync::Mutex::new(PASSWORD.into())));
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(secret.clone(), "t") };
    let p = NutanixProvider::from_config(&config(&server), &env).unwrap();
    assert_eq!(p.get_vm(MISSING).await.unwrap_err().class(), ErrorClass::NotFound);

    // The operator changes the password in Prism Central, then in the secret.
    server.set_password("N3w-pa55word");
    server.api().clear_requests();
    assert_eq!(p.get_vm(MISSING).await.unwrap_err().class(), ErrorClass::Auth);
    assert_eq!(server.requests().len(), 1, "the same password is not sent twice");
    *secret.0.lock().unwrap() = "N3w-pa55word".into();
    server.api().clear_requests();
    assert_eq!(p.get_vm(MISSING).await.unwrap_err().class(), ErrorClass::NotFound);
    assert_eq!(server.requests().len(), 2, "the refused request and one with the new password");
    server.api().clear_requests();
    let _ = p.get_vm(MISSING).await;
    assert_eq!(server.requests().len(), 1, "the new password is kept");
}
